"""The store, on SQLite and on PostgreSQL: upserts, versions, filters, one transaction."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FakeClock
from sqlalchemy import select

from calendar_svc import importer
from calendar_svc.db import current_revision, head_revision
from calendar_svc.errors import CalendarSvcError, InputError, NotFoundError, StoreError
from calendar_svc.filters import EntryFilter
from calendar_svc.importer import ImportReport
from calendar_svc.models import Calendar
from calendar_svc.schedule_files import CalendarSpec, load_file
from calendar_svc.store import Store
from calendar_svc.timezones import UTC


def trip(trip_path: Path) -> CalendarSpec:
    return load_file(trip_path)


def load(
    store: Store, specs: list[CalendarSpec], *, prune: bool = False, dry_run: bool = False
) -> ImportReport:
    """An import as ``calendar-svc import`` runs one: one transaction, owned by the caller."""
    with store.write(dry_run=dry_run, what="the import") as session:
        return importer.import_specs(session, specs, now=store.clock(), prune=prune)


def version(store: Store, slug: str = "rubio-2025-09") -> int:
    return store.get_calendar(slug).version


def test_migrations_are_idempotent_and_reach_head(store: Store) -> None:
    assert store.migrate() is False
    assert current_revision(store.engine) == head_revision()


def test_models_match_migrations(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from calendar_svc.models import Base

    def declared(obj: object, name: str | None, kind: str, *_: object) -> bool:
        # The one index of a different shape per dialect (on the column in SQLite, on its
        # text in PostgreSQL, whose json has no ordering) is the migration's alone (0011).
        return not (kind == "index" and name == "ix_entries_reminder_lists")

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": declared})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_import_is_idempotent(store: Store, trip_path: Path) -> None:
    first = load(store, [trip(trip_path)])
    assert first.totals()["created"] == 11
    v = version(store)
    second = load(store, [trip(trip_path)])
    assert second.totals() == {"created": 0, "updated": 0, "unchanged": 11, "pruned": 0}
    assert not second.changed
    assert version(store) == v


def test_instants_round_trip_as_utc(trip_store: Store) -> None:
    entry = trip_store.find_entry("sheinbaum-bilateral")
    assert entry.start_utc == datetime(2025, 9, 2, 16, 0, tzinfo=UTC)
    assert entry.start_utc.tzinfo is not None and entry.start_utc.utcoffset() == timedelta(0)
    assert entry.start_local == datetime(2025, 9, 2, 10, 0)
    flight = trip_store.find_entry("flight-mex-uio")
    assert (flight.start_tz, flight.end_tz) == ("America/Mexico_City", "America/Guayaquil")


def test_edit_bumps_sequence_and_version(
    trip_store: Store, trip_path: Path, clock: FakeClock
) -> None:
    spec = trip(trip_path)
    before = trip_store.find_entry("sheinbaum-bilateral")
    v = version(trip_store)
    clock.advance(timedelta(minutes=5))
    moved = [
        dataclasses.replace(
            e,
            start_local=e.start_local + timedelta(hours=1),
            start_utc=e.start_utc + timedelta(hours=1),
            end_local=e.end_local + timedelta(hours=1),
            end_utc=e.end_utc + timedelta(hours=1),
        )
        if e.uid == "sheinbaum-bilateral"
        else e
        for e in spec.entries
    ]
    report = load(trip_store, [dataclasses.replace(spec, entries=tuple(moved))])
    assert report.totals()["updated"] == 1
    after = trip_store.find_entry("sheinbaum-bilateral")
    assert after.sequence == before.sequence + 1
    assert after.updated_at == clock.now
    assert after.created_at == before.created_at
    assert version(trip_store) == v + 1


def test_prune_and_dry_run(trip_store: Store, trip_path: Path) -> None:
    spec = trip(trip_path)
    fewer = dataclasses.replace(spec, entries=spec.entries[:-1])
    dry = load(trip_store, [fewer], prune=True, dry_run=True)
    assert dry.totals()["pruned"] == 1
    assert len(trip_store.entries()) == 11  # nothing written
    load(trip_store, [fewer])  # without --prune nothing is deleted
    assert len(trip_store.entries()) == 11
    v = version(trip_store)
    real = load(trip_store, [fewer], prune=True)
    assert real.calendars[0].pruned == ["flight-uio-was"]
    assert len(trip_store.entries()) == 10
    assert version(trip_store) == v + 1


def test_same_slug_twice_is_refused(trip_store: Store, trip_path: Path) -> None:
    spec = trip(trip_path)
    with pytest.raises(InputError, match="also defined in"):
        load(trip_store, [spec, dataclasses.replace(spec, source="c.toml")])


def test_import_is_one_transaction(
    trip_store: Store, trip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while writing the second calendar undoes the first one too."""
    spec = trip(trip_path)
    first = dataclasses.replace(spec, slug="second-cal", source="b.toml")
    second = dataclasses.replace(spec, slug="third-cal", source="c.toml")
    real = importer.import_calendar

    def failing(session, item: CalendarSpec, **kw):  # type: ignore[no-untyped-def]
        if item.slug == "third-cal":
            raise RuntimeError("disk full")
        return real(session, item, **kw)

    monkeypatch.setattr(importer, "import_calendar", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        load(trip_store, [first, second])
    assert [c.slug for c in trip_store.calendars()] == ["rubio-2025-09"]
    assert len(trip_store.entries()) == 11


def test_a_database_refusal_is_a_store_error_naming_it(store: Store, trip_path: Path) -> None:
    spec = trip(trip_path)
    broken = dataclasses.replace(spec.entries[0], title=None)  # NOT NULL in the schema
    with pytest.raises(StoreError, match=r"the database refused the import: .*title"):
        load(store, [dataclasses.replace(spec, entries=(broken,))])
    assert store.calendars() == []  # rolled back, calendar and all


def test_cancel_delete_rotate_bump_version(trip_store: Store) -> None:
    v = version(trip_store)
    entry, changed = trip_store.set_status("press-mexico-city", "cancelled")
    assert changed and entry.status == "cancelled" and entry.sequence == 1
    assert version(trip_store) == v + 1
    _, again = trip_store.set_status("press-mexico-city", "cancelled")
    assert not again and version(trip_store) == v + 1
    trip_store.delete_entry("embassy-quito")
    assert version(trip_store) == v + 2
    with pytest.raises(NotFoundError):
        trip_store.find_entry("embassy-quito")
    old = trip_store.get_calendar("rubio-2025-09").feed_token
    new = trip_store.rotate_token("rubio-2025-09")
    assert new != old and len(new) >= 43
    assert version(trip_store) == v + 3


def test_cancel_and_delete_are_one_transaction_each(trip_store: Store) -> None:
    """The entry is found in the transaction that changes it: nothing can change it between."""
    from sqlalchemy import event

    begun: list[object] = []
    event.listen(trip_store.engine, "begin", begun.append)
    trip_store.set_status("press-mexico-city", "cancelled")
    assert len(begun) == 1
    trip_store.delete_entry("embassy-quito")
    assert len(begun) == 2
    with pytest.raises(NotFoundError):
        trip_store.delete_entry("embassy-quito")
    assert len(begun) == 3


def test_change_counter_rises_on_every_write(trip_store: Store) -> None:
    seen = [trip_store.change_counter()]
    trip_store.set_status("press-mexico-city", "cancelled")
    seen.append(trip_store.change_counter())
    trip_store.delete_entry("embassy-quito")
    seen.append(trip_store.change_counter())
    assert seen == sorted(set(seen))


def test_filters(trip_store: Store) -> None:
    uids = lambda **kw: [e.uid for e in trip_store.entries(EntryFilter(**kw))]  # noqa: E731
    assert uids(city="quito") == ["noboa-meeting", "embassy-quito", "flight-uio-was"]
    assert uids(category="flight") == ["flight-was-mex", "flight-mex-uio", "flight-uio-was"]
    # Days are local to each entry: the 21:30 EDT landing on the 4th is 01:30Z on the 5th.
    on_4th = uids(start=date(2025, 9, 4), end=date(2025, 9, 4))
    assert on_4th == ["trip-overview", "noboa-meeting", "embassy-quito", "flight-uio-was"]
    assert "flight-uio-was" not in uids(start=date(2025, 9, 5))
    on_3rd = uids(start=date(2025, 9, 3), end=date(2025, 9, 3))
    assert on_3rd[0] == "trip-overview" and "sheinbaum-bilateral" not in on_3rd
    trip_store.set_status("noboa-meeting", "cancelled")
    assert "noboa-meeting" not in uids(include_cancelled=False)
    with pytest.raises(NotFoundError, match="no calendar 'nope'"):
        trip_store.entries(EntryFilter(calendar="nope"))


def test_feed_tokens_are_unique_and_unguessable(store: Store, trip_path: Path) -> None:
    spec = trip(trip_path)
    load(store, [spec, dataclasses.replace(spec, slug="copy", source="b.toml")])
    with store.read() as session:
        tokens = list(session.scalars(select(Calendar.feed_token)))
    assert len(set(tokens)) == 2 and all(len(t) >= 43 for t in tokens)


def test_sqlite_pragmas_let_readers_and_a_writer_share_the_file(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_deleting_a_calendar_cascades_to_its_entries(trip_store: Store) -> None:
    with trip_store.write() as session:
        session.delete(session.scalar(select(Calendar)))
    assert trip_store.entries() == []


def test_cli_cancel_survives_reimport_of_an_unchanged_file(
    trip_store: Store, trip_path: Path, clock: FakeClock
) -> None:
    """The daemon re-imports schedule files on start: a cancel must not be undone by that."""
    trip_store.set_status("press-mexico-city", "cancelled")
    report = load(trip_store, [trip(trip_path)])
    assert report.totals()["updated"] == 0
    assert trip_store.find_entry("press-mexico-city").status == "cancelled"
    # When the file itself changes that entry, the file wins again.
    spec = trip(trip_path)
    edited = [
        dataclasses.replace(e, title="Joint press statement (moved)")
        if e.uid == "press-mexico-city"
        else e
        for e in spec.entries
    ]
    clock.advance(timedelta(minutes=1))
    load(trip_store, [dataclasses.replace(spec, entries=tuple(edited))])
    entry = trip_store.find_entry("press-mexico-city")
    assert (entry.title, entry.status) == ("Joint press statement (moved)", "confirmed")


def test_long_text_fields_import_on_every_backend(store: Store, trip_path: Path) -> None:
    spec = trip(trip_path)
    long_city = "Ciudad " * 100
    entries = tuple(dataclasses.replace(e, city=long_city) for e in spec.entries)
    load(store, [dataclasses.replace(spec, name="N" * 500, entries=entries)])
    assert store.find_entry("noboa-meeting").city == long_city


def test_long_calendar_name_and_city_import_or_fail_cleanly(store: Store, tmp_path: Path) -> None:
    """A 300-character calendar name or city is accepted by the schedule parser, then
    crashes the import on PostgreSQL with a DataError traceback (VARCHAR(255)).

    On every backend it must either be stored in full or refused as bad input.
    """
    path = tmp_path / "long.toml"
    path.write_text(
        textwrap.dedent(
            f"""\
        [calendar]
        slug = "long"
        name = "{"N" * 300}"
        timezone = "America/Mexico_City"

        [[entries]]
        uid = "a"
        title = "x"
        start = 2025-09-02T10:00:00
        city = "{"C" * 300}"
        """
        ),
        encoding="utf-8",
    )
    try:
        load(store, [load_file(path)])
    except CalendarSvcError:
        return  # refused cleanly: fine
    (entry,) = store.entries()
    assert entry.city == "C" * 300
    assert store.get_calendar("long").name == "N" * 300
