"""A tz database update re-derives the stored instants (``calendar_svc.rederive``).

Release A and B (tests/tz_releases.py) are real folders compiled by ``zic``:
B gives Mexico City DST again from 2027, moves Quito (America/Guayaquil) to
-04 from 2024, drops Europe/Berlin and leaves New York alone. Every expected
instant is computed by the standard library's zoneinfo on the same files.
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from tz_releases import RELEASE_A, RELEASE_B, compile_release, instant, needs_zic

from calendar_svc import timezones as tz
from calendar_svc.config import RemindersConfig
from calendar_svc.importer import import_specs
from calendar_svc.models import Calendar, Delivery, DeliveryStatus, Entry
from calendar_svc.rederive import ProblemKind, rederive
from calendar_svc.reminders.planner import Planner
from calendar_svc.schedule_files import parse_schedule
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

pytestmark = needs_zic

SCHEDULE = """\
[calendar]
slug = "trip"
name = "Trip"
timezone = "America/Mexico_City"
reminders = ["PT1H"]

[[entries]]
uid = "mexico-july-2030"
title = "Mexico City, July 2030"
start = 2030-07-01T10:00:00
duration = "PT1H30M"

[[entries]]
uid = "mexico-january-2031"
title = "Mexico City, January: no DST, does not move"
start = 2031-01-15T10:00:00
duration = "PT1H"

[[entries]]
uid = "mexico-gap-2030"
title = "At 02:30 on the day DST starts again"
start = 2030-04-07T02:30:00
duration = "PT1H"

[[entries]]
uid = "quito-soon"
title = "Quito, the afternoon of 1 September 2025"
timezone = "America/Guayaquil"
start = 2025-09-01T15:00:00
duration = "PT1H"

[[entries]]
uid = "quito-day"
title = "All day in Quito"
timezone = "America/Guayaquil"
start = 2025-09-04

[[entries]]
uid = "flight-mex-uio"
title = "Flight Mexico City to Quito"
start = 2031-01-20T14:00:00
end = 2031-01-20T18:45:00
end_timezone = "America/Guayaquil"

[[entries]]
uid = "new-york-2040"
title = "New York, 4 July 2040"
timezone = "America/New_York"
start = 2040-07-04T12:00:00

[[entries]]
uid = "berlin"
title = "Berlin, a zone release B drops"
timezone = "Europe/Berlin"
start = 2030-07-01T10:00:00

[[entries]]
uid = "mexico-weekly"
title = "Weekly from June 2030"
start = 2030-06-05T09:00:00
rrule = "FREQ=WEEKLY;COUNT=30"
"""


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tz")
    return (
        compile_release(folder / "a", RELEASE_A, "test-a"),
        compile_release(folder / "b", RELEASE_B, "test-b"),
    )


@pytest.fixture
def restore() -> Iterator[None]:
    previous = tz.current()
    yield
    tz.use(previous)


@pytest.fixture
def imported(store: Store, releases: tuple[Path, Path], restore: None) -> Store:
    """The schedule imported with release A in use."""
    tz.use_folder(releases[0])
    with store.write() as session:
        spec = parse_schedule(tomllib.loads(SCHEDULE), source="trip.toml")
        import_specs(session, [spec], now=store.clock())
    return store


def entries(store: Store) -> dict[str, Entry]:
    with store.read() as session:
        return {e.uid: e for e in session.scalars(select(Entry))}


def calendar_version(store: Store) -> int:
    with store.read() as session:
        return int(session.scalar(select(Calendar.version).where(Calendar.slug == "trip")))


def test_the_import_records_the_tz_version(imported: Store) -> None:
    assert {e.tz_version for e in entries(imported).values()} == {"test-a"}
    report = rederive(imported)
    assert (report.checked, report.moved, report.problems) == (0, [], [])


def test_a_rule_change_moves_instants_and_raises_sequence(
    imported: Store, releases: tuple[Path, Path]
) -> None:
    b = releases[1]
    before = entries(imported)
    version = calendar_version(imported)
    imported.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
    now = imported.clock()

    tz.use_folder(b)
    report = rederive(imported)

    after = entries(imported)
    moved = {m.uid: m for m in report.moved}
    assert set(moved) == {
        "mexico-july-2030",
        "mexico-gap-2030",
        "quito-soon",
        "quito-day",
        "flight-mex-uio",
        "mexico-weekly",
    }
    # Every instant is what zoneinfo reads in release B's files.
    assert after["mexico-july-2030"].start_utc == instant(
        b, "America/Mexico_City", datetime(2030, 7, 1, 10)
    )
    assert after["mexico-july-2030"].start_utc == datetime(2030, 7, 1, 15, tzinfo=UTC)
    assert after["mexico-july-2030"].end_utc == datetime(2030, 7, 1, 16, 30, tzinfo=UTC)
    assert moved["mexico-july-2030"].old_start == datetime(2030, 7, 1, 16, tzinfo=UTC)
    assert moved["mexico-july-2030"].old_version == "test-a"
    assert after["quito-soon"].start_utc == instant(
        b, "America/Guayaquil", datetime(2025, 9, 1, 15)
    )
    assert after["quito-day"].start_utc == datetime(2025, 9, 4, 4, tzinfo=UTC)  # -04 midnight
    # A flight: its start does not move (January, CST), its landing in Quito does.
    flight = after["flight-mex-uio"]
    assert flight.start_utc == before["flight-mex-uio"].start_utc
    assert flight.end_utc == instant(b, "America/Guayaquil", datetime(2031, 1, 20, 18, 45))
    # A weekly series moves with its first occurrence (its later ones follow the wall time).
    assert after["mexico-weekly"].start_utc == datetime(2030, 6, 5, 14, tzinfo=UTC)

    for uid in moved:
        assert after[uid].sequence == before[uid].sequence + 1, uid
        assert after[uid].updated_at == now, uid
        assert after[uid].tz_version == "test-b"
    for uid in ("mexico-january-2031", "new-york-2040"):
        assert after[uid].start_utc == before[uid].start_utc
        assert after[uid].sequence == before[uid].sequence
        assert after[uid].updated_at == before[uid].updated_at
        assert after[uid].tz_version == "test-b"  # looked at: recorded
    assert calendar_version(imported) == version + 1  # one batch, one bump

    # 02:30 on 7 April 2030 no longer exists: read as RFC 5545 reads it (the offset
    # before the change, CST), kept, and reported.
    gap = after["mexico-gap-2030"]
    assert gap.start_utc == datetime(2030, 4, 7, 8, 30, tzinfo=UTC)
    assert gap.start_local == datetime(2030, 4, 7, 2, 30) and gap.start_fold is None
    kinds = {(p.uid, p.kind, p.field) for p in report.problems}
    assert (("mexico-gap-2030", ProblemKind.GAP, "start")) in kinds
    # Berlin is gone: the entry is kept with its last instants and its old version.
    assert ("berlin", ProblemKind.UNKNOWN_ZONE, "start") in kinds
    assert after["berlin"].start_utc == before["berlin"].start_utc
    assert after["berlin"].tz_version == "test-a"
    assert "berlin" not in moved

    # Done: a second pass only looks at Berlin again, and moves nothing.
    again = rederive(imported)
    assert (again.checked, again.moved, [p.uid for p in again.problems]) == (1, [], ["berlin"])
    assert calendar_version(imported) == version + 1


def test_back_to_the_old_release_moves_them_back(
    imported: Store, releases: tuple[Path, Path]
) -> None:
    a, b = releases
    before = entries(imported)
    tz.use_folder(b)
    rederive(imported)
    tz.use_folder(a)
    report = rederive(imported)
    after = entries(imported)
    assert {m.uid for m in report.moved} >= {"mexico-july-2030", "quito-soon"}
    for uid, entry in before.items():
        assert (after[uid].start_utc, after[uid].end_utc) == (entry.start_utc, entry.end_utc)
    assert after["quito-soon"].sequence == before["quito-soon"].sequence + 2


def test_a_dry_run_writes_nothing_and_batches_give_the_same(
    imported: Store, releases: tuple[Path, Path]
) -> None:
    tz.use_folder(releases[1])
    before = entries(imported)
    dry = rederive(imported, dry_run=True, batch=2)
    assert {uid: (e.start_utc, e.sequence, e.tz_version) for uid, e in before.items()} == {
        uid: (e.start_utc, e.sequence, e.tz_version) for uid, e in entries(imported).items()
    }
    real = rederive(imported, batch=2)
    assert [m.uid for m in dry.moved] == [m.uid for m in real.moved]
    assert len(real.moved) == 6 and real.checked == dry.checked == len(before)


def test_two_processes_at_once_raise_each_sequence_once(
    imported: Store, releases: tuple[Path, Path]
) -> None:
    """Two daemons starting together on one database (two stores, two threads): each
    moved entry gets SEQUENCE + 1, not + 2, and its calendar one bump per batch."""
    tz.use_folder(releases[1])
    before = entries(imported)
    other = Store(imported.url, clock=imported.clock)
    reports = []
    try:
        threads = [
            threading.Thread(target=lambda s=s: reports.append(rederive(s, batch=3)))
            for s in (imported, other)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other.close()
    assert len(reports) == 2
    after = entries(imported)
    moved = {
        uid
        for uid, entry in after.items()
        if (entry.start_utc, entry.end_utc) != (before[uid].start_utc, before[uid].end_utc)
    }
    assert len(moved) == 6
    # Each move was made (and reported) by one of the two, once.
    assert sorted(m.uid for r in reports for m in r.moved) == sorted(moved)
    for uid, entry in after.items():
        assert entry.sequence == before[uid].sequence + (uid in moved), uid


def test_the_planner_cancels_the_old_reminder_and_plans_the_new_one_once(
    imported: Store, releases: tuple[Path, Path]
) -> None:
    """The dedupe key holds the occurrence instant: after the move the old pending row is
    no longer produced (cancelled), the new one is planned, and planning again adds none."""
    config = RemindersConfig(offsets=(timedelta(hours=1),), all_day_time=time(9, 0))
    planner = Planner(imported, config)
    imported.clock.set(datetime(2025, 9, 1, 14, 0, tzinfo=UTC))  # type: ignore[attr-defined]
    first = planner.plan()
    assert [(r.entry_uid, r.due_at) for r in first.planned] == [
        ("quito-soon", datetime(2025, 9, 1, 19, 0, tzinfo=UTC))  # 15:00 -05 less an hour
    ]
    tz.use_folder(releases[1])
    rederive(imported)
    second = planner.plan()
    assert [(r.entry_uid, r.due_at) for r in second.planned] == [
        ("quito-soon", datetime(2025, 9, 1, 18, 0, tzinfo=UTC))  # 15:00 -04 less an hour
    ]
    assert len(second.cancelled) == 1 and "20250901T200000Z" in second.cancelled[0][1]
    third = planner.plan()
    assert (third.planned, third.cancelled) == ([], [])
    with imported.read() as session:
        rows = session.execute(select(Delivery.due_at, Delivery.status)).all()
    assert sorted(rows) == [
        (datetime(2025, 9, 1, 18, 0, tzinfo=UTC), DeliveryStatus.PENDING),
        (datetime(2025, 9, 1, 19, 0, tzinfo=UTC), DeliveryStatus.CANCELLED),
    ]
