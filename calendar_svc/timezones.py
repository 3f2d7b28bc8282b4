"""Wall time + IANA zone <-> UTC instants. Pure; the only module that touches pytz.

Rules (README.md, "Time rules"):

* An entry's truth is its naive wall time and its IANA zone; UTC is derived here
  with the installed tz data, never typed in.
* pytz zones are used only through ``localize(naive, is_dst=None)`` and
  ``normalize``. ``datetime(..., tzinfo=pytz_zone)`` would attach the zone's
  first (LMT) offset, e.g. -06:37 for Mexico City, so it never appears here.
* A wall time inside a DST gap or fold is an error unless the caller says which
  side to take with ``fold``, with PEP 495's meaning: ``fold=0`` reads the wall
  time with the offset in force *before* the transition, ``fold=1`` with the
  offset *after* it.
"""

from __future__ import annotations

from datetime import UTC as UTC
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

import pytz

from calendar_svc.errors import (
    AmbiguousTimeError,
    NonexistentTimeError,
    UnknownTimezoneError,
)

Kind = Literal["ok", "gap", "fold"]


@lru_cache(maxsize=512)
def get_zone(name: str) -> pytz.BaseTzInfo:
    """The pytz zone called ``name``, or UnknownTimezoneError naming close matches."""
    if not isinstance(name, str) or not name:
        raise UnknownTimezoneError(f"timezone must be an IANA zone name, got {name!r}")
    try:
        return pytz.timezone(name)
    except pytz.UnknownTimeZoneError:
        hint = _suggest(name)
        raise UnknownTimezoneError(f"unknown timezone {name!r}{hint}") from None


# Places people type that are not zones of their own.
_ALIASES = {
    "america/quito": "America/Guayaquil",
    "america/washington": "America/New_York",
    "america/washington_dc": "America/New_York",
    "america/quito_city": "America/Guayaquil",
}


def _suggest(name: str) -> str:
    alias = _ALIASES.get(name.lower())
    if alias:
        return f" (it is not an IANA zone; use {alias!r})"
    city = name.rsplit("/", 1)[-1].lower()
    matches = sorted(z for z in pytz.common_timezones if z.rsplit("/", 1)[-1].lower() == city)
    if not matches:
        matches = sorted(z for z in pytz.common_timezones if z.lower() == name.lower())
    if matches:
        return f" (did you mean {', '.join(repr(m) for m in matches[:3])}?)"
    return " (use an IANA name such as 'America/Mexico_City')"


def is_zone(name: str) -> bool:
    try:
        get_zone(name)
    except UnknownTimezoneError:
        return False
    return True


def _neighbour_offsets(zone: pytz.BaseTzInfo, naive: datetime) -> tuple[timedelta, timedelta]:
    """Offsets in force a day before and a day after ``naive`` (both unambiguous)."""
    before = zone.localize(naive - timedelta(days=1), is_dst=False).utcoffset()
    after = zone.localize(naive + timedelta(days=1), is_dst=False).utcoffset()
    assert before is not None and after is not None
    return before, after


def classify(naive: datetime, zone_name: str) -> Kind:
    """Whether ``naive`` exists once ("ok"), never ("gap") or twice ("fold") in the zone."""
    zone = get_zone(zone_name)
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
    gap / fold and ``fold`` is None.
    """
    if naive.tzinfo is not None:
        raise ValueError("to_utc takes a naive wall time")
    zone = get_zone(zone_name)
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
    return zone.normalize(instant.astimezone(zone))


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
    return to_utc(datetime.combine(day, time()), zone_name, fold=0)


def utc_offset_text(aware: datetime) -> str:
    """``UTC-06:00`` style text for an aware datetime."""
    offset = aware.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def abbreviation(aware: datetime) -> str:
    """The zone abbreviation (CST, EDT, -05) of an aware local datetime."""
    return aware.tzname() or utc_offset_text(aware)


def now_utc() -> datetime:
    """The real clock. Logic takes a clock argument instead of calling this directly."""
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """``2025-09-02T16:00:00Z``."""
    return ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def zone_tzinfo(zone_name: str) -> tzinfo:
    """The zone as a tzinfo for converting *instants* (``astimezone``), never for building."""
    return get_zone(zone_name)
