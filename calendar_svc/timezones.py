"""Wall time + IANA zone <-> UTC instants, and how a zoned time is shown; the only module
that touches pytz.

Its functions are pure given the tz database in use, which is process-wide
state by design: one ``tzdb.TzDatabase`` (``current()``), read from TZif
files on first use and switchable with ``use_folder`` (under a lock), so that
every module converts with the same rules. No clock is read here.

Rules (README.md, "Time rules"):

* An entry's truth is its naive wall time and its IANA zone; UTC is derived here
  with the tz database in use, never typed in.
* One tz database serves every year. Zones come from ``current()``, a
  ``tzdb.TzDatabase`` (pytz's own folder of TZif files unless ``use_folder``
  names another), and are pytz zones, used only through ``localize(naive,
  is_dst=None)`` and ``normalize``. pytz itself reads only the 32-bit part of
  each file, whose changes end in 2037 (New York would stay on EST in July
  2040) and start in December 1901; the zones here are built from the 64-bit
  part of the same file and continued by the file's own footer rule up to
  ``LAST_YEAR``, so a DST gap or fold is refused or resolved by the same pytz
  code in 2040 as in 2025.
* ``datetime(..., tzinfo=pytz_zone)`` would attach the zone's first (LMT)
  offset, e.g. -06:37 for Mexico City, so it never appears here.
* A wall time inside a DST gap or fold is an error unless the caller says which
  side to take with ``fold``, with PEP 495's meaning: ``fold=0`` reads the wall
  time with the offset in force *before* the transition, ``fold=1`` with the
  offset *after* it.
* Wall times and instants outside ``FIRST_YEAR``..``LAST_YEAR`` are refused
  (TimeRangeError): past ``LAST_YEAR`` the zones' rules are not computed.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC as UTC
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pytz
from pytz.tzinfo import DstTzInfo, StaticTzInfo

from calendar_svc import tzdb
from calendar_svc.errors import (
    AmbiguousTimeError,
    NonexistentTimeError,
    TimeRangeError,
    UnknownTimezoneError,
)
from calendar_svc.tzdb import TzDatabase
from calendar_svc.tzif import LocalTimeType

Kind = Literal["ok", "gap", "fold"]

# The years conversions are right for: the zones' rules are computed up to LAST_YEAR.
FIRST_YEAR = tzdb.FIRST_YEAR
LAST_YEAR = tzdb.LAST_YEAR


# --- the tz database in use -----------------------------------------------------------


def bundled() -> TzDatabase:
    """pytz's own folder of TZif files, with pytz's tz data version (``2026f``)."""
    return TzDatabase(
        Path(pytz.__file__).resolve().parent / "zoneinfo",
        str(vars(pytz)["OLSON_VERSION"]),  # not in pytz's type stubs
        names=pytz.all_timezones,
        common_names=pytz.common_timezones,
        label=f"pytz {pytz.VERSION}",
    )


_state_lock = threading.Lock()
_current: TzDatabase | None = None


def current() -> TzDatabase:
    """The tz database every conversion in the process uses (pytz's unless switched)."""
    global _current
    database = _current  # replaced whole, never changed: read without the lock (hot path)
    if database is not None:
        return database
    with _state_lock:
        if _current is None:
            _current = bundled()
        return _current


def use(database: TzDatabase) -> TzDatabase:
    """Make ``database`` the one in use from now on; returns the one it replaces.

    Zones already handed out stay as they were; every later conversion reads
    the new database (caches are keyed by it, never by zone name alone).
    """
    global _current
    with _state_lock:
        previous = _current if _current is not None else bundled()
        _current = database
    return previous


def use_folder(folder: str | os.PathLike[str] | None) -> TzDatabase:
    """Switch to the tz database in ``folder`` (None: pytz's own) and return it.

    Any folder of TZif files laid out by zone name (as ``zic -d DIR`` writes
    it) will do; TzDatabaseError when it is no folder or holds no file. A zone
    it lacks is an unknown zone when asked for.
    """
    database = bundled() if folder is None else TzDatabase.open(folder)
    use(database)
    return database


def version() -> str:
    """The version of the tz database in use: ``2026f``, or ``sha256:…`` for a folder
    without a ``+VERSION`` file."""
    return current().version


# --- zones ----------------------------------------------------------------------------


class _Zone(DstTzInfo):
    """A pytz zone whose transition table comes from a ``TzDatabase``.

    Subclassed once per zone (as pytz does) with ``zone``, ``_utc_transition_times``
    and ``_transition_info``; pickles by name, through the database in use.
    """

    # Set by DstTzInfo.__init__ (absent from pytz's type stubs).
    _dst: timedelta
    _tzinfos: dict[tuple[timedelta, timedelta, str], pytz.BaseTzInfo]

    def __reduce__(self) -> tuple[Any, ...]:
        return _unpickle, (self.zone, self._utcoffset, self._dst, self._tzname)


class _FixedZone(StaticTzInfo):
    """A pytz zone with one offset for ever."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _unpickle, (self.zone,)


def _unpickle(
    name: str, offset: timedelta | None = None, dst: timedelta | None = None, tzname: str = ""
) -> pytz.BaseTzInfo:
    zone = get_zone(name)
    if offset is None or not isinstance(zone, _Zone):
        return zone
    found = zone._tzinfos.get((offset, dst or timedelta(0), tzname))
    return found if found is not None else zone


def get_zone(name: str) -> pytz.BaseTzInfo:
    """The zone called ``name`` in the tz database in use, or UnknownTimezoneError
    naming close matches. ``UTC`` is pytz's own (feeds write it with ``Z``)."""
    if isinstance(name, str) and name.upper() == "UTC":
        return pytz.utc
    database = current()
    return _build_zone(database, database.canonical(name))


@lru_cache(maxsize=1024)
def _build_zone(database: TzDatabase, name: str) -> pytz.BaseTzInfo:
    history = database.history(name)
    changes = history.changes_through(LAST_YEAR + 1)
    if not changes:
        fixed = history.initial
        cls = type(
            name,
            (_FixedZone,),
            {"zone": name, "_utcoffset": fixed.offset, "_tzname": fixed.abbreviation},
        )
        zone: pytz.BaseTzInfo = cls()
        return zone
    periods = [history.initial, *(change.after for change in changes)]
    dsts = _dst_amounts(periods)
    table = {
        "zone": name,
        # pytz's first entry stands for "since the beginning of time"; its table is
        # of naive UTC datetimes.
        "_utc_transition_times": [datetime.min]  # noqa: DTZ901
        + [change.at.replace(tzinfo=None) for change in changes],
        "_transition_info": [
            (period.offset, dst, period.abbreviation)
            for period, dst in zip(periods, dsts, strict=True)
        ],
    }
    zone = type(name, (_Zone,), table)()
    return zone


def is_zone(name: str) -> bool:
    """Whether the tz database in use has a zone called ``name``."""
    try:
        get_zone(name)
    except UnknownTimezoneError:
        return False
    return True


def _dst_amounts(periods: list[LocalTimeType]) -> list[timedelta]:
    """pytz's ``dst()`` of each period: how far a DST period is ahead of standard time.

    The standard time is the nearest earlier non-DST period; when that gives no
    plausible amount (none, zero or over 3 hours: a zone that also moved its
    standard time), the nearest later one that does.
    """
    # The standard periods that follow each index, nearest first (built once, backwards).
    following: list[list[LocalTimeType]] = [[] for _ in periods]
    later: list[LocalTimeType] = []
    for index in range(len(periods) - 1, -1, -1):
        following[index] = later
        if not periods[index].is_dst:
            later = [periods[index], *later[:7]]
    amounts = []
    last_standard: LocalTimeType | None = None
    for index, period in enumerate(periods):
        if not period.is_dst:
            amounts.append(timedelta(0))
            last_standard = period
            continue
        amount = period.offset - last_standard.offset if last_standard else timedelta(0)
        if not timedelta(0) < amount <= timedelta(hours=3):
            for standard in following[index]:
                candidate = period.offset - standard.offset
                if timedelta(0) < abs(candidate) <= timedelta(hours=3):
                    amount = candidate
                    break
        amounts.append(amount)
    return amounts


# --- conversions ----------------------------------------------------------------------


def _check_year(year: int, what: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise TimeRangeError(
            f"{what} is in year {year}: calendar-svc converts times from {FIRST_YEAR} "
            f"to {LAST_YEAR} only"
        )


def _neighbour_offsets(zone: pytz.BaseTzInfo, naive: datetime) -> tuple[timedelta, timedelta]:
    """Offsets in force a day before and a day after ``naive`` (both unambiguous)."""
    before = zone.localize(naive - timedelta(days=1), is_dst=False).utcoffset()
    after = zone.localize(naive + timedelta(days=1), is_dst=False).utcoffset()
    assert before is not None and after is not None
    return before, after


def classify(naive: datetime, zone_name: str) -> Kind:
    """Whether ``naive`` exists once ("ok"), never ("gap") or twice ("fold") in the zone."""
    zone = get_zone(zone_name)
    _check_year(naive.year, f"{naive:%Y-%m-%d %H:%M}")
    try:
        zone.localize(naive, is_dst=None)
    except pytz.NonExistentTimeError:
        return "gap"
    except pytz.AmbiguousTimeError:
        return "fold"
    return "ok"


def to_utc(naive: datetime, zone_name: str, fold: int | None = None) -> datetime:
    """The UTC instant of wall time ``naive`` in ``zone_name``.

    Raises NonexistentTimeError / AmbiguousTimeError when the wall time is in a
    gap / fold and ``fold`` is None, TimeRangeError outside FIRST_YEAR..LAST_YEAR.
    """
    if naive.tzinfo is not None:
        raise ValueError("to_utc takes a naive wall time")
    zone = get_zone(zone_name)
    _check_year(naive.year, f"{naive:%Y-%m-%d %H:%M} in {zone_name}")
    try:
        local = zone.localize(naive, is_dst=None)
    except pytz.NonExistentTimeError:
        if fold is None:
            raise NonexistentTimeError(
                f"{naive:%Y-%m-%d %H:%M} does not exist in {zone_name} (skipped by a DST "
                "change); move it, or set fold = 0 (offset before the change) or "
                "fold = 1 (offset after)"
            ) from None
        return _resolve(zone, naive, fold)
    except pytz.AmbiguousTimeError:
        if fold is None:
            raise AmbiguousTimeError(
                f"{naive:%Y-%m-%d %H:%M} happens twice in {zone_name} (a DST fold); "
                "set fold = 0 for the first occurrence or fold = 1 for the second"
            ) from None
        return _resolve(zone, naive, fold)
    return local.astimezone(UTC)


def _resolve(zone: pytz.BaseTzInfo, naive: datetime, fold: int) -> datetime:
    if fold not in (0, 1):
        raise ValueError(f"fold must be 0 or 1, got {fold!r}")
    before, after = _neighbour_offsets(zone, naive)
    offset = before if fold == 0 else after
    return (naive - offset).replace(tzinfo=UTC)


def to_local(instant: datetime, zone_name: str) -> datetime:
    """``instant`` (aware) as an aware datetime in ``zone_name`` with the right offset."""
    if instant.tzinfo is None:
        raise ValueError("to_local takes an aware datetime")
    zone = get_zone(zone_name)
    utc = instant.astimezone(UTC)
    _check_year(utc.year, f"{utc:%Y-%m-%dT%H:%M}Z")
    return zone.normalize(utc.astimezone(zone))


def as_written(naive: datetime, zone_name: str, instant: datetime | None = None) -> datetime:
    """Wall time ``naive`` as an aware datetime in the zone that keeps its digits: what a
    feed writes as ``DTSTART;TZID=<zone>:<naive>``. Its instant is RFC 5545's reading
    of the wall time (the first of two repeated times; the offset before a gap), which
    is ``to_utc(naive, zone, fold=0)`` (pass it as ``instant`` when known); a wall time a
    gap skips keeps its digits (where ``to_local`` of its instant would give the time
    after the gap)."""
    if instant is None:
        instant = to_utc(naive, zone_name, fold=0)
    local = to_local(instant, zone_name)
    if local.replace(tzinfo=None) == naive:
        return local
    # Skipped by a gap: pytz's offset before the change, without normalising the digits.
    return get_zone(zone_name).localize(naive, is_dst=False)


def wall_time(instant: datetime, zone_name: str) -> tuple[datetime, int | None]:
    """The naive wall time of ``instant`` in the zone, and the fold that names it.

    The fold is None unless the wall time is ambiguous, so that storing
    (wall time, zone, fold) and calling ``to_utc`` gives ``instant`` back.
    """
    local = to_local(instant, zone_name)
    naive = local.replace(tzinfo=None)
    if classify(naive, zone_name) != "fold":
        return naive, None
    fold = 0 if to_utc(naive, zone_name, fold=0) == instant.astimezone(UTC) else 1
    return naive, fold


def day_start_utc(day: date, zone_name: str) -> datetime:
    """The instant a calendar day starts in the zone (midnight, or the end of a gap)."""
    return _day_start(current(), day, zone_name)


@lru_cache(maxsize=4096)
def _day_start(database: TzDatabase, day: date, zone_name: str) -> datetime:
    # Cached: a feed filtered to some days asks this of every entry in a few zones.
    del database  # part of the cache key only: another tz database, another answer
    return to_utc(datetime.combine(day, time()), zone_name, fold=0)


def ensure_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """``2025-09-02T16:00:00Z`` (written field by field: every reminder sent writes some,
    and ``strftime`` costs several times this)."""
    v = ensure_utc(value)
    return f"{v.year:04}-{v.month:02}-{v.day:02}T{v.hour:02}:{v.minute:02}:{v.second:02}Z"


# --- how a zoned time is shown --------------------------------------------------------


def utc_offset_text(aware: datetime) -> str:
    """``UTC-06:00`` style text for an aware datetime."""
    offset = aware.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def abbreviation(aware: datetime) -> str:
    """The zone abbreviation of an aware local datetime, as the tz database spells it:
    ``CST``, ``EDT``, or ``-05`` for a zone that has no letters."""
    return aware.tzname() or utc_offset_text(aware)


def time_text(local: datetime) -> str:
    """``10:00 CST (UTC-06:00)``: how every wall time is shown to a person.

    Always the wall time, the abbreviation and the offset (``10:00 -05
    (UTC-05:00)`` in Quito, where the tz database has no letters). ``list``,
    ``show``, ``reminders`` and reminder messages all say a time this way.
    """
    return f"{local.hour:02}:{local.minute:02} {abbreviation(local)} ({utc_offset_text(local)})"
