"""The TZif file format (RFC 8536): a zone's listed changes and its footer's POSIX TZ rule.

A TZif file, as ``zic`` writes it, holds a zone's history as a list of
transitions (UTC instants, each starting a *local time type*: UTC offset, DST
flag, abbreviation) and, in version 2 and later, a footer: a POSIX TZ string
such as ``EST5EDT,M3.2.0,M11.1.0`` that gives the rule for every instant after
the last listed transition. Version 1 readers (pytz among them) read only the
first, 32-bit data block, which ends in 2037 and starts in December 1901;
``read`` takes the 64-bit block and the footer, so a zone is right before 1902
and after 2037 too, and a "slim" file (``zic -b slim``, zic's default since
2020), which lists transitions only until its rule takes over, reads right.

Pure: bytes in, values out. Errors are ``TzDatabaseError`` naming the source.
"""

from __future__ import annotations

import calendar
import itertools
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from calendar_svc.errors import TzDatabaseError

_Fail = Callable[[str], TzDatabaseError]

_MAGIC = b"TZif"
_HEADER = struct.Struct(">4sc15x6L")
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Python's datetime covers years 1..9999; zic has written "big bang" transitions at
# -2**59 s, which no datetime can hold. Transitions outside this span are dropped.
_MIN_SECONDS = -62135596800 + 2 * 86400  # 0001-01-03
_MAX_SECONDS = 253402300799 - 2 * 86400  # 9999-12-29
_DAY = 86400


@dataclass(frozen=True, slots=True)
class LocalTimeType:
    """One way a zone's clocks read: offset east of UTC (seconds), DST flag, abbreviation.

    As read from a file, the offset is exact (local mean times have seconds); the
    zone histories of ``tzdb`` hold it rounded to the minute (``rounded``).
    """

    utc_offset: int
    is_dst: bool
    abbreviation: str

    @property
    def offset(self) -> timedelta:
        return timedelta(seconds=self.utc_offset)

    def rounded(self) -> LocalTimeType:
        """This type with its offset rounded to the minute, as pytz rounds it."""
        minutes = (self.utc_offset + 30) // 60
        return LocalTimeType(minutes * 60, self.is_dst, self.abbreviation)


@dataclass(frozen=True, slots=True)
class DateRule:
    """When a POSIX TZ rule changes the clocks in a year: a day and a local time of day.

    ``kind`` is ``"M"`` (``Mm.w.d``: weekday ``d`` (0 = Sunday) of week ``w`` of
    month ``m``, week 5 meaning the last), ``"J"`` (``Jn``: day ``n`` of 1..365,
    29 February never counted) or ``"N"`` (``n``: day ``n`` of 0..365, counting
    29 February). ``time`` is seconds after that day's midnight, in the local
    time in force *before* the change; RFC 8536 lets it be negative or past 24 h
    (``M9.1.6/24``: Saturday 24:00, that is Sunday 00:00).
    """

    kind: str
    month: int = 0
    week: int = 0
    weekday: int = 0
    day: int = 0
    time: int = 2 * 3600

    def date_in(self, year: int) -> date:
        """The day (before ``time`` is added) the rule names in ``year``."""
        if self.kind == "J":
            # A day of a year without 29 February, placed in ``year``.
            named = date(2001, 1, 1) + timedelta(days=self.day - 1)
            return date(year, named.month, named.day)
        if self.kind == "N":
            return date(year, 1, 1) + timedelta(days=self.day)
        first = date(year, self.month, 1)
        # POSIX counts weekdays from Sunday = 0, Python from Monday = 0.
        wanted = (self.weekday - 1) % 7
        day = 1 + (wanted - first.weekday()) % 7 + 7 * (self.week - 1)
        while day > _days_in_month(year, self.month):
            day -= 7
        return date(year, self.month, day)

    def local_onset(self, year: int) -> datetime:
        """The local wall time (before the change) at which the rule fires in ``year``."""
        return datetime.combine(self.date_in(year), datetime.min.time()) + timedelta(
            seconds=self.time
        )

    def local_seconds(self, year: int) -> int:
        """``local_onset`` as seconds since 1970-01-01 00:00 of the local clock."""
        return (self.date_in(year).toordinal() - _EPOCH_ORDINAL) * _DAY + self.time


@dataclass(frozen=True, slots=True)
class PosixTz:
    """A TZif footer: standard time, and optionally daylight time with the rule that
    switches between them every year."""

    text: str
    standard: LocalTimeType
    daylight: LocalTimeType | None = None
    to_daylight: DateRule | None = None
    to_standard: DateRule | None = None

    @property
    def fixed(self) -> LocalTimeType | None:
        """The one local time type in force all year, or None when the clocks change."""
        if self.daylight is None or self.to_daylight is None or self.to_standard is None:
            return self.standard
        if self._daylight_all_year():
            return self.daylight
        return None

    def _daylight_all_year(self) -> bool:
        # RFC 8536 3.3.1: daylight time all year is written as a start on 1 January
        # at 00:00 and an end on 31 December at 24:00 plus the daylight saving.
        assert self.daylight is not None and self.to_daylight and self.to_standard
        for year in (2001, 2004):
            start = self._instant(self.to_daylight, year, self.standard)
            end = self._instant(self.to_standard, year, self.daylight)
            if start > _year_start(year) - self.standard.utc_offset:
                return False
            if end < _year_start(year + 1) - self.standard.utc_offset:
                return False
        return True

    def changes_in(self, year: int) -> list[tuple[int, LocalTimeType]]:
        """The year's clock changes as (UTC seconds, type from then on), in time order.

        Callers check ``fixed`` first: a rule with daylight time all year gives a
        change on 1 January that the previous year's end undoes at the same instant.
        """
        assert self.daylight is not None and self.to_daylight and self.to_standard
        changes = [
            (self._instant(self.to_daylight, year, self.standard), self.daylight),
            (self._instant(self.to_standard, year, self.daylight), self.standard),
        ]
        changes.sort(key=lambda change: change[0])
        return changes

    @staticmethod
    def _instant(rule: DateRule, year: int, before: LocalTimeType) -> int:
        return rule.local_seconds(year) - before.utc_offset


@dataclass(frozen=True, slots=True)
class TzifData:
    """What a TZif file says: the type before any transition, the transitions, the footer."""

    initial: LocalTimeType
    transitions: tuple[tuple[int, LocalTimeType], ...]
    footer: PosixTz | None


def read(data: bytes, *, source: str) -> TzifData:
    """Parse TZif bytes (version 1 to 4). ``source`` names the file in errors."""

    def fail(message: str) -> TzDatabaseError:
        return TzDatabaseError(f"{source}: {message}")

    header = _header(data, 0, fail)
    if header is None:
        raise fail("not a TZif file (no 'TZif' magic)")
    version, counts = header
    block_end = _HEADER.size + _block_size(counts, time_size=4)
    if version == b"\x00":
        return _data_block(data, _HEADER.size, counts, 4, footer=None, fail=fail)
    second = _header(data, block_end, fail)
    if second is None:
        raise fail("version 2+ file without its 64-bit header")
    _, counts64 = second
    start = block_end + _HEADER.size
    end = start + _block_size(counts64, time_size=8)
    footer = _footer(data, end, fail)
    return _data_block(data, start, counts64, 8, footer=footer, fail=fail)


def _header(
    data: bytes, at: int, fail: _Fail
) -> tuple[bytes, tuple[int, int, int, int, int, int]] | None:
    if len(data) < at + _HEADER.size or data[at : at + 4] != _MAGIC:
        return None
    magic, version, *counts = _HEADER.unpack_from(data, at)
    del magic
    if version not in (b"\x00", b"2", b"3", b"4"):
        raise fail(f"unknown TZif version {version!r}")
    isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt = counts
    if typecnt == 0 or charcnt == 0:
        raise fail("no local time types")
    if leapcnt:
        # Leap-second ("right/") files count TAI seconds, not the POSIX time used here.
        raise fail("has leap seconds (a 'right/' zone); use the POSIX zone files")
    if isutcnt not in (0, typecnt) or isstdcnt not in (0, typecnt):
        raise fail("indicator counts do not match the type count")
    return version, (isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt)


def _block_size(counts: tuple[int, int, int, int, int, int], *, time_size: int) -> int:
    isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt = counts
    return (
        timecnt * time_size
        + timecnt
        + typecnt * 6
        + charcnt
        + leapcnt * (time_size + 4)
        + isstdcnt
        + isutcnt
    )


def _data_block(
    data: bytes,
    at: int,
    counts: tuple[int, int, int, int, int, int],
    time_size: int,
    *,
    footer: PosixTz | None,
    fail: _Fail,
) -> TzifData:
    _, _, _, timecnt, typecnt, charcnt = counts
    if len(data) < at + _block_size(counts, time_size=time_size):
        raise fail("truncated")
    times = struct.unpack_from(f">{timecnt}{'q' if time_size == 8 else 'l'}", data, at)
    at += timecnt * time_size
    indices = data[at : at + timecnt]
    at += timecnt
    raw_types = [struct.unpack_from(">lBB", data, at + 6 * i) for i in range(typecnt)]
    at += typecnt * 6
    names = data[at : at + charcnt]
    types = []
    for offset, is_dst, name_at in raw_types:
        if is_dst not in (0, 1) or name_at >= charcnt or not -_DAY < offset < _DAY:
            raise fail("bad local time type")
        end = names.find(b"\x00", name_at)
        abbreviation = names[name_at : end if end >= 0 else None].decode("ascii", "replace")
        types.append(LocalTimeType(offset, bool(is_dst), abbreviation))
    if any(index >= typecnt for index in indices):
        raise fail("transition to an unknown local time type")
    if any(later <= earlier for earlier, later in itertools.pairwise(times)):
        raise fail("transitions out of order")
    initial = types[0]
    transitions = []
    for seconds, index in zip(times, indices, strict=True):
        if seconds < _MIN_SECONDS:
            initial = types[index]  # before any representable instant: the starting type
        elif seconds <= _MAX_SECONDS:
            transitions.append((seconds, types[index]))
    return TzifData(initial, tuple(transitions), footer)


def _footer(data: bytes, at: int, fail: _Fail) -> PosixTz | None:
    tail = data[at:]
    if not tail.startswith(b"\n") or b"\n" not in tail[1:]:
        raise fail("version 2+ file without its footer")
    text = tail[1 : tail.index(b"\n", 1)].decode("ascii", "replace")
    if not text:
        return None
    try:
        return parse_posix_tz(text)
    except ValueError as exc:
        raise fail(f"footer {text!r}: {exc}") from None


# --- POSIX TZ strings ----------------------------------------------------------------

_NAME = r"(?:<[A-Za-z0-9+-]{3,}>|[A-Za-z]{3,})"
_OFFSET = r"[+-]?\d{1,3}(?::\d{1,2}(?::\d{1,2})?)?"
_DATE = r"(?:M\d{1,2}\.\d\.\d|J\d{1,3}|\d{1,3})"
_POSIX = re.compile(
    rf"(?P<std>{_NAME})(?P<std_off>{_OFFSET})"
    rf"(?:(?P<dst>{_NAME})(?P<dst_off>{_OFFSET})?"
    rf"(?:,(?P<start>{_DATE})(?:/(?P<start_time>{_OFFSET}))?"
    rf",(?P<end>{_DATE})(?:/(?P<end_time>{_OFFSET}))?)?)?"
)


def parse_posix_tz(text: str) -> PosixTz:
    """A POSIX TZ string with RFC 8536's extensions (times from -167 to 167 hours).

    Raises ValueError saying what is wrong.
    """
    match = _POSIX.fullmatch(text)
    if match is None:
        raise ValueError("not a POSIX TZ string such as 'EST5EDT,M3.2.0,M11.1.0'")
    # POSIX offsets count hours *west* of UTC: EST5 is UTC-05:00.
    std_offset = -_hms(match["std_off"], limit=24)
    standard = LocalTimeType(std_offset, False, _name(match["std"]))
    if match["dst"] is None:
        return PosixTz(text, standard)
    if match["start"] is None:
        raise ValueError("daylight time without the rule that says when it starts and ends")
    dst_offset = -_hms(match["dst_off"], limit=24) if match["dst_off"] else std_offset + 3600
    daylight = LocalTimeType(dst_offset, True, _name(match["dst"]))
    return PosixTz(
        text,
        standard,
        daylight,
        _date_rule(match["start"], match["start_time"]),
        _date_rule(match["end"], match["end_time"]),
    )


def _name(text: str) -> str:
    return text[1:-1] if text.startswith("<") else text


def _hms(text: str, *, limit: int) -> int:
    sign = -1 if text.startswith("-") else 1
    parts = [int(part) for part in text.lstrip("+-").split(":")]
    hours, minutes, seconds = [*parts, 0, 0][:3]
    if hours > limit or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is out of range")
    return sign * (hours * 3600 + minutes * 60 + seconds)


def _date_rule(text: str, time: str | None) -> DateRule:
    seconds = _hms(time, limit=167) if time else 2 * 3600
    if text.startswith("M"):
        month, week, weekday = (int(part) for part in text[1:].split("."))
        if not (1 <= month <= 12 and 1 <= week <= 5 and 0 <= weekday <= 6):
            raise ValueError(f"{text!r} names no day")
        return DateRule("M", month=month, week=week, weekday=weekday, time=seconds)
    if text.startswith("J"):
        day = int(text[1:])
        if not 1 <= day <= 365:
            raise ValueError(f"{text!r} names no day")
        return DateRule("J", day=day, time=seconds)
    day = int(text)
    if not 0 <= day <= 365:
        raise ValueError(f"{text!r} names no day")
    return DateRule("N", day=day, time=seconds)


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _year_start(year: int) -> int:
    """1 January of ``year``, 00:00, as seconds since the epoch (of the same clock)."""
    return (date(year, 1, 1).toordinal() - _EPOCH_ORDINAL) * _DAY
