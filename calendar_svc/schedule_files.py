"""Itinerary files (TOML) -> validated ``CalendarSpec`` values. Pure: no database.

One file holds one calendar::

    [calendar]
    slug = "rubio-2025-09"
    name = "..."
    timezone = "America/Mexico_City"
    reminders = ["PT1H", "PT15M"]

    [[entries]]
    uid = "sheinbaum-bilateral"
    title = "..."
    start = 2025-09-02T10:00:00      # wall time in the entry's zone
    end = 2025-09-02T11:30:00

A TOML local date (``start = 2025-09-04``) is an all-day entry (``end``, if
given, is the last day, inclusive); an offset date-time (``...T16:00:00Z``) is
an instant, kept as the wall time it is in the entry's zone. Every error names
the file, the entry (uid, or ``#N`` when the uid itself is the problem) and the
field.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from calendar_svc.durations import format_duration, parse_duration
from calendar_svc.errors import InputError
from calendar_svc.ics import clean_text
from calendar_svc.models import EntryStatus
from calendar_svc.timezones import day_start_utc, ensure_utc, get_zone, to_utc, wall_time

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
UID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$")
STATUSES = tuple(EntryStatus)
CALENDAR_KEYS = {"slug", "name", "description", "timezone", "reminders"}
ENTRY_KEYS = {
    "uid",
    "title",
    "start",
    "end",
    "duration",
    "timezone",
    "end_timezone",
    "fold",
    "end_fold",
    "location",
    "city",
    "geo",
    "url",
    "categories",
    "status",
    "description",
    "reminders",
    "transparency",
    "rrule",
}


@dataclass(frozen=True)
class EntrySpec:
    uid: str
    title: str
    all_day: bool
    start_local: datetime
    start_tz: str
    start_fold: int | None
    end_local: datetime
    end_tz: str
    end_fold: int | None
    start_utc: datetime
    end_utc: datetime
    description: str = ""
    location: str = ""
    city: str = ""
    geo_lat: float | None = None
    geo_lon: float | None = None
    url: str = ""
    categories: tuple[str, ...] = ()
    status: str = EntryStatus.CONFIRMED
    transparency: str = "opaque"
    rrule: str | None = None
    # Canonical ISO 8601 strings; None = inherit the calendar's.
    reminders: tuple[str, ...] | None = None


@dataclass(frozen=True)
class CalendarSpec:
    source: str
    slug: str
    name: str
    timezone: str
    description: str = ""
    reminders: tuple[str, ...] | None = None
    entries: tuple[EntrySpec, ...] = field(default_factory=tuple)


def load_file(path: str | Path) -> CalendarSpec:
    """Read and validate one schedule file."""
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", file=name) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not UTF-8 text: invalid byte 0x{raw[exc.start]:02x} on line {line}; "
            "save the file as UTF-8",
            file=name,
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        entry, key = _locate_toml_error(text, str(exc))
        raise InputError(f"TOML syntax error: {exc}", file=name, entry=entry, field=key) from None
    return parse_schedule(data, source=name)


def _locate_toml_error(text: str, message: str) -> tuple[str | None, str | None]:
    """The entry (uid or #N) and key on the line a TOML error points at, when findable."""
    match = re.search(r"line (\d+)", message)
    if not match:
        return None, None
    lines = text.splitlines()
    number = int(match.group(1))
    if not 1 <= number <= len(lines):
        return None, None
    key_match = re.match(r"\s*([A-Za-z0-9_-]+)\s*=", lines[number - 1])
    key = key_match.group(1) if key_match else None
    headers = [i for i, line in enumerate(lines[:number]) if line.strip() == "[[entries]]"]
    if not headers:
        return None, key
    start = headers[-1]
    entry = f"#{len(headers)}"
    for line in lines[start + 1 :]:
        if line.strip().startswith("["):
            break
        uid = re.match(r'\s*uid\s*=\s*"([^"]+)"', line)
        if uid:
            entry = uid.group(1)
            break
    return entry, key


def parse_schedule(data: dict[str, Any], *, source: str) -> CalendarSpec:
    unknown = sorted(set(data) - {"calendar", "entries"})
    if unknown:
        raise InputError(
            f"unknown top-level key {unknown[0]!r} (expected [calendar] and [[entries]])",
            file=source,
        )
    cal = data.get("calendar")
    if not isinstance(cal, dict):
        raise InputError("missing the [calendar] table (slug, name, timezone)", file=source)

    def cal_fail(key: str, message: str) -> InputError:
        return InputError(message, file=source, field=f"calendar.{key}")

    for key in sorted(set(cal) - CALENDAR_KEYS):
        raise cal_fail(key, f"unknown key (known: {', '.join(sorted(CALENDAR_KEYS))})")
    slug = cal.get("slug")
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise cal_fail(
            "slug",
            f"must be lowercase letters, digits and dashes (e.g. 'rubio-2025-09'), got {slug!r}",
        )
    cal_name = _text(cal, "name", required=True, fail=cal_fail)
    zone = cal.get("timezone")
    if not isinstance(zone, str):
        raise cal_fail(
            "timezone", "required: the IANA zone of the entries, e.g. 'America/Mexico_City'"
        )
    try:
        get_zone(zone)
    except InputError as exc:
        raise cal_fail("timezone", exc.detail) from None
    reminders = _offsets(cal.get("reminders"), lambda m: cal_fail("reminders", m))

    raw_entries = data.get("entries", [])
    if not isinstance(raw_entries, list):
        raise InputError("`entries` must be an array of tables ([[entries]])", file=source)
    seen: dict[str, int] = {}
    entries = []
    for index, raw in enumerate(raw_entries, start=1):
        spec = _entry(raw, index=index, source=source, default_zone=zone)
        if spec.uid in seen:
            raise InputError(
                f"duplicate uid: also used by entry #{seen[spec.uid]}; every uid in a "
                "calendar must be unique",
                file=source,
                entry=f"{spec.uid} (#{index})",
                field="uid",
            )
        seen[spec.uid] = index
        entries.append(spec)
    return CalendarSpec(
        source=source,
        slug=slug,
        name=cal_name,
        timezone=zone,
        description=_text(cal, "description", fail=cal_fail),
        reminders=reminders,
        entries=tuple(entries),
    )


def _text(table: dict[str, Any], key: str, *, required: bool = False, fail: Any) -> str:
    value = table.get(key)
    if value is None:
        if required:
            raise fail(key, "required, and missing")
        return ""
    if not isinstance(value, str):
        raise fail(key, f"expected a string, got {value!r}")
    # What a feed drops (control characters) does not count: it would show nothing.
    if required and not clean_text(value).strip():
        raise fail(key, "must not be empty")
    return value


def _offsets(value: Any, fail: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise fail(f'expected a list of ISO 8601 durations such as ["PT1H"], got {value!r}')
    out = []
    for item in value:
        try:
            out.append(format_duration(parse_duration(item)))
        except ValueError as exc:
            raise fail(str(exc)) from None
    return tuple(sorted(set(out), key=lambda s: parse_duration(s), reverse=True))


def _entry(raw: Any, *, index: int, source: str, default_zone: str) -> EntrySpec:
    label = f"#{index}"
    if not isinstance(raw, dict):
        raise InputError("expected a table", file=source, entry=label)
    uid = raw.get("uid")
    if uid is None:
        raise InputError("required, and missing", file=source, entry=label, field="uid")
    if not isinstance(uid, str) or not UID_RE.match(uid):
        raise InputError(
            f"must be letters, digits and . _ : @ + - (no spaces), got {uid!r}",
            file=source,
            entry=label,
            field="uid",
        )
    label = uid

    def fail(key: str, message: str) -> InputError:
        return InputError(message, file=source, entry=label, field=key)

    for key in sorted(set(raw) - ENTRY_KEYS):
        raise fail(key, f"unknown key (known: {', '.join(sorted(ENTRY_KEYS))})")
    title = _text(raw, "title", required=True, fail=fail)

    zone: str = raw.get("timezone", default_zone)
    end_zone: str = raw.get("end_timezone", zone)
    for key, value in (("timezone", zone), ("end_timezone", end_zone)):
        if not isinstance(value, str):
            raise fail(key, f"expected an IANA zone name, got {value!r}")
        try:
            get_zone(value)
        except InputError as exc:
            raise fail(key, exc.detail) from None

    fold = _fold(raw, "fold", fail)
    end_fold = _fold(raw, "end_fold", fail)
    if "start" not in raw:
        raise fail("start", "required, and missing (e.g. start = 2025-09-02T10:00:00)")
    start = raw["start"]
    end = raw.get("end")
    if "end" in raw and "duration" in raw:
        raise fail("duration", "give either end or duration, not both")

    if isinstance(start, date) and not isinstance(start, datetime):
        return _all_day(raw, uid, title, start, end, zone, fail)
    if isinstance(start, time):
        raise fail("start", "a time without a date; write e.g. 2025-09-02T10:00:00")
    if not isinstance(start, datetime):
        raise fail("start", f"expected a TOML date-time such as 2025-09-02T10:00:00, got {start!r}")
    start_local, start_utc, fold = _wall(start, zone, fold, "start", fail)

    if "duration" in raw:
        try:
            length = parse_duration(raw["duration"])
        except ValueError as exc:
            raise fail("duration", str(exc)) from None
        end_utc = start_utc + length
        end_local, end_fold = wall_time(end_utc, end_zone)
    elif end is None:
        end_local, end_utc, end_fold = start_local, start_utc, None
        end_local, end_fold = wall_time(start_utc, end_zone)
    else:
        if isinstance(end, date) and not isinstance(end, datetime):
            raise fail("end", "a date, but start is a date-time; give a date-time")
        if not isinstance(end, datetime):
            raise fail("end", f"expected a TOML date-time, got {end!r}")
        end_local, end_utc, end_fold = _wall(end, end_zone, end_fold, "end", fail)
    if end_utc < start_utc:
        raise fail(
            "end",
            f"ends before it starts ({end_local:%Y-%m-%d %H:%M} {end_zone} is before "
            f"{start_local:%Y-%m-%d %H:%M} {zone})",
        )
    return EntrySpec(
        uid=uid,
        title=title,
        all_day=False,
        start_local=start_local,
        start_tz=zone,
        start_fold=fold,
        end_local=end_local,
        end_tz=end_zone,
        end_fold=end_fold,
        start_utc=start_utc,
        end_utc=end_utc,
        **_common(raw, fail),
    )


def _fold(raw: dict[str, Any], key: str, fail: Any) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or value not in (0, 1):
        raise fail(
            key, f"must be 0 (first occurrence / offset before the change) or 1, got {value!r}"
        )
    return int(value)


def _wall(
    value: datetime, zone: str, fold: int | None, key: str, fail: Any
) -> tuple[datetime, datetime, int | None]:
    """(wall time, UTC instant, fold) of a TOML date-time in ``zone``."""
    if value.tzinfo is not None:
        # An instant: keep the wall time it is in the entry's zone.
        instant = ensure_utc(value).replace(microsecond=0)
        local, derived_fold = wall_time(instant, zone)
        return local, instant, derived_fold
    naive = value.replace(microsecond=0)
    try:
        instant = to_utc(naive, zone, fold)
    except InputError as exc:
        raise fail(key, exc.detail) from None
    return naive, instant, fold


def _all_day(
    raw: dict[str, Any], uid: str, title: str, start: date, end: Any, zone: str, fail: Any
) -> EntrySpec:
    if "end_timezone" in raw and raw["end_timezone"] != zone:
        raise fail("end_timezone", "all-day entries have one zone")
    if "duration" in raw:
        try:
            length = parse_duration(raw["duration"])
        except ValueError as exc:
            raise fail("duration", str(exc)) from None
        if length.seconds or length.days < 1:
            raise fail("duration", "an all-day entry lasts whole days (P1D, P2D, ...)")
        end = start + timedelta(days=length.days - 1)
    elif end is None:
        end = start
    elif isinstance(end, datetime) or not isinstance(end, date):
        raise fail("end", "start is a date (all-day), so end must be a date too (the last day)")
    if end < start:
        raise fail("end", f"last day {end} is before the first day {start}")
    return EntrySpec(
        uid=uid,
        title=title,
        all_day=True,
        start_local=datetime.combine(start, time()),
        start_tz=zone,
        start_fold=None,
        end_local=datetime.combine(end, time()),
        end_tz=zone,
        end_fold=None,
        start_utc=day_start_utc(start, zone),
        end_utc=day_start_utc(end + timedelta(days=1), zone),
        **_common(raw, fail),
    )


def _common(raw: dict[str, Any], fail: Any) -> dict[str, Any]:
    status = raw.get("status", EntryStatus.CONFIRMED)
    if status not in STATUSES:
        raise fail("status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
    transparency = raw.get("transparency", "opaque")
    if transparency not in ("opaque", "transparent"):
        raise fail("transparency", f"expected opaque or transparent, got {transparency!r}")
    categories = raw.get("categories", [])
    if not isinstance(categories, list) or not all(
        isinstance(c, str) and c.strip() for c in categories
    ):
        raise fail("categories", f"expected a list of non-empty strings, got {categories!r}")
    geo = raw.get("geo")
    lat = lon = None
    if geo is not None:
        if (
            not isinstance(geo, list)
            or len(geo) != 2
            or not all(isinstance(g, int | float) and not isinstance(g, bool) for g in geo)
            or not (-90 <= geo[0] <= 90 and -180 <= geo[1] <= 180)
        ):
            raise fail("geo", f"expected [latitude, longitude] in degrees, got {geo!r}")
        lat, lon = float(geo[0]), float(geo[1])
    url = _text(raw, "url", fail=fail)
    if url and not re.match(r"^https?://\S+$", url):
        raise fail("url", f"expected an http(s) URL, got {url!r}")
    rrule = raw.get("rrule")
    if rrule is not None:
        rrule = _rrule(rrule, fail)
    return {
        "description": _text(raw, "description", fail=fail),
        "location": _text(raw, "location", fail=fail),
        "city": _text(raw, "city", fail=fail),
        "geo_lat": lat,
        "geo_lon": lon,
        "url": url,
        "categories": tuple(c.strip() for c in categories),
        "status": status,
        "transparency": transparency,
        "rrule": rrule,
        "reminders": _offsets(raw.get("reminders"), lambda m: fail("reminders", m)),
    }


def _rrule(value: Any, fail: Any) -> str:
    from icalendar import vRecur

    if not isinstance(value, str) or not value.strip():
        raise fail(
            "rrule", f"expected an RFC 5545 RRULE such as 'FREQ=DAILY;COUNT=3', got {value!r}"
        )
    text = value.strip().removeprefix("RRULE:")
    try:
        parsed = vRecur.from_ical(text)
    except ValueError as exc:
        raise fail("rrule", f"not a valid RRULE: {exc}") from None
    if "FREQ" not in parsed:
        raise fail("rrule", "an RRULE needs FREQ (e.g. FREQ=DAILY;COUNT=3)")
    return text
