"""The feed's render cache kept in the database (``feed.stored``): a fresh process serves
the stored VEVENTs and VTIMEZONEs, byte for byte what a cold render gives, and renders
again exactly what one of the digest's inputs made stale (an edit, the feed options, the
tz database, the format version). Writing it never fails a request.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from tz_releases import RELEASE_A, RELEASE_B, compile_release, needs_zic

from calendar_svc import ics
from calendar_svc import timezones as tz
from calendar_svc.feed import cache as feed_cache
from calendar_svc.feed import stored as feed_stored
from calendar_svc.feed.cache import FeedCache, RenderedFeed
from calendar_svc.feed.stored import StoredRenders
from calendar_svc.filters import EntryFilter
from calendar_svc.models import Calendar, Entry, RenderedEvent, RenderedZone
from calendar_svc.store import Store

SLUG = "rubio-2025-09"
OPTIONS = ics.FeedOptions()


class Counting:
    """Which entries a render serialised (the real ``ics.event_bytes`` does the work)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.uids: list[str] = []
        self._original = ics.event_bytes
        monkeypatch.setattr(feed_cache.ics, "event_bytes", self)

    def __call__(self, entry: Entry, calendar: Calendar, options: ics.FeedOptions) -> bytes:
        self.uids.append(entry.uid)
        return self._original(entry, calendar, options)


def fresh_render(
    store: Store, options: ics.FeedOptions = OPTIONS, flt: EntryFilter | None = None
) -> RenderedFeed:
    """A render by a new cache, as the first GET of a restarted server does; its writes
    are finished before it returns."""
    stored = StoredRenders(store)
    cache = FeedCache(store, options, stored=stored)
    feed = cache.render(store.get_calendar(SLUG).id, flt or EntryFilter())
    assert stored.flush()
    stored.close()
    return feed


def cold(store: Store, options: ics.FeedOptions = OPTIONS) -> bytes:
    calendar = store.get_calendar(SLUG)
    return ics.render(calendar, store.entries(EntryFilter(calendar=SLUG)), options)


def stored_rows(store: Store) -> int:
    with store.read() as session:
        return int(session.scalar(select(func.count()).select_from(RenderedEvent)) or 0)


def test_a_restarted_cache_serves_the_stored_renders_byte_for_byte(
    trip_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = fresh_render(trip_store)
    assert first.body == cold(trip_store)
    assert stored_rows(trip_store) == first.entries == 11
    with trip_store.read() as session:
        assert session.scalar(select(func.count()).select_from(RenderedZone))
    counting = Counting(monkeypatch)
    again = fresh_render(trip_store)
    assert counting.uids == []  # nothing serialised: every VEVENT came from the table
    assert again.body == first.body == cold(trip_store)
    assert again.etag == first.etag


def test_an_edit_renders_that_entry_again_and_only_it(
    trip_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_render(trip_store)
    trip_store.set_status("embassy-quito", "cancelled", SLUG)
    counting = Counting(monkeypatch)
    edited = fresh_render(trip_store)
    assert counting.uids == ["embassy-quito"]
    assert edited.body == cold(trip_store)
    assert b"STATUS:CANCELLED" in edited.body
    counting.uids.clear()
    assert fresh_render(trip_store).body == edited.body and counting.uids == []
    # A deleted entry's stored row goes with it.
    trip_store.delete_entry("embassy-quito", SLUG)
    assert stored_rows(trip_store) == 10
    assert fresh_render(trip_store).body == cold(trip_store)


def test_other_feed_options_or_format_version_render_everything_again(
    trip_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_render(trip_store)
    counting = Counting(monkeypatch)
    other = ics.FeedOptions(domain="example.org", include_alarms=False)
    feed = fresh_render(trip_store, other)
    assert len(counting.uids) == 11
    assert feed.body == cold(trip_store, other)
    assert b"@rubio-2025-09.example.org" in feed.body and b"BEGIN:VALARM" not in feed.body
    counting.uids.clear()
    assert fresh_render(trip_store, other).body == feed.body and counting.uids == []
    # A release whose ics writes other bytes raises FORMAT_VERSION: nothing stored is used.
    monkeypatch.setattr(feed_stored, "FORMAT_VERSION", feed_stored.FORMAT_VERSION + 1)
    assert fresh_render(trip_store, other).body == feed.body
    assert len(counting.uids) == 11


def test_a_filtered_first_render_restores_the_whole_calendar(
    trip_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_render(trip_store)
    counting = Counting(monkeypatch)
    stored = StoredRenders(trip_store)
    cache = FeedCache(trip_store, OPTIONS, stored=stored)
    calendar_id = trip_store.get_calendar(SLUG).id
    quito = cache.render(calendar_id, EntryFilter(city="Quito"))
    whole = cache.render(calendar_id, EntryFilter())
    stored.close()
    assert counting.uids == [] and 0 < quito.entries < whole.entries
    assert whole.body == cold(trip_store)


@pytest.fixture
def restore_tz() -> Iterator[None]:
    previous = tz.current()
    yield
    tz.use(previous)


@needs_zic
def test_another_tz_database_renders_everything_again(
    trip_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_tz: None,
) -> None:
    release_a = compile_release(tmp_path / "a", RELEASE_A, "test-a")
    release_b = compile_release(tmp_path / "b", RELEASE_B, "test-b")
    tz.use_folder(release_a)
    under_a = fresh_render(trip_store)
    assert under_a.body == cold(trip_store)
    counting = Counting(monkeypatch)
    tz.use_folder(release_b)
    under_b = fresh_render(trip_store)
    assert len(counting.uids) == 11
    assert under_b.body == cold(trip_store) != under_a.body  # Mexico City's VTIMEZONE moved
    counting.uids.clear()
    assert fresh_render(trip_store).body == under_b.body and counting.uids == []
    # Back to the first release: its renders were replaced, so they are made again.
    tz.use_folder(release_a)
    assert fresh_render(trip_store).body == under_a.body


def test_a_database_that_refuses_the_cache_writes_still_serves(
    sqlite_store: Store,
    trip_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from calendar_svc.importer import import_specs
    from calendar_svc.schedule_files import load_file

    store = sqlite_store
    with store.write() as session:
        import_specs(session, [load_file(trip_path)], now=store.clock())
    with store.write() as session:
        # What a full disk or a read-only file says, from the database itself.
        for table in ("rendered_events", "rendered_zones"):
            session.execute(
                text(
                    f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                )
            )
    with caplog.at_level(logging.WARNING, logger="calendar_svc.feed"):
        feed = fresh_render(store)
    assert feed.body == cold(store)
    assert stored_rows(store) == 0
    assert "feed.render_cache_unwritten" in caplog.messages
