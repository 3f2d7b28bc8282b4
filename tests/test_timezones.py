"""The time core: wall time + IANA zone <-> UTC, gaps, folds, and the pytz traps.

One tz database serves every year: pytz's own TZif files, read past pytz's 2037 and
before its 1901 (tests/test_tzdb.py checks it against pytz and the standard library's
zoneinfo for every zone); here are the pins a user would check by hand.
"""

from __future__ import annotations

import ast
import pickle
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from budget import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from calendar_svc import timezones as tz
from calendar_svc.errors import (
    AmbiguousTimeError,
    NonexistentTimeError,
    TimeRangeError,
    UnknownTimezoneError,
)

UTC = tz.UTC


def test_mexico_city_is_minus_six_in_september_2025() -> None:
    instant = tz.to_utc(datetime(2025, 9, 2, 10, 0), "America/Mexico_City")
    assert instant == datetime(2025, 9, 2, 16, 0, tzinfo=UTC)
    local = tz.to_local(instant, "America/Mexico_City")
    # Not -05:00 (old tz data with DST), not -06:37 (pytz LMT from tzinfo=).
    assert local.utcoffset() == timedelta(hours=-6)
    assert tz.utc_offset_text(local) == "UTC-06:00"
    assert tz.abbreviation(local) == "CST"


def test_guayaquil_is_minus_five() -> None:
    instant = tz.to_utc(datetime(2025, 9, 4, 10, 0), "America/Guayaquil")
    assert instant == datetime(2025, 9, 4, 15, 0, tzinfo=UTC)
    assert tz.to_local(instant, "America/Guayaquil").utcoffset() == timedelta(hours=-5)


def test_new_york_is_edt_in_september_2025() -> None:
    instant = tz.to_utc(datetime(2025, 9, 4, 21, 30), "America/New_York")
    assert instant == datetime(2025, 9, 5, 1, 30, tzinfo=UTC)
    local = tz.to_local(instant, "America/New_York")
    assert local.utcoffset() == timedelta(hours=-4)
    assert tz.abbreviation(local) == "EDT"


def test_mexico_city_kept_dst_until_2022() -> None:
    # The tz data must know both the old rule and its end.
    assert tz.to_local(
        datetime(2021, 9, 2, 15, tzinfo=UTC), "America/Mexico_City"
    ).utcoffset() == timedelta(hours=-5)
    assert tz.to_local(
        datetime(2023, 9, 2, 15, tzinfo=UTC), "America/Mexico_City"
    ).utcoffset() == timedelta(hours=-6)


def test_gap_is_rejected_unless_fold_given() -> None:
    wall = datetime(2025, 3, 9, 2, 30)
    assert tz.classify(wall, "America/New_York") == "gap"
    with pytest.raises(NonexistentTimeError, match="does not exist"):
        tz.to_utc(wall, "America/New_York")
    # PEP 495: fold=0 reads the wall time with the offset before the change (EST).
    assert tz.to_utc(wall, "America/New_York", fold=0) == datetime(2025, 3, 9, 7, 30, tzinfo=UTC)
    assert tz.to_utc(wall, "America/New_York", fold=1) == datetime(2025, 3, 9, 6, 30, tzinfo=UTC)


def test_fold_is_rejected_unless_fold_given() -> None:
    wall = datetime(2025, 11, 2, 1, 30)
    assert tz.classify(wall, "America/New_York") == "fold"
    with pytest.raises(AmbiguousTimeError, match="happens twice"):
        tz.to_utc(wall, "America/New_York")
    first = tz.to_utc(wall, "America/New_York", fold=0)
    second = tz.to_utc(wall, "America/New_York", fold=1)
    assert first == datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    assert second == datetime(2025, 11, 2, 6, 30, tzinfo=UTC)
    assert tz.wall_time(first, "America/New_York") == (wall, 0)
    assert tz.wall_time(second, "America/New_York") == (wall, 1)


def test_unknown_zone_suggests_the_right_one() -> None:
    with pytest.raises(UnknownTimezoneError, match="America/Guayaquil"):
        tz.get_zone("America/Quito")
    with pytest.raises(UnknownTimezoneError, match="unknown timezone"):
        tz.get_zone("Mars/Olympus_Mons")


def test_day_start_in_a_midnight_gap_is_the_transition() -> None:
    # Havana springs forward at midnight: 2025-03-09 00:00 does not exist.
    start = tz.day_start_utc(datetime(2025, 3, 9).date(), "America/Havana")
    local = tz.to_local(start, "America/Havana")
    assert (local.hour, local.minute) == (1, 0)


# --- past 2037 and before 1902: where pytz alone is wrong ------------------------------


def test_new_york_2040_is_edt_in_july() -> None:
    """pytz's tables end in 2037: alone it says EST (17:00Z), 45 minutes after a
    one-hour reminder would have had to go out."""
    instant = tz.to_utc(datetime(2040, 7, 4, 12, 0), "America/New_York")
    assert instant == datetime(2040, 7, 4, 16, 0, tzinfo=UTC)
    assert tz.time_text(tz.to_local(instant, "America/New_York")) == "12:00 EDT (UTC-04:00)"


def test_gap_and_fold_of_2040_are_refused_like_2025_s() -> None:
    gap, fold = datetime(2040, 3, 11, 2, 30), datetime(2040, 11, 4, 1, 30)
    assert tz.classify(gap, "America/New_York") == "gap"
    with pytest.raises(NonexistentTimeError, match="does not exist"):
        tz.to_utc(gap, "America/New_York")
    assert tz.to_utc(gap, "America/New_York", fold=0) == datetime(2040, 3, 11, 7, 30, tzinfo=UTC)
    assert tz.to_utc(gap, "America/New_York", fold=1) == datetime(2040, 3, 11, 6, 30, tzinfo=UTC)
    assert tz.classify(fold, "America/New_York") == "fold"
    with pytest.raises(AmbiguousTimeError, match="happens twice"):
        tz.to_utc(fold, "America/New_York")
    first = tz.to_utc(fold, "America/New_York", fold=0)
    assert first == datetime(2040, 11, 4, 5, 30, tzinfo=UTC)
    assert tz.wall_time(first + timedelta(hours=1), "America/New_York") == (fold, 1)


@pytest.mark.parametrize(
    ("zone", "wall", "offset", "abbreviation"),
    [
        # New York keeps the 2007 US rule: second Sunday of March to first of November.
        ("America/New_York", datetime(2040, 7, 4, 12), "-04:00", "EDT"),
        ("America/New_York", datetime(2040, 1, 15, 12), "-05:00", "EST"),
        ("America/New_York", datetime(2100, 7, 4, 12), "-04:00", "EDT"),
        ("America/New_York", datetime(2100, 12, 25, 12), "-05:00", "EST"),
        ("America/New_York", datetime(2199, 6, 30, 12), "-04:00", "EDT"),
        # Mexico City: no DST since October 2022, so -06:00 in every month after.
        ("America/Mexico_City", datetime(2023, 7, 1, 12), "-06:00", "CST"),
        ("America/Mexico_City", datetime(2040, 7, 1, 12), "-06:00", "CST"),
        ("America/Mexico_City", datetime(2150, 4, 1, 12), "-06:00", "CST"),
        ("America/Guayaquil", datetime(2060, 7, 1, 12), "-05:00", "-05"),
        # Lord Howe Island moves its clocks by 30 minutes.
        ("Australia/Lord_Howe", datetime(2040, 1, 15, 12), "+11:00", "+11"),
        ("Australia/Lord_Howe", datetime(2040, 7, 15, 12), "+10:30", "+1030"),
        # Chile: summer is January; the change is at Saturday 24:00 (Sunday 00:00).
        ("America/Santiago", datetime(2040, 1, 15, 12), "-03:00", "-03"),
        ("America/Santiago", datetime(2040, 7, 15, 12), "-04:00", "-04"),
        ("Pacific/Chatham", datetime(2040, 1, 15, 12), "+13:45", "+1345"),
        ("Pacific/Chatham", datetime(2100, 7, 15, 12), "+12:45", "+1245"),
        ("Asia/Kolkata", datetime(2100, 7, 15, 12), "+05:30", "IST"),
        ("Europe/Berlin", datetime(2060, 7, 15, 12), "+02:00", "CEST"),
        # Cairo's October change is "last Thursday, 24:00": on 1 November in 2041.
        ("Africa/Cairo", datetime(2041, 10, 31, 22, 30), "+03:00", "EEST"),
        ("Africa/Cairo", datetime(2041, 11, 1, 12), "+02:00", "EET"),
        # Before December 1901 pytz alone reads only local mean time (LMT -4:56).
        ("America/New_York", datetime(1900, 6, 1, 12), "-05:00", "EST"),
        ("Europe/Berlin", datetime(1900, 6, 1, 12), "+01:00", "CET"),
        ("Europe/London", datetime(1900, 6, 1, 12), "+00:00", "GMT"),
        ("America/Guayaquil", datetime(1900, 6, 1, 12), "-05:14", "QMT"),
        # Madras time, +5:21:10, to the minute as pytz rounds it.
        ("Asia/Kolkata", datetime(1900, 6, 1, 12), "+05:21", "MMT"),
        ("America/Mexico_City", datetime(1900, 6, 1, 12), "-06:37", "LMT"),
    ],
)
def test_offsets_from_1900_to_2199(
    zone: str, wall: datetime, offset: str, abbreviation: str
) -> None:
    local = tz.to_local(tz.to_utc(wall, zone), zone)
    assert local.replace(tzinfo=None) == wall
    assert tz.utc_offset_text(local) == f"UTC{offset}"
    assert tz.abbreviation(local) == abbreviation


def test_a_2040_local_time_pickles_to_the_same_zone_and_offset() -> None:
    local = tz.to_local(datetime(2040, 7, 4, 16, tzinfo=UTC), "America/New_York")
    back = pickle.loads(pickle.dumps(local))
    assert back == local and back.utcoffset() == timedelta(hours=-4)
    assert back.tzinfo is local.tzinfo


@pytest.mark.parametrize(
    "wall", [datetime(2400, 1, 1), datetime(9999, 12, 31), datetime(999, 12, 31)]
)
def test_years_the_rules_are_not_computed_for_are_refused(wall: datetime) -> None:
    with pytest.raises(TimeRangeError, match=f"from {tz.FIRST_YEAR} to {tz.LAST_YEAR}"):
        tz.to_utc(wall, "America/New_York")
    with pytest.raises(TimeRangeError):
        tz.to_local(wall.replace(tzinfo=UTC), "Europe/Berlin")


def test_the_version_is_pytz_s_tz_data_release() -> None:
    import pytz

    assert tz.version() == vars(pytz)["OLSON_VERSION"]
    assert tz.current() == tz.bundled()


# --- how a time is shown ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "instant", "text"),
    [
        ("America/Mexico_City", datetime(2025, 9, 2, 16, tzinfo=UTC), "10:00 CST (UTC-06:00)"),
        ("America/Guayaquil", datetime(2025, 9, 4, 14, tzinfo=UTC), "09:00 -05 (UTC-05:00)"),
        ("America/New_York", datetime(2025, 9, 2, 10, 30, tzinfo=UTC), "06:30 EDT (UTC-04:00)"),
        ("Asia/Kathmandu", datetime(2025, 9, 2, 4, 15, tzinfo=UTC), "10:00 +0545 (UTC+05:45)"),
        ("UTC", datetime(2025, 9, 2, 4, 15, tzinfo=UTC), "04:15 UTC (UTC+00:00)"),
    ],
)
def test_time_text_always_has_abbreviation_and_offset(
    zone: str, instant: datetime, text: str
) -> None:
    assert tz.time_text(tz.to_local(instant, zone)) == text


# --- the property: every wall time that exists comes back -----------------------------

ZONES = [
    "America/Mexico_City",
    "America/Guayaquil",
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/Santiago",
    "Africa/Casablanca",
    "Africa/Cairo",
    "America/St_Johns",
    "America/Nuuk",
    "Asia/Tehran",
    "Asia/Jerusalem",
    "Pacific/Apia",
    "Europe/Dublin",
    "America/Havana",
    "Antarctica/Troll",
    "UTC",
]


@settings(max_examples=examples(600), deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    wall=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31)),
)
def test_local_utc_local_is_identity(zone: str, wall: datetime) -> None:
    wall = wall.replace(microsecond=0)
    kind = tz.classify(wall, zone)
    if kind == "gap":
        with pytest.raises(NonexistentTimeError):
            tz.to_utc(wall, zone)
        return
    fold = None if kind == "ok" else 0
    instant = tz.to_utc(wall, zone, fold)
    back, back_fold = tz.wall_time(instant, zone)
    assert back == wall
    assert back_fold == fold
    if kind == "fold":
        later = tz.to_utc(wall, zone, 1)
        assert later > instant
        assert tz.wall_time(later, zone) == (wall, 1)


PACKAGE = Path(__file__).resolve().parents[1] / "calendar_svc"
SAFE_TZINFO = {"UTC", "timezone.utc", "datetime.timezone.utc", "None", "tz.UTC"}


def test_no_code_builds_a_datetime_with_a_pytz_tzinfo() -> None:
    """``datetime(..., tzinfo=pytz_zone)`` gives LMT offsets (-06:37); only UTC may be attached."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "tzinfo" and ast.unparse(kw.value) not in SAFE_TZINFO:
                        offenders.append(
                            f"{path.relative_to(PACKAGE)}:{node.lineno}: {ast.unparse(node)}"
                        )
    assert not offenders, "tzinfo= with something other than UTC:\n" + "\n".join(offenders)


def test_only_timezones_module_imports_pytz() -> None:
    """The pure core reads TZif files itself (tzif, tzdb); pytz is a detail of one module."""
    users = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "timezones.py" and "import pytz" in p.read_text(encoding="utf-8")
    ]
    assert users == []
