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
field. The schema is declared once, as config's is: the file, its
``[calendar]`` table and an entry are dataclasses below whose fields are their
keys, with their readers and defaults (``validation.setting``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from calendar_svc import validation
from calendar_svc.durations import format_duration, parse_duration
from calendar_svc.errors import InputError
from calendar_svc.ics import clean_text
from calendar_svc.models import EntryStatus, Origin
from calendar_svc.recurrence import check_rule, parse_rule, wall_text
from calendar_svc.timezones import day_start_utc, ensure_utc, to_utc, wall_time
from calendar_svc.validation import Place, Table, matching, read_section, setting, text

#: The largest schedule file (TOML or .ics) read; refused before it is read.
MAX_FILE_BYTES = 10 * 1024 * 1024
#: How deep arrays and inline tables may nest in a schedule file (a real one needs 2):
#: checked before the TOML parser, which recurses once per level.
MAX_NESTING = 32
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
UID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$")
STATUSES = tuple(EntryStatus)


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
    # RDATE / EXDATE as wall times in start_tz (``recurrence.wall_text``), sorted.
    rdates: tuple[str, ...] = ()
    exdates: tuple[str, ...] = ()


@dataclass(frozen=True)
class CalendarSpec:
    source: str
    slug: str
    name: str
    timezone: str
    description: str = ""
    reminders: tuple[str, ...] | None = None
    entries: tuple[EntrySpec, ...] = field(default_factory=tuple)
    # Who owns the entries (None: the schedule file ``source``).
    origin: Origin | None = None
    # False: the spec names the calendar without defining it (an .ics file imported
    # into a calendar): name, zone and reminders are only set when it is created.
    update_calendar: bool = True


def load_file(path: str | Path) -> CalendarSpec:
    """Read and validate one schedule file."""
    path = Path(path)
    name = str(path)
    raw = read_limited(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"not UTF-8 text: invalid byte 0x{raw[exc.start]:02x} on line {line}; "
            "save the file as UTF-8",
            file=name,
        ) from None
    _check_nesting(text, name)
    try:
        data = tomllib.loads(text)
    except RecursionError:  # the check above makes this unreachable; never a traceback
        raise InputError(f"values nested more than {MAX_NESTING} deep", file=name) from None
    except tomllib.TOMLDecodeError as exc:
        entry, key = _locate_toml_error(text, str(exc))
        raise InputError(f"TOML syntax error: {exc}", file=name, entry=entry, field=key) from None
    return parse_schedule(data, source=name)


def read_limited(path: Path) -> bytes:
    """The bytes of a schedule file of at most ``MAX_FILE_BYTES``; InputError naming the
    file when it is larger or cannot be read."""
    name = str(path)
    limit = f"schedule files are read up to {MAX_FILE_BYTES // (1024 * 1024)} MB"
    try:
        with path.open("rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise InputError(f"the file is {size / 1024 / 1024:.1f} MB; {limit}", file=name)
            raw = stream.read(MAX_FILE_BYTES + 1)  # it may have grown since
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", file=name) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(
            f"the file is over {MAX_FILE_BYTES // (1024 * 1024)} MB; {limit}", file=name
        )
    return raw


_BASIC = re.compile(r'"(?:[^"\\\n]|\\.)*"?')
_LITERAL = re.compile(r"'[^'\n]*'?")
_TOML_MARKS = re.compile(r"[\[\]{}\"'#\n]")


def _check_nesting(text: str, name: str) -> None:
    """InputError when arrays or inline tables nest more than ``MAX_NESTING`` deep: Python's
    TOML parser would run out of stack on them (a RecursionError, not an error message).
    Strings and comments are skipped, so a bracket in a title counts for nothing."""
    depth, line, at = 0, 1, 0
    while (mark := _TOML_MARKS.search(text, at)) is not None:
        char, at = mark.group(), mark.end()
        if char == "\n":
            line += 1
        elif char == "#":
            at = _after(text, "\n", at) - 1  # the newline itself is counted
        elif char in "\"'":
            end = _string_end(text, char, at - 1)
            line += text.count("\n", at, end)
            at = end
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                raise InputError(
                    f"line {line}: values nested more than {MAX_NESTING} deep", file=name
                )
        else:
            depth = max(0, depth - 1)


def _after(text: str, what: str, start: int) -> int:
    """The index just past the next ``what`` from ``start`` (the end of ``text`` if none)."""
    found = text.find(what, start)
    return len(text) if found < 0 else found + len(what)


def _string_end(text: str, quote: str, start: int) -> int:
    """The index just past the TOML string opening at ``start`` with ``quote``."""
    basic = quote == '"'
    if text.startswith(quote * 3, start):
        at = start + 3
        while True:
            found = text.find(quote * 3, at)
            if found < 0:
                return len(text)
            if basic and _escaped(text, found):
                at = found + 1
                continue
            # """a"""" ends with a quote inside: up to two more belong to the string.
            end = found + 3
            while end < len(text) and text[end] == quote and end - found < 5:
                end += 1
            return end
    one_line = _BASIC if basic else _LITERAL
    match = one_line.match(text, start)
    return match.end() if match is not None else start + 1


def _escaped(text: str, index: int) -> bool:
    """Whether the character at ``index`` follows an odd number of backslashes."""
    slashes = 0
    while index - slashes - 1 >= 0 and text[index - slashes - 1] == "\\":
        slashes += 1
    return slashes % 2 == 1


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
    """Validate one schedule file's parsed TOML; every mistake is one InputError saying where."""
    top = _ScheduleFile(**read_section(_ScheduleFile, Table(data, Place(InputError, source))))
    place = Place(InputError, source, prefix="calendar.")
    cal = _CalendarTable(**read_section(_CalendarTable, Table(top.calendar, place)))
    seen: dict[str, int] = {}
    entries = []
    for index, raw in enumerate(top.entries, start=1):
        spec = parse_entry(raw, index=index, source=source, default_zone=cal.timezone)
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
        slug=cal.slug,
        name=cal.name,
        timezone=cal.timezone,
        description=cal.description,
        reminders=cal.reminders,
        entries=tuple(entries),
    )


# --- readers of entry fields -------------------------------------------------------------------


def _visible_text(value: Any) -> str:
    """Text with something a feed would show: control characters, which it drops, do not count."""
    if not clean_text(text(value)).strip():
        raise ValueError("must not be empty")
    return str(value)


def _offsets(value: Any) -> tuple[str, ...]:
    """Reminder offsets as canonical ISO 8601 strings, largest first, without repeats."""
    parsed = validation.durations(value)
    canonical = {format_duration(offset) for offset in parsed}
    return tuple(sorted(canonical, key=parse_duration, reverse=True))


def _fold(value: Any) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise ValueError(
            f"must be 0 (first occurrence / offset before the change) or 1, got {value!r}"
        )
    return int(value)


def _geo(value: Any) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(g, int | float) and not isinstance(g, bool) for g in value)
        or not (-90 <= value[0] <= 90 and -180 <= value[1] <= 180)
    ):
        raise ValueError(f"expected [latitude, longitude] in degrees, got {value!r}")
    return float(value[0]), float(value[1])


def _url(value: Any) -> str:
    url = text(value)
    if url and not re.match(r"^https?://\S+$", url):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    return url


def _rrule(value: Any) -> str:
    """The RRULE's parts, as the recurrence engine reads them (``check_rule`` expands it
    once the entry's start is known)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an RFC 5545 RRULE such as 'FREQ=DAILY;COUNT=3', got {value!r}")
    return parse_rule(value).text


_categories = validation.then(
    validation.list_of(validation.nonblank, "a list of non-empty strings"),
    lambda items: tuple(item.strip() for item in items),
)


# What each reader accepts, as JSON Schema (the API's OpenAPI document is built from the
# schema below; the readers stay the judges of every value).
validation.described(_visible_text, {"type": "string", "minLength": 1})
validation.described(
    _offsets,
    {
        "type": "array",
        "items": {"type": "string", "description": "an ISO 8601 duration before the start"},
        "description": "reminder offsets before the start ([] = none)",
        "examples": [["PT1H", "PT15M"]],
    },
)
validation.described(
    _fold,
    {
        "enum": [0, 1],
        "description": "only for a wall time a DST change skips or repeats: 0 = the offset "
        "before the change (the first of two), 1 = the offset after it",
    },
)
validation.described(
    _geo,
    {
        "type": "array",
        "items": {"type": "number", "minimum": -180, "maximum": 180},
        "minItems": 2,
        "maxItems": 2,
        "description": "[latitude (-90 to 90), longitude (-180 to 180)] in degrees",
    },
)
validation.described(_url, {"type": "string", "description": "an http(s) URL, or empty"})
validation.described(
    _rrule,
    {
        "type": "string",
        "description": "an RFC 5545 recurrence rule",
        "examples": ["FREQ=DAILY;COUNT=3"],
    },
)


# --- the schema ------------------------------------------------------------------------------


def _array_of_tables(value: Any) -> list[Any]:
    # Each item is read as a table where the entry is known by its number (``#N``).
    if not isinstance(value, list):
        raise validation.mismatch("an array of tables ([[entries]])", value)
    return value


@dataclass(frozen=True, kw_only=True)
class _ScheduleFile:
    """The top level of a schedule file."""

    calendar: dict[str, Any] = setting(
        validation.table, hint=" (the [calendar] table: slug, name, timezone)"
    )
    entries: list[Any] = setting(_array_of_tables, ())


@dataclass(frozen=True, kw_only=True)
class _CalendarTable:
    """``[calendar]``."""

    slug: str = setting(
        matching(SLUG_RE, "lowercase letters, digits and dashes (e.g. 'rubio-2025-09')"),
        hint=" (e.g. slug = 'rubio-2025-09')",
    )
    name: str = setting(_visible_text)
    timezone: str = setting(
        validation.zone, hint=" (the IANA zone of the entries, e.g. 'America/Mexico_City')"
    )
    description: str = setting(text, "")
    reminders: tuple[str, ...] | None = setting(_offsets, None)


_UID = matching(UID_RE, "letters, digits and . _ : @ + - (no spaces)")


@dataclass(frozen=True, kw_only=True)
class _EntryTable:
    """One ``[[entries]]`` table, as written (the times are read by ``_entry``)."""

    uid: str = setting(_UID)
    title: str = setting(_visible_text)
    timezone: str | None = setting(validation.zone, None)  # None: the calendar's
    end_timezone: str | None = setting(validation.zone, None)  # None: the start's
    fold: int | None = setting(_fold, None)
    end_fold: int | None = setting(_fold, None)
    start: Any = setting(validation.anything, hint=" (e.g. start = 2025-09-02T10:00:00)")
    end: Any = setting(validation.anything, None)
    duration: timedelta | None = setting(validation.duration(), None)
    status: str = setting(validation.one_of(*STATUSES), EntryStatus.CONFIRMED)
    transparency: str = setting(validation.one_of("opaque", "transparent"), "opaque")
    categories: tuple[str, ...] = setting(_categories, ())
    geo: tuple[float, float] | None = setting(_geo, None)
    url: str = setting(_url, "")
    rrule: str | None = setting(_rrule, None)
    description: str = setting(text, "")
    location: str = setting(text, "")
    city: str = setting(text, "")
    reminders: tuple[str, ...] | None = setting(_offsets, None)
    # Read by ``parse_entry`` once the start (and so the zone) is known.
    rdate: Any = setting(validation.anything, None)
    exdate: Any = setting(validation.anything, None)


#: The schemas of an ``[[entries]]`` table and of ``[calendar]``, for what describes them
#: elsewhere (the API's OpenAPI document is generated from their fields' readers).
ENTRY_TABLE = _EntryTable
CALENDAR_TABLE = _CalendarTable


# --- entries ---------------------------------------------------------------------------------


def parse_entry(raw: Any, *, index: int, source: str, default_zone: str) -> EntrySpec:
    """One ``[[entries]]`` table (or an .ics VEVENT read into one) as a validated EntrySpec;
    a mistake is an InputError naming ``source``, the entry (uid or ``#index``) and the key.
    An RRULE is expanded from the entry's start by the recurrence engine (``check_rule``)."""
    spec = _entry(raw, index=index, source=source, default_zone=default_zone)
    entry = Table(raw, Place(InputError, source, location=spec.uid))
    if spec.rrule is not None:
        try:
            check_rule(spec.rrule, spec.start_local, spec.start_tz, all_day=spec.all_day)
        except InputError as exc:
            raise entry.fail("rrule", exc.detail) from None
    if "rdate" not in raw and "exdate" not in raw:
        return spec
    return dataclasses.replace(
        spec,
        rdates=entry.read("rdate", _dates_reader(spec), ()),
        exdates=entry.read("exdate", _dates_reader(spec), ()),
    )


def _dates_reader(spec: EntrySpec) -> validation.Reader[tuple[str, ...]]:
    """``rdate`` / ``exdate``: a list of occurrence starts like ``start`` (local date-times in
    the entry's zone, offset date-times as instants, dates for an all-day entry)."""

    def read(value: Any) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise validation.mismatch("a list of date-times like start", value)
        walls = set()
        for item in value:
            if spec.all_day:
                if isinstance(item, datetime) or not isinstance(item, date):
                    raise ValueError(f"the entry is all-day: expected dates, got {item!r}")
                walls.add(wall_text(validation.in_range(item, "a date on")))
            elif isinstance(item, datetime):
                validation.in_range(item.date(), "a date-time on")
                if item.tzinfo is not None:
                    item = wall_time(ensure_utc(item).replace(microsecond=0), spec.start_tz)[0]
                to_utc(item.replace(microsecond=0), spec.start_tz, fold=0)  # in range
                walls.add(wall_text(item))
            else:
                raise ValueError(f"expected a date-time like start, got {item!r}")
        return tuple(sorted(walls))

    return read


def _entry(raw: Any, *, index: int, source: str, default_zone: str) -> EntrySpec:
    uid = Table(raw, Place(InputError, source, location=f"#{index}")).read("uid", _UID)
    # From here on the entry is called by its uid.
    entry = Table(raw, Place(InputError, source, location=uid))
    keys = _EntryTable(**read_section(_EntryTable, entry))
    zone = keys.timezone or default_zone
    end_zone = keys.end_timezone or zone
    start, end = keys.start, keys.end
    if end is not None and keys.duration is not None:
        raise entry.fail("duration", "give either end or duration, not both")

    if isinstance(start, date) and not isinstance(start, datetime):
        return _all_day(entry, keys, start, zone)
    if isinstance(start, time):
        raise entry.fail("start", "a time without a date; write e.g. 2025-09-02T10:00:00")
    if not isinstance(start, datetime):
        raise entry.fail(
            "start", f"expected a TOML date-time such as 2025-09-02T10:00:00, got {start!r}"
        )
    start_local, start_utc, fold = _wall(entry, start, zone, keys.fold, "start")

    if keys.duration is not None:
        end_utc, end_local, end_fold = _ends_after(entry, start_utc, keys.duration, end_zone)
    elif end is None:
        end_utc = start_utc
        end_local, end_fold = wall_time(start_utc, end_zone)
    else:
        if isinstance(end, date) and not isinstance(end, datetime):
            raise entry.fail("end", "a date, but start is a date-time; give a date-time")
        if not isinstance(end, datetime):
            raise entry.fail("end", f"expected a TOML date-time, got {end!r}")
        end_local, end_utc, end_fold = _wall(entry, end, end_zone, keys.end_fold, "end")
    if end_utc < start_utc:
        raise entry.fail(
            "end",
            f"ends before it starts ({end_local:%Y-%m-%d %H:%M} {end_zone} is before "
            f"{start_local:%Y-%m-%d %H:%M} {zone})",
        )
    return EntrySpec(
        uid=uid,
        title=keys.title,
        all_day=False,
        start_local=start_local,
        start_tz=zone,
        start_fold=fold,
        end_local=end_local,
        end_tz=end_zone,
        end_fold=end_fold,
        start_utc=start_utc,
        end_utc=end_utc,
        **_common(keys),
    )


def _wall(
    entry: Table[InputError], value: datetime, zone: str, fold: int | None, key: str
) -> tuple[datetime, datetime, int | None]:
    """(wall time, UTC instant, fold) of a TOML date-time in ``zone``, within the days
    entries may fall on (``validation.FIRST_DAY``..``LAST_DAY``)."""
    what = "it starts" if key == "start" else "it ends"
    try:
        validation.in_range(value.date(), what)  # as written, before any arithmetic
        if value.tzinfo is not None:
            # An instant: keep the wall time it is in the entry's zone.
            instant = ensure_utc(value).replace(microsecond=0)
            local, derived_fold = wall_time(instant, zone)
            validation.in_range(local.date(), what)
            return local, instant, derived_fold
        naive = value.replace(microsecond=0)
        return naive, to_utc(naive, zone, fold), fold
    except InputError as exc:
        raise entry.fail(key, exc.detail) from None
    except ValueError as exc:
        raise entry.fail(key, str(exc)) from None


def _ends_after(
    entry: Table[InputError], start_utc: datetime, length: timedelta, zone: str
) -> tuple[datetime, datetime, int | None]:
    """(end UTC, end wall time, fold) of an entry ``length`` long: its ``duration``."""
    try:
        end_utc = start_utc + length
        validation.in_range(end_utc.date(), "it ends")
        end_local, end_fold = wall_time(end_utc, zone)
        validation.in_range(end_local.date(), "it ends")
    except OverflowError:
        raise entry.fail(
            "duration", f"it would end after {validation.LAST_DAY.isoformat()}"
        ) from None
    except ValueError as exc:
        raise entry.fail("duration", getattr(exc, "detail", str(exc))) from None
    return end_utc, end_local, end_fold


def _all_day(entry: Table[InputError], keys: _EntryTable, start: date, zone: str) -> EntrySpec:
    if keys.end_timezone is not None and keys.end_timezone != zone:
        raise entry.fail("end_timezone", "all-day entries have one zone")
    try:
        validation.in_range(start, "it starts")
    except ValueError as exc:
        raise entry.fail("start", str(exc)) from None
    end = keys.end
    if keys.duration is not None:
        length = keys.duration
        if length.seconds or length.days < 1:
            raise entry.fail("duration", "an all-day entry lasts whole days (P1D, P2D, ...)")
        if length.days - 1 > (validation.LAST_DAY - start).days:
            raise entry.fail("duration", f"it would end after {validation.LAST_DAY.isoformat()}")
        end = start + timedelta(days=length.days - 1)
    elif end is None:
        end = start
    elif isinstance(end, datetime) or not isinstance(end, date):
        raise entry.fail(
            "end", "start is a date (all-day), so end must be a date too (the last day)"
        )
    if end < start:
        raise entry.fail("end", f"last day {end} is before the first day {start}")
    try:
        validation.in_range(end, "it ends")
    except ValueError as exc:
        raise entry.fail("end", str(exc)) from None
    return EntrySpec(
        uid=keys.uid,
        title=keys.title,
        all_day=True,
        start_local=datetime.combine(start, time()),
        start_tz=zone,
        start_fold=None,
        end_local=datetime.combine(end, time()),
        end_tz=zone,
        end_fold=None,
        start_utc=day_start_utc(start, zone),
        end_utc=day_start_utc(end + timedelta(days=1), zone),
        **_common(keys),
    )


def _common(keys: _EntryTable) -> dict[str, Any]:
    """The fields timed and all-day entries share."""
    lat, lon = keys.geo if keys.geo is not None else (None, None)
    return {
        "status": keys.status,
        "transparency": keys.transparency,
        "categories": keys.categories,
        "geo_lat": lat,
        "geo_lon": lon,
        "url": keys.url,
        "rrule": keys.rrule,
        "description": keys.description,
        "location": keys.location,
        "city": keys.city,
        "reminders": keys.reminders,
    }
