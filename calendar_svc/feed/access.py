"""Who a token in a feed or page URL belongs to: the calendar's owner, a share link, or nobody.

The feed (``/feeds/{token}/{slug}.ics``) and the page (``/c/{token}/{slug}``)
ask the same question the same way, so one wrong token, unknown slug, revoked
or expired link gets the same 404 from both, at the same cost:

* the calendar's own token is compared with ``hmac.compare_digest`` (against
  a dummy when the slug is unknown);
* any other token's SHA-256 is looked up among the calendar's live share links
  (computed for an unknown calendar too, so that costs what a wrong token does);
* the live links are kept per calendar **version**, which every request reads
  anyway (``Store.calendar_head``) and which ``share`` / ``unshare`` bump: the
  first request after a change in any process reloads them (one query, in a
  worker thread), every other request costs a dictionary lookup. A revoked
  link is therefore refused from the next request on; an expired one is
  compared with the clock on every request.

Fetches through share links are counted here (``fetched``) and written in
batches by a ``FetchLog``; ``close`` writes the last batch.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from calendar_svc.clock import Clock
from calendar_svc.config import Config
from calendar_svc.errors import StoreError
from calendar_svc.feed.fetches import FetchLog
from calendar_svc.shares import OWNER, Grant, ShareLinks
from calendar_svc.store import CalendarHead, Store

# Compared against when the slug is unknown, so that answer costs what a wrong token does.
_DUMMY_TOKEN = b"x" * 43
_NO_GRANTS: dict[bytes, Grant] = {}


class Access:
    """Resolves tokens to grants for one server (thread-safe); ``close()`` when it stops."""

    def __init__(self, store: Store, config: Config, *, clock: Clock | None = None):
        self.clock: Clock = clock or store.clock
        self.links = ShareLinks(store)
        self.fetches = FetchLog(
            self.links.record_fetches, interval=config.feed.stats_interval.total_seconds()
        )
        # calendar id -> (version, live links by token digest); replaced, never mutated.
        self._grants: dict[int, tuple[int, dict[bytes, Grant]]] = {}
        self._lock = threading.Lock()

    async def resolve(self, head: CalendarHead | None, token: str) -> Grant | None:
        """The grant of ``token`` for the calendar ``head`` (None: unknown slug), or None
        when it opens nothing. Raises StoreError when the links cannot be read."""
        grants = self.known(head)
        if grants is None:
            assert head is not None
            grants = await run_in_threadpool(self._load, head)
        return self.check(head, token, grants)

    def known(self, head: CalendarHead | None) -> dict[bytes, Grant] | None:
        """The live links of ``head``'s calendar at its version, when already read (an
        unknown calendar has none); None when they must be read first (``resolve``)."""
        if head is None:
            return _NO_GRANTS
        cached = self._grants.get(head.id)
        if cached is not None and cached[0] == head.version:
            return cached[1]
        return None

    def check(
        self, head: CalendarHead | None, token: str, grants: dict[bytes, Grant]
    ) -> Grant | None:
        """``resolve`` once the calendar's live links are known (no I/O)."""
        given = token.encode("utf-8", "surrogateescape")
        own = hmac.compare_digest(given, head.token.encode() if head is not None else _DUMMY_TOKEN)
        if own and head is not None:
            # The owner's poll, the hot path, skips the digest: a valid token may answer
            # sooner than a wrong one, which tells its holder nothing new.
            return OWNER
        # Any wrong token, for a known or an unknown calendar, costs the same from here.
        shared = grants.get(hashlib.sha256(given).digest())
        if head is None or shared is None:
            return None
        if shared.expires_at is not None and shared.expired(self.clock()):
            return None
        return shared

    def _load(self, head: CalendarHead) -> dict[bytes, Grant]:
        try:
            grants = self.links.grants(head.id)
        except SQLAlchemyError as exc:
            raise StoreError(f"database unavailable: {type(exc).__name__}") from exc
        with self._lock:
            # Links read now are at least as new as ``head.version``: keep them under it.
            self._grants = {**self._grants, head.id: (head.version, grants)}
        return grants

    def fetched(self, grant: Grant, user_agent: bytes | None, at: datetime | None = None) -> None:
        """Count one feed fetch through ``grant`` (share links only; cheap, no I/O)."""
        if grant.share_id is not None:
            self.fetches.record(grant.share_id, at or self.clock(), user_agent)

    def close(self) -> None:
        """Write the fetch counts not written yet."""
        self.fetches.close()
