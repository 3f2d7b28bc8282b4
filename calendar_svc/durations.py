"""ISO 8601 durations (``PT1H``, ``P1D``, ``PT15M``) <-> timedelta, via icalendar's parser."""

from __future__ import annotations

import re
from datetime import timedelta

from icalendar import vDuration

# icalendar's parser accepts some sloppy forms; require the RFC 5545 shape first.
_SHAPE = re.compile(r"^P(?:\d+W|(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+S)?)?)$")


def parse_duration(text: object) -> timedelta:
    """``"PT1H"`` -> ``timedelta(hours=1)``; ValueError with a readable reason otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO 8601 duration string such as 'PT1H', got {text!r}")
    candidate = text.strip().upper()
    if candidate in ("P", "PT") or not _SHAPE.match(candidate):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration (examples: 'PT15M', 'PT1H', 'P1D', 'P1W')"
        )
    value = vDuration.from_ical(candidate)  # type: ignore[no-untyped-call]
    if not isinstance(value, timedelta):  # pragma: no cover - icalendar returns timedelta here
        raise ValueError(f"{text!r} is not a fixed-length duration")
    return value


def format_duration(value: timedelta) -> str:
    """``timedelta(hours=1)`` -> ``"PT1H"`` (the canonical RFC 5545 form)."""
    if value < timedelta(0):
        raise ValueError("durations here are never negative")
    text: bytes = vDuration(value).to_ical()  # type: ignore[no-untyped-call]
    return text.decode("ascii")


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
