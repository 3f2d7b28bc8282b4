"""What every endpoint of the API shares: its answer, the checks of a request that come
before the change itself (scope, read-only keys, ``If-Match``, the body), and idempotent
POSTs.

An endpoint is ``async (request, key) -> Answer``; the app (``api.app``) has
already resolved the key. ``Frame.json_body`` reads a body as the API takes it
(415 for another media type, 413 above ``[api] max_body``, even without a
``Content-Length``, 400 for broken JSON, 422 for JSON that is not an object);
``Frame.idempotent`` runs a create in one transaction and records its answer
there when the request carries an ``Idempotency-Key``, so a retry gets it back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from calendar_svc import idempotency
from calendar_svc.api_keys import KeyInfo
from calendar_svc.config import Config
from calendar_svc.errors import ApiProblem, NotFoundError
from calendar_svc.store import Store

PREFIX = "/api/v1"
JSON_TYPES = ("application/json",)
MERGE_TYPES = ("application/json", "application/merge-patch+json")


@dataclass(frozen=True)
class Change:
    """What a write changed, logged as ``api.changed`` once its transaction committed."""

    action: str
    calendar: str
    uid: str | None
    version: int


@dataclass
class Answer:
    """A JSON answer: status, body (None: no content) and headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    change: Change | None = None

    def response(self) -> Response:
        if self.body is None:
            return Response(status_code=self.status, headers=self.headers)
        return Response(
            json.dumps(self.body, ensure_ascii=False) + "\n",
            status_code=self.status,
            media_type="application/json",
            headers={"cache-control": "no-store", **self.headers},
        )


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: Request) -> set[int] | None:
    """The versions ``If-Match`` names (None: ``*``, any); 428 without the header."""
    value = request.headers.get("if-match")
    if value is None:
        raise ApiProblem(
            428,
            "this request changes what it names: send If-Match with the ETag you read "
            '(e.g. If-Match: "3"), so a change made since is not overwritten',
        )
    if not value.strip():
        raise ApiProblem(400, 'If-Match is empty: send the ETag you read (e.g. If-Match: "3")')
    if value.strip() == "*":
        return None
    versions = set()
    for tag in value.split(","):
        tag = tag.strip()
        # A weak tag never matches for If-Match (RFC 9110: strong comparison).
        if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1:-1].isdigit() and len(tag) < 20:
            versions.add(int(tag[1:-1]))
    return versions


def merge(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (None: none); 400 when it is empty or too long."""
    name = request.headers.get("idempotency-key")
    if name is not None and not 0 < len(name) <= idempotency.KEY_MAX:
        raise ApiProblem(
            400, f"Idempotency-Key must be 1 to {idempotency.KEY_MAX} characters, got {len(name)}"
        )
    return name


def _replay(found: idempotency.StoredAnswer, digest: str) -> Answer:
    if found.request_digest != digest:
        raise ApiProblem(
            422,
            "this Idempotency-Key came with another request (method, path or body); use a new "
            "key for a new request",
        )
    return Answer(
        found.status, json.loads(found.body), {**found.headers, "Idempotent-Replayed": "true"}
    )


class Frame:
    """The store, the config and the checks every endpoint makes."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config

    @staticmethod
    def in_scope(key: KeyInfo, slug: str) -> None:
        """404 for a calendar outside the key's scope, in the words of one that is not."""
        if not key.sees(slug):
            raise NotFoundError(f"no calendar {slug!r}")

    @staticmethod
    def writable(key: KeyInfo) -> None:
        """403 for a read-only key."""
        if key.read_only:
            raise ApiProblem(403, f"key {key.name!r} is read-only")

    async def json_body(
        self, request: Request, types: tuple[str, ...]
    ) -> tuple[bytes, dict[str, Any]]:
        """The request's JSON object: 415, 413, 400 or 422 (not an object) otherwise."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in types:
            accept = ", ".join(types)
            raise ApiProblem(
                415,
                f"send the body as {accept}, not {media or 'nothing'}",
                headers={"Accept-Post" if request.method == "POST" else "Accept-Patch": accept},
            )
        limit = self.config.api.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiProblem(413, f"the body is {int(declared)} bytes; at most {limit} are taken")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiProblem(413, f"the body is over {limit} bytes, the most taken")
            chunks.append(chunk)
        raw = b"".join(chunks)

        def refuse(constant: str) -> Any:
            raise ValueError(f"{constant} is not JSON")

        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=refuse)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ApiProblem(400, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise ApiProblem(422, f"expected a JSON object, got {type(body).__name__}", pointer="")
        return raw, body

    async def idempotent(
        self,
        request: Request,
        key: KeyInfo,
        raw: bytes,
        write: Callable[[Session, datetime], Answer],
    ) -> Answer:
        """``write`` in one transaction; with an ``Idempotency-Key``, its answer recorded
        there, and a retry answered with it (422 when the key came with another request)."""
        name = idempotency_key(request)
        digest = idempotency.request_digest(request.method, request.url.path, raw)

        def run() -> Answer:
            now = self.store.clock()
            with self.store.write() as session:
                if name is not None:
                    found = idempotency.find(session, key.id, name)
                    if found is not None:
                        return _replay(found, digest)
                answer = write(session, now)
                if name is not None:
                    stored = idempotency.StoredAnswer(
                        status=answer.status,
                        headers=answer.headers,
                        body=json.dumps(answer.body, ensure_ascii=False),
                        request_digest=digest,
                    )
                    idempotency.record(
                        session, key.id, name, stored, now=now, keep=self.config.api.idempotency_ttl
                    )
                return answer

        try:
            return await run_in_threadpool(run)
        except IntegrityError:
            if name is None:
                raise

            # A concurrent first try of the same key won: answer as it did.
            def again() -> Answer:
                with self.store.read() as session:
                    found = idempotency.find(session, key.id, name)
                if found is None:
                    raise ApiProblem(409, "a concurrent request made the same change first")
                return _replay(found, digest)

            return await run_in_threadpool(again)
