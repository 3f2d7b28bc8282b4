"""VTIMEZONEs that never end: read by themselves, they give the tz database's offsets.

Each zone's VTIMEZONE is read with ``feed_zones.FeedZone`` (only the component's
own observances, RDATEs and RRULEs) and compared with the tz database at fixed
days from the block's first year to 2199 and on each side of the zone's changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytz
from feed_zones import FeedZone
from icalendar import Calendar as ICalendar
from test_tzdb import compile_zones, needs_zic, restore_database  # noqa: F401  (a fixture)

from calendar_svc import timezones as tz
from calendar_svc import vtimezone

ALL_ZONES = [name for name in pytz.all_timezones if name.upper() != "UTC"]
YEARS = (1970, 1971, 1990, 2007, 2025, 2037, 2038, 2040, 2041, 2077, 2100)
FAR_ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "Africa/Cairo",
    "America/Nuuk",
    "Asia/Jerusalem",
    "Asia/Gaza",
    "Europe/Dublin",
    "America/Havana",
    "Pacific/Auckland",
    "Asia/Kolkata",
]


def _block(
    zone: str, first_year: int = vtimezone.DEFAULT_FIRST_YEAR, until: int = 2200
) -> FeedZone:
    _, data = vtimezone.vtimezone_bytes(zone, first_year)
    return FeedZone(ICalendar.from_ical(data), until=datetime(until, 1, 1))


def _check(zone: str, reader: FeedZone, instants: list[datetime]) -> None:
    for instant in instants:
        expected = tz.to_local(instant, zone).utcoffset()
        assert reader.offset_at(instant) == expected, f"{zone} at {instant:%Y-%m-%dT%H:%M:%SZ}"


def test_every_zone_s_vtimezone_reads_as_the_tz_database_from_1970_to_2100() -> None:
    database = tz.current()
    for zone in ALL_ZONES:
        reader = _block(zone, until=2101)
        instants = [datetime(y, m, 15, 12, tzinfo=UTC) for y in YEARS for m in (1, 4, 7, 10)]
        for change in database.history(zone).changes_through(2100):
            if change.at.year >= 1970 and (change.at.year < 2045 or change.at.year % 11 == 0):
                instants += [change.at - timedelta(seconds=1), change.at]
        _check(zone, reader, instants)


@pytest.mark.parametrize("zone", FAR_ZONES)
def test_vtimezones_still_read_right_in_2199(zone: str) -> None:
    reader = _block(zone)
    changes = tz.current().history(zone).changes_through(2199)
    instants = [c.at + timedelta(seconds=s) for c in changes if c.at.year >= 2190 for s in (-1, 0)]
    instants += [datetime(2199, m, 1, tzinfo=UTC) for m in range(1, 13)]
    _check(zone, reader, instants)


@pytest.mark.parametrize(
    "zone",
    [
        "America/New_York",
        "Asia/Kolkata",
        "America/Guayaquil",
        "Europe/London",
        "Africa/Casablanca",
        "America/Mexico_City",
        "Etc/GMT+5",
    ],
)
def test_a_block_from_an_earlier_first_year_reads_right_from_then(zone: str) -> None:
    reader = _block(zone, 1900)
    instants = [datetime(y, m, 1, tzinfo=UTC) for y in range(1900, 1975, 3) for m in (1, 7)]
    for change in tz.current().history(zone).changes:
        if 1900 <= change.at.year < 1975:
            instants += [change.at - timedelta(seconds=1), change.at]
    _check(zone, reader, instants)


def test_new_york_ends_with_the_current_us_rule_and_no_end() -> None:
    _, data = vtimezone.vtimezone_bytes("America/New_York")
    text = data.decode()
    assert "This timezone only works" not in text
    assert "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\r\n" in text
    assert "RRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\r\n" in text
    assert "UNTIL" not in text and "COUNT" not in text
    # The rule's own changes (2007-2037) are the RRULE's, not listed again.
    assert "RDATE:2008" not in text and "DTSTART:20070311T020000\r\n" in text
    # One onset per RDATE (ical.js reads only the first value of a list).
    assert all(b"," not in line for line in data.split(b"\r\n") if line.startswith(b"RDATE"))


@pytest.mark.parametrize(
    ("zone", "rrules"),
    [
        # Saturday 24:00 is the Sunday after the first Saturday.
        (
            "America/Santiago",
            [
                "FREQ=YEARLY;BYDAY=SU;BYMONTHDAY=2,3,4,5,6,7,8;BYMONTH=4",
                "FREQ=YEARLY;BYDAY=SU;BYMONTHDAY=2,3,4,5,6,7,8;BYMONTH=9",
            ],
        ),
        # The Friday after the last Thursday of October is in October or on 1 November.
        # (Days counted from the 1st: ical.js ignores negative BYMONTHDAY beside BYDAY.)
        (
            "Africa/Cairo",
            [
                "FREQ=YEARLY;BYDAY=-1FR;BYMONTH=4",
                "FREQ=YEARLY;BYDAY=FR;BYMONTHDAY=26,27,28,29,30,31;BYMONTH=10",
                "FREQ=YEARLY;BYDAY=FR;BYMONTHDAY=1;BYMONTH=11",
            ],
        ),
        # Last Sunday of March at -1:00 is the Saturday before it.
        (
            "America/Nuuk",
            [
                "FREQ=YEARLY;BYDAY=SA;BYMONTHDAY=24,25,26,27,28,29,30;BYMONTH=3",
                "FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10",
            ],
        ),
        ("America/Mexico_City", []),  # no DST since 2022: nothing repeats
        ("America/Guayaquil", []),
    ],
)
def test_rules_that_fire_past_midnight_name_the_day_they_mean(zone: str, rrules: list[str]) -> None:
    _, data = vtimezone.vtimezone_bytes(zone)
    found = [line[6:] for line in data.decode().split("\r\n") if line.startswith("RRULE:")]
    assert sorted(found) == sorted(rrules)


def test_blocks_are_the_same_bytes_in_another_process() -> None:
    """Cached per process, built in any order: two processes give the same bytes."""
    zones = ["America/New_York", "Africa/Cairo", "Australia/Lord_Howe", "America/Guayaquil"]
    script = (
        "import sys\n"
        "from calendar_svc import vtimezone\n"
        f"for zone in {list(reversed(zones))!r}:\n"
        "    sys.stdout.buffer.write(vtimezone.vtimezone_bytes(zone)[1])\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, timeout=120, env=env
    ).stdout
    here = b"".join(vtimezone.vtimezone_bytes(zone)[1] for zone in reversed(zones))
    assert other == here


def test_a_zone_with_one_offset_is_one_observance() -> None:
    _, data = vtimezone.vtimezone_bytes("Etc/GMT+5", 2000)
    assert data.decode().split("\r\n")[2:7] == [
        "BEGIN:STANDARD",
        "DTSTART:20000101T000000",
        "TZNAME:-05",
        "TZOFFSETFROM:-0500",
        "TZOFFSETTO:-0500",
    ]


# Daylight time from the day after the fourth Sunday of February: the 23rd to the 29th,
# and 29 February exists only in leap years, so no RRULE of month days can say it.
ODD_RULE = """\
Rule	Odd	2000	max	-	Feb	Sun>=22	24:00	1:00	D
Rule	Odd	2000	max	-	Oct	lastSun	2:00	0	S
Zone	Test/Odd	1:00	Odd	X%sT
"""


@needs_zic
@pytest.mark.usefixtures("restore_database")
def test_a_rule_no_rrule_can_say_is_listed_onset_by_onset(tmp_path: Path) -> None:
    tz.use_folder(compile_zones(tmp_path / "odd", ODD_RULE, "odd-1"))
    history = tz.current().history("Test/Odd")
    assert history.rule is not None and history.rule.text == "XST-1XDT,M2.4.0/24,M10.5.0"
    _, data = vtimezone.vtimezone_bytes("Test/Odd", 2000)
    rrules = [line for line in data.decode().split("\r\n") if line.startswith("RRULE:")]
    assert rrules == ["RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10"]  # October's is fine
    reader = FeedZone(ICalendar.from_ical(data), until=datetime(2400, 1, 1))
    changes = [c for c in history.changes_through(2399) if c.at.year in (2000, 2040, 2096, 2399)]
    assert len(changes) == 8
    _check("Test/Odd", reader, [c.at + timedelta(seconds=s) for c in changes for s in (-1, 0)])
