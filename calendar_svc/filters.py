"""Which entries a listing, an export or a feed URL asks for. Pure.

One parser serves the CLI (``--from``) and the feed's query (``?from=``), so a
filter means the same everywhere; ``store.entries`` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from calendar_svc.errors import InputError


@dataclass
class EntryFilter:
    """Which entries to read. Dates are days in each entry's own zone."""

    calendar: str | None = None
    city: str | None = None
    category: str | None = None
    start: date | None = None  # entries that end after this day begins
    end: date | None = None  # entries that start before the day after this one
    include_cancelled: bool = True


def parse_day(value: str | None, name: str) -> date | None:
    """``2025-09-03`` -> a date; empty -> None; anything else -> InputError naming ``name``."""
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{name} expects a date as YYYY-MM-DD, got {value!r}") from None


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
