"""iCalendar text -> components and properties, within limits. Pure: no I/O.

RFC 5545 section 3.1: content lines ``NAME;PARAM=value:VALUE``, folded at 75
octets by a line break and one space or tab, grouped by ``BEGIN:X`` /
``END:X``. This reader does that much and no more (values stay text, decoded
on demand by ``values``), so that every mistake can name its line and every
limit is checked before it costs anything:

* bytes are unfolded before they are decoded, so a fold inside a multi-byte
  UTF-8 character (which some producers write) still reads;
* a NUL or other control byte, a line that is neither a content line nor a
  continuation (broken folding), a BEGIN without its END, nesting deeper than
  ``MAX_DEPTH`` and more than ``MAX_LINES`` lines or ``MAX_COMPONENTS``
  components are each an ``InputError`` naming the line.

A library parser (icalendar) builds an object per property and takes about
2 s for a 10,000-event feed here, without saying on which line a mistake is;
this one keeps the raw text and reads the same feed in a fraction of that.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from calendar_svc.errors import InputError

# Limits of one file or body (a 20 MB body of short lines is about a million lines).
MAX_LINES = 2_000_000
MAX_COMPONENTS = 500_000
MAX_DEPTH = 8
MAX_LINE_BYTES = 8 * 1024 * 1024

# (line, message) -> the error to raise.
Fail = Callable[[int, str], InputError]

_NAME = re.compile(r"[A-Za-z0-9-]+")
# Control characters RFC 5545 allows in no value (TAB is allowed).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(slots=True)
class Property:
    """One content line: upper-case ``name``, ``params`` (upper-case names, values unquoted,
    a list parameter joined by commas), the raw ``value`` text and its first ``line``."""

    name: str
    params: dict[str, str]
    value: str
    line: int


@dataclass(slots=True)
class Component:
    """``BEGIN:name`` ... ``END:name``: its properties and sub-components, in file order."""

    name: str
    line: int
    properties: list[Property] = field(default_factory=list)
    components: list[Component] = field(default_factory=list)

    def get(self, name: str) -> Property | None:
        """The first property called ``name`` (upper case), or None."""
        for prop in self.properties:
            if prop.name == name:
                return prop
        return None

    def all(self, name: str) -> list[Property]:
        return [prop for prop in self.properties if prop.name == name]

    def walk(self, name: str) -> Iterator[Component]:
        """Every component called ``name`` at any depth below this one."""
        for child in self.components:
            if child.name == name:
                yield child
            yield from child.walk(name)


def read(data: bytes, *, source: str) -> Component:
    """The one VCALENDAR of ``data``; InputError naming ``source`` and the line otherwise."""
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head[:15].upper().startswith(b"BEGIN:VCALENDAR"):
        shown = head[:40].decode("utf-8", "replace").split("\n", 1)[0].strip()
        raise InputError(
            f"not an iCalendar (.ics) body: it starts with {shown!r}, not BEGIN:VCALENDAR",
            file=source,
        )
    calendars = [c for c in read_components(data, source=source) if c.name == "VCALENDAR"]
    if not calendars:
        raise InputError("no BEGIN:VCALENDAR: this is not an iCalendar (.ics) file", file=source)
    if len(calendars) > 1:
        # Several VCALENDARs in one file happen (concatenated exports): read them as one.
        merged = Component("VCALENDAR", calendars[0].line)
        for calendar in calendars:
            merged.properties.extend(calendar.properties)
            merged.components.extend(calendar.components)
        return merged
    return calendars[0]


def read_components(data: bytes, *, source: str) -> list[Component]:
    """Every top-level component of ``data``."""

    def fail(line: int, message: str) -> InputError:
        return InputError(f"line {line}: {message}", file=source)

    top: list[Component] = []
    stack: list[Component] = []
    count = 0
    for number, text in _logical_lines(data, fail):
        name, params, value = _split(text, number, fail)
        if name == "BEGIN":
            kind = value.strip().upper()
            if not _NAME.fullmatch(kind):
                raise fail(number, f"BEGIN of {value!r}: not a component name")
            if len(stack) >= MAX_DEPTH:
                raise fail(number, f"components nested more than {MAX_DEPTH} deep")
            count += 1
            if count > MAX_COMPONENTS:
                raise fail(number, f"more than {MAX_COMPONENTS:,} components")
            component = Component(kind, number)
            (stack[-1].components if stack else top).append(component)
            stack.append(component)
        elif name == "END":
            kind = value.strip().upper()
            if not stack:
                raise fail(number, f"END:{kind} without a BEGIN")
            if stack[-1].name != kind:
                raise fail(
                    number,
                    f"END:{kind} but BEGIN:{stack[-1].name} on line {stack[-1].line} is open",
                )
            stack.pop()
        elif stack:
            stack[-1].properties.append(Property(name, params, value, number))
        elif name:
            raise fail(number, f"property {name} outside BEGIN:VCALENDAR ... END:VCALENDAR")
    if stack:
        raise InputError(
            f"BEGIN:{stack[-1].name} on line {stack[-1].line} has no END:{stack[-1].name} "
            "(the file is cut short)",
            file=source,
        )
    return top


def _logical_lines(data: bytes, fail: Fail) -> Iterator[tuple[int, str]]:
    """(first physical line number, unfolded and decoded text) of each content line."""
    raiser = fail
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = data.split(b"\n")
    if len(lines) > MAX_LINES:
        raise raiser(MAX_LINES, f"more than {MAX_LINES:,} lines")
    parts: list[bytes] = []
    start = 0
    size = 0
    for index, raw in enumerate(lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if raw[:1] in (b" ", b"\t") and parts:
            parts.append(raw[1:])
            size += len(raw)
            if size > MAX_LINE_BYTES:
                raise raiser(start, "a content line longer than 8 MB")
            continue
        if parts:
            yield start, _decode(b"".join(parts), start, raiser)
        parts = [raw] if raw else []
        start = index
        size = len(raw)
    if parts:
        yield start, _decode(b"".join(parts), start, raiser)


def _decode(raw: bytes, line: int, fail: Fail) -> str:
    bad = _CONTROL.search(raw)
    if bad is not None:
        byte = raw[bad.start()]
        what = "a NUL byte" if byte == 0 else f"the control character 0x{byte:02x}"
        raise fail(line, f"{what}: not allowed in iCalendar text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail(
            line, f"not UTF-8 text: invalid byte 0x{raw[exc.start]:02x}; save the file as UTF-8"
        ) from None


def _split(text: str, line: int, fail: Fail) -> tuple[str, dict[str, str], str]:
    """``NAME;P=v:VALUE`` -> (NAME, {P: v}, VALUE)."""
    colon = text.find(":")
    semi = text.find(";")
    if colon < 0:
        if not text.strip():
            return "", {}, ""
        raise fail(
            line,
            f"not a content line (no ':'): {text[:60]!r}; a folded line must start with a "
            "space (broken folding?)",
        )
    if semi < 0 or semi > colon:
        name = text[:colon]
        if not _NAME.fullmatch(name):
            raise fail(line, _bad_name(name))
        return name.upper(), {}, text[colon + 1 :]
    name = text[:semi]
    if not _NAME.fullmatch(name):
        raise fail(line, _bad_name(name))
    params: dict[str, str] = {}
    index = semi
    length = len(text)
    while index < length and text[index] == ";":
        equals = text.find("=", index + 1)
        if equals < 0:
            raise fail(line, f"{name}: a parameter without '='")
        key = text[index + 1 : equals].upper()
        index = equals + 1
        values = []
        while True:
            if index < length and text[index] == '"':
                close = text.find('"', index + 1)
                if close < 0:
                    raise fail(line, f"{name};{key}: an unclosed quote")
                values.append(text[index + 1 : close])
                index = close + 1
            else:
                stop = index
                while stop < length and text[stop] not in ",;:":
                    stop += 1
                values.append(text[index:stop])
                index = stop
            if index < length and text[index] == ",":
                index += 1
                continue
            break
        params[key] = ",".join(values)
    if index >= length or text[index] != ":":
        raise fail(line, f"{name}: no ':' after its parameters")
    return name.upper(), params, text[index + 1 :]


def _bad_name(name: str) -> str:
    return (
        f"not a content line: {name[:40]!r} is not a property name; a folded line must "
        "start with a space (broken folding?)"
    )
