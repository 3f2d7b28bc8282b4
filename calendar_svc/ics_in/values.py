"""iCalendar property values -> Python values (RFC 5545 section 3.3). Pure.

Each reader takes the raw text of a property and raises ``ValueError`` saying
what it expected; the caller names the file, component and property.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from calendar_svc.durations import parse_duration

_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPED = {"n": "\n", "N": "\n"}


def text(raw: str) -> str:
    """TEXT: ``\\n`` is a line break, ``\\,`` ``\\;`` ``\\\\`` the character itself."""
    if "\\" not in raw:
        return raw
    return _ESCAPE.sub(lambda m: _UNESCAPED.get(m.group(1), m.group(1)), raw)


def text_list(raw: str) -> list[str]:
    """A comma-separated list of TEXT (CATEGORIES), commas escaped by ``\\,`` kept."""
    items: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(raw):
        char = raw[index]
        if char == "\\" and index + 1 < len(raw):
            current.append(raw[index : index + 2])
            index += 2
            continue
        if char == ",":
            items.append(text("".join(current)))
            current = []
        else:
            current.append(char)
        index += 1
    items.append(text("".join(current)))
    return [item.strip() for item in items if item.strip()]


@dataclass(frozen=True, slots=True)
class When:
    """A DATE or DATE-TIME value as written: ``value`` is a date, or a naive datetime with
    ``utc`` (written with ``Z``) or ``tzid`` (its TZID parameter), or neither (floating)."""

    value: date | datetime
    utc: bool = False
    tzid: str | None = None

    @property
    def is_date(self) -> bool:
        return not isinstance(self.value, datetime)

    @property
    def floating(self) -> bool:
        return not self.is_date and not self.utc and self.tzid is None


def when(raw: str, params: dict[str, str]) -> When:
    """DTSTART, DTEND, RECURRENCE-ID: a DATE (``VALUE=DATE``, or 8 digits) or DATE-TIME."""
    values = whens(raw, params)
    if len(values) != 1:
        raise ValueError(f"expected one date or date-time, got {raw!r}")
    return values[0]


def whens(raw: str, params: dict[str, str]) -> list[When]:
    """RDATE, EXDATE: a comma-separated list of dates or date-times (a PERIOD's start)."""
    tzid = params.get("TZID") or None
    kind = params.get("VALUE", "").upper()
    out = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        if kind == "PERIOD" or "/" in item:
            item = item.split("/", 1)[0]
        out.append(_one(item, tzid, kind))
    if not out:
        raise ValueError("no value")
    return out


def _one(item: str, tzid: str | None, kind: str) -> When:
    if kind == "DATE" or (len(item) == 8 and kind != "DATE-TIME"):
        match = _DATE.fullmatch(item)
        if match is None:
            raise ValueError(f"expected a DATE such as 20250902, got {item!r}")
        year, month, day = (int(g) for g in match.groups())
        return When(_checked(lambda: date(year, month, day), item))
    match = _DATE_TIME.fullmatch(item)
    if match is None:
        raise ValueError(f"expected a DATE-TIME such as 20250902T100000 or ...Z, got {item!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    # A leap second (60) is read as the last second of its minute.
    wall = (year, month, day, hour, minute, min(second, 59))
    value = _checked(lambda: datetime(*wall), item)  # noqa: DTZ001 - zone given apart
    if match.group(7):
        return When(value, utc=True)
    return When(value, tzid=tzid)


def _checked(make: object, item: str) -> date:
    try:
        return make()  # type: ignore[operator, no-any-return]
    except ValueError as exc:
        raise ValueError(f"{item!r} is not a real date or time ({exc})") from None


def duration(raw: str) -> timedelta:
    """A DURATION, possibly negative (``-PT15M``, a trigger before the start)."""
    value = raw.strip()
    sign = -1 if value.startswith("-") else 1
    return sign * parse_duration(value.lstrip("+-"))


def geo(raw: str) -> tuple[float, float]:
    """GEO: ``latitude;longitude``."""
    parts = raw.replace(",", ";").split(";")
    if len(parts) != 2:
        raise ValueError(f"expected latitude;longitude, got {raw!r}")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"expected latitude;longitude in degrees, got {raw!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"latitude;longitude out of range: {raw!r}")
    return lat, lon


def offset(raw: str) -> timedelta:
    """UTC-OFFSET (TZOFFSETFROM/TO): ``+0100``, ``-0530``, ``+013045``."""
    match = re.fullmatch(r"([+-])(\d{2})(\d{2})(\d{2})?", raw.strip())
    if match is None:
        raise ValueError(f"expected a UTC offset such as +0100, got {raw!r}")
    sign = -1 if match.group(1) == "-" else 1
    seconds = int(match.group(2)) * 3600 + int(match.group(3)) * 60 + int(match.group(4) or 0)
    if seconds >= 24 * 3600:
        raise ValueError(f"a UTC offset of a day or more: {raw!r}")
    return timedelta(seconds=sign * seconds)
