"""The tz database: every zone agrees with pytz up to 2037 and with zoneinfo up to 2199,
and another folder can be switched in at run time.

pytz reads the 32-bit part of each TZif file (changes from December 1901 to
2037); the standard library's ``zoneinfo`` reads the 64-bit part and the footer
rule. The zones ``timezones`` builds must say what pytz says where pytz knows
(offset, abbreviation, ``dst()``, and which wall times are gaps and folds) and
what zoneinfo says everywhere else, for every zone pytz lists.
"""

from __future__ import annotations

import shutil
import subprocess
import zoneinfo
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import pytz

from calendar_svc import timezones as tz
from calendar_svc import tzif
from calendar_svc.errors import TzDatabaseError, UnknownTimezoneError
from calendar_svc.tzdb import TzDatabase

UTC = tz.UTC
ALL_ZONES = [name for name in pytz.all_timezones if name.upper() != "UTC"]
PYTZ_FROM = datetime(1901, 12, 14, tzinfo=UTC)  # pytz's first listed instant, a day after
PYTZ_UNTIL = datetime(2038, 1, 1, tzinfo=UTC)
FIXED_INSTANTS = [
    datetime(year, month, 15, 12, tzinfo=UTC)
    for year in (1900, 1901, 1950, 1999, 2026, 2038, 2040, 2100, 2199)
    for month in (1, 4, 7, 10)
]


def _rounded(offset: timedelta | None) -> timedelta:
    """zoneinfo's offset to the minute, as pytz (and so the tz database) rounds it."""
    assert offset is not None
    return timedelta(minutes=(int(offset.total_seconds()) + 30) // 60)


def _pytz_kind(zone: pytz.BaseTzInfo, wall: datetime) -> str:
    try:
        zone.localize(wall, is_dst=None)
    except pytz.NonExistentTimeError:
        return "gap"
    except pytz.AmbiguousTimeError:
        return "fold"
    return "ok"


def _zoneinfo_kind(zone: zoneinfo.ZoneInfo, wall: datetime) -> str:
    # PEP 495: in a gap fold=0 takes the offset before the change (the smaller one when
    # clocks go forward); in a fold it takes the first, larger, offset.
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert first is not None and second is not None
    if first == second:
        return "ok"
    return "fold" if first > second else "gap"


def test_every_zone_agrees_with_pytz_up_to_2037() -> None:
    """Around each change pytz lists, and on fixed days: the same offset, abbreviation,
    dst(), and the same verdict on a wall time inside the change (gap or fold)."""
    checked = 0
    for name in ALL_ZONES:
        ours, theirs = tz.get_zone(name), pytz.timezone(name)
        changes = [
            at
            for naive in getattr(theirs, "_utc_transition_times", [])[1:]
            if PYTZ_FROM <= (at := naive.replace(tzinfo=UTC)) < PYTZ_UNTIL
        ]
        instants = [i for i in FIXED_INSTANTS if PYTZ_FROM <= i < PYTZ_UNTIL]
        instants += [at - timedelta(seconds=1) for at in changes] + changes
        for instant in instants:
            mine, reference = instant.astimezone(ours), instant.astimezone(theirs)
            assert (mine.utcoffset(), mine.tzname(), mine.dst()) == (
                reference.utcoffset(),
                reference.tzname(),
                reference.dst(),
            ), f"{name} at {instant}"
        for at in changes:
            # The middle of the hour (or so) the change skips or repeats.
            old = (at - timedelta(seconds=1)).astimezone(theirs).utcoffset()
            new = at.astimezone(theirs).utcoffset()
            assert old is not None and new is not None
            wall = (at + (old + new) / 2).replace(tzinfo=None)
            if PYTZ_FROM.year < wall.year < PYTZ_UNTIL.year:
                assert tz.classify(wall, name) == _pytz_kind(theirs, wall), f"{name} {wall}"
                checked += 1
    assert checked > 10_000


def _zoneinfo(name: str) -> zoneinfo.ZoneInfo:
    with pytz.open_resource(name) as handle:
        return zoneinfo.ZoneInfo.from_file(handle, key=name)


def test_every_zone_agrees_with_zoneinfo_from_1900_to_2199() -> None:
    """zoneinfo on the same files, footer rule included: fixed days from 1900 to 2199,
    each side of every change of 2038, 2040, 2100 and 2199, and gap/fold verdicts."""
    database = tz.current()
    for name in ALL_ZONES:
        ours, reference = tz.get_zone(name), _zoneinfo(name)
        history = database.history(name)
        future = [
            change
            for change in history.changes_through(2199)
            if change.at.year in (2038, 2040, 2100, 2199)
        ]
        instants = list(FIXED_INSTANTS)
        for change in future:
            instants += [change.at - timedelta(seconds=1), change.at]
        for instant in instants:
            mine, theirs = instant.astimezone(ours), instant.astimezone(reference)
            assert (mine.utcoffset(), mine.tzname()) == (
                _rounded(theirs.utcoffset()),
                theirs.tzname(),
            ), f"{name} at {instant}"
        for change in future:
            inside = change.local_onset + (change.after.offset - change.before.offset) / 2
            assert tz.classify(inside, name) == _zoneinfo_kind(reference, inside), name


def test_zones_that_still_change_their_clocks_do_so_in_2199() -> None:
    database = tz.current()
    changing = [name for name in ALL_ZONES if database.history(name).keeps_changing]
    assert "America/New_York" in changing and "America/Mexico_City" not in changing
    for name in changing:
        years = {change.at.year for change in database.history(name).changes_through(2199)}
        assert 2199 in years, name


# --- the database object --------------------------------------------------------------

ZIC = shutil.which("zic") or ("/usr/sbin/zic" if Path("/usr/sbin/zic").exists() else None)
needs_zic = pytest.mark.skipif(ZIC is None, reason="zic (the tz compiler) is not installed")

ISLAND_A = """\
Rule	Isl	2020	max	-	Mar	lastSun	2:00	1:00	S
Rule	Isl	2020	max	-	Oct	lastSun	3:00	0	-
Zone	Test/Island	0:00	-	LMT	1900
			1:00	Isl	IS%sT
"""
# Release B: the island drops DST and moves to +02 all year from 2030.
ISLAND_B = """\
Rule	Isl	2020	max	-	Mar	lastSun	2:00	1:00	S
Rule	Isl	2020	max	-	Oct	lastSun	3:00	0	-
Zone	Test/Island	0:00	-	LMT	1900
			1:00	Isl	IS%sT	2030
			2:00	-	+02
"""


def compile_zones(folder: Path, source: str, version: str | None) -> Path:
    """A tz database folder as ``zic -b slim -d`` writes it (zic's own default layout)."""
    assert ZIC is not None
    folder.mkdir()
    (folder.parent / f"{folder.name}.zi").write_text(source)
    subprocess.run(
        [ZIC, "-b", "slim", "-d", str(folder), str(folder.parent / f"{folder.name}.zi")],
        check=True,
        capture_output=True,
        timeout=60,
    )
    if version is not None:
        (folder / "+VERSION").write_text(f"{version}\n")
    return folder


@pytest.fixture
def restore_database() -> Iterator[None]:
    previous = tz.current()
    yield
    tz.use(previous)


@needs_zic
def test_switching_folders_changes_the_rules_at_once(
    tmp_path: Path, restore_database: None
) -> None:
    a = compile_zones(tmp_path / "a", ISLAND_A, "test-a")
    b = compile_zones(tmp_path / "b", ISLAND_B, "test-b")
    wall = datetime(2031, 7, 1, 12, 0)

    assert tz.use_folder(a).version == "test-a" == tz.version()
    assert tz.to_utc(wall, "Test/Island") == datetime(2031, 7, 1, 10, 0, tzinfo=UTC)  # ISST
    assert tz.classify(datetime(2031, 3, 30, 2, 30), "Test/Island") == "gap"
    with pytest.raises(UnknownTimezoneError):
        tz.get_zone("America/New_York")  # not in this folder

    tz.use_folder(b)
    assert tz.version() == "test-b"
    assert tz.to_utc(wall, "Test/Island") == datetime(2031, 7, 1, 10, 0, tzinfo=UTC)  # +02
    assert tz.to_utc(datetime(2031, 1, 15, 12), "Test/Island") == datetime(
        2031, 1, 15, 10, tzinfo=UTC
    )  # +02 in winter too: no DST any more, no gap
    assert tz.classify(datetime(2031, 3, 30, 2, 30), "Test/Island") == "ok"
    assert tz.time_text(tz.to_local(datetime(2031, 1, 15, 10, tzinfo=UTC), "Test/Island")) == (
        "12:00 +02 (UTC+02:00)"
    )

    tz.use_folder(a)  # and back: no zone of b is served from a cache
    assert tz.to_utc(datetime(2031, 1, 15, 12), "Test/Island") == datetime(
        2031, 1, 15, 11, tzinfo=UTC
    )
    tz.use_folder(None)
    assert tz.version() == vars(pytz)["OLSON_VERSION"]
    with pytest.raises(UnknownTimezoneError):
        tz.get_zone("Test/Island")


@needs_zic
def test_a_slim_file_pytz_cannot_read_is_read_right(tmp_path: Path) -> None:
    """zic's default "slim" files list changes only until the footer rule takes over;
    pytz's own reader sees no change at all in them."""
    folder = compile_zones(tmp_path / "slim", ISLAND_A, None)
    with (folder / "Test" / "Island").open("rb") as handle:
        assert pytz.tzfile.build_tzinfo("Test/Island", handle).utcoffset(
            datetime(2031, 7, 1)
        ) == timedelta(0)  # pytz alone: LMT for ever
    history = TzDatabase.open(folder).history("Test/Island")
    summer_2100 = [c for c in history.changes_through(2100) if c.at.year == 2100]
    assert [(c.at, c.after.abbreviation) for c in summer_2100] == [
        (datetime(2100, 3, 28, 1, tzinfo=UTC), "ISST"),
        (datetime(2100, 10, 31, 1, tzinfo=UTC), "IST"),
    ]


def test_a_folder_without_version_file_is_known_by_a_digest(tmp_path: Path) -> None:
    folder = tmp_path / "zones"
    (folder / "America").mkdir(parents=True)
    source = Path(pytz.__file__).parent / "zoneinfo"
    for name in ("America/New_York", "UTC"):
        shutil.copyfile(source / name, folder / name)
    first = TzDatabase.open(folder)
    assert first.version.startswith("sha256:") and len(first.version) == len("sha256:") + 16
    assert TzDatabase.open(folder) == first  # same bytes, same version
    assert first.names() == {"America/New_York", "UTC"}
    assert first.canonical("america/new_york") == "America/New_York"
    shutil.copyfile(source / "America/Chicago", folder / "America/New_York")
    changed = TzDatabase.open(folder)
    assert changed.version != first.version and changed != first
    # Each reads the data of its own version.
    assert first.history("America/New_York").changes != changed.history("America/New_York").changes
    (folder / "+VERSION").write_text("2099z\n")
    assert TzDatabase.open(folder).version == "2099z"


def test_bad_folders_and_files_are_named(tmp_path: Path, restore_database: None) -> None:
    with pytest.raises(TzDatabaseError, match="is not a folder"):
        tz.use_folder(tmp_path / "missing")
    assert tz.version() == vars(pytz)["OLSON_VERSION"]  # nothing switched
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TzDatabaseError, match="is empty"):
        tz.use_folder(empty)
    broken = tmp_path / "broken"
    (broken / "Test").mkdir(parents=True)
    (broken / "Test" / "Zone").write_bytes(b"TZif2" + b"\x00" * 10)
    (broken / "+VERSION").write_text("broken-1")
    tz.use_folder(broken)
    with pytest.raises(TzDatabaseError, match="Test/Zone"):
        tz.get_zone("Test/Zone")
    with pytest.raises(UnknownTimezoneError, match="unknown timezone"):
        tz.get_zone("../../etc/passwd")


@pytest.mark.parametrize(
    ("text", "changes_2040"),
    [
        ("EST5EDT,M3.2.0,M11.1.0", ["2040-03-11T07:00", "2040-11-04T06:00"]),
        # Saturday 24:00 is Sunday 00:00; the southern summer spans the new year.
        ("<-04>4<-03>,M9.1.6/24,M4.1.6/24", ["2040-04-08T03:00", "2040-09-02T04:00"]),
        # Last Sunday of March at -1:00 is Saturday 23:00.
        ("<-02>2<-01>,M3.5.0/-1,M10.5.0/0", ["2040-03-25T01:00", "2040-10-28T01:00"]),
        ("IST-1GMT0,M10.5.0,M3.5.0/1", ["2040-03-25T01:00", "2040-10-28T01:00"]),
        ("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45", ["2040-03-31T14:00", "2040-09-29T14:00"]),
        ("XXX3EDT4,0/0,J365/25", []),  # daylight time all year (RFC 8536 3.3.1)
        ("<+03>-3", []),
    ],
)
def test_posix_tz_rules(text: str, changes_2040: list[str]) -> None:
    rule = tzif.parse_posix_tz(text)
    found = [] if rule.fixed is not None else rule.changes_in(2040)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert [
        (epoch + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M") for seconds, _ in found
    ] == changes_2040


@pytest.mark.parametrize(
    "text", ["", "EST", "EST5EDT", "EST5EDT,M13.1.0,M11.1.0", "EST5EDT,M3.2.0", "E5", "EST99"]
)
def test_bad_posix_tz_strings_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        tzif.parse_posix_tz(text)
