"""The API's OpenAPI 3.1 document, generated from the schema the validator uses.

Nothing here is written by hand that the validator already knows: each member
of an entry body is a key of a schedule file's ``[[entries]]`` table
(``schedule_files.ENTRY_TABLE``), and its JSON Schema is what that key's reader
says it accepts (``validation.json_schema``), its default the table's default;
likewise a calendar body and ``[calendar]`` (``CALENDAR_TABLE``). The readers
stay the judges: the document describes the shape of a value (a string, an
array of durations), the validator refuses what is wrong with it (an unknown
zone, a wall time in a DST gap), with a 422 the document lists.

The examples are entries of the trip shipped in ``schedules/rubio-2025-09.toml``
(a test checks that they are).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from enum import Enum
from typing import Any, Final

from calendar_svc import __version__, validation
from calendar_svc.api.representation import DATES, SIMPLE, TIMES
from calendar_svc.durations import format_duration
from calendar_svc.schedule_files import CALENDAR_TABLE, ENTRY_TABLE

# A date (all-day) or a date-time as TOML writes it: local (wall time in the zone), or with
# an offset (an instant, kept as the wall time it is in the zone).
LOCAL: Final = {
    "type": "string",
    "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|z|[+-][0-9]{2}:[0-9]{2})?)?$",
    "description": "a wall time (2025-09-02T10:00:00) in the zone, or a date (2025-09-04) "
    "for an all-day entry; with an offset (…Z, …-05:00) an instant, kept as the wall time it "
    "is in the zone",
    "examples": ["2025-09-02T10:00:00"],
}

# The trip's entries (schedules/rubio-2025-09.toml), as bodies.
EXAMPLE_ENTRY: Final = {
    "uid": "sheinbaum-bilateral",
    "title": "Bilateral meeting with President Claudia Sheinbaum",
    "start": {"local": "2025-09-02T10:00:00", "zone": "America/Mexico_City"},
    "end": {"local": "2025-09-02T11:30:00", "zone": "America/Mexico_City"},
    "location": "Palacio Nacional, Mexico City",
    "city": "Mexico City",
    "geo": [19.4326, -99.1313],
    "categories": ["meeting"],
    "description": "Migration and drug trafficking cooperation; a possible security agreement.",
}
EXAMPLE_FLIGHT: Final = {
    "uid": "flight-was-mex",
    "title": "Flight Washington – Mexico City",
    "start": {"local": "2025-09-02T06:30:00", "zone": "America/New_York"},
    "end": {"local": "2025-09-02T08:45:00", "zone": "America/Mexico_City"},
    "location": "Joint Base Andrews, Maryland → Mexico City International Airport (MEX)",
    "city": "Washington",
    "categories": ["flight"],
    "reminders": ["PT2H"],
}
EXAMPLE_CALENDAR: Final = {
    "slug": "rubio-2025-09",
    "name": "Secretary Rubio: Mexico and Ecuador, 2-4 Sep 2025",
    "timezone": "America/Mexico_City",
    "reminders": ["PT1H", "PT15M"],
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or ``null``."""
    result = dict(schema)
    if "enum" in result:
        result["enum"] = [*result["enum"], None]
    elif isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
    else:
        return {"anyOf": [schema, {"type": "null"}]}
    return result


def key_schema(table: type[Any], key: str, *, write: bool = True) -> dict[str, Any]:
    """The JSON Schema of ``key`` of a schedule-file table: its reader's, with its default.
    In a request an optional key may be ``null`` (its default)."""
    field = {f.name: f for f in dataclasses.fields(table)}[key]
    schema = validation.json_schema(field.metadata["reader"])
    optional = field.default is not dataclasses.MISSING
    if optional and field.default is not None:
        schema["default"] = _jsonable(field.default)
    return nullable(schema) if optional and (write or field.default is None) else schema


def _time_object(*, write: bool, patch: bool) -> dict[str, Any]:
    keys = TIMES["start"]
    zone = dict(key_schema(ENTRY_TABLE, keys["zone"], write=True))
    zone["description"] = "IANA zone (default: the calendar's; for end, the start's)"
    properties = {
        # In a merge patch, null removes a member (it takes its default).
        "local": nullable(LOCAL) if patch else LOCAL,
        "zone": zone,
        "fold": key_schema(ENTRY_TABLE, keys["fold"], write=True),
    }
    if not write:
        properties = {
            "local": {"type": "string"},
            "zone": {"type": "string"},
            "fold": nullable({"enum": [0, 1]}),
        }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if not patch:
        schema["required"] = ["local"] if write else ["local", "zone", "fold"]
    return schema


def entry_write_schema(*, patch: bool = False) -> dict[str, Any]:
    """A request body that creates (POST), replaces (PUT) or merges into (PATCH) an entry."""
    properties: dict[str, Any] = {
        member: key_schema(ENTRY_TABLE, key) for member, key in SIMPLE.items()
    }
    properties["uid"] = dict(
        validation.json_schema(ENTRY_TABLE.__dataclass_fields__["uid"].metadata["reader"])
    )
    properties["uid"]["description"] = (
        "stable id within the calendar; POST makes one when it is left out, PUT and PATCH "
        "take it from the path"
    )
    properties["title"] = key_schema(ENTRY_TABLE, "title")
    properties["start"] = _time_object(write=True, patch=patch)
    properties["end"] = nullable(_time_object(write=True, patch=patch))
    properties["end"]["description"] = "default: the start (or start + duration)"
    for member in DATES:
        properties[member] = nullable({"type": "array", "items": LOCAL})
    properties["detach"] = {
        "type": "boolean",
        "description": "take the entry over from the schedule file or source that owns it "
        "(without it such an entry is refused with 409); its imports then leave it alone",
    }
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if not patch:
        schema["required"] = ["title", "start"]
    return schema


def entry_schema() -> dict[str, Any]:
    """An entry as the API shows it: what a body says, and what is derived (read-only)."""
    properties: dict[str, Any] = {
        member: key_schema(ENTRY_TABLE, key, write=False)
        for member, key in SIMPLE.items()
        if member != "duration"
    }
    properties["uid"] = validation.json_schema(
        ENTRY_TABLE.__dataclass_fields__["uid"].metadata["reader"]
    )
    properties["title"] = {"type": "string"}
    properties["start"] = _time_object(write=False, patch=False)
    properties["end"] = _time_object(write=False, patch=False)
    for member in DATES:
        properties[member] = {"type": "array", "items": {"type": "string"}}
    read_only = {
        "calendar": {"type": "string", "description": "the calendar's slug"},
        "all_day": {"type": "boolean", "description": "start.local is a date"},
        "start_utc": {"type": "string", "description": "derived from start: never set"},
        "end_utc": {"type": "string", "description": "derived from end: never set"},
        "sequence": {"type": "integer", "description": "RFC 5545 SEQUENCE"},
        "version": {"type": "integer", "description": "the row's version: its ETag"},
        "owner": nullable(
            {
                "type": "object",
                "properties": {
                    "kind": {"enum": ["file", "source", "api"]},
                    "name": {"type": "string"},
                },
                "required": ["kind", "name"],
            }
        ),
        "created": {"type": "string"},
        "updated": {"type": "string"},
    }
    for name, schema in read_only.items():
        properties[name] = {**schema, "readOnly": True}
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "examples": [{**EXAMPLE_ENTRY}],
    }


def calendar_write_schema(*, patch: bool = False) -> dict[str, Any]:
    keys = ("name", "description", "timezone", "reminders")
    properties = {key: key_schema(CALENDAR_TABLE, key) for key in keys}
    if patch:
        return {"type": "object", "properties": properties, "additionalProperties": False}
    properties = {"slug": key_schema(CALENDAR_TABLE, "slug"), **properties}
    required = [
        f.name for f in dataclasses.fields(CALENDAR_TABLE) if f.default is dataclasses.MISSING
    ]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "examples": [EXAMPLE_CALENDAR],
    }


def calendar_schema() -> dict[str, Any]:
    keys = ("slug", "name", "description", "timezone", "reminders")
    properties = {key: key_schema(CALENDAR_TABLE, key, write=False) for key in keys}
    properties["name"] = {"type": "string"}
    for name, kind in (("version", "integer"), ("created", "string"), ("updated", "string")):
        properties[name] = {"type": kind, "readOnly": True}
    return {"type": "object", "properties": properties, "required": sorted(properties)}


PROBLEM: Final = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"detail": {"type": "string"}, "pointer": {"type": "string"}},
                "required": ["detail", "pointer"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "examples": [
        {
            "type": "about:blank",
            "title": "Unprocessable Content",
            "status": 422,
            "detail": "/start/zone: unknown timezone 'America/Quito' (it is not an IANA zone; "
            "use 'America/Guayaquil')",
            "errors": [
                {
                    "pointer": "/start/zone",
                    "detail": "unknown timezone 'America/Quito' (it is not an IANA zone; use "
                    "'America/Guayaquil')",
                }
            ],
        }
    ],
}

REMINDER: Final = {
    "type": "object",
    "properties": {
        "due_utc": {"type": "string"},
        "due_local": {"type": "string"},
        "timezone": {"type": "string"},
        "uid": {"type": "string"},
        "title": {"type": "string"},
        "start_utc": {"type": "string"},
        "offset": {"type": "string"},
        "channel": {"type": "string"},
        "idempotency_key": {"type": "string"},
    },
    "required": [
        "due_utc",
        "due_local",
        "timezone",
        "uid",
        "title",
        "start_utc",
        "offset",
        "channel",
        "idempotency_key",
    ],
}

_REASONS: Final = {
    400: "Bad Request: a query parameter or the JSON syntax is wrong",
    401: "Unauthorized: no key, or a key that is unknown, revoked or expired",
    403: "Forbidden: a read-only key asked to write, or a calendar outside the key's scope",
    404: "Not Found (also any calendar outside the key's scope)",
    409: "Conflict: it exists already, or a schedule file or source owns the entry",
    412: "Precondition Failed: If-Match names an older version",
    413: "Content Too Large",
    415: "Unsupported Media Type: send application/json",
    422: "Unprocessable Content: a field is refused (the pointer names it)",
    428: "Precondition Required: send If-Match with the ETag you read",
    429: "Too Many Requests: too many failed authentications from this address",
}


def _problems(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": _REASONS[code],
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for code in sorted({401, 429, *codes})
    }


_ETAG = {"ETag": {"description": "the version, for If-Match", "schema": {"type": "string"}}}
_SLUG = {
    "name": "slug",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the calendar's slug",
}
_UID = {"name": "uid", "in": "path", "required": True, "schema": {"type": "string"}}
# Not "required" in the document's sense: a request without it is well formed, and is
# answered 428 (listed) rather than 400, as RFC 6585 says.
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": 'the ETag read (e.g. "3"): needed, a request without it is 428; a stale '
    "one is 412",
}
_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "a retry with the same key and body gets the first answer back",
}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }


def _body(
    ref: str, *, merge: bool = False, example: dict[str, Any] | None = None
) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{ref}"}}
    if example is not None:
        media["example"] = example
    content = {"application/json": media}
    if merge:
        content["application/merge-patch+json"] = media
    return {"required": True, "content": content}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``/api/v1``."""
    entry_params = {"slug": "$request.path.slug", "uid": "$response.body#/uid"}
    entry_link: dict[str, Any] = {"operationId": "getEntry", "parameters": entry_params}
    matched = {**entry_params, "header.If-Match": "$response.header.ETag"}
    entry_links = {
        "GetEntry": entry_link,
        "ReplaceEntry": {
            **entry_link,
            "operationId": "replaceEntry",
            "parameters": matched,
        },
        "PatchEntry": {
            **entry_link,
            "operationId": "patchEntry",
            "parameters": matched,
        },
        "DeleteEntry": {
            **entry_link,
            "operationId": "deleteEntry",
            "parameters": matched,
        },
    }
    calendar_links = {
        "GetCalendar": {
            "operationId": "getCalendar",
            "parameters": {"slug": "$response.body#/slug"},
        },
        "ListEntries": {
            "operationId": "listEntries",
            "parameters": {"slug": "$response.body#/slug"},
        },
    }
    filters = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": text,
        }
        for name, text in (
            ("city", "only entries in this city (any case)"),
            ("category", "only entries with this category"),
            (
                "from",
                "only entries that end on or after this day (YYYY-MM-DD, in each entry's zone)",
            ),
            ("to", "only entries that start on or before this day (YYYY-MM-DD)"),
        )
    ]
    window = [
        {
            "name": "from",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "YYYY-MM-DD (a UTC day) or an ISO date-time (UTC unless it has an "
            "offset); default now",
        },
        {
            "name": "to",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "as from (a day includes it); default from + [reminders] horizon; "
            "at most 366 days after from",
        },
    ]
    paths: dict[str, Any] = {
        "/calendars": {
            "get": {
                "operationId": "listCalendars",
                "summary": "The calendars the key may see",
                "responses": {
                    "200": _json({"type": "array", "items": _ref("Calendar")}, "the calendars"),
                    **_problems(),
                },
            },
            "post": {
                "operationId": "createCalendar",
                "summary": "Create a calendar",
                "parameters": [_IDEMPOTENCY],
                "requestBody": _body("CalendarWrite", example=EXAMPLE_CALENDAR),
                "responses": {
                    "201": _json(
                        _ref("Calendar"),
                        "created",
                        headers={**_ETAG, "Location": {"schema": {"type": "string"}}},
                        links=calendar_links,
                    ),
                    **_problems(400, 403, 409, 413, 415, 422),
                },
            },
        },
        "/calendars/{slug}": {
            "parameters": [_SLUG],
            "get": {
                "operationId": "getCalendar",
                "summary": "One calendar",
                "responses": {
                    "200": _json(_ref("Calendar"), "the calendar", headers=_ETAG),
                    **_problems(404),
                },
            },
            "patch": {
                "operationId": "patchCalendar",
                "summary": "Change a calendar's name, description, zone or reminder offsets "
                "(JSON merge patch)",
                "parameters": [_IF_MATCH],
                "requestBody": _body(
                    "CalendarPatch",
                    merge=True,
                    example={"name": "Secretary Rubio: Mexico and Ecuador"},
                ),
                "responses": {
                    "200": _json(_ref("Calendar"), "changed", headers=_ETAG),
                    **_problems(400, 403, 404, 409, 412, 413, 415, 422, 428),
                },
            },
        },
        "/calendars/{slug}/entries": {
            "parameters": [_SLUG],
            "get": {
                "operationId": "listEntries",
                "summary": "Entries, with the feed's filters",
                "parameters": filters,
                "responses": {
                    "200": _json(
                        {"type": "array", "items": _ref("Entry")}, "the entries, by start"
                    ),
                    **_problems(400, 404),
                },
            },
            "post": {
                "operationId": "createEntry",
                "summary": "Create an entry",
                "parameters": [_IDEMPOTENCY],
                "requestBody": _body("EntryWrite", example=EXAMPLE_ENTRY),
                "responses": {
                    "201": _json(
                        _ref("Entry"),
                        "created",
                        headers={**_ETAG, "Location": {"schema": {"type": "string"}}},
                        links=entry_links,
                    ),
                    **_problems(400, 403, 404, 409, 413, 415, 422),
                },
            },
        },
        "/calendars/{slug}/entries/{uid}": {
            "parameters": [_SLUG, _UID],
            "get": {
                "operationId": "getEntry",
                "summary": "One entry",
                "responses": {
                    "200": _json(_ref("Entry"), "the entry", headers=_ETAG),
                    **_problems(404),
                },
            },
            "put": {
                "operationId": "replaceEntry",
                "summary": "Replace an entry",
                "parameters": [_IF_MATCH],
                "requestBody": _body("EntryWrite", example=EXAMPLE_ENTRY),
                "responses": {
                    "200": _json(_ref("Entry"), "replaced", headers=_ETAG),
                    **_problems(400, 403, 404, 409, 412, 413, 415, 422, 428),
                },
            },
            "patch": {
                "operationId": "patchEntry",
                "summary": "Change some fields of an entry (JSON merge patch)",
                "parameters": [_IF_MATCH],
                "requestBody": _body(
                    "EntryPatch",
                    merge=True,
                    example={
                        "start": {"local": "2025-09-02T11:00:00"},
                        "end": {"local": "2025-09-02T12:30:00"},
                    },
                ),
                "responses": {
                    "200": _json(_ref("Entry"), "changed", headers=_ETAG),
                    **_problems(400, 403, 404, 409, 412, 413, 415, 422, 428),
                },
            },
            "delete": {
                "operationId": "deleteEntry",
                "summary": "Delete an entry (gone from the feed; prefer cancel for an event "
                "called off)",
                "parameters": [_IF_MATCH],
                "responses": {
                    "204": {"description": "deleted"},
                    **_problems(400, 403, 404, 409, 412, 428),
                },
            },
        },
        "/calendars/{slug}/entries/{uid}/cancel": {
            "parameters": [_SLUG, _UID],
            "post": {
                "operationId": "cancelEntry",
                "summary": "Cancel an entry (it stays in the feed as STATUS:CANCELLED; its "
                "reminders stop)",
                "parameters": [_IF_MATCH],
                "responses": {
                    "200": _json(_ref("Entry"), "cancelled", headers=_ETAG),
                    **_problems(400, 403, 404, 409, 412, 428),
                },
            },
        },
        "/calendars/{slug}/reminders": {
            "parameters": [_SLUG],
            "get": {
                "operationId": "previewReminders",
                "summary": "The reminders that would be sent in a window, without sending",
                "parameters": window,
                "responses": {
                    "200": _json(
                        {"type": "array", "items": _ref("Reminder")}, "the reminders, by due time"
                    ),
                    **_problems(400, 404),
                },
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "calendar-svc API",
            "version": __version__,
            "description": "Calendars and entries of calendar-svc: wall time and IANA zone are "
            "the truth, UTC instants are derived (read-only). Every write needs If-Match "
            "(except creates, which take an Idempotency-Key). Errors are RFC 9457 problems.",
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "a key from `calendar-svc api-key create`",
                }
            },
            "schemas": {
                "Entry": entry_schema(),
                "EntryWrite": entry_write_schema(),
                "EntryPatch": entry_write_schema(patch=True),
                "Calendar": calendar_schema(),
                "CalendarWrite": calendar_write_schema(),
                "CalendarPatch": calendar_write_schema(patch=True),
                "Reminder": REMINDER,
                "Problem": PROBLEM,
            },
        },
    }
