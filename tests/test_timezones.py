"""The time core: wall time + IANA zone <-> UTC, gaps, folds, and the pytz traps."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calendar_svc import timezones as tz
from calendar_svc.errors import (
    AmbiguousTimeError,
    NonexistentTimeError,
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
    "America/St_Johns",
    "Asia/Tehran",
    "Pacific/Apia",
    "Europe/Dublin",
    "America/Havana",
    "UTC",
]


@settings(max_examples=400, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    wall=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2037, 12, 31)),
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
    users = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "timezones.py" and "import pytz" in p.read_text(encoding="utf-8")
    ]
    assert users == []
