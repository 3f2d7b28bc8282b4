"""Idempotent POSTs of the HTTP API: the first answer to an ``Idempotency-Key``, kept.

A client that sends ``POST`` with an ``Idempotency-Key`` header and does not
hear back (a timeout, a dropped connection) sends it again with the same key;
it must get the first answer, not a second entry. The first answer (status,
``Location`` and ``ETag``, JSON body) is recorded in the transaction that made
the change (``record``), so either both are written or neither is; a retry
finds it (``find``) and gets it back. A key is the caller's own (per API key);
the same key with another request (method, path or body: ``request_digest``)
is refused. Answers older than the configured lifetime are deleted on the way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from calendar_svc.models import IdempotentRequest

KEY_MAX = 255


def request_digest(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request: method, path and body bytes."""
    hashed = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8", "surrogateescape"), body):
        hashed.update(len(part).to_bytes(8, "big"))
        hashed.update(part)
    return hashed.hexdigest()


@dataclass(frozen=True)
class StoredAnswer:
    """The first answer to an idempotent request."""

    status: int
    headers: dict[str, str]
    body: str
    request_digest: str


def find(session: Session, key_id: int, idempotency_key: str) -> StoredAnswer | None:
    """The answer recorded for (API key, ``Idempotency-Key``), if any."""
    row = session.scalar(
        select(IdempotentRequest).where(
            IdempotentRequest.key_id == key_id,
            IdempotentRequest.idempotency_key == idempotency_key,
        )
    )
    if row is None:
        return None
    return StoredAnswer(
        status=row.status,
        headers=dict(row.headers),
        body=row.body,
        request_digest=row.request_digest,
    )


def record(
    session: Session,
    key_id: int,
    idempotency_key: str,
    answer: StoredAnswer,
    *,
    now: datetime,
    keep: timedelta,
) -> None:
    """Record ``answer`` in the caller's transaction, and forget answers older than ``keep``."""
    session.execute(delete(IdempotentRequest).where(IdempotentRequest.created_at < now - keep))
    session.add(
        IdempotentRequest(
            key_id=key_id,
            idempotency_key=idempotency_key,
            request_digest=answer.request_digest,
            status=answer.status,
            headers=answer.headers,
            body=answer.body,
            created_at=now,
        )
    )
    session.flush()
