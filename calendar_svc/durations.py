"""ISO 8601 durations (``PT1H``, ``P1D``, ``PT15M``) <-> timedelta, in RFC 5545's form.

Read and written here (the shape is RFC 5545's, and the rest is arithmetic), exactly
as icalendar's ``vDuration`` reads and writes them (tests compare the two): commands
that only show offsets (``reminders``, ``list``) need not load icalendar for it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

# RFC 5545's dur-value without a sign (weeks alone, or days and/or a time part).
_SHAPE = re.compile(
    r"^P(?:(?P<weeks>\d+)W|(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?)$"
)


def parse_duration(text: object) -> timedelta:
    """``"PT1H"`` -> ``timedelta(hours=1)``; ValueError with a readable reason otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO 8601 duration string such as 'PT1H', got {text!r}")
    return _parse(text)


@lru_cache(maxsize=1024)
def _parse(text: str) -> timedelta:
    # Cached: every entry's reminder offsets are read again wherever they are used.
    candidate = text.strip().upper()
    match = _SHAPE.match(candidate)
    if candidate in ("P", "PT") or match is None:
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration (examples: 'PT15M', 'PT1H', 'P1D', 'P1W')"
        )
    parts = {unit: int(value) for unit, value in match.groupdict().items() if value}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any duration can be") from None


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=1)`` -> ``"PT1H"``: the canonical RFC 5545 form, as icalendar's
    ``vDuration`` writes it (a test compares the two; sub-second parts are dropped)."""
    if value < timedelta(0):
        raise ValueError("durations here are never negative")
    days, seconds = value.days, value.seconds
    time = ""
    if seconds:
        hours, minutes, rest = seconds // 3600, seconds % 3600 // 60, seconds % 60
        time = "T" + (f"{hours}H" if hours else "")
        time += f"{minutes}M" if minutes or (hours and rest) else ""
        time += f"{rest}S" if rest else ""
    if days == 0 and time:
        return f"P{time}"
    return f"P{days}D{time}"


def humanize(value: timedelta) -> str:
    """``timedelta(minutes=90)`` -> ``"1 hour 30 minutes"``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "now"
    parts = []
    for size, unit in (
        (86400 * 7, "week"),
        (86400, "day"),
        (3600, "hour"),
        (60, "minute"),
        (1, "second"),
    ):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return " ".join(parts)
