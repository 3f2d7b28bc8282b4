"""Keys of the HTTP API: bearer tokens stored as digests, each with a name and a scope.

``create`` returns the token once (``csk_`` + 43 URL-safe characters, 256
random bits); only its SHA-256 is stored, so nobody, a database backup
included, can read a key back. A key is scoped to some calendars (by slug;
every other calendar is unknown to it, 404) or to all, may be read-only, and
works until it expires or is revoked. ``authenticate`` is what the API asks on
every request: one indexed SELECT by digest, so a revoke holds from the next
request on in every server. Every session opens through the store.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from calendar_svc.errors import InputError, NotFoundError
from calendar_svc.holders import holder_name, token_state
from calendar_svc.models import ApiKey, Calendar
from calendar_svc.store import Store

TOKEN_PREFIX = "csk_"


def new_token() -> str:
    """An unguessable API token: ``csk_`` and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The hex SHA-256 of a token as presented (what the table stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """One key as ``api-key list`` shows it and the API knows its caller (never the token)."""

    id: int
    name: str
    calendars: tuple[str, ...] | None  # None: every calendar
    read_only: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """``active``, ``expired`` or ``revoked``."""
        return token_state(now, expires_at=self.expires_at, revoked_at=self.revoked_at)

    def sees(self, slug: str) -> bool:
        """Whether the key's scope includes calendar ``slug``."""
        return self.calendars is None or slug in self.calendars


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        calendars=tuple(row.calendars) if row.calendars is not None else None,
        read_only=row.read_only,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class ApiKeys:
    """The API keys of a store: create, list, revoke, and ``authenticate`` for the API."""

    def __init__(self, store: Store):
        self.store = store

    def create(
        self,
        name: str,
        *,
        calendars: Sequence[str] | None = None,
        read_only: bool = False,
        expires_at: datetime | None = None,
    ) -> tuple[KeyInfo, str]:
        """A new key; returns it and its token (the only time the token is known).

        ``calendars``: the slugs it is scoped to (each must exist), None for all.
        InputError for a name a live key already has or an expiry in the past.
        """
        name = holder_name(name, example='who or what the key is for ("booking")')
        now = self.store.clock()
        if expires_at is not None and expires_at <= now:
            raise InputError("--expires is not in the future")
        token = new_token()
        try:
            with self.store.write() as session:
                if calendars is not None:
                    known = set(session.scalars(select(Calendar.slug)))
                    unknown = [slug for slug in calendars if slug not in known]
                    if unknown:
                        listed = ", ".join(sorted(known)) or "none yet"
                        raise NotFoundError(
                            f"no calendar {unknown[0]!r} for --calendar (known: {listed})"
                        )
                if self._live(session, name) is not None:
                    raise InputError(
                        f"a live key is already called {name!r}; pick another name, or revoke "
                        f"it first (calendar-svc api-key revoke {name!r})"
                    )
                row = ApiKey(
                    name=name,
                    token_digest=token_digest(token),
                    calendars=sorted(dict.fromkeys(calendars)) if calendars is not None else None,
                    read_only=read_only,
                    created_at=now,
                    expires_at=expires_at,
                )
                session.add(row)
                session.flush()
                info = _info(row)
        except IntegrityError:
            raise InputError(f"a live key is already called {name!r}") from None
        return info, token

    def list(self) -> list[KeyInfo]:
        """Every key, live ones first, each group oldest first."""
        with self.store.read() as session:
            rows = session.scalars(
                select(ApiKey).order_by(
                    ApiKey.revoked_at.is_not(None), ApiKey.created_at, ApiKey.id
                )
            ).all()
            return [_info(row) for row in rows]

    def revoke(self, name: str) -> KeyInfo:
        """Revoke the live key ``name``: refused from the next request on, in every server.
        NotFoundError, listing the live names, when there is none."""
        wanted = " ".join(name.split())
        with self.store.write() as session:
            row = self._live(session, wanted)
            if row is None:
                live = session.scalars(
                    select(ApiKey.name).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.name)
                ).all()
                known = ", ".join(repr(n) for n in live) if live else "there are none"
                raise NotFoundError(f"no live API key called {name!r} (live keys: {known})")
            row.revoked_at = self.store.clock()
            session.flush()
            return _info(row)

    def authenticate(self, token: str) -> tuple[KeyInfo | None, str]:
        """The key ``token`` belongs to and why it is refused: ``(key, "")`` when it may be
        used, ``(key or None, reason)`` when not (``unknown``, ``revoked``, ``expired``)."""
        digest = token_digest(token)
        with self.store.read() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.token_digest == digest))
            if row is None:
                return None, "unknown"
            info = _info(row)
        state = info.state(self.store.clock())
        return info, "" if state == "active" else state

    @staticmethod
    def _live(session: Session, name: str) -> ApiKey | None:
        return session.scalar(
            select(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        )
