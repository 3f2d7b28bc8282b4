"""Reminder rules: the trip's due instants pinned in UTC, inheritance, all-day, RRULE, routing."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

import pytest

from calendar_svc.config import RemindersConfig, Route
from calendar_svc.reminders.policy import LATE_AFTER, Timing, retry_delay, timing
from calendar_svc.reminders.rules import (
    channels_for,
    dedupe_key,
    idempotency_key,
    offsets_for,
    reminders_between,
)
from calendar_svc.schedule_files import load_file
from calendar_svc.timezones import UTC, to_local, to_utc

WIDE = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC))


def Z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class E:
    """A minimal entry for the pure rules."""

    uid: str
    start_local: datetime
    start_tz: str
    title: str = "Entry"
    status: str = "confirmed"
    all_day: bool = False
    start_fold: int | None = None
    rrule: str | None = None
    reminders: list[str] | None = None
    categories: list[str] = field(default_factory=list)

    @property
    def start_utc(self) -> datetime:
        return to_utc(self.start_local, self.start_tz, fold=self.start_fold or 0)


def due(
    entry: E,
    config: RemindersConfig | None = None,
    *,
    slug: str = "cal",
    calendar: list[str] | None = None,
) -> list[tuple[datetime, int, str]]:
    found = reminders_between(entry, slug, calendar, config or RemindersConfig(), *WIDE)
    return [(r.due_at, int(r.offset.total_seconds()), r.channel) for r in found]


# --- the trip, all three zones ------------------------------------------------------

TRIP_DUE = {
    # New York, EDT -04:00: 06:30 EDT = 10:30Z, 2 h before.
    "flight-was-mex": ["2025-09-02T08:30:00Z"],
    # Mexico City, CST -06:00 all year (no DST since 2022): 10:00 CST = 16:00Z.
    "sheinbaum-bilateral": ["2025-09-02T15:00:00Z", "2025-09-02T15:45:00Z"],
    "embassy-mexico-city": ["2025-09-02T18:30:00Z", "2025-09-02T19:15:00Z"],
    "security-working-session": ["2025-09-02T21:00:00Z", "2025-09-02T21:45:00Z"],
    "sheinbaum-talks-day-2": ["2025-09-03T14:00:00Z", "2025-09-03T14:45:00Z"],
    "press-mexico-city": ["2025-09-03T16:00:00Z", "2025-09-03T16:45:00Z"],
    "flight-mex-uio": ["2025-09-03T18:00:00Z"],
    # Quito = America/Guayaquil, -05:00: 10:00 = 15:00Z.
    "noboa-meeting": ["2025-09-04T14:00:00Z", "2025-09-04T14:45:00Z"],
    "embassy-quito": ["2025-09-04T16:30:00Z", "2025-09-04T17:15:00Z"],
    "flight-uio-was": ["2025-09-04T18:00:00Z"],
    # reminders = [] in the file: none.
    "trip-overview": [],
}


def test_trip_reminders_are_pinned_in_utc(trip_path) -> None:
    spec = load_file(trip_path)
    got: dict[str, list[str]] = {}
    for entry in spec.entries:
        found = reminders_between(entry, spec.slug, spec.reminders, RemindersConfig(), *WIDE)
        got[entry.uid] = [r.due_at.strftime("%Y-%m-%dT%H:%M:%SZ") for r in found]
    assert got == TRIP_DUE


def test_mexico_city_is_minus_six_not_old_tzdata_minus_five() -> None:
    bilateral = E("sheinbaum-bilateral", datetime(2025, 9, 2, 10, 0), "America/Mexico_City")
    assert due(bilateral, calendar=["PT1H", "PT15M"]) == [
        (Z("2025-09-02T15:00:00Z"), 3600, "console"),
        (Z("2025-09-02T15:45:00Z"), 900, "console"),
    ]


# --- inheritance ----------------------------------------------------------------------


def test_offsets_entry_then_calendar_then_config() -> None:
    config = RemindersConfig(offsets=(timedelta(minutes=30),))
    defaults = config.offsets
    assert offsets_for(["PT2H"], ["PT1H"], defaults) == (timedelta(hours=2),)
    assert offsets_for(None, ["PT1H", "PT15M"], defaults) == (
        timedelta(hours=1),
        timedelta(minutes=15),
    )
    assert offsets_for(None, None, defaults) == (timedelta(minutes=30),)
    assert offsets_for([], ["PT1H"], defaults) == ()
    assert offsets_for(None, [], defaults) == ()
    assert offsets_for(["PT15M", "PT15M"], None, defaults) == (timedelta(minutes=15),)


def test_config_default_offsets_apply() -> None:
    entry = E("x", datetime(2025, 9, 4, 10, 0), "America/Guayaquil")
    assert [d for d, _, _ in due(entry)] == [Z("2025-09-04T14:00:00Z"), Z("2025-09-04T14:45:00Z")]


def test_cancelled_entries_and_empty_lists_have_none() -> None:
    start = datetime(2025, 9, 2, 10, 0)
    assert due(E("c", start, "America/Mexico_City", status="cancelled")) == []
    assert due(E("e", start, "America/Mexico_City", reminders=[])) == []
    assert due(E("k", start, "America/Mexico_City"), calendar=[]) == []


def test_zero_offset_is_due_at_start() -> None:
    entry = E("now", datetime(2025, 9, 2, 10, 0), "America/Mexico_City", reminders=["PT0S"])
    assert due(entry) == [(Z("2025-09-02T16:00:00Z"), 0, "console")]


def test_window_is_inclusive_and_filters_by_due_time() -> None:
    entry = E("b", datetime(2025, 9, 2, 10, 0), "America/Mexico_City")
    found = reminders_between(
        entry, "cal", None, RemindersConfig(), Z("2025-09-02T15:30:00Z"), Z("2025-09-02T15:45:00Z")
    )
    assert [r.due_at for r in found] == [Z("2025-09-02T15:45:00Z")]


# --- all-day ------------------------------------------------------------------------


def test_all_day_entry_gets_one_reminder_the_day_before_at_nine_local() -> None:
    entry = E(
        "day", datetime(2025, 9, 4), "America/Guayaquil", all_day=True, reminders=["PT1H", "PT15M"]
    )
    # 3 Sep 09:00 in Quito (-05:00) = 14:00Z; one reminder, not one per offset.
    assert due(entry) == [(Z("2025-09-03T14:00:00Z"), 15 * 3600, "console")]


def test_all_day_time_is_configurable() -> None:
    entry = E("day", datetime(2025, 9, 2), "America/Mexico_City", all_day=True)
    config = RemindersConfig(all_day_time=time(18, 30))
    assert [d for d, _, _ in due(entry, config)] == [Z("2025-09-02T00:30:00Z")]


def test_all_day_time_in_a_dst_gap_takes_the_offset_before() -> None:
    # New York springs forward on Sun 9 Mar 2025 at 02:00: 02:30 does not exist.
    entry = E("day", datetime(2025, 3, 10), "America/New_York", all_day=True)
    config = RemindersConfig(all_day_time=time(2, 30))
    assert [d for d, _, _ in due(entry, config)] == [Z("2025-03-09T07:30:00Z")]


# --- recurrence ---------------------------------------------------------------------


def test_rrule_occurrences_keep_wall_time_across_dst() -> None:
    weekly = E(
        "weekly",
        datetime(2025, 10, 27, 10, 0),
        "America/New_York",
        rrule="FREQ=WEEKLY;COUNT=3",
        reminders=["PT15M"],
    )
    assert [d for d, _, _ in due(weekly)] == [
        Z("2025-10-27T13:45:00Z"),  # EDT
        Z("2025-11-03T14:45:00Z"),  # EST after 2 Nov
        Z("2025-11-10T14:45:00Z"),
    ]


def test_rrule_with_utc_until() -> None:
    daily = E(
        "daily",
        datetime(2025, 9, 2, 9, 0),
        "America/Mexico_City",
        rrule="FREQ=DAILY;UNTIL=20250903T150000Z",
        reminders=["PT0S"],
    )
    assert [d for d, _, _ in due(daily)] == [Z("2025-09-02T15:00:00Z"), Z("2025-09-03T15:00:00Z")]


def test_rrule_expansion_is_bounded_by_the_window() -> None:
    forever = E(
        "f", datetime(2025, 1, 1, 8, 0), "America/Guayaquil", rrule="FREQ=DAILY", reminders=["PT1H"]
    )
    found = reminders_between(
        forever,
        "cal",
        None,
        RemindersConfig(),
        Z("2025-09-02T00:00:00Z"),
        Z("2025-09-04T00:00:00Z"),
    )
    assert [r.due_at for r in found] == [Z("2025-09-02T12:00:00Z"), Z("2025-09-03T12:00:00Z")]
    assert {r.occurrence_utc for r in found} == {
        Z("2025-09-02T13:00:00Z"),
        Z("2025-09-03T13:00:00Z"),
    }


# --- routing and keys ---------------------------------------------------------------


def test_routes_first_match_then_default_channels() -> None:
    config = RemindersConfig(
        channels=("console",),
        routes=(
            Route(calendar="rubio-2025-09", category="flight", channels=("ops", "console")),
            Route(calendar="*", category="press", channels=("press",)),
            Route(calendar="rubio-2025-09", category=None, channels=("team",)),
        ),
    )
    assert channels_for("rubio-2025-09", ["Flight"], config) == ("ops", "console")
    assert channels_for("other", ["press"], config) == ("press",)
    assert channels_for("rubio-2025-09", ["meeting"], config) == ("team",)
    assert channels_for("other", ["meeting"], config) == ("console",)


def test_one_row_per_channel_with_distinct_keys() -> None:
    config = RemindersConfig(channels=("console", "phone"))
    entry = E("b", datetime(2025, 9, 2, 10, 0), "America/Mexico_City", reminders=["PT15M"])
    found = reminders_between(entry, "cal", None, config, *WIDE)
    assert [r.channel for r in found] == ["console", "phone"]
    assert len({r.dedupe_key for r in found}) == len({r.idempotency_key for r in found}) == 2


def test_keys_are_stable_and_short() -> None:
    key = dedupe_key(
        "rubio-2025-09",
        "sheinbaum-bilateral",
        Z("2025-09-02T16:00:00Z"),
        timedelta(hours=1),
        "console",
    )
    assert key == "rubio-2025-09|sheinbaum-bilateral|20250902T160000Z|3600|console"
    assert idempotency_key(key) == idempotency_key(key)
    assert idempotency_key(key).startswith("rem-") and len(idempotency_key(key)) == 32
    moved = key.replace("T160000Z", "T170000Z")
    assert idempotency_key(moved) != idempotency_key(key)


# --- policy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2025-09-02T15:00:30Z", Timing.ON_TIME),
        ("2025-09-02T15:30:00Z", Timing.LATE),  # entry not started yet
        ("2025-09-02T16:05:00Z", Timing.LATE),  # started, but 65 min late is within grace
        ("2025-09-02T16:20:00Z", Timing.MISSED),
    ],
)
def test_late_or_missed(now: str, expected: Timing) -> None:
    due_at, start = Z("2025-09-02T15:00:00Z"), Z("2025-09-02T16:00:00Z")
    grace = timedelta(minutes=70)
    assert timing(Z(now), due_at, start, grace) is expected


def test_on_time_tolerance_and_grace() -> None:
    due_at = Z("2025-09-02T15:45:00Z")
    start = Z("2025-09-02T16:00:00Z")
    assert timing(due_at + LATE_AFTER, due_at, start, timedelta(minutes=10)) is Timing.ON_TIME
    assert (
        timing(start + timedelta(minutes=1), due_at, start, timedelta(minutes=10)) is Timing.MISSED
    )
    assert timing(start + timedelta(minutes=1), due_at, start, timedelta(minutes=30)) is Timing.LATE


def test_retry_delay_doubles_with_jitter_and_caps() -> None:
    rng = random.Random(4)
    base, cap = timedelta(seconds=30), timedelta(minutes=5)
    for attempts, step in ((1, 30), (2, 60), (3, 120), (4, 240), (5, 300), (9, 300)):
        delay = retry_delay(attempts, base, cap, rng=rng).total_seconds()
        assert step * 0.5 <= delay <= step
    assert retry_delay(1, base, cap, retry_after=3600) == cap


def test_retry_after_is_a_minimum_with_jitter_on_top() -> None:
    """A peer's Retry-After: never earlier than asked, and a burst told the same value
    does not come back in the same second."""
    rng = random.Random(7)
    base, cap = timedelta(seconds=30), timedelta(minutes=5)
    delays = [
        retry_delay(1, base, cap, retry_after=120, rng=rng).total_seconds() for _ in range(200)
    ]
    assert all(120 <= d <= 144 for d in delays)
    assert max(delays) - min(delays) > 15  # spread over most of the 24 s
    short = [retry_delay(1, base, cap, retry_after=0, rng=rng).total_seconds() for _ in range(50)]
    assert all(0 <= d <= 1 for d in short) and len(set(short)) > 1


def test_day_offsets_are_calendar_days_across_a_dst_change() -> None:
    """P1D before Sunday 9 Mar 2025 10:00 EDT is Saturday 10:00 EST (23 h earlier), not 09:00."""
    from calendar_svc.reminders.rules import due_before
    from calendar_svc.timezones import to_utc

    start = to_utc(datetime(2025, 3, 9, 10, 0), "America/New_York")
    due = due_before(start, timedelta(days=1), "America/New_York")
    assert to_local(due, "America/New_York").replace(tzinfo=None) == datetime(2025, 3, 8, 10, 0)
    assert start - due == timedelta(hours=23)
    # Hours stay exact: PT2H before 10:00 EDT is 08:00 EDT.
    exact = due_before(start, timedelta(hours=2), "America/New_York")
    assert start - exact == timedelta(hours=2)
    # P1DT2H: a calendar day, then two exact hours.
    mixed = due_before(start, timedelta(days=1, hours=2), "America/New_York")
    assert to_local(mixed, "America/New_York").replace(tzinfo=None) == datetime(2025, 3, 8, 8, 0)


def test_day_offsets_count_from_the_wall_time_a_gap_swallowed() -> None:
    """A daily 00:59 in Santiago: on Sunday 7 Sep 2025 the clocks skip from 00:00 to 01:00,
    so that occurrence is 00:59 read with the offset before (04:59Z). P1D before it is
    00:59 on Saturday (04:59Z), the wall time a day earlier, as a subscriber's app counts
    a TRIGGER's days; not 01:59 (what the instant reads as on the new clock)."""
    daily = E(
        "daily",
        datetime(2025, 9, 6, 0, 59),
        "America/Santiago",
        rrule="FREQ=DAILY;COUNT=2",
        reminders=["P1D"],
    )
    assert [d for d, _, _ in due(daily)] == [Z("2025-09-05T04:59:00Z"), Z("2025-09-06T04:59:00Z")]


# The feed's alarms and the daemon's reminders, one rule: tests/test_alarms_are_reminders.py.
