"""Rendered feeds, cached so that a poll costs a lookup and an edit costs what changed.

Two levels:

* **Feeds**, per (calendar id, calendar version, filter): the bytes, their ETag
  and, once a client asks, their gzip. The store bumps a calendar's version in
  the same transaction as every write a feed shows, so a version seen in the
  database is a complete key; a write from another process shows in the next
  request because each request reads the version (``CalendarLookup``).
* **Events**, per entry id: the serialised VEVENT, valid while the entry's
  (uid, updated-at, sequence) and its calendar's reminder offsets stay the
  same (every edit a subscriber can see moves ``updated_at`` and ``sequence``).
  After one edit a 10,000-entry feed is rebuilt by one cheap keys query, one
  VEVENT and a join; the result is byte-identical to ``ics.render``.

Filters are ``store.EntryFilter`` values; ``parse_filter`` is shared by the
HTTP query and the ``export`` command so both give the same bytes.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from email.utils import format_datetime
from operator import itemgetter
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, bindparam

from calendar_svc import ics
from calendar_svc.errors import NotFoundError, StoreError
from calendar_svc.filters import EntryFilter
from calendar_svc.models import Calendar, Entry
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

FilterKey = tuple[str | None, str | None, date | None, date | None]
_GZIP_LEVEL = 6  # ~3% of the size for feeds; level 9 halves the speed for 0.2% more
_LOAD_CHUNK = 500  # ids per IN (...) when loading changed entries


# --- filters ---------------------------------------------------------------------------


def filter_key(flt: EntryFilter) -> FilterKey:
    """The part of a filter that changes a feed (city and category match in any case)."""
    return (
        flt.city.lower() if flt.city else None,
        flt.category.lower() if flt.category else None,
        flt.start,
        flt.end,
    )


# --- queries run below SQLAlchemy's result layer -----------------------------------------


class DriverQuery:
    """One SELECT compiled once for a dialect and run on a DBAPI connection.

    For the two reads on a feed's hot paths: SQLAlchemy's result machinery
    costs more than the query itself there (per request, and per row of a
    10,000-entry calendar). Rows come back as the driver's tuples, with no
    type processing: values are only compared or used as the driver gives them.
    """

    def __init__(self, stmt: ClauseElement, dialect: Dialect):
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        # qmark drivers (sqlite3) take a tuple in the compiled order, pyformat ones a dict.
        self._order: Sequence[str] | None = getattr(compiled, "positiontup", None)

    def rows(self, dbapi_connection: Any, **params: Any) -> list[tuple[Any, ...]]:
        bound = tuple(params[name] for name in self._order) if self._order else params
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, bound)
            return list(cursor.fetchall())
        finally:
            cursor.close()


# --- the per-request lookup ------------------------------------------------------------


@dataclass(frozen=True)
class CalendarHead:
    """What a request needs before anything else: which calendar, its token and version."""

    id: int
    slug: str
    token: str
    version: int


class CalendarLookup:
    """Reads one calendar's id, token and version per request, on one held connection.

    A session through the store costs ~0.5 ms per request, more than the whole
    budget of a 304 at thousands per second; this compiles the one SELECT once
    and runs it on a DBAPI connection taken from the store's engine (~10 µs on
    SQLite). The connection is in autocommit mode, so every read sees the
    latest commit of any process. On an error the connection is dropped and
    the next request takes a new one.
    """

    def __init__(self, store: Store):
        self._engine = store.engine
        self._query = DriverQuery(
            select(Calendar.id, Calendar.feed_token, Calendar.version).where(
                Calendar.slug == bindparam("slug")
            ),
            self._engine.dialect,
        )
        self._lock = threading.Lock()
        self._conn: Any = None

    def _connect(self) -> Any:
        conn = self._engine.raw_connection()
        driver = conn.driver_connection
        if self._engine.dialect.name == "postgresql" and driver is not None:
            # Without autocommit the SELECT would leave a transaction open.
            driver.autocommit = True
        return conn

    def get(self, slug: str) -> CalendarHead | None:
        """The calendar called ``slug``, or None. Raises StoreError if the database fails."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                rows = self._query.rows(self._conn, slug=slug)
            except Exception as exc:
                self._drop()
                raise StoreError(f"database unavailable: {type(exc).__name__}") from exc
        if not rows:
            return None
        row = rows[0]
        return CalendarHead(id=int(row[0]), slug=slug, token=str(row[1]), version=int(row[2]))

    def _drop(self) -> None:
        if self._conn is not None:
            # A connection that already broke has nothing more to release.
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            # Invalidated rather than returned: its autocommit setting stays ours.
            self._drop()


# --- rendered feeds --------------------------------------------------------------------


@dataclass(eq=False)
class RenderedFeed:
    """One feed's bytes and validators; the gzip is made on first demand and kept.

    ``http`` is for the HTTP layer to keep what it derives once per feed
    (headers), so it lives and goes with the feed.
    """

    slug: str
    version: int
    body: bytes
    etag: str  # the hash alone; HTTP adds quotes and the gzip suffix
    last_modified: datetime
    entries: int
    http: Any = field(default=None, repr=False)
    _gzip: bytes | None = field(default=None, repr=False)
    _gzip_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def last_modified_http(self) -> str:
        return format_datetime(self.last_modified.astimezone(UTC), usegmt=True)

    @property
    def gzip_ready(self) -> bool:
        return self._gzip is not None

    def gzipped(self) -> bytes:
        if self._gzip is None:
            with self._gzip_lock:
                if self._gzip is None:
                    # mtime=0: the same feed gives the same gzip bytes.
                    self._gzip = gzip.compress(self.body, _GZIP_LEVEL, mtime=0)
        return self._gzip


# A cached VEVENT: (key, zones, body). The key is the entry's row from the keys query
# (id, uid, updated_at, sequence) as the driver gave it; zones is one string
# ("start_tz end_tz", "" for all-day), shared between events with the same zones. A plain
# tuple of strings, ints and bytes: the garbage collector stops tracking it, so 10,000 of
# them add nothing to its full collections (those made re-renders after an edit twice as
# slow), and a string keeps its hash, so the zones of a feed are a cheap set.
_CachedEvent = tuple[tuple[Any, ...], str, bytes]
_KEY: Final = 0
_ZONES: Final = 1
_BODY: Final = 2

_ENTRY_KEYS = (
    # Feed order (that of Store.entries within one calendar), read in index order from
    # ix_entries_feed_order: on SQLite from the index alone (the rowid id is in every
    # index), on PostgreSQL with a visit to each row for id, but no sort. An edit a
    # subscriber sees moves updated_at and sequence; uid guards against an id that
    # SQLite hands out again after a delete.
    select(Entry.id, Entry.uid, Entry.updated_at, Entry.sequence)
    .where(Entry.calendar_id == bindparam("calendar_id"))
    .order_by(Entry.start_utc, Entry.uid)
)


class FeedCache:
    """Builds feeds for one set of ``FeedOptions`` and keeps them (thread-safe).

    ``max_feeds`` bounds the rendered feeds kept (least recently used go
    first; an older version of the same feed goes as soon as a newer exists).
    """

    _frozen = False  # set by the first render: see _freeze_heap

    def __init__(self, store: Store, options: ics.FeedOptions, *, max_feeds: int = 64):
        self.store = store
        self.options = options
        self.max_feeds = max_feeds
        self._feeds: OrderedDict[tuple[int, int, FilterKey], RenderedFeed] = OrderedDict()
        self._events: dict[int, dict[int, _CachedEvent]] = {}
        # Per calendar: the reminder offsets its entries inherit, which its VALARMs show.
        self._inherited: dict[int, tuple[str, ...] | None] = {}
        self._zones: dict[str, str] = {}  # one shared string per zone pair
        self._entry_keys = DriverQuery(_ENTRY_KEYS, store.engine.dialect)
        # One render at a time: a second request for the same feed waits and
        # then finds it cached instead of rendering it again.
        self._render_lock = threading.Lock()
        self._lock = threading.Lock()

    # -- lookups (cheap: the event loop calls these) --------------------------------

    def get(self, head: CalendarHead, key: FilterKey) -> RenderedFeed | None:
        with self._lock:
            feed = self._feeds.get((head.id, head.version, key))
            if feed is not None:
                self._feeds.move_to_end((head.id, head.version, key))
        return feed

    def feed(self, head: CalendarHead, flt: EntryFilter) -> RenderedFeed:
        """The feed of ``head`` for ``flt``, from the cache or rendered now."""
        key = filter_key(flt)
        found = self.get(head, key)
        if found is not None:
            return found
        return self.render(head.id, flt)

    # -- rendering ---------------------------------------------------------------------

    def render(self, calendar_id: int, flt: EntryFilter) -> RenderedFeed:
        """Render (or find, if a concurrent request just did) the current feed."""
        key = filter_key(flt)
        with self._render_lock:
            with self.store.read() as session:
                calendar = session.get(Calendar, calendar_id)
                if calendar is None:
                    raise NotFoundError(f"no calendar with id {calendar_id}")
                with self._lock:
                    cached = self._feeds.get((calendar.id, calendar.version, key))
                if cached is not None:
                    return cached
                rows = self._entry_keys.rows(
                    session.connection().connection, calendar_id=calendar.id
                )
                preloaded: dict[int, Entry] = {}
                if not _is_whole(flt):
                    # The store's filter is the one truth about what a filter selects
                    # (zones, recurrences, case folding); it costs a full read, but
                    # only for filtered feeds and only once per calendar version.
                    selected = self.store.entries(replace(flt, calendar=calendar.slug))
                    preloaded = {entry.id: entry for entry in selected}
                    by_id = {row[0]: row for row in rows}
                    rows = [by_id[entry.id] for entry in selected if entry.id in by_id]
                events = self._events_for(
                    session, calendar, rows, whole=_is_whole(flt), preloaded=preloaded
                )
            body = ics.assemble(
                ics.header_bytes(calendar, self.options),
                ics.timezone_blocks(_zones_of(events)),
                map(itemgetter(_BODY), events),
            )
            feed = RenderedFeed(
                slug=calendar.slug,
                version=calendar.version,
                body=body,
                etag=hashlib.sha256(body).hexdigest()[:32],
                last_modified=calendar.updated_at,
                entries=len(events),
            )
            self._store_feed(calendar.id, key, feed)
            if not self._frozen:
                self._freeze_heap()
            return feed

    def _freeze_heap(self) -> None:
        """Move everything alive after the first render out of the collector's sight.

        The caches hold tens of thousands of long-lived objects; without this every
        full collection walks them all, and one landing in a re-render costs it
        50-80 ms (measured: a one-edit re-render of 10,000 entries went from 70 ms
        median / 134 ms worst to the figures in bench/RESULTS.md). Frozen objects are
        still freed by reference counting; only cycles among them are no longer
        collected, and the garbage of the cold render is collected first.
        """
        gc.collect()
        gc.freeze()
        self._frozen = True

    def _store_feed(self, calendar_id: int, key: FilterKey, feed: RenderedFeed) -> None:
        with self._lock:
            for old in [k for k in self._feeds if k[0] == calendar_id and k[2] == key]:
                del self._feeds[old]
            self._feeds[(calendar_id, feed.version, key)] = feed
            while len(self._feeds) > self.max_feeds:
                self._feeds.popitem(last=False)

    def _events_for(
        self,
        session: Any,
        calendar: Calendar,
        rows: Sequence[tuple[Any, ...]],
        *,
        whole: bool,
        preloaded: dict[int, Entry],
    ) -> list[_CachedEvent]:
        """The cached VEVENTs of ``rows`` (in order), serialising only new or changed ones."""
        inherited = tuple(calendar.reminders) if calendar.reminders is not None else None
        if self._inherited.get(calendar.id, inherited) != inherited:
            self._events.pop(calendar.id, None)  # every inheriting VALARM changed
        self._inherited[calendar.id] = inherited
        known = self._events.setdefault(calendar.id, {})
        # Comprehensions over driver tuples: at 10,000 rows this is a re-render's main cost.
        lookup = known.get
        stale = {
            row[0]: row
            for row in rows
            if (cached := lookup(row[0])) is None or cached[_KEY] != row
        }
        if stale:
            loaded = [preloaded[i] for i in stale if i in preloaded]
            missing = [i for i in stale if i not in preloaded]
            for entry in [*loaded, *_load_entries(session, missing)]:
                row = stale[entry.id]
                zones = "" if entry.all_day else f"{entry.start_tz} {entry.end_tz}"
                body = ics.event_bytes(entry, calendar, self.options)
                known[entry.id] = (row, self._zones.setdefault(zones, zones), body)
        if whole and len(known) > len(rows):
            # An unfiltered feed lists every entry: forget deleted ones.
            present = {row[0] for row in rows}
            for entry_id in [i for i in known if i not in present]:
                del known[entry_id]
        # An entry deleted between the two queries is simply left out.
        return [known[row[0]] for row in rows if row[0] in known]


def _zones_of(events: Sequence[_CachedEvent]) -> list[str]:
    """The zones the events use, sorted (from the few distinct zone strings)."""
    pairs = {event[_ZONES] for event in events}
    return sorted({zone for pair in pairs for zone in pair.split()})


def _is_whole(flt: EntryFilter) -> bool:
    return not (flt.city or flt.category or flt.start or flt.end)


def _load_entries(session: Any, ids: Sequence[int]) -> Iterator[Entry]:
    for start in range(0, len(ids), _LOAD_CHUNK):
        chunk = ids[start : start + _LOAD_CHUNK]
        yield from session.scalars(select(Entry).where(Entry.id.in_(chunk)))


def render_feed(
    store: Store, options: ics.FeedOptions, slug: str, flt: EntryFilter | None = None
) -> RenderedFeed:
    """The feed ``slug`` serves for ``flt``, rendered once (``export`` uses this)."""
    calendar = store.get_calendar(slug)
    return FeedCache(store, options, max_feeds=1).render(calendar.id, flt or EntryFilter())
