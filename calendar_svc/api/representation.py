"""Entries and calendars in the API's JSON, and JSON bodies as the tables the validator reads.

An entry is written with its wall time and zone as the truth::

    {"uid": "sheinbaum-bilateral", "title": "…",
     "start": {"local": "2025-09-02T10:00:00", "zone": "America/Mexico_City", "fold": null},
     "end": {"local": "2025-09-02T11:30:00", "zone": "America/Mexico_City", "fold": null}, …}

and read back with what is derived from it (``start_utc``, ``end_utc``,
``all_day``, ``sequence``, ``version``, ``owner``, …), which a request may not
set. A body is not validated here: ``entry_table`` renames its members to the
keys of a schedule file's ``[[entries]]`` table (``start.zone`` is
``timezone``, ``end.local`` is ``end``, …) and the one validator
(``schedule_files.parse_entry``) judges it; ``pointer`` turns the field of its
error back into the body's JSON pointer (``/start/zone``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from calendar_svc.entry_edits import wall_value
from calendar_svc.errors import ApiProblem
from calendar_svc.models import Calendar, Entry
from calendar_svc.timezones import iso_utc

# Body member -> [[entries]] key, for the members that are one value.
SIMPLE: Final = {
    "uid": "uid",
    "title": "title",
    "description": "description",
    "location": "location",
    "city": "city",
    "geo": "geo",
    "url": "url",
    "categories": "categories",
    "status": "status",
    "transparency": "transparency",
    "rrule": "rrule",
    "reminders": "reminders",
    "duration": "duration",
}
# "start" / "end": member of the object -> [[entries]] key.
TIMES: Final = {
    "start": {"local": "start", "zone": "timezone", "fold": "fold"},
    "end": {"local": "end", "zone": "end_timezone", "fold": "end_fold"},
}
DATES: Final = {"rdates": "rdate", "exdates": "exdate"}
# What a body may say besides the entry itself.
WRITE_ONLY: Final = ("detach",)
# Derived or kept by the server: shown, never set.
READ_ONLY: Final = (
    "calendar",
    "all_day",
    "start_utc",
    "end_utc",
    "sequence",
    "version",
    "owner",
    "created",
    "updated",
)
WRITABLE: Final = (*SIMPLE, *TIMES, *DATES, *WRITE_ONLY)

# [[entries]] key -> the body's JSON pointer.
_POINTERS: Final = {
    **{key: f"/{member}" for member, key in SIMPLE.items()},
    **{key: f"/{time}/{member}" for time, keys in TIMES.items() for member, key in keys.items()},
    **{key: f"/{member}" for member, key in DATES.items()},
}


def pointer(field: str | None) -> str:
    """The JSON pointer of an ``[[entries]]`` key in an entry body (``timezone`` ->
    ``/start/zone``); the whole body for an error about no field."""
    if field is None:
        return ""
    return _POINTERS.get(field, f"/{field}")


def _unknown(where: str, key: str, known: tuple[str, ...]) -> ApiProblem:
    return ApiProblem(
        422, f"unknown key (known keys here: {', '.join(sorted(known))})", pointer=f"{where}/{key}"
    )


def check_members(body: Mapping[str, Any]) -> None:
    """422 for a member a request may not set (derived, read-only) or that does not exist."""
    for key in body:
        if key in READ_ONLY:
            derived = "derived from start and end" if key.endswith("_utc") else "kept by the server"
            raise ApiProblem(422, f"read-only ({derived}); leave it out", pointer=f"/{key}")
        if key not in WRITABLE:
            raise _unknown("", key, WRITABLE)


def entry_table(body: Mapping[str, Any]) -> dict[str, Any]:
    """A body (members checked by ``check_members``) as an ``[[entries]]`` table.

    ``null`` is no value (the default); dates and date-times written as text are
    read as TOML reads them, so the validator sees what a schedule file gives it.
    """
    table: dict[str, Any] = {}
    for member, key in SIMPLE.items():
        if body.get(member) is not None:
            table[key] = body[member]
    for member, keys in TIMES.items():
        value = body.get(member)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ApiProblem(
                422,
                f'expected an object such as {{"local": "2025-09-02T10:00:00", "zone": '
                f'"America/Mexico_City"}}, got {value!r}',
                pointer=f"/{member}",
            )
        for inner in value:
            if inner not in keys:
                raise _unknown(f"/{member}", inner, tuple(keys))
        for inner, key in keys.items():
            if value.get(inner) is not None:
                table[key] = wall_value(value[inner]) if inner == "local" else value[inner]
    for member, key in DATES.items():
        value = body.get(member)
        if value is None:
            continue
        table[key] = [wall_value(item) for item in value] if isinstance(value, list) else value
    return table


def table_body(table: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of ``entry_table``: an ``[[entries]]`` table (``entry_edits.raw_of``) as
    a body, with dates and date-times as ISO text (what a PATCH is merged into)."""
    body: dict[str, Any] = {}
    for member, key in SIMPLE.items():
        if key in table:
            body[member] = table[key]
    for member, keys in TIMES.items():
        inner = {name: table[key] for name, key in keys.items() if key in table}
        if inner:
            if "local" in inner:
                inner["local"] = inner["local"].isoformat()
            body[member] = inner
    for member, key in DATES.items():
        if key in table:
            body[member] = [item.isoformat() for item in table[key]]
    return body


def _time(entry: Entry, which: str) -> dict[str, Any]:
    if entry.all_day:
        day = entry.start_day if which == "start" else entry.last_day
        return {"local": day.isoformat(), "zone": entry.start_tz, "fold": None}
    local = entry.start_local if which == "start" else entry.end_local
    zone = entry.start_tz if which == "start" else entry.end_tz
    fold = entry.start_fold if which == "start" else entry.end_fold
    return {"local": local.isoformat(), "zone": zone, "fold": fold}


def entry_json(entry: Entry, slug: str) -> dict[str, Any]:
    """An entry as the API shows it."""
    owner = entry.origin
    return {
        "uid": entry.uid,
        "calendar": slug,
        "title": entry.title,
        "start": _time(entry, "start"),
        "end": _time(entry, "end"),
        "all_day": entry.all_day,
        "start_utc": iso_utc(entry.start_utc),
        "end_utc": iso_utc(entry.end_utc),
        "description": entry.description,
        "location": entry.location,
        "city": entry.city,
        "geo": [entry.geo_lat, entry.geo_lon] if entry.geo_lat is not None else None,
        "url": entry.url,
        "categories": list(entry.categories or []),
        "status": str(entry.status),
        "transparency": entry.transparency,
        "rrule": entry.rrule,
        "rdates": list(entry.rdates or []),
        "exdates": list(entry.exdates or []),
        "reminders": list(entry.reminders) if entry.reminders is not None else None,
        "sequence": entry.sequence,
        "version": entry.version,
        "owner": {"kind": owner.kind.value, "name": owner.name} if owner is not None else None,
        "created": iso_utc(entry.created_at),
        "updated": iso_utc(entry.updated_at),
    }


CALENDAR_WRITABLE: Final = ("slug", "name", "description", "timezone", "reminders")
CALENDAR_READ_ONLY: Final = ("version", "created", "updated")


def calendar_json(calendar: Calendar) -> dict[str, Any]:
    """A calendar as the API shows it (never its feed token)."""
    return {
        "slug": calendar.slug,
        "name": calendar.name,
        "description": calendar.description,
        "timezone": calendar.timezone,
        "reminders": list(calendar.reminders) if calendar.reminders is not None else None,
        "version": calendar.version,
        "created": iso_utc(calendar.created_at),
        "updated": iso_utc(calendar.updated_at),
    }


def calendar_table(body: Mapping[str, Any]) -> dict[str, Any]:
    """A calendar body as the ``[calendar]`` table of a schedule file (422 for read-only)."""
    for key in body:
        if key in CALENDAR_READ_ONLY:
            raise ApiProblem(422, "read-only (kept by the server); leave it out", pointer=f"/{key}")
    return {key: value for key, value in body.items() if value is not None}
