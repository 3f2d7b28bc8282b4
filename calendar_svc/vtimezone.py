"""VTIMEZONE components that never end, built from the tz database in use. Pure.

A subscriber's app reads an event's wall time with the feed's VTIMEZONE (vobject,
ics, libical, ical.js and any reader that goes by the feed alone) or with its
own copy of the zone (icalendar, Home Assistant's ical). icalendar's generated
VTIMEZONE "only works from 1970-01-01 to 2038-01-01": past it the two kinds of
reader parted by an hour. This one says everything the tz database says:

* each change the zone's TZif file lists is an onset of a STANDARD or DAYLIGHT
  observance (grouped by offsets and abbreviation), one onset per RDATE
  property, since ical.js (Thunderbird, web calendars) reads only the first
  value of a comma-separated RDATE;
* a zone whose footer rule still changes its clocks ends with one STANDARD and
  one DAYLIGHT observance per shape of its rule, each with an RRULE and no end
  (``FREQ=YEARLY;BYDAY=2SU;BYMONTH=3`` for New York). A rule that fires on
  "Saturday 24:00" becomes the Sunday it means (``BYDAY=SU;BYMONTHDAY=2,...,8``),
  and one whose day may fall in either of two months becomes two observances;
  the changes the rule already made and the file lists are folded into it.
* the block starts with the period in force on 1 January of ``first_year``
  (the earliest local year the feed uses), so no instant of the feed falls
  before it.

Onsets are written as RFC 5545 wants them: the local time before the change,
read with TZOFFSETFROM. Output is deterministic (observances sorted by onset)
and cached per (tz database, zone, first year).
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from icalendar import Timezone, TimezoneDaylight, TimezoneStandard, vRecur

from calendar_svc import timezones
from calendar_svc.tzdb import Change, TzDatabase, ZoneHistory
from calendar_svc.tzif import DateRule, LocalTimeType

DEFAULT_FIRST_YEAR = 1970
Observance = TimezoneStandard | TimezoneDaylight
_DAY_NAMES = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # POSIX weekday numbers


@dataclass(frozen=True)
class _Shape:
    """One RRULE: the rule's changes that fall in one month (a day range split at a
    month's end gives two shapes)."""

    month: int
    byday: str
    monthdays: tuple[int, ...] = ()
    yearday: int = 0

    def recur(self) -> vRecur:
        if self.yearday:
            return vRecur({"FREQ": "YEARLY", "BYYEARDAY": [self.yearday]})
        parts: dict[str, object] = {"FREQ": "YEARLY", "BYMONTH": [self.month]}
        if self.byday:
            parts["BYDAY"] = [self.byday]
        if self.monthdays:
            parts["BYMONTHDAY"] = list(self.monthdays)
        return vRecur(parts)

    def matches(self, day: date) -> bool:
        if self.yearday:
            return day.timetuple().tm_yday == self.yearday
        if day.month != self.month:
            return False
        if self.monthdays:
            length = calendar.monthrange(day.year, day.month)[1]
            if day.day not in self.monthdays and day.day - length - 1 not in self.monthdays:
                return False
        return not self.byday or _DAY_NAMES[(day.weekday() + 1) % 7] == self.byday[-2:]


def vtimezone(zone: str, first_year: int = DEFAULT_FIRST_YEAR) -> Timezone:
    """The VTIMEZONE of ``zone`` (any spelling the tz database accepts), from the
    period in force on 1 January of ``first_year`` on, for ever. A new component
    each call; ``vtimezone_bytes`` is the cached serialisation."""
    database = timezones.current()
    name = database.canonical(zone)
    return _build(database.history(name), max(first_year, timezones.FIRST_YEAR))


def vtimezone_bytes(zone: str, first_year: int = DEFAULT_FIRST_YEAR) -> tuple[str, bytes]:
    """(TZID, serialised VTIMEZONE) of ``zone``; built once per tz database and year."""
    database = timezones.current()
    return _cached(database, database.canonical(zone), first_year)


@lru_cache(maxsize=512)
def _cached(database: TzDatabase, name: str, first_year: int) -> tuple[str, bytes]:
    component = _build(database.history(name), max(first_year, timezones.FIRST_YEAR))
    data: bytes = component.to_ical(sorted=True)
    return name, data


def _build(history: ZoneHistory, first_year: int) -> Timezone:
    listed = list(history.changes)
    rule_from: Change | None = None
    if history.keeps_changing:
        folded, rule_from = _fold_into_rule(history, first_year)
        listed = listed[: len(listed) - folded]
    start = datetime.combine(date(first_year, 1, 1), time())
    # The change in force on 1 January of the first year, and every later one.
    in_force = [change for change in listed if change.local_onset <= start][-1:]
    onsets = in_force + [change for change in listed if change.local_onset > start]
    observances: list[tuple[datetime, str, Observance]] = []
    if not in_force and (rule_from is None or rule_from.local_onset > start):
        # Nothing the block lists was in force then: the zone's first period was.
        first = history.initial
        observances.append(_observance(first, first, start, []))
    groups: dict[tuple[bool, timedelta, timedelta, str], list[Change]] = defaultdict(list)
    for change in onsets:
        after = change.after
        groups[(after.is_dst, change.before.offset, after.offset, after.abbreviation)].append(
            change
        )
    for changes in groups.values():
        first_change, *later = changes
        observances.append(
            _observance(
                first_change.before,
                first_change.after,
                first_change.local_onset,
                [change.local_onset for change in later],
            )
        )
    if rule_from is not None:
        observances.extend(_rule_observances(history, rule_from))
    timezone = Timezone()
    timezone.add("tzid", history.name)
    for _, _, observance in sorted(observances, key=lambda o: (o[0], o[1])):
        timezone.add_component(observance)
    return timezone


def _observance(
    before: LocalTimeType,
    after: LocalTimeType,
    onset: datetime,
    rdates: list[datetime],
    recur: vRecur | None = None,
) -> tuple[datetime, str, Observance]:
    """(onset, sort tie-breaker, component) of one STANDARD or DAYLIGHT observance."""
    observance: Observance = TimezoneDaylight() if after.is_dst else TimezoneStandard()
    observance.add("dtstart", onset)
    observance.add("tzoffsetfrom", before.offset)
    observance.add("tzoffsetto", after.offset)
    observance.add("tzname", after.abbreviation)
    for rdate in rdates:
        observance.add("rdate", rdate)
    if recur is not None:
        observance.add("rrule", recur)
    return onset, observance.name, observance


def _fold_into_rule(history: ZoneHistory, first_year: int) -> tuple[int, Change]:
    """How many of the last listed changes the footer rule makes itself, and the first
    change the rule's observances start from (for a file that lists none, the one in
    force on 1 January of ``first_year``)."""
    listed = history.changes
    last_year = listed[-1].at.year + 1 if listed else first_year
    # A century back is further than any rule has held unchanged; folding stops there.
    scan_from = max(listed[0].at.year, last_year - 100) if listed else last_year - 1
    ruled = history.rule_changes(scan_from, last_year)
    index = {change: position for position, change in enumerate(ruled)}
    folded = 0
    if listed and listed[-1] in index:
        position = index[listed[-1]]
        while (
            folded < len(listed)
            and position - folded >= 0
            and listed[-1 - folded] == ruled[position - folded]
        ):
            folded += 1
    if folded:
        return folded, listed[-folded]
    last = listed[-1].at if listed else None
    following = next(c for c in ruled if last is None or c.at > last)
    return 0, following


def _rule_observances(
    history: ZoneHistory, rule_from: Change
) -> list[tuple[datetime, str, Observance]]:
    """A STANDARD and a DAYLIGHT observance (or more, one per shape) repeating the
    footer rule for ever from ``rule_from`` on."""
    rule = history.rule
    assert rule is not None and rule.daylight is not None
    assert rule.to_daylight is not None and rule.to_standard is not None
    out: list[tuple[datetime, str, Observance]] = []
    for to_daylight, date_rule in ((True, rule.to_daylight), (False, rule.to_standard)):
        shapes = _shapes(date_rule)
        if shapes is None:
            # A rule no RRULE can say: every change it makes up to the last computed year.
            first, *later = _ruled(history, rule_from, to_daylight, timezones.LAST_YEAR + 1)
            onsets = [change.local_onset for change in later]
            out.append(_observance(first.before, first.after, first.local_onset, onsets))
            continue
        # Each shape starts at its first occurrence; in 400 years every day comes round.
        waiting = list(shapes)
        for change in _ruled(history, rule_from, to_daylight, rule_from.at.year + 400):
            day = change.local_onset.date()
            for shape in [shape for shape in waiting if shape.matches(day)]:
                waiting.remove(shape)
                out.append(
                    _observance(change.before, change.after, change.local_onset, [], shape.recur())
                )
            if not waiting:
                break
    return out


def _ruled(
    history: ZoneHistory, rule_from: Change, to_daylight: bool, last_year: int
) -> Iterator[Change]:
    """The rule's changes into (or out of) daylight time from ``rule_from`` on, in order."""
    for year in range(rule_from.at.year - 1, last_year + 1, 10):
        for change in history.rule_changes(year, min(year + 9, last_year)):
            if change.at >= rule_from.at and change.after.is_dst == to_daylight:
                yield change


def _shapes(rule: DateRule) -> list[_Shape] | None:
    """The RRULE(s) whose occurrences are exactly the local days ``rule`` fires on, with
    its time of day brought into 0-24 h; None when no RRULE can say it."""
    shift = rule.time // 86400
    if rule.kind == "N":
        yearday = rule.day + 1 + shift
        return [_Shape(0, "", yearday=yearday)] if 1 <= yearday <= 365 else None
    if rule.kind == "J":
        # Day n of a year without 29 February: a fixed month and day.
        named = date(2001, 1, 1) + timedelta(days=rule.day - 1)
        moved = named + timedelta(days=shift)
        march = date(2001, 3, 1)
        if moved.year != 2001 or (named < march) != (moved < march):
            return None  # in leap years the move would cross 29 February
        return [_Shape(moved.month, "", (moved.day,))]
    day_name = _DAY_NAMES[(rule.weekday + shift) % 7]
    if shift == 0:
        return [_Shape(rule.month, f"{rule.week if rule.week < 5 else -1}{day_name}")]
    from_end = rule.week == 5
    first = -7 if from_end else 7 * rule.week - 6
    by_month: dict[int, list[int]] = defaultdict(list)
    for day in range(first + shift, first + shift + 7):
        placed = _place(rule.month, day, from_end=from_end)
        if placed is None:
            return None
        by_month[placed[0]].append(placed[1])
    return [
        _Shape(month, day_name, tuple(sorted(days))) for month, days in sorted(by_month.items())
    ]


def _place(month: int, day: int, *, from_end: bool) -> tuple[int, int] | None:
    """(month, BYMONTHDAY) of day ``day`` of ``month``, which may lie past either end of
    it: counted from the 1st, or with ``from_end`` from the last day (-1). None when
    the answer depends on the year (29 February) or leaves it. A previous month's
    days are counted from its end (-1 is its last day)."""
    if from_end:
        if day >= 0:
            return (month + 1, day + 1) if month < 12 else None  # 0 is the next month's 1st
        if day < -28:
            return None
        if month == 2:
            return month, day  # from the end: February's length depends on the year
        # Counted from the 1st where the month's length allows: ical.js ignores negative
        # BYMONTHDAY values beside BYDAY (it never ended Cairo's summer time).
        return month, calendar.monthrange(2001, month)[1] + 1 + day
    if day <= 0:
        if month == 1 or day - 1 < -28:
            return None
        if month - 1 == 2:
            return 2, day - 1
        return month - 1, calendar.monthrange(2001, month - 1)[1] + day
    if day <= 28:
        return month, day
    if month == 2:
        return None
    length = calendar.monthrange(2001, month)[1]
    if day <= length:
        return month, day
    return (month + 1, day - length) if month < 12 else None
