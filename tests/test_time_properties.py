"""A daily series is reminded once per local day, at its wall time, every day to 2060.

The reminders come from ``reminders.rules`` (used as the planner uses it); what
they should be is computed here by the standard library's zoneinfo alone, on
the same TZif files: the occurrence on local day D is D at the series' wall
time, read with PEP 495 ``fold=0`` (on the day a DST gap swallows that time,
the offset before the change; in a fold, the first of the two), and each
reminder is due its offset before it.

Zones: Berlin and New York (one-hour DST), Lord Howe (30-minute DST), Santiago
(changes at Saturday 24:00), Kolkata (no DST), Chatham (+12:45/+13:45, changes
at 02:45). Wall times are chosen to fall in each zone's gaps and folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import pytest
from budget import examples
from feed_zones import reference_zone
from hypothesis import given, settings
from hypothesis import strategies as st

from calendar_svc.config import RemindersConfig
from calendar_svc.reminders.rules import reminders_between
from calendar_svc.timezones import UTC, to_local, to_utc

FIRST_DAY, LAST_DAY = date(2024, 1, 1), date(2060, 12, 31)
# Each zone with a wall time inside its DST gap (spring) and fold (autumn).
ZONES = {
    "Europe/Berlin": time(2, 30),
    "America/New_York": time(2, 30),
    "Australia/Lord_Howe": time(2, 15),
    "America/Santiago": time(0, 30),
    "Asia/Kolkata": time(9, 0),
    "Pacific/Chatham": time(3, 0),
}
CONFIG = RemindersConfig()


@dataclass
class Daily:
    """A daily series from 1 January 2024, in the shape ``reminders.rules`` reads."""

    start_tz: str
    at: time
    reminders: list[str] | None = None
    uid: str = "daily"
    title: str = "Daily"
    status: str = "confirmed"
    all_day: bool = False
    start_fold: int | None = 0
    rrule: str | None = "FREQ=DAILY"
    categories: list[str] = field(default_factory=list)

    @property
    def start_local(self) -> datetime:
        return datetime.combine(FIRST_DAY, self.at)

    @property
    def start_utc(self) -> datetime:
        return to_utc(self.start_local, self.start_tz, fold=0)


def _expected_occurrence(zone: str, day: date, at: time) -> datetime:
    wall = datetime.combine(day, at).replace(tzinfo=reference_zone(zone), fold=0)
    return wall.astimezone(UTC)


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _due(series: Daily, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """(occurrence, due) of every reminder in the window, on the first channel, asked for a
    year at a time (a window holds at most ``recurrence.MAX_OCCURRENCES`` of a series)."""
    channel = CONFIG.channels[0]
    found = {}
    at = start
    while True:
        upper = min(at + timedelta(days=365), end)
        for r in reminders_between(series, "cal", None, CONFIG, at, upper):
            found[r.dedupe_key] = r
        if upper >= end:
            break
        at = upper
    ordered = sorted(found.values(), key=lambda r: r.due_at)
    return [(r.occurrence_utc, r.due_at) for r in ordered if r.channel == channel]


@pytest.mark.parametrize("zone", sorted(ZONES))
def test_every_local_day_from_2024_to_2060_has_one_reminder_at_its_wall_time(
    zone: str,
) -> None:
    at = ZONES[zone]
    series = Daily(zone, at, reminders=["PT15M"])
    start = _expected_occurrence(zone, FIRST_DAY, at) - timedelta(minutes=15)
    end = _expected_occurrence(zone, LAST_DAY, at)
    found = _due(series, start, end)
    days = _days(FIRST_DAY, LAST_DAY)
    expected = [_expected_occurrence(zone, day, at) for day in days]
    assert [occurrence for occurrence, _ in found] == expected
    assert all(occurrence - due == timedelta(minutes=15) for occurrence, due in found)
    shifted = 0
    for day, (occurrence, _) in zip(days, found, strict=True):
        local = to_local(occurrence, zone)
        assert local.date() == day, f"{zone}: {day} reminded on {local.date()}"
        if local.time() != at:
            shifted += 1  # only where a DST gap swallowed the wall time
            assert local.time() > at and local.time().hour - at.hour <= 1, (zone, day)
    # Every spring gap from 2024 to 2060 moved that day's time, and nothing else did.
    assert shifted == (0 if zone == "Asia/Kolkata" else 37)


@settings(max_examples=examples(60), deadline=None)
@given(
    zone=st.sampled_from(sorted(ZONES)),
    at=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    first=st.dates(min_value=FIRST_DAY, max_value=LAST_DAY - timedelta(days=60)),
    length=st.integers(min_value=1, max_value=60),
    offset=st.sampled_from(["PT5M", "PT1H", "PT2H30M", "PT15M"]),
)
def test_any_daily_series_any_window(
    zone: str, at: time, first: date, length: int, offset: str
) -> None:
    minutes = {"PT5M": 5, "PT1H": 60, "PT2H30M": 150, "PT15M": 15}[offset]
    series = Daily(zone, at, reminders=[offset])
    last = first + timedelta(days=length)
    start = _expected_occurrence(zone, first, at) - timedelta(minutes=minutes)
    end = _expected_occurrence(zone, last, at) - timedelta(minutes=minutes)
    expected = [_expected_occurrence(zone, day, at) for day in _days(first, last)]
    found = _due(series, start, end)
    assert [occurrence for occurrence, _ in found] == expected
    assert [due for _, due in found] == [e - timedelta(minutes=minutes) for e in expected]
    assert len({to_local(o, zone).date() for o in expected}) == len(expected)  # one per day
