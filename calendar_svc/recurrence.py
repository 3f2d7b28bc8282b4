"""Recurrence expansion: when a recurring entry happens. Pure: no database, no clock.

An RRULE is expanded in the entry's wall time and each occurrence is then
converted with the entry's zone, so a weekly 10:00 meeting stays at 10:00
local across a DST change. One engine for every reader of occurrences: the
store's day filters, the reminder rules and the planner.

``expand`` is what they call: the RRULE's occurrences (``occurrences``), plus the
entry's RDATEs, less its EXDATEs, all wall times in the entry's zone (an EXDATE
given in UTC or another zone is stored as the wall time it names in the entry's
zone, so it matches the occurrence it meant). An override of one occurrence
(RECURRENCE-ID) is an entry of its own and its master lists that occurrence as
an EXDATE, so each occurrence is planned once.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from typing import Protocol

from dateutil.rrule import rrule as RRule
from dateutil.rrule import rrulestr

from calendar_svc.timezones import UTC, day_start_utc, to_local, to_utc


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


def occurrences(entry: Recurring, start: datetime, end: datetime) -> Iterator[datetime]:
    """Start instants (UTC) of the entry's occurrences within ``[start, end]``."""
    for _, instant in occurrence_times(entry, start, end):
        yield instant


def occurrence_times(
    entry: Recurring, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """(wall time, UTC instant) of each occurrence within ``[start, end]``. The wall time
    is the one the entry or its rule gives, also where a DST gap swallows it (its
    instant is then read with the offset before the gap): a reminder ``P1D`` before it
    is at that wall time the day before, as RFC 5545 counts days."""
    if not entry.rrule:
        if start <= entry.start_utc <= end:
            yield entry.start_local, entry.start_utc
        return
    # Expand in wall time; one day of margin on both sides covers any UTC offset.
    wall_from = to_local(start, entry.start_tz).replace(tzinfo=None) - timedelta(days=1)
    wall_to = to_local(end, entry.start_tz).replace(tzinfo=None) + timedelta(days=1)
    rule = rrulestr(_naive_until(entry.rrule, entry.start_tz), dtstart=entry.start_local)
    for wall in rule.between(wall_from, wall_to, inc=True):
        fold = entry.start_fold if wall == entry.start_local else None
        instant = to_utc(wall, entry.start_tz, fold=0 if fold is None else fold)
        if start <= instant <= end:
            yield wall, instant


_UNTIL_UTC = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)


def _naive_until(rule: str, zone: str) -> str:
    """An RRULE whose UTC ``UNTIL`` is rewritten as wall time, to match the naive DTSTART."""

    def local(match: re.Match[str]) -> str:
        instant = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return "UNTIL=" + to_local(instant, zone).strftime("%Y%m%dT%H%M%S")

    return _UNTIL_UTC.sub(local, rule)


def wall_rule(rule: str, start_local: datetime, zone: str) -> RRule:
    """The RRULE ``rule`` from ``start_local`` as ``occurrences`` expands it: naive wall
    times in ``zone`` (a UTC ``UNTIL`` read as the wall time it is there)."""
    parsed = rrulestr(_naive_until(rule, zone), dtstart=start_local)
    assert isinstance(parsed, RRule)
    return parsed


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
