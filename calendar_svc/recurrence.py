"""Recurrence expansion: when a recurring entry happens. Pure: no database, no clock.

An RRULE is expanded in the entry's wall time and each occurrence is then
converted with the entry's zone, so a weekly 10:00 meeting stays at 10:00
local across a DST change. One engine for every reader of occurrences: the
store's day filters, the reminder rules and the planner.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Protocol

from dateutil.rrule import rrulestr

from calendar_svc.timezones import UTC, to_local, to_utc


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
