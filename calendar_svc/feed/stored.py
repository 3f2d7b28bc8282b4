"""The feed's render cache, kept in the database so that a restart costs a read, not a render.

Each entry's serialised VEVENT (``rendered_events``) and each zone's VTIMEZONE
(``rendered_zones``) is stored with a digest of everything it was built from:
``FORMAT_VERSION`` (raise it whenever ``ics`` writes other bytes for the same
input), the feed options, the tz database's fingerprint, the calendar's slug and
inherited reminder offsets (the UID and the VALARMs), and the entry's row key and
row version. A fresh ``FeedCache`` reads a calendar's rows back on its first
render and keeps those whose digest still matches; the rest are rendered as
usual and written back. So the bytes served are always those a cold render
gives (tests compare them).

Writing is best effort and never in a request's way: rows go to a queue that one
background thread writes in its own transactions; a full disk, a read-only
database or a lock held too long is logged (``feed.render_cache_unwritten``) and
the feed is served all the same. A failed read is logged too and the feed is
rendered cold.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, insert, select
from sqlalchemy.sql import bindparam

from calendar_svc.db import DriverQuery
from calendar_svc.ics import FeedOptions
from calendar_svc.logs import log_event
from calendar_svc.models import Entry, RenderedEvent, RenderedZone
from calendar_svc.store import Store
from calendar_svc.tzdb import TzDatabase

log = logging.getLogger("calendar_svc.feed")

# Raise whenever ics.event_bytes / vtimezone write other bytes for the same entry:
# every stored render then counts as stale.
FORMAT_VERSION: Final = 1
_CHUNK = 500  # rows per IN (...) / per INSERT


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A VEVENT as stored: its digest, zone pair, earliest year and bytes."""

    digest: str
    zones: str
    year: int
    body: bytes


# One read per calendar and process, below the ORM (10,000 rows through SQLAlchemy's
# result layer cost more than the rest of a restarted server's first GET), with each
# entry's row version for the digest.
_EVENTS = (
    select(
        RenderedEvent.entry_id,
        RenderedEvent.digest,
        RenderedEvent.zones,
        RenderedEvent.year,
        RenderedEvent.body,
        Entry.version,
    )
    .join(Entry, Entry.id == RenderedEvent.entry_id)
    .where(RenderedEvent.calendar_id == bindparam("calendar_id"))
)


def feed_scope(options: FeedOptions, tz: TzDatabase) -> str:
    """The part of every digest that does not depend on the entry."""
    return f"{FORMAT_VERSION}|{options!r}|{tz.fingerprint}"


def calendar_scope(scope: str, slug: str, inherited: tuple[str, ...] | None) -> str:
    return f"{scope}|{slug}|{inherited!r}"


def event_digest(scope: str, row: Sequence[Any], version: int) -> str:
    """Digest of one entry's VEVENT inputs (``row``: the feed's key row as the driver gave
    it; ``version``: the entry's row version)."""
    return hashlib.sha256(f"{scope}|{tuple(row)!r}|{version}".encode()).hexdigest()


def zone_digest(tz: TzDatabase, zone: str, first_year: int) -> str:
    return hashlib.sha256(
        f"{FORMAT_VERSION}|{tz.fingerprint}|{zone}|{first_year}".encode()
    ).hexdigest()


class StoredRenders:
    """Reads stored renders back and writes new ones behind the requests' backs."""

    def __init__(self, store: Store):
        self.store = store
        self._queue: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition()
        self._events_query: DriverQuery | None = None

    # -- reads (in the rendering thread) --------------------------------------------------

    def events(self, calendar_id: int) -> dict[int, tuple[StoredEvent, int]]:
        """The stored VEVENTs of a calendar by entry id, each with its entry's row version
        now; {} when they cannot be read."""
        try:
            with self.store.read() as session:
                query = self._events_query
                if query is None:
                    query = self._events_query = DriverQuery(_EVENTS, self.store.engine.dialect)
                rows = query.rows(session.connection().connection, {"calendar_id": calendar_id})
            return {
                row[0]: (StoredEvent(row[1], row[2], row[3], bytes(row[4])), row[5]) for row in rows
            }
        except Exception as exc:
            log_event(log, "feed.render_cache_unread", logging.WARNING, error=type(exc).__name__)
            return {}

    def zones(self) -> dict[tuple[str, int], tuple[str, str | None, bytes]]:
        """Every stored VTIMEZONE: (zone, first year) -> (digest, TZID, bytes)."""
        try:
            with self.store.read() as session:
                rows = session.execute(
                    select(
                        RenderedZone.zone,
                        RenderedZone.first_year,
                        RenderedZone.digest,
                        RenderedZone.tzid,
                        RenderedZone.body,
                    )
                )
                return {(r[0], r[1]): (r[2], r[3], bytes(r[4])) for r in rows}
        except Exception as exc:
            log_event(log, "feed.render_cache_unread", logging.WARNING, error=type(exc).__name__)
            return {}

    # -- writes (queued) ---------------------------------------------------------------

    def save_events(self, calendar_id: int, rows: Iterable[tuple[int, StoredEvent]]) -> None:
        batch = list(rows)
        if batch:
            self._put(("events", (calendar_id, batch)))

    def save_zone(
        self, zone: str, first_year: int, digest: str, tzid: str | None, body: bytes
    ) -> None:
        self._put(("zone", (zone, first_year, digest, tzid, body)))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued write is done (or failed and logged); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (for up to ``timeout`` s: what is left is only a cache)
        and stop the writer thread."""
        with self._thread_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _put(self, item: tuple[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        with self._thread_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="calendar-svc-render-cache", daemon=True
                )
                self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                if item[0] == "events":
                    self._write_events(*item[1])
                else:
                    self._write_zone(*item[1])
            except Exception as exc:
                # The feed was served; it is only rendered again after the next restart.
                log_event(
                    log,
                    "feed.render_cache_unwritten",
                    logging.WARNING,
                    error=type(exc).__name__,
                    detail=str(getattr(exc, "orig", exc)).splitlines()[0][:200]
                    if str(getattr(exc, "orig", exc))
                    else "",
                )
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _write_events(self, calendar_id: int, batch: list[tuple[int, StoredEvent]]) -> None:
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start : start + _CHUNK]
            ids = [entry_id for entry_id, _ in chunk]
            with self.store.write() as session:
                # Entries deleted since they were rendered have no row to keep.
                alive = set(session.scalars(select(Entry.id).where(Entry.id.in_(ids))))
                session.execute(delete(RenderedEvent).where(RenderedEvent.entry_id.in_(ids)))
                values = [
                    {
                        "entry_id": entry_id,
                        "calendar_id": calendar_id,
                        "digest": event.digest,
                        "zones": event.zones,
                        "year": event.year,
                        "body": event.body,
                    }
                    for entry_id, event in chunk
                    if entry_id in alive
                ]
                if values:
                    session.execute(insert(RenderedEvent), values)

    def _write_zone(
        self, zone: str, first_year: int, digest: str, tzid: str | None, body: bytes
    ) -> None:
        with self.store.write() as session:
            session.execute(
                delete(RenderedZone).where(
                    RenderedZone.zone == zone, RenderedZone.first_year == first_year
                )
            )
            session.execute(
                insert(RenderedZone),
                [
                    {
                        "zone": zone,
                        "first_year": first_year,
                        "digest": digest,
                        "tzid": tzid,
                        "body": body,
                    }
                ],
            )
