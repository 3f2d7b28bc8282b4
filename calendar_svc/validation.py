"""Typed readers: one vocabulary for everything a person writes in TOML.

config.toml, the ``[notifiers.*]`` tables in it and schedule files are all
TOML tables read key by key, and all three report a mistake the same way:
the file, where in it (a dotted table or an entry) and the field, then what
is wrong, in the same words ("expected an integer, got string '8080'").

* A *reader* turns one raw value into a typed one, or raises ``ValueError``
  saying what it expected: ``text``, ``boolean``, ``integer(1, 65535)``,
  ``one_of("text", "json")``, ``duration()``, ``zone``, … Readers compose
  (``list_of(nonblank)``, ``then(integer(), check)``).
* A ``Table`` reads one TOML table with readers, refuses the keys nobody
  asked for, and turns every refusal into the error of its ``Place``:
  ``ConfigError`` for config and notifier tables, ``InputError`` for schedule
  files (both ``errors.LocatedError``).

Schemas are declared once, beside the values they make: config sections and
the tables of a schedule file (the file, its ``[calendar]``, an entry) are
dataclasses whose fields name their reader (``setting``), read by
``read_section``; a notifier class declares its ``keys``. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import re
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from calendar_svc.durations import parse_duration
from calendar_svc.errors import InputError, LocatedError
from calendar_svc.timezones import get_zone
from calendar_svc.tzdb import TzDatabase

T = TypeVar("T")
U = TypeVar("U")
E = TypeVar("E", bound=LocatedError)
Reader = Callable[[Any], T]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a key that must be given.
REQUIRED: Final[Any] = _Required()

_NAMES: Final[Mapping[type, tuple[str, str]]] = {
    # type: (what a reader expects, what a value is called)
    str: ("a string", "string"),
    bool: ("true or false", "boolean"),
    int: ("an integer", "integer"),
    float: ("a number", "number"),
    list: ("a list", "list"),
    dict: ("a table", "table"),
}


def type_name(value: Any) -> str:
    """What ``value`` is, in TOML's words: ``string``, ``integer``, ``table``, …"""
    return _NAMES.get(type(value), ("", type(value).__name__))[1]


def expected(kind: type) -> str:
    """What a reader of ``kind`` asks for: ``a string``, ``an integer``, …"""
    return _NAMES.get(kind, (kind.__name__, ""))[0]


def mismatch(wanted: str, value: Any) -> ValueError:
    """``expected WANTED, got TYPE VALUE``: the one message for a value of the wrong type."""
    return ValueError(f"expected {wanted}, got {type_name(value)} {value!r}")


def _choice_text(choice: Any) -> str:
    return choice if isinstance(choice, str) else repr(choice)


# --- what a reader accepts, as JSON Schema -------------------------------------------------

# reader -> the JSON Schema of the values it accepts (kept beside the reader, not in it, so a
# reader stays a plain function). The API's OpenAPI document is built from these.
_SCHEMAS: weakref.WeakKeyDictionary[Callable[..., Any], dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def described(reader: Reader[T], schema: Mapping[str, Any]) -> Reader[T]:
    """``reader``, recorded as accepting what the JSON Schema ``schema`` describes (its shape;
    the reader itself stays the judge of the value)."""
    _SCHEMAS[reader] = dict(schema)
    return reader


def json_schema(reader: Reader[Any]) -> dict[str, Any]:
    """The JSON Schema of what ``reader`` accepts (``{}``, anything, when not described)."""
    return dict(_SCHEMAS.get(reader, {}))


# --- readers of single values --------------------------------------------------------------


def anything(value: Any) -> Any:
    return value


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise mismatch("a string", value)
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise mismatch("true or false", value)
    return value


described(text, {"type": "string"})
described(boolean, {"type": "boolean"})


def _bounded(value: T, minimum: float | None, maximum: float | None) -> T:
    number: Any = value
    if minimum is not None and maximum is not None:
        if not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum:g} and {maximum:g}, got {value!r}")
    elif minimum is not None and number < minimum:
        raise ValueError(f"must be at least {minimum:g}, got {value!r}")
    elif maximum is not None and number > maximum:
        raise ValueError(f"must be at most {maximum:g}, got {value!r}")
    return value


def integer(minimum: int | None = None, maximum: int | None = None) -> Reader[int]:
    """An integer (not a boolean), within ``[minimum, maximum]`` when given."""

    def read(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise mismatch("an integer", value)
        return _bounded(value, minimum, maximum)

    return described(read, {"type": "integer", **_limits(minimum, maximum)})


def number(minimum: float | None = None, maximum: float | None = None) -> Reader[float]:
    """A number, integer or float (not a boolean), within ``[minimum, maximum]`` when given."""

    def read(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise mismatch("a number", value)
        return float(_bounded(value, minimum, maximum))

    return described(read, {"type": "number", **_limits(minimum, maximum)})


def one_of(*choices: Any, fold_case: bool = False) -> Reader[Any]:
    """One of ``choices`` (compared after ``str.lower`` with ``fold_case``)."""
    listed = ", ".join(_choice_text(c) for c in choices)

    def read(value: Any) -> Any:
        key = value.lower() if fold_case and isinstance(value, str) else value
        # bool == int in Python: True is not the choice 1.
        if isinstance(value, bool) or key not in choices:
            raise ValueError(f"expected one of {listed}, got {value!r}")
        return key

    return described(read, {"enum": [str(c) if isinstance(c, str) else c for c in choices]})


def matching(pattern: str | re.Pattern[str], description: str) -> Reader[str]:
    """A string matching ``pattern`` entirely; else "must be DESCRIPTION, got …"."""
    compiled = re.compile(pattern)

    def read(value: Any) -> str:
        if not isinstance(value, str) or not compiled.fullmatch(value):
            raise ValueError(f"must be {description}, got {value!r}")
        return value

    return described(
        read, {"type": "string", "pattern": f"^(?:{compiled.pattern})$", "description": description}
    )


def duration(*, positive: bool = False) -> Reader[timedelta]:
    """An ISO 8601 duration (``PT15M``); with ``positive``, longer than zero."""

    def read(value: Any) -> timedelta:
        parsed = parse_duration(value)
        if positive and parsed <= timedelta(0):
            raise ValueError("must be longer than zero")
        return parsed

    return described(read, _DURATION)


#: The longest reminder offset: a reminder more than a year and a month ahead reminds
#: nobody, and the planner looks this far back for entries (``reminders.entries``).
MAX_OFFSET: Final = timedelta(days=400)

#: The days an entry may start and end on (imported, or read back from the database);
#: the time core converts 1000..2399, wider, so windows around these days still convert.
FIRST_DAY: Final = date(1900, 1, 1)
LAST_DAY: Final = date(2199, 12, 31)


def offset(value: Any) -> timedelta:
    """One reminder offset: an ISO 8601 duration of at most ``MAX_OFFSET`` (P400D)."""
    parsed = parse_duration(value)
    if parsed > MAX_OFFSET:
        raise ValueError(f"{value!r} is longer than P400D, the longest reminder offset")
    return parsed


def durations(value: Any) -> tuple[timedelta, ...]:
    """Reminder offsets: a list of ISO 8601 durations (``["PT1H", "PT15M"]``), each at most
    ``MAX_OFFSET``."""
    if not isinstance(value, list):
        raise ValueError(f'expected a list of ISO 8601 durations such as ["PT1H"], got {value!r}')
    return tuple(offset(item) for item in value)


def in_range(day: date, what: str) -> date:
    """``day`` when it is within ``FIRST_DAY``..``LAST_DAY``; else ValueError naming ``what``
    ("starts", "ends", "--from")."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(
            f"{what} {day.isoformat()}: calendar-svc keeps entries from "
            f"{FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}"
        )
    return day


def zone(value: Any) -> str:
    """An IANA zone name known to the installed tz data (a hint for the usual mistakes)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an IANA zone name, got {value!r}")
    try:
        get_zone(value)
    except InputError as exc:
        raise ValueError(exc.detail) from None
    return value


def zone_in(database: TzDatabase) -> Reader[str]:
    """``zone``, checked against ``database`` rather than the tz database in use (a config
    that names its own tz database is checked against that one, before it is in use)."""

    def read(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected an IANA zone name, got {value!r}")
        if value.upper() == "UTC":
            return value
        try:
            database.history(value)
        except LocatedError as exc:
            raise ValueError(exc.detail) from None
        return value

    return read


def folder(value: Any) -> Path:
    """A folder's path (``~`` expanded; relative ones are resolved by whoever knows
    against what). Whether the folder holds what it should is for its reader to say."""
    if not isinstance(value, str) or not value.strip():
        raise mismatch("a folder's path", value)
    return Path(value.strip()).expanduser()


def clock_time(value: Any) -> time:
    """A local time of day: ``"09:00"`` (or a TOML local time)."""
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value):
        hours, minutes = (int(part) for part in value.split(":"))
        return time(hours, minutes)
    raise ValueError(f'expected a local time such as "09:00", got {value!r}')


def table(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise mismatch("a table", value)
    return value


def list_of(item: Reader[T], wanted: str) -> Reader[list[T]]:
    """A list whose items ``item`` reads; ``wanted`` names it ("a list of strings")."""

    def read(value: Any) -> list[T]:
        if not isinstance(value, list):
            raise mismatch(wanted, value)
        try:
            return [item(element) for element in value]
        except ValueError:
            raise ValueError(f"expected {wanted}, found {_bad_item(item, value)!r}") from None

    return described(read, {"type": "array", "items": json_schema(item)})


def _bad_item(item: Reader[Any], values: list[Any]) -> Any:
    for element in values:
        try:
            item(element)
        except ValueError:
            return element
    return None


def nonblank(value: Any) -> str:
    """A string with something in it besides whitespace."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def secret_text(value: Any) -> str:
    """A non-empty string that may be a secret: a refusal names its type, never the value
    (an empty string, which hides nothing, is shown)."""
    if isinstance(value, str) and value:
        return value
    got = "string ''" if value == "" else type_name(value)
    raise ValueError(f"expected a non-empty string, got {got}")


strings: Final = list_of(text, "a list of strings")


def string_table(value: Any) -> dict[str, str]:
    """A table of string values (``headers = { "X-Team" = "ops" }``)."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise mismatch("a table of strings", value)
    return value


def then(reader: Reader[T], *checks: Callable[[T], U]) -> Reader[Any]:
    """``reader``, then each of ``checks`` on its result (each may raise ValueError)."""

    def read(value: Any) -> Any:
        result: Any = reader(value)
        for check in checks:
            result = check(result)
        return result

    return described(read, json_schema(reader))


def _limits(minimum: float | None, maximum: float | None) -> dict[str, float]:
    limits: dict[str, float] = {}
    if minimum is not None:
        limits["minimum"] = minimum
    if maximum is not None:
        limits["maximum"] = maximum
    return limits


_DURATION: Final = {
    "type": "string",
    "description": "an ISO 8601 duration (PT15M, PT1H, P1D)",
    "examples": ["PT1H"],
}
described(nonblank, {"type": "string", "minLength": 1})
described(table, {"type": "object"})
described(durations, {"type": "array", "items": _DURATION})
described(
    zone,
    {
        "type": "string",
        "description": "an IANA zone name (America/Mexico_City; Quito is America/Guayaquil)",
        "examples": ["America/Mexico_City"],
    },
)


# --- where values come from ----------------------------------------------------------------


@dataclass(frozen=True)
class Place(Generic[E]):
    """Where a table's values come from, and how a mistake there is reported.

    ``error`` is the error class (``ConfigError`` or ``InputError``), ``file``
    the file, ``location`` where in it: a dotted table (``notifiers.phone``)
    or a schedule entry's uid. ``prefix`` goes before each field's name
    (``calendar.`` for a schedule file's ``[calendar]`` table).
    """

    error: type[E]
    file: str | None
    location: str | None = None
    prefix: str = ""

    def fail(self, field: str | None, message: str) -> E:
        """The error saying ``message`` about ``field`` here."""
        named = f"{self.prefix}{field}" if field is not None else None
        return self.error(message, file=self.file, location=self.location, field=named)

    def within(self, location: str) -> Place[E]:
        """The place of a table nested in this one (config's dotted keys)."""
        inner = f"{self.location}.{location}" if self.location else location
        return dataclasses.replace(self, location=inner)


class Table(Generic[E]):
    """Reads one TOML table key by key; every mistake is one error naming file, place and key.

    Keys read (or named in ``done(also=…)``) are known; ``done()`` refuses the
    rest, so a typo is an error rather than a setting silently ignored.
    """

    def __init__(self, values: Any, place: Place[E]):
        if not isinstance(values, dict):
            raise place.fail(None, f"expected a table, got {type_name(values)} {values!r}")
        self.values: dict[str, Any] = values
        self.place = place
        self.known: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def fail(self, key: str | None, message: str) -> E:
        return self.place.fail(key, message)

    def read(self, key: str, reader: Reader[T], default: Any = REQUIRED, *, hint: str = "") -> Any:
        """``reader`` applied to ``key``'s value; ``default`` when absent, or when the
        default is REQUIRED the error "required, and missing" + ``hint``."""
        self.known.add(key)
        if key not in self.values:
            if default is REQUIRED:
                raise self.fail(key, f"required, and missing{hint}")
            return default
        return self.convert(key, self.values[key], reader)

    def convert(self, key: str, value: Any, reader: Reader[T]) -> T:
        """``reader`` applied to ``value`` (found elsewhere), a refusal located at ``key``."""
        try:
            return reader(value)
        except (ValueError, TypeError) as exc:
            raise self.fail(key, str(exc)) from None

    def done(self, also: Iterable[str] = ()) -> None:
        """Refuse any key not read and not in ``also``."""
        known = self.known | set(also)
        unknown = sorted(set(self.values) - known)
        if unknown:
            raise self.fail(
                unknown[0], f"unknown key (known keys here: {', '.join(sorted(known))})"
            )


# --- schemas declared as dataclasses ---------------------------------------------------------


def setting(reader: Reader[Any], default: Any = dataclasses.MISSING, *, hint: str = "") -> Any:
    """A dataclass field that ``read_section`` reads with ``reader``: ``port: int =
    setting(integer(0, 65535), 8080)``. The dataclass is then the section's schema:
    its fields are the keys, their defaults the defaults. A field without a default
    is required: missing, it is the error "required, and missing" + ``hint``."""
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or a frozen value as a setting's default")
    return dataclasses.field(default=default, metadata={"reader": reader, "hint": hint})


def read_section(
    schema: type[Any], table: Table[Any], readers: Mapping[str, Reader[Any]] | None = None
) -> dict[str, Any]:
    """The keys of ``table`` that ``schema`` (a dataclass of ``setting`` fields) declares,
    each read by its reader (or the one ``readers`` gives for it, when a check depends on
    something read before); the others get the dataclass defaults. Unknown keys are
    refused. Returns the values given, for ``schema(**values)`` after any cross-checks."""
    given: dict[str, Any] = {}
    for spec in dataclasses.fields(schema):
        reader = (readers or {}).get(spec.name) or spec.metadata.get("reader")
        if reader is None:
            continue
        if spec.name in table:
            given[spec.name] = table.read(spec.name, reader)
        elif spec.default is dataclasses.MISSING:
            table.read(spec.name, reader, hint=spec.metadata["hint"])  # raises: required
        else:
            table.known.add(spec.name)
    table.done()
    return given
