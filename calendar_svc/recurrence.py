"""Recurrence: when a recurring entry happens, by one engine. Pure: no database, no clock.

An RRULE is expanded in the entry's wall time and each occurrence is then
converted with the entry's zone, so a weekly 10:00 meeting stays at 10:00
local across a DST change. One engine for every reader of occurrences: the
store's day filters, the reminder rules, the planner and the .ics importer.

``expand`` is what they call: the RRULE's occurrences (``occurrences``), plus the
entry's RDATEs, less its EXDATEs, all wall times in the entry's zone (an EXDATE
given in UTC or another zone is stored as the wall time it names in the entry's
zone, so it matches the occurrence it meant). An override of one occurrence
(RECURRENCE-ID) is an entry of its own and its master lists that occurrence as
an EXDATE, so each occurrence is planned once.

What the engine accepts (``parse_rule``, and ``check_rule`` with the entry's
DTSTART, which import and the check of stored entries both call):

* the parts of RFC 5545 and nothing else (no ``X-`` part, no empty part, none
  twice), each value in its range (``BYHOUR`` 0..23, ``BYMONTHDAY`` ±1..31,
  ``BYDAY`` ordinals only for MONTHLY (±1..5) and YEARLY (±1..53), ...), and
  only in the combinations RFC 5545 allows (``BYWEEKNO`` only with YEARLY, ...);
* ``INTERVAL`` at least 1, ``COUNT`` 1..``MAX_OCCURRENCES``, not both ``COUNT``
  and ``UNTIL``, an all-day entry's ``UNTIL`` a date;
* a rule that fires at least once between its DTSTART and ``validation.LAST_DAY``
  and at most ``MAX_OCCURRENCES`` times in its first year.

How expansion is bounded, wherever it runs (dateutil's ``rrule`` does the
calendar arithmetic; it searches period after period until a candidate passes
``UNTIL``, with no end when none comes):

* a rule without ``COUNT`` starts from the period just before the window,
  not from its DTSTART (the BY parts DTSTART implies are given explicitly, so
  the occurrences are the same), so a window in 2199 costs what one in 2025 does;
* the whole computation is moved by whole 400-year Gregorian cycles (the
  calendar repeats exactly: weekdays, leap years, ISO weeks) so that the window
  ends shortly before the year 9999, where dateutil's search stops: a rule
  with no occurrence after the window costs at most 400 years of days
  (about 0.2 s), never an endless search;
* ``BYSETPOS`` of an HOURLY, MINUTELY or SECONDLY rule must be able to pick
  from the set each period has (the only search that advances by less than
  a day when it finds nothing);
* at most ``MAX_OCCURRENCES`` occurrences per series and window are returned.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Final, Protocol

from dateutil import rrule as du

from calendar_svc.errors import RuleError
from calendar_svc.timezones import (
    FIRST_YEAR,
    LAST_YEAR,
    UTC,
    day_start_utc,
    to_local,
    to_utc,
)
from calendar_svc.validation import LAST_DAY

#: The most occurrences of one series any window shows (a feed's or a preview's, a planner
#: pass's), and the most a series may have in its first year or in total (``COUNT``).
MAX_OCCURRENCES: Final = 10_000
#: How long after its DTSTART a rule is probed for its density.
FIRST_YEAR_SPAN: Final = timedelta(days=366)
_LARGEST_INTERVAL = 1_000_000

_FREQUENCIES: Final = {
    "YEARLY": du.YEARLY,
    "MONTHLY": du.MONTHLY,
    "WEEKLY": du.WEEKLY,
    "DAILY": du.DAILY,
    "HOURLY": du.HOURLY,
    "MINUTELY": du.MINUTELY,
    "SECONDLY": du.SECONDLY,
}
_DAYS: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_PARTS: Final = (
    "FREQ",
    "UNTIL",
    "COUNT",
    "INTERVAL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
)
# (smallest, largest, zero allowed): each number of a BY part, as RFC 5545 bounds it.
# BYSECOND stops at 59: a leap second is no wall time here.
_NUMBERS: Final = {
    "BYSECOND": (0, 59, True),
    "BYMINUTE": (0, 59, True),
    "BYHOUR": (0, 23, True),
    "BYMONTHDAY": (-31, 31, False),
    "BYYEARDAY": (-366, 366, False),
    "BYWEEKNO": (-53, 53, False),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (-366, 366, False),
}
_NUMBER = re.compile(r"[+-]?\d{1,6}")
_WEEKDAY = re.compile(r"([+-]?\d{1,3})?(MO|TU|WE|TH|FR|SA|SU)")
_UNTIL = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?")
_CYCLE_YEARS = 400  # the Gregorian calendar repeats every 400 years, to the weekday
_STOP_YEAR = 9998  # windows are moved to end before this year (dateutil stops after 9999)
_STEP_SECONDS: Final = {
    du.WEEKLY: 7 * 86400,
    du.DAILY: 86400,
    du.HOURLY: 3600,
    du.MINUTELY: 60,
    du.SECONDLY: 1,
}


class Recurring(Protocol):
    """What expansion reads of an entry (``models.Entry`` has it all)."""

    @property
    def start_local(self) -> datetime: ...

    @property
    def start_tz(self) -> str: ...

    @property
    def start_fold(self) -> int | None: ...

    @property
    def start_utc(self) -> datetime: ...

    @property
    def rrule(self) -> str | None: ...


@dataclass(frozen=True)
class Rule:
    """An RRULE as the engine reads it (``parse_rule``); ``text`` is the rule as written."""

    text: str
    freq: int
    interval: int = 1
    count: int | None = None
    # UNTIL: a date, a floating wall time, or an aware UTC instant (``...Z``).
    until: date | datetime | None = None
    bysecond: tuple[int, ...] = ()
    byminute: tuple[int, ...] = ()
    byhour: tuple[int, ...] = ()
    byday: tuple[tuple[int | None, int], ...] = ()  # (ordinal or None, weekday 0=MO)
    bymonthday: tuple[int, ...] = ()
    byyearday: tuple[int, ...] = ()
    byweekno: tuple[int, ...] = ()
    bymonth: tuple[int, ...] = ()
    bysetpos: tuple[int, ...] = ()
    wkst: int = 0

    def until_wall(self, zone: str) -> datetime | None:
        """UNTIL as a naive wall time in ``zone`` (a date: its midnight, as dateutil reads
        it; a UTC instant: the wall time it is there)."""
        until = self.until
        if until is None:
            return None
        if not isinstance(until, datetime):
            return datetime.combine(until, time())
        if until.tzinfo is None:
            return until
        if FIRST_YEAR < until.year < LAST_YEAR:
            return to_local(until, zone).replace(tzinfo=None)
        # Out of the years zones are computed for: far past every window either way.
        return until.replace(tzinfo=None)


def parse_rule(text: str) -> Rule:
    """The RRULE ``text`` (``FREQ=WEEKLY;BYDAY=MO,WE``, an ``RRULE:`` prefix allowed), read
    and checked part by part; RuleError saying which part is wrong and why."""
    if not isinstance(text, str):
        raise RuleError(f"expected an RFC 5545 RRULE such as 'FREQ=DAILY;COUNT=3', got {text!r}")
    return _parse(text)


@lru_cache(maxsize=4096)
def _parse(text: str) -> Rule:
    body = text.strip()
    if body[:6].upper() == "RRULE:":
        body = body[6:]
    if not body:
        raise RuleError("an empty RRULE; write e.g. 'FREQ=DAILY;COUNT=3'")
    values: dict[str, str] = {}
    for part in body.split(";"):
        name, equals, value = part.partition("=")
        name = name.strip().upper()
        if not part.strip():
            raise RuleError("an empty part (';' twice in a row, or at an end)")
        if not equals or not value.strip():
            raise RuleError(f"part {part!r} has no value (write NAME=VALUE)")
        if name not in _PARTS:
            raise RuleError(f"unknown part {name!r} (RFC 5545 parts: {', '.join(_PARTS)})")
        if name in values:
            raise RuleError(f"{name} is given twice")
        values[name] = value.strip().upper()
    if "FREQ" not in values:
        raise RuleError("an RRULE needs FREQ (e.g. FREQ=DAILY;COUNT=3)")
    freq_name = values["FREQ"]
    if freq_name not in _FREQUENCIES:
        raise RuleError(f"FREQ={freq_name} is not one of {', '.join(_FREQUENCIES)}")
    freq = _FREQUENCIES[freq_name]
    numbers = {name: _numbers(name, values[name]) for name in _NUMBERS if name in values}
    rule = Rule(
        text=body,
        freq=freq,
        interval=_positive("INTERVAL", values.get("INTERVAL", "1"), _LARGEST_INTERVAL),
        count=(_positive("COUNT", values["COUNT"], MAX_OCCURRENCES) if "COUNT" in values else None),
        until=_until(values["UNTIL"]) if "UNTIL" in values else None,
        byday=_weekdays(values["BYDAY"]) if "BYDAY" in values else (),
        wkst=_day("WKST", values["WKST"]) if "WKST" in values else 0,
        **{name.lower(): found for name, found in numbers.items()},
    )
    _check_combination(rule, freq_name, values)
    return rule


def _positive(name: str, value: str, largest: int) -> int:
    if not re.fullmatch(r"\d{1,9}", value) or not 1 <= int(value) <= largest:
        raise RuleError(f"{name} must be a whole number from 1 to {largest:,}, got {value!r}")
    return int(value)


def _numbers(name: str, value: str) -> tuple[int, ...]:
    low, high, zero = _NUMBERS[name]
    found = []
    for item in value.split(","):
        if (
            not _NUMBER.fullmatch(item)
            or not low <= int(item) <= high
            or (not zero and int(item) == 0)
        ):
            span = f"{low} to {high}" + ("" if zero else ", not 0")
            raise RuleError(f"{name} takes numbers from {span}, got {item!r}")
        found.append(int(item))
    return tuple(found)


def _day(name: str, value: str) -> int:
    if value not in _DAYS:
        raise RuleError(f"{name} takes a weekday ({', '.join(_DAYS)}), got {value!r}")
    return _DAYS.index(value)


def _weekdays(value: str) -> tuple[tuple[int | None, int], ...]:
    found: list[tuple[int | None, int]] = []
    for item in value.split(","):
        match = _WEEKDAY.fullmatch(item)
        if match is None:
            raise RuleError(f"BYDAY takes weekdays such as MO, -1FR or +2TU, got {item!r}")
        ordinal = int(match.group(1)) if match.group(1) else None
        if ordinal is not None and not 1 <= abs(ordinal) <= 53:
            raise RuleError(
                f"BYDAY {item!r}: the number before the day must be 1 to 53 or -1 to -53"
            )
        found.append((ordinal, _DAYS.index(match.group(2))))
    return tuple(found)


def _until(value: str) -> date | datetime:
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise RuleError(
            f"UNTIL takes a date (20250930) or a date-time (20250930T170000Z), got {value!r}"
        )
    year, month, day, hour, minute, second, zulu = match.groups()
    try:
        if hour is None:
            return date(int(year), int(month), int(day))
        when = datetime(  # noqa: DTZ001 - a wall time, or UTC when it ends in Z
            int(year), int(month), int(day), int(hour), int(minute), int(second)
        )
    except ValueError:
        raise RuleError(f"UNTIL {value!r} is not a real date or time") from None
    return when.replace(tzinfo=UTC) if zulu else when


def _check_combination(rule: Rule, freq: str, given: dict[str, str]) -> None:
    """The combinations RFC 5545 forbids, and BYSETPOS that could never pick anything."""
    if "COUNT" in given and "UNTIL" in given:
        raise RuleError("give COUNT or UNTIL, not both")
    if rule.byweekno and rule.freq != du.YEARLY:
        raise RuleError(f"BYWEEKNO is only for FREQ=YEARLY, not FREQ={freq}")
    if rule.byyearday and rule.freq in (du.MONTHLY, du.WEEKLY, du.DAILY):
        raise RuleError(f"BYYEARDAY is not for FREQ={freq}")
    if rule.bymonthday and rule.freq == du.WEEKLY:
        raise RuleError("BYMONTHDAY is not for FREQ=WEEKLY")
    numbered = [n for n, _ in rule.byday if n is not None]
    if numbered:
        if rule.freq not in (du.MONTHLY, du.YEARLY):
            raise RuleError(
                f"a numbered BYDAY (+1MO, -1FR) is only for MONTHLY or YEARLY, not {freq}"
            )
        if rule.freq == du.YEARLY and rule.byweekno:
            raise RuleError("a numbered BYDAY cannot go with BYWEEKNO")
        within_month = rule.freq == du.MONTHLY or bool(rule.bymonth)
        largest = 5 if within_month else 53
        if any(abs(n) > largest for n in numbered):
            where = "a month" if within_month else "a year"
            raise RuleError(f"BYDAY: {where} has at most {largest} of each weekday")
    if rule.bysetpos:
        others = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY")
        if not any(name in given for name in (*others, "BYWEEKNO", "BYMONTH")):
            raise RuleError("BYSETPOS needs another BY part to pick from (e.g. BYDAY=MO,TU)")
        if rule.freq >= du.HOURLY:
            size = _sub_daily_set(rule)
            if any(abs(pos) > size for pos in rule.bysetpos):
                raise RuleError(
                    f"BYSETPOS: each {freq.lower().removesuffix('ly')} period of this rule "
                    f"holds {size} time(s), so BYSETPOS={','.join(map(str, rule.bysetpos))} "
                    "picks nothing, ever"
                )


def _sub_daily_set(rule: Rule) -> int:
    """How many times one period of an HOURLY, MINUTELY or SECONDLY rule holds."""
    if rule.freq == du.SECONDLY:
        return 1
    seconds = len(rule.bysecond) or 1
    if rule.freq == du.MINUTELY:
        return seconds
    return (len(rule.byminute) or 1) * seconds


def check_rule(text: str, start_local: datetime, zone: str, *, all_day: bool) -> str:
    """The RRULE ``text`` of an entry starting at wall time ``start_local`` in ``zone``, as it
    is stored (stripped, without an ``RRULE:`` prefix), once the engine has expanded it:
    RuleError when it is malformed (``parse_rule``), when an all-day entry's UNTIL is not a
    date, when it never fires between ``start_local`` and ``validation.LAST_DAY``, or when
    it fires more than ``MAX_OCCURRENCES`` times in its first year."""
    rule = parse_rule(text)
    if all_day and isinstance(rule.until, datetime):
        raise RuleError("the entry is all-day: UNTIL must be a date (e.g. UNTIL=20250930)")
    first = next(iter(_rule_walls(rule, start_local, zone, start_local, _range_end())), None)
    if first is None:
        raise RuleError(
            f"{rule.text!r} never fires between its start ({start_local:%Y-%m-%d %H:%M}) "
            f"and {LAST_DAY.isoformat()}"
        )
    span = start_local + FIRST_YEAR_SPAN
    year = sum(
        1 for _ in _rule_walls(rule, start_local, zone, start_local, span, MAX_OCCURRENCES + 1)
    )
    if year > MAX_OCCURRENCES:
        raise RuleError(
            f"{rule.text!r} repeats more than {MAX_OCCURRENCES:,} times within its first year; "
            f"calendar-svc keeps at most {MAX_OCCURRENCES:,} occurrences of a series per window"
        )
    return rule.text


def _range_end() -> datetime:
    return datetime.combine(LAST_DAY, time(23, 59, 59))


def occurrences(entry: Recurring, start: datetime, end: datetime) -> Iterator[datetime]:
    """Start instants (UTC) of the entry's occurrences within ``[start, end]``."""
    for _, instant in occurrence_times(entry, start, end):
        yield instant


def occurrence_times(
    entry: Recurring, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """(wall time, UTC instant) of each occurrence within ``[start, end]`` (at most
    ``MAX_OCCURRENCES``). The wall time is the one the entry or its rule gives, also where
    a DST gap swallows it (its instant is then read with the offset before the gap): a
    reminder ``P1D`` before it is at that wall time the day before, as RFC 5545 counts
    days. RuleError when the entry's RRULE is not one the engine takes."""
    if not entry.rrule:
        if start <= entry.start_utc <= end:
            yield entry.start_local, entry.start_utc
        return
    rule = parse_rule(entry.rrule)
    # Expand in wall time; one day of margin on both sides covers any UTC offset.
    wall_from = to_local(start, entry.start_tz).replace(tzinfo=None) - timedelta(days=1)
    wall_to = to_local(end, entry.start_tz).replace(tzinfo=None) + timedelta(days=1)
    for wall in _rule_walls(rule, entry.start_local, entry.start_tz, wall_from, wall_to):
        fold = entry.start_fold if wall == entry.start_local else None
        instant = to_utc(wall, entry.start_tz, fold=0 if fold is None else fold)
        if start <= instant <= end:
            yield wall, instant


def rule_between(text: str, dtstart: datetime, low: datetime, high: datetime) -> list[datetime]:
    """The wall times of the RRULE ``text`` from ``dtstart`` within ``[low, high]`` (naive; a
    UTC UNTIL taken as written), searched within the same bounds as every expansion: for
    rules that are not an entry's (a VTIMEZONE's observances). RuleError as ``parse_rule``."""
    return list(_rule_walls(parse_rule(text), dtstart, "UTC", low, high))


def wall_rule(rule: str, start_local: datetime, zone: str) -> du.rrule:
    """The RRULE ``rule`` from ``start_local`` as dateutil's ``rrule``, yielding the naive
    wall times in ``zone`` that ``occurrences`` expands (a UTC ``UNTIL`` read as the wall
    time it is there). For code that walks a series from its start (the .ics importer's
    overrides): check the rule with ``check_rule`` first."""
    parsed = parse_rule(rule)
    return _dateutil(parsed, start_local, start_local, parsed.until_wall(zone))


def _rule_walls(
    rule: Rule,
    dtstart: datetime,
    zone: str,
    low: datetime,
    high: datetime,
    limit: int = MAX_OCCURRENCES,
) -> Iterator[datetime]:
    """The rule's wall times within ``[low, high]``, at most ``limit``, searched
    within bounds (see the module's docstring)."""
    if high < dtstart or high < low:
        return
    until = rule.until_wall(zone)
    if until is not None and until > high:
        until = None  # it ends after the window: no bound here (and never past the year 9999)
    begin = dtstart if rule.count is not None else _moved_start(rule, dtstart, low)
    shift = max(0, (_STOP_YEAR - high.year) // _CYCLE_YEARS) * _CYCLE_YEARS
    moved = _dateutil(
        rule,
        _years_later(begin, shift),
        dtstart,
        _years_later(until, shift) if until is not None else None,
    )
    shifted_low, shifted_high = _years_later(low, shift), _years_later(high, shift)
    found = 0
    walls = iter(moved)
    while found < limit:
        try:
            wall = next(walls)
        except StopIteration:
            return
        except ValueError as exc:
            if str(exc).startswith("Invalid combination"):
                raise RuleError(
                    f"{rule.text!r} never fires: its INTERVAL never meets its BYHOUR, "
                    "BYMINUTE or BYSECOND"
                ) from None
            return  # dateutil ran into the year 10000: far past the window
        if wall > shifted_high:
            return
        if wall >= shifted_low:
            found += 1
            yield _years_later(wall, -shift)


def _years_later(value: datetime, years: int) -> datetime:
    return value.replace(year=value.year + years) if years else value


def _moved_start(rule: Rule, dtstart: datetime, low: datetime) -> datetime:
    """A start for a rule without COUNT that gives the same occurrences from ``low`` on as
    ``dtstart`` does: a whole number of periods later, one period before ``low``."""
    if low <= dtstart:
        return dtstart
    if rule.freq in _STEP_SECONDS:
        step = timedelta(seconds=_STEP_SECONDS[rule.freq] * rule.interval)
        periods = (low - dtstart) // step - 1
        return dtstart + periods * step if periods > 0 else dtstart
    months = 12 if rule.freq == du.YEARLY else 1
    period = months * rule.interval
    elapsed = (low.year - dtstart.year) * 12 + low.month - dtstart.month
    periods = elapsed // period - 1
    if periods <= 0:
        return dtstart
    # The first day of a month on the rule's grid (BY parts are explicit: see _dateutil).
    index = dtstart.year * 12 + (dtstart.month - 1 if months == 1 else 0) + periods * period
    return datetime(index // 12, index % 12 + 1, 1)  # noqa: DTZ001 - a wall time


def _dateutil(rule: Rule, begin: datetime, dtstart: datetime, until: datetime | None) -> du.rrule:
    """dateutil's rrule for ``rule`` from ``begin``, with every BY part that RFC 5545 (and
    dateutil) take from the DTSTART ``dtstart`` written out, so that ``begin`` may be a
    later start on the rule's grid."""
    bymonth: tuple[int, ...] | None = rule.bymonth or None
    bymonthday: tuple[int, ...] | None = rule.bymonthday or None
    byweekday: list[du.weekday] | None = (
        [du.weekday(day, n) for n, day in rule.byday] if rule.byday else None
    )
    if not (rule.byweekno or rule.byyearday or rule.bymonthday or rule.byday):
        if rule.freq == du.YEARLY:
            bymonth = bymonth or (dtstart.month,)
            bymonthday = (dtstart.day,)
        elif rule.freq == du.MONTHLY:
            bymonthday = (dtstart.day,)
        elif rule.freq == du.WEEKLY:
            byweekday = [du.weekday(dtstart.weekday())]
    coarse = rule.freq
    try:
        return du.rrule(
            rule.freq,
            dtstart=begin,
            interval=rule.interval,
            wkst=rule.wkst,
            count=rule.count,
            until=until,
            bysetpos=rule.bysetpos or None,
            bymonth=bymonth,
            bymonthday=bymonthday,
            byyearday=rule.byyearday or None,
            byweekno=rule.byweekno or None,
            byweekday=byweekday,
            byhour=rule.byhour or ((dtstart.hour,) if coarse < du.HOURLY else None),
            byminute=rule.byminute or ((dtstart.minute,) if coarse < du.MINUTELY else None),
            bysecond=rule.bysecond or ((dtstart.second,) if coarse < du.SECONDLY else None),
            cache=False,
        )
    except ValueError as exc:  # dateutil's own check: no hour/minute the INTERVAL meets
        raise RuleError(f"{rule.text!r} never fires: {exc}") from None


# --- RDATE and EXDATE ----------------------------------------------------------------------


def wall_text(value: date | datetime) -> str:
    """How an RDATE/EXDATE wall time is stored: ``2025-09-02T10:00:00`` or ``2025-09-02``."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None, microsecond=0).isoformat()
    return value.isoformat()


def parse_wall(text: str) -> date | datetime:
    """The wall time (or date) ``wall_text`` wrote; ValueError otherwise."""
    if "T" in text:
        return datetime.fromisoformat(text).replace(tzinfo=None)
    return date.fromisoformat(text)


def wall_instant(entry: Recurring, wall: date | datetime) -> datetime:
    """The UTC start of an occurrence at wall time ``wall`` in the entry's zone (a date:
    midnight), read as ``occurrences`` reads the RRULE's: the entry's own fold for its
    DTSTART, else the offset before a DST change."""
    if not isinstance(wall, datetime):
        return day_start_utc(wall, entry.start_tz)
    fold = entry.start_fold if wall == entry.start_local else None
    return to_utc(wall, entry.start_tz, fold=0 if fold is None else fold)


def expand(entry: Recurring, start: datetime, end: datetime) -> Iterator[datetime]:
    """Start instants (UTC) of every occurrence within ``[start, end]``, in order: the
    RRULE's (or the entry's one start), plus its RDATEs, less its EXDATEs."""
    for _, instant in expand_times(entry, start, end):
        yield instant


def expand_times(
    entry: Recurring, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """``expand`` with each occurrence's wall time: (wall time, UTC instant), in order.
    An RDATE's wall time is the one stored (a date: its midnight)."""
    rdates: Sequence[str] = getattr(entry, "rdates", None) or ()
    exdates: Sequence[str] = getattr(entry, "exdates", None) or ()
    if not rdates and not exdates:
        yield from occurrence_times(entry, start, end)
        return
    excluded = {instant for _, instant in _walls(entry, exdates)}
    extra = sorted(
        ((wall, instant) for wall, instant in _walls(entry, rdates) if start <= instant <= end),
        key=_instant_of,
    )
    previous = None
    for wall, instant in heapq.merge(occurrence_times(entry, start, end), extra, key=_instant_of):
        if instant != previous and instant not in excluded:
            yield wall, instant
        previous = instant


def _instant_of(pair: tuple[datetime, datetime]) -> datetime:
    return pair[1]


def _walls(entry: Recurring, walls: Iterable[str]) -> Iterator[tuple[datetime, datetime]]:
    for text in walls:
        wall = parse_wall(text)
        if not isinstance(wall, datetime):
            wall = datetime.combine(wall, time())
        elif getattr(entry, "all_day", False):
            wall = datetime.combine(wall.date(), time())
        yield wall, wall_instant(entry, wall)
