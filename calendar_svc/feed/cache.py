"""Rendered feeds, cached so that a poll costs a lookup and an edit costs what changed.

Two levels:

* **Feeds**, per (calendar id, calendar version, filter): the bytes, their ETag
  and, once a client asks, their gzip. The store bumps a calendar's version in
  the same transaction as every write a feed shows, so a version seen in the
  database is a complete key; a write from another process shows in the next
  request because each request reads the version (``Store.calendar_head``).
* **Events**, per entry id: the serialised VEVENT, valid while the entry's
  (uid, updated-at, sequence) and its calendar's reminder offsets stay the
  same (every edit a subscriber can see moves ``updated_at`` and ``sequence``).
  After one edit a 10,000-entry feed is rebuilt by one cheap keys query, one
  VEVENT and a join; the result is byte-identical to ``ics.render`` (its
  VTIMEZONEs start in the earliest local year of its timed entries, or 1970).

Both are for one tz database: when another is in use (``timezones.use``; the
daemon switches when its folder changes), nothing rendered with the old one is
served again, even for a calendar whose version did not move (its VTIMEZONEs
changed all the same).

Filters are ``filters.EntryFilter`` values (``filters.parse_filter`` reads the
HTTP query and the ``export`` command's options alike, so both give the same
bytes). Every read goes through the store, in one read transaction per
render (``entry_keys`` below the ORM, for speed).
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from email.utils import format_datetime
from operator import itemgetter
from typing import Any, Final

from sqlalchemy.orm import Session

from calendar_svc import ics, timezones, vtimezone
from calendar_svc.feed.stored import (
    StoredEvent,
    StoredRenders,
    calendar_scope,
    event_digest,
    feed_scope,
    zone_digest,
)
from calendar_svc.filters import EntryFilter
from calendar_svc.models import Calendar, Entry
from calendar_svc.store import CalendarHead, Store
from calendar_svc.timezones import UTC
from calendar_svc.tzdb import TzDatabase

FilterKey = tuple[
    str | None, str | None, date | None, date | None, tuple[str, ...], tuple[str, ...]
]
_GZIP_LEVEL = 6  # ~3% of the size for feeds; level 9 halves the speed for 0.2% more


# --- filters ---------------------------------------------------------------------------


def filter_key(flt: EntryFilter) -> FilterKey:
    """The part of a filter that changes a feed (city and category match in any case;
    a share link's cities and categories are sets)."""
    return (
        flt.city.lower() if flt.city else None,
        flt.category.lower() if flt.category else None,
        flt.start,
        flt.end,
        # Sets, sorted; () without a share link's restriction (every poll computes this key).
        tuple(sorted({city.casefold() for city in flt.cities})) if flt.cities else (),
        tuple(sorted({c.lower() for c in flt.categories})) if flt.categories else (),
    )


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

    def gzipped(self) -> bytes:
        if self._gzip is None:
            with self._gzip_lock:
                if self._gzip is None:
                    # mtime=0: the same feed gives the same gzip bytes.
                    self._gzip = gzip.compress(self.body, _GZIP_LEVEL, mtime=0)
        return self._gzip


# A cached VEVENT: (key, zones, year, body). The key is the entry's row from the keys query
# (id, uid, updated_at, sequence) as the driver gave it; zones is one string
# ("start_tz end_tz", "" for all-day), shared between events with the same zones; year is
# the earliest local year of its start and end (all-day: NO_YEAR), where the feed's
# VTIMEZONEs must start. A plain
# tuple of strings, ints and bytes: the garbage collector stops tracking it, so 10,000 of
# them add nothing to its full collections (those made re-renders after an edit twice as
# slow), and a string keeps its hash, so the zones of a feed are a cheap set.
_CachedEvent = tuple[tuple[Any, ...], str, int, bytes]
_KEY: Final = 0
_ZONES: Final = 1
_YEAR: Final = 2
_BODY: Final = 3
NO_YEAR: Final = 9999


class FeedCache:
    """Builds feeds for one set of ``FeedOptions`` and keeps them (thread-safe).

    ``max_feeds`` bounds the rendered feeds kept (least recently used go
    first; an older version of the same feed goes as soon as a newer exists).
    ``stored``: the render cache kept in the database (``feed.stored``), read back on
    a calendar's first render in this process and written as VEVENTs are rendered;
    None keeps everything in memory only (a one-shot ``export``).
    """

    def __init__(
        self,
        store: Store,
        options: ics.FeedOptions,
        *,
        max_feeds: int = 64,
        stored: StoredRenders | None = None,
    ):
        self.store = store
        self.options = options
        self.max_feeds = max_feeds
        self.stored = stored
        # (zone, first year) -> (TZID, VTIMEZONE bytes) or None, for the tz database in use.
        self._zone_blocks: dict[tuple[str, int], tuple[str, bytes] | None] = {}
        self._stored_zones: dict[tuple[str, int], tuple[str, str | None, bytes]] | None = None
        self._feeds: OrderedDict[tuple[int, int, FilterKey], RenderedFeed] = OrderedDict()
        self._events: dict[int, dict[int, _CachedEvent]] = {}
        # Calendars whose stored renders were read back for every entry (see _events_for).
        self._restored_whole: set[int] = set()
        # Per calendar: the reminder offsets its entries inherit, which its VALARMs show.
        self._inherited: dict[int, tuple[str, ...] | None] = {}
        self._zones: dict[str, str] = {}  # one shared string per zone pair
        # The tz database the cached feeds / VEVENTs were rendered with.
        self._feeds_tz = self._events_tz = timezones.current()
        # One render at a time: a second request for the same feed waits and
        # then finds it cached instead of rendering it again.
        self._render_lock = threading.Lock()
        self._lock = threading.Lock()

    # -- lookups (cheap: the event loop calls these) --------------------------------

    def get(self, head: CalendarHead, key: FilterKey) -> RenderedFeed | None:
        tz = timezones.current()
        with self._lock:
            # "is" first: the same object on every poll, and __eq__ is Python code.
            if tz is not self._feeds_tz and tz != self._feeds_tz:  # another tz database
                self._feeds.clear()
                self._feeds_tz = tz
            feed = self._feeds.get((head.id, head.version, key))
            if feed is not None:
                self._feeds.move_to_end((head.id, head.version, key))
        return feed

    # -- rendering ---------------------------------------------------------------------

    def render(self, calendar_id: int, flt: EntryFilter) -> RenderedFeed:
        """Render (or find, if a concurrent request just did) the current feed."""
        key = filter_key(flt)
        with self._render_lock:
            tz = timezones.current()
            if tz != self._events_tz:
                self._events.clear()
                self._zone_blocks.clear()
                self._events_tz = tz
            with self.store.read() as session:
                calendar = self.store.calendar_by_id(session, calendar_id)
                with self._lock:
                    cached = None
                    if tz == self._feeds_tz:
                        cached = self._feeds.get((calendar.id, calendar.version, key))
                if cached is not None:
                    return cached
                preloaded: dict[int, Entry] = {}
                if _is_whole(flt):
                    rows = self.store.entry_keys(session, calendar.id)
                else:
                    # The store's filter is the one truth about what a filter selects
                    # (zones, recurrences, case folding); it is read once per calendar
                    # version, and only the selected entries' keys with it (a week of a
                    # million-entry calendar: a week's keys, not a million).
                    selected = self.store.select_entries(
                        session, replace(flt, calendar=calendar.slug)
                    )
                    preloaded = {entry.id: entry for entry in selected}
                    keys = self.store.entry_keys_of(session, list(preloaded))
                    by_id = {row[0]: row for row in keys}
                    rows = [by_id[entry.id] for entry in selected if entry.id in by_id]
                events = self._events_for(
                    session,
                    calendar,
                    rows,
                    whole=_is_whole(flt),
                    preloaded=preloaded,
                    tz=tz,
                )
            body = ics.assemble(
                ics.header_bytes(calendar, self.options),
                self._timezone_blocks(_zones_of(events), _first_year(events), tz),
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
            self._store_feed(calendar.id, key, feed, tz)
            return feed

    def _store_feed(
        self, calendar_id: int, key: FilterKey, feed: RenderedFeed, tz: TzDatabase
    ) -> None:
        with self._lock:
            if tz != self._feeds_tz:
                if timezones.current() != tz:
                    return  # switched while rendering: serve it this once, keep nothing
                self._feeds.clear()
                self._feeds_tz = tz
            for old in [k for k in self._feeds if k[0] == calendar_id and k[2] == key]:
                del self._feeds[old]
            self._feeds[(calendar_id, feed.version, key)] = feed
            while len(self._feeds) > self.max_feeds:
                self._feeds.popitem(last=False)

    def _events_for(
        self,
        session: Session,
        calendar: Calendar,
        rows: Sequence[tuple[Any, ...]],
        *,
        whole: bool,
        preloaded: dict[int, Entry],
        tz: TzDatabase,
    ) -> list[_CachedEvent]:
        """The cached VEVENTs of ``rows`` (in order), serialising only new or changed ones.

        The stored renders (``feed.stored``) are read back on a calendar's first render in
        this process, for the entries it lists, and once more on its first whole render: a
        filtered first render (a week of a million entries) checks only its own entries,
        and a later whole one still starts from the stored bytes, not from a cold render.
        """
        inherited = tuple(calendar.reminders) if calendar.reminders is not None else None
        if self._inherited.get(calendar.id, inherited) != inherited:
            self._events.pop(calendar.id, None)  # every inheriting VALARM changed
        self._inherited[calendar.id] = inherited
        scope = ""
        if self.stored is not None:
            scope = calendar_scope(feed_scope(self.options, tz), calendar.slug, inherited)
        known = self._events.get(calendar.id)
        if known is None:
            known = self._events[calendar.id] = {}
            self._restored_whole.discard(calendar.id)
        if (
            self.stored is not None
            and calendar.id not in self._restored_whole
            and (whole or not known)
        ):
            self._restore(calendar.id, rows, known, scope)
            if whole:
                self._restored_whole.add(calendar.id)
        # Comprehensions over driver tuples: at 10,000 rows this is a re-render's main cost.
        lookup = known.get
        stale = {
            row[0]: row for row in rows if (cached := lookup(row[0])) is None or cached[_KEY] != row
        }
        if stale:
            loaded = [preloaded[i] for i in stale if i in preloaded]
            missing = [i for i in stale if i not in preloaded]
            fresh: list[tuple[int, StoredEvent]] = []
            for entry in [*loaded, *self.store.entries_by_id(session, missing)]:
                row = stale[entry.id]
                zones = "" if entry.all_day else f"{entry.start_tz} {entry.end_tz}"
                year = (
                    NO_YEAR if entry.all_day else min(entry.start_local.year, entry.end_local.year)
                )
                body = ics.event_bytes(entry, calendar, self.options)
                known[entry.id] = (row, self._zones.setdefault(zones, zones), year, body)
                if self.stored is not None:
                    digest = event_digest(scope, row, entry.version)
                    fresh.append((entry.id, StoredEvent(digest, zones, year, body)))
            if self.stored is not None:
                self.stored.save_events(calendar.id, fresh)
        if whole and len(known) > len(rows):
            # An unfiltered feed lists every entry: forget deleted ones.
            present = {row[0] for row in rows}
            for entry_id in [i for i in known if i not in present]:
                del known[entry_id]
        # An entry deleted between the two queries is simply left out.
        return [known[row[0]] for row in rows if row[0] in known]

    def _restore(
        self,
        calendar_id: int,
        rows: Sequence[tuple[Any, ...]],
        known: dict[int, _CachedEvent],
        scope: str,
    ) -> None:
        """Fill ``known`` with the stored VEVENTs of ``rows`` whose digest still matches."""
        assert self.stored is not None
        stored = self.stored.events(calendar_id)
        if not stored:
            return
        intern = self._zones.setdefault
        for row in rows:
            found = stored.get(row[0])
            if found is None:
                continue
            event, version = found
            if event.digest == event_digest(scope, row, version):
                known[row[0]] = (row, intern(event.zones, event.zones), event.year, event.body)

    def _timezone_blocks(
        self, zones: Sequence[str], first_year: int, tz: TzDatabase
    ) -> list[bytes]:
        """``ics.timezone_blocks(zones, first_year)``, from memory or the stored renders."""
        blocks: dict[str, bytes] = {}
        for zone in zones:
            block = self._zone_block(zone, first_year, tz)
            if block is not None:
                blocks[block[0]] = block[1]
        return [blocks[tzid] for tzid in sorted(blocks)]

    def _zone_block(self, zone: str, first_year: int, tz: TzDatabase) -> tuple[str, bytes] | None:
        key = (zone, first_year)
        if key in self._zone_blocks:
            return self._zone_blocks[key]
        if self.stored is None:
            block = ics.timezone_block(zone, first_year)
        else:
            if self._stored_zones is None:
                self._stored_zones = self.stored.zones()
            digest = zone_digest(tz, zone, first_year)
            found = self._stored_zones.get(key)
            if found is not None and found[0] == digest:
                block = None if found[1] is None else (found[1], found[2])
            else:
                block = ics.timezone_block(zone, first_year)
                tzid, body = block if block is not None else (None, b"")
                self._stored_zones[key] = (digest, tzid, body)
                self.stored.save_zone(zone, first_year, digest, tzid, body)
        self._zone_blocks[key] = block
        return block


def _zones_of(events: Sequence[_CachedEvent]) -> list[str]:
    """The zones the events use, sorted (from the few distinct zone strings)."""
    pairs = {event[_ZONES] for event in events}
    return sorted({zone for pair in pairs for zone in pair.split()})


def _first_year(events: Sequence[_CachedEvent]) -> int:
    """``ics.first_year`` of the events' entries: their earliest local year, at most 1970."""
    earliest = min((event[_YEAR] for event in events), default=NO_YEAR)
    return min(vtimezone.DEFAULT_FIRST_YEAR, earliest)


def _is_whole(flt: EntryFilter) -> bool:
    return not (flt.city or flt.category or flt.start or flt.end or flt.cities or flt.categories)


def render_feed(
    store: Store, options: ics.FeedOptions, slug: str, flt: EntryFilter | None = None
) -> RenderedFeed:
    """The feed ``slug`` serves for ``flt``, rendered once (``export`` uses this)."""
    calendar = store.get_calendar(slug)
    return FeedCache(store, options, max_feeds=1).render(calendar.id, flt or EntryFilter())


_heap_frozen = False
_freeze_lock = threading.Lock()


def freeze_heap_once() -> None:
    """Move everything alive now out of the garbage collector's sight, once per process.

    For a long-running feed server, after its first render: the caches hold tens of
    thousands of long-lived objects; without this every full collection walks them
    all, and one landing in a re-render costs it 50-80 ms (measured: a one-edit
    re-render of 10,000 entries went from 70 ms median / 134 ms worst to the figures
    in bench/RESULTS.md). Frozen objects are still freed by reference counting; only
    cycles among them are no longer collected, and the garbage of the cold render is
    collected first. A one-shot render (``export``) has nothing to gain from it.
    """
    global _heap_frozen
    with _freeze_lock:
        if _heap_frozen:
            return
        gc.collect()
        gc.freeze()
        _heap_frozen = True
