"""Which entries a listing, an export or a feed URL asks for. Pure.

One parser serves the CLI (``--from``) and the query of the feed and the page
(``?from=``, ``parse_query``), and one predicate (``matches``) decides whether
an entry is in, so a filter means the same everywhere. A day outside the days
entries may fall on (``validation.FIRST_DAY``..``LAST_DAY``) is refused with
the option's name, as any other bad value. ``store.entries`` narrows the rows in SQL first (by a
margin wide enough for any zone) and then keeps those ``matches`` accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol
from urllib.parse import parse_qsl

from calendar_svc.errors import InputError
from calendar_svc.recurrence import Recurring, expand
from calendar_svc.timezones import day_start_utc
from calendar_svc.validation import in_range

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
# How far ahead a recurring entry is searched for an occurrence when the filter has
# no end day: ten years.
_OPEN_END = timedelta(days=3660)


@dataclass
class EntryFilter:
    """Which entries to read. Dates are days in each entry's own zone."""

    calendar: str | None = None
    city: str | None = None
    category: str | None = None
    start: date | None = None  # entries that end after this day begins
    end: date | None = None  # entries that start before the day after this one
    include_cancelled: bool = True
    # A share link's restriction (``shares``): entries in any of these cities / with any of
    # these categories; empty = no restriction. Never part of a URL: the link's owner set it.
    cities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


def parse_day(value: str | None, name: str) -> date | None:
    """``2025-09-03`` -> a date; empty -> None; anything else, or a day outside
    ``validation.FIRST_DAY``..``LAST_DAY``, -> InputError naming ``name``."""
    if value is None or value == "":
        return None
    try:
        day = date.fromisoformat(value) if _DAY.fullmatch(value) else None
    except ValueError:  # 2025-02-30
        day = None
    if day is None:
        raise InputError(f"{name} expects a date as YYYY-MM-DD, got {value!r}")
    try:
        return in_range(day, name)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def parse_query(query: bytes | str) -> EntryFilter:
    """The filter of a feed's or a page's URL query (``city=Quito&from=2025-09-03``):
    ``parse_filter`` on its parameters (the last of a repeated one), named as in the
    URL (``from``, ``to``); InputError with the reason, which is the HTTP 400's."""
    if not query:
        return EntryFilter()
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    values = dict(parse_qsl(text, keep_blank_values=False))
    return parse_filter(
        city=values.get("city"),
        category=values.get("category"),
        from_=values.get("from"),
        to=values.get("to"),
    )


def parse_filter(
    *,
    calendar: str | None = None,
    city: str | None = None,
    category: str | None = None,
    from_: str | None = None,
    to: str | None = None,
    names: tuple[str, str] = ("from", "to"),
) -> EntryFilter:
    """An ``EntryFilter`` from text values (query parameters or CLI options).

    Empty values mean "no filter". ``names`` are how the date options are
    called in error messages (``from``/``to`` in a URL, ``--from``/``--to`` in
    the CLI). Raises InputError with a message a person can act on.
    """
    start = parse_day(from_, names[0])
    end = parse_day(to, names[1])
    if start and end and end < start:
        raise InputError(f"{names[1]} {end} is before {names[0]} {start}")
    return EntryFilter(
        calendar=calendar or None,
        city=(city or "").strip() or None,
        category=(category or "").strip() or None,
        start=start,
        end=end,
    )


class Filterable(Recurring, Protocol):
    """What the filter reads of an entry (``models.Entry`` has it all)."""

    @property
    def city(self) -> str: ...

    @property
    def categories(self) -> list[str]: ...

    @property
    def end_utc(self) -> datetime: ...


def next_day(day: date) -> date:
    return day + timedelta(days=1)


def matches(entry: Filterable, flt: EntryFilter) -> bool:
    """Whether ``flt`` asks for ``entry`` (calendar and status aside: the SQL checks those)."""
    # casefold in Python: SQLite's lower() only folds ASCII ("Łódź" would never match).
    if flt.city and (entry.city or "").casefold() != flt.city.casefold():
        return False
    if flt.category and flt.category.lower() not in {c.lower() for c in entry.categories or []}:
        return False
    if flt.cities and (entry.city or "").casefold() not in {c.casefold() for c in flt.cities}:
        return False
    if flt.categories and not {c.lower() for c in flt.categories} & {
        c.lower() for c in entry.categories or []
    }:
        return False
    if (entry.rrule or getattr(entry, "rdates", None)) and (flt.start or flt.end):
        return _recurs_within(entry, flt)
    if flt.start:
        day_start = day_start_utc(flt.start, entry.start_tz)
        # An instantaneous entry at exactly the boundary still belongs to that day.
        instant_at_start = entry.end_utc == entry.start_utc == day_start
        if entry.end_utc <= day_start and not instant_at_start:
            return False
    return not (flt.end and entry.start_utc >= day_start_utc(next_day(flt.end), entry.start_tz))


def _recurs_within(entry: Filterable, flt: EntryFilter) -> bool:
    """Whether any occurrence of a recurring entry overlaps the filter's days."""
    length = entry.end_utc - entry.start_utc
    lower = day_start_utc(flt.start, entry.start_tz) - length if flt.start else entry.start_utc
    upper = (
        day_start_utc(next_day(flt.end), entry.start_tz) - timedelta(microseconds=1)
        if flt.end
        else lower + _OPEN_END
    )
    return any(True for _ in expand(entry, max(lower, entry.start_utc), upper))
