"""Entries -> ``icalendar.Calendar`` -> bytes. Pure: no database, no network, no clock.

Everything a subscriber's app sees is built here, as the icalendar library writes it:

* ``build_calendar`` gives the whole feed as one ``icalendar.Calendar`` (the
  reference output; ``render`` serialises it).
* ``header_bytes`` / ``timezone_bytes`` / ``event_bytes`` / ``assemble`` give
  the same bytes in pieces, so ``feed.cache`` can keep each serialised VEVENT
  and rebuild a feed after one edit by joining. ``Calendar.to_ical`` is the
  header's lines, then each subcomponent's ``to_ical`` in order, then
  ``END:VCALENDAR``: joining the pieces is byte-identical (a test checks).
  ``event_bytes`` writes a VEVENT's lines from the same properties
  ``build_event`` adds, asking icalendar once how each kind of value is written
  (about five times faster than building the component; tests compare the
  bytes with icalendar's over every kind of entry).

Output is deterministic: timestamps come from the entries (never "now"),
properties are sorted (``to_ical(sorted=True)``), entries keep the order given
(the store's: start, calendar, uid) and VTIMEZONEs are sorted by TZID.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache

from icalendar import Alarm, Component, Event, vCategory, vRecur, vText
from icalendar import Calendar as ICalendar
from icalendar.caselessdict import canonsort_keys
from icalendar.parser import Contentline

from calendar_svc import timezones, vtimezone
from calendar_svc.config import Config, FeedConfig, RemindersConfig
from calendar_svc.durations import format_duration
from calendar_svc.models import Calendar, Entry, EntryStatus
from calendar_svc.recurrence import parse_wall, wall_instant
from calendar_svc.reminders.rules import alarm_offsets, trigger_instant
from calendar_svc.timezones import UTC, to_local

PRODID = "-//calendar-svc//calendar-svc//EN"
# What ends a feed; a header alone, serialised by icalendar, ends with it too.
FOOTER = b"END:VCALENDAR\r\n"
_STATUS = {status: status.upper() for status in EntryStatus}
_TRANSP = {"opaque": "OPAQUE", "transparent": "TRANSPARENT"}
# Any instant does: whether icalendar writes a zone's times with a TZID or as UTC
# depends on the zone alone.
_PROBE_INSTANT = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
# RFC 5545 TEXT has no form for control characters other than TAB and the
# line break; dropping them is the only way every parser reads the value back.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NEWLINES = re.compile("\r\n?|[\x85\u2028\u2029]")


_FEED, _REMINDERS = FeedConfig(), RemindersConfig()


@dataclass(frozen=True)
class FeedOptions:
    """What a feed looks like beyond its data: from the ``[feed]`` and ``[reminders]`` config
    (the defaults are the config's)."""

    domain: str = _FEED.domain
    refresh_interval: timedelta = _FEED.refresh_interval
    include_alarms: bool = _FEED.include_alarms
    # Reminder offsets of entries whose entry and calendar both inherit.
    default_offsets: tuple[timedelta, ...] = _REMINDERS.offsets
    # All-day entries remind once, at this local time the day before (as the daemon does).
    all_day_time: time = _REMINDERS.all_day_time

    def alarm_offsets(self, entry: Entry, calendar: Calendar) -> tuple[timedelta, ...]:
        """The VALARM triggers of ``entry``: the daemon's own (``reminders.rules.alarm_offsets``),
        none when it is cancelled."""
        return alarm_offsets(
            entry, calendar.reminders, self.default_offsets, all_day_time=self.all_day_time
        )

    @classmethod
    def from_config(cls, config: Config) -> FeedOptions:
        return cls(
            domain=config.feed.domain,
            refresh_interval=config.feed.refresh_interval,
            include_alarms=config.feed.include_alarms,
            default_offsets=tuple(config.reminders.offsets),
            all_day_time=config.reminders.all_day_time,
        )


def clean_text(value: str) -> str:
    """The text a parser gives back for ``value``: one newline form, no control characters.

    CR LF, a lone CR and the Unicode line separators become ``\\n`` (some
    parsers split lines on them); other C0 controls are dropped.
    """
    return _CONTROL.sub("", _NEWLINES.sub("\n", value))


def optional_text(value: str) -> str:
    """What an optional text property (DESCRIPTION, LOCATION) shows: "" leaves it out.

    Whitespace alone is left out: there is nothing to show, and libical (Evolution,
    KDE) reports such a property as an error and drops it.
    """
    text = clean_text(value)
    return text if text.strip() else ""


class _Text(vText):
    """TEXT escaped by RFC 5545 alone.

    icalendar's own escaping first turns a literal backslash-N into a line
    break (it accepts ``\\N`` as a newline on input), so ``C:\\New`` would come
    back as two lines; here every backslash is escaped and nothing else changes.
    """

    __slots__ = ()

    def to_ical(self) -> bytes:
        return self.escaped().encode("utf-8")

    def escaped(self) -> str:
        return (
            self.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
        )


def _text(value: str) -> _Text:
    return _Text(clean_text(value))


def _categories(values: Iterable[str]) -> vCategory:
    prop = vCategory([])
    prop.cats = [_text(value) for value in values]
    return prop


def event_uid(entry: Entry, calendar: Calendar, options: FeedOptions) -> str:
    """Globally unique and stable across edits: ``<uid>@<calendar slug>.<domain>``."""
    return f"{entry.uid}@{calendar.slug}.{options.domain}"


def used_tzids(entries: Iterable[Entry]) -> list[str]:
    """The zones the entries' DTSTART/DTEND name (all-day entries are dates: none), sorted.
    A zone the tz database does not have is written as UTC (``_when``): none either."""
    zones: set[str] = set()
    for entry in entries:
        if not entry.all_day:
            zones.add(entry.start_tz)
            zones.add(entry.end_tz)
    return sorted(zone for zone in zones if timezones.is_zone(zone))


def build_event(entry: Entry, calendar: Calendar, options: FeedOptions) -> Event:
    """One VEVENT (with its VALARMs) for ``entry`` of ``calendar``."""
    event = Event()
    for name, value in _event_properties(entry, calendar, options):
        event.add(name, value)
    for offset in _alarms(entry, calendar, options):
        alarm = Alarm()
        for name, value in _alarm_properties(entry, offset):
            alarm.add(name, value)
        event.add_component(alarm)
    return event


Property = tuple[str, object]


def _event_properties(entry: Entry, calendar: Calendar, options: FeedOptions) -> list[Property]:
    """The VEVENT's properties as (name, value) for ``Component.add``: what ``build_event``
    adds and ``event_bytes`` writes."""
    props: list[Property] = [("uid", event_uid(entry, calendar, options))]
    # DTSTAMP and LAST-MODIFIED both follow the entry's last edit, never "now":
    # a feed of unchanged data is byte-identical, so its ETag stays the same.
    props.append(("dtstamp", entry.updated_at.astimezone(UTC)))
    props.append(("last-modified", entry.updated_at.astimezone(UTC)))
    props.append(("created", entry.created_at.astimezone(UTC)))
    props.append(("sequence", entry.sequence))
    if entry.all_day:
        props.append(("dtstart", entry.start_day))
        props.append(("dtend", entry.last_day + timedelta(days=1)))
    else:
        # The first occurrence of a series keeps its wall time, whatever its fold: the
        # RRULE repeats that wall time (recurrence.occurrences does the same).
        props.append(
            (
                "dtstart",
                _when(
                    entry.start_utc,
                    entry.start_local,
                    entry.start_tz,
                    entry.start_fold,
                    entry.rrule,
                ),
            )
        )
        # RFC 5545 wants DTEND later than DTSTART; an instant has no DTEND.
        if entry.end_utc > entry.start_utc:
            props.append(
                ("dtend", _when(entry.end_utc, entry.end_local, entry.end_tz, entry.end_fold, None))
            )
    props.append(("summary", _text(entry.title)))
    if description := optional_text(entry.description):
        props.append(("description", _Text(description)))
    if location := optional_text(entry.location):
        props.append(("location", _Text(location)))
    if entry.geo_lat is not None and entry.geo_lon is not None:
        props.append(("geo", (entry.geo_lat, entry.geo_lon)))
    if entry.url:
        props.append(("url", entry.url))
    if entry.categories:
        props.append(("categories", _categories(entry.categories)))
    props.append(("status", _STATUS.get(entry.status, "CONFIRMED")))
    props.append(("transp", _TRANSP.get(entry.transparency, "OPAQUE")))
    if entry.rrule:
        props.append(("rrule", vRecur.from_ical(entry.rrule)))
    for name, walls in (("rdate", entry.rdates), ("exdate", entry.exdates)):
        if walls:
            props.append((name, _occurrence_values(entry, walls)))
    return props


def _alarms(entry: Entry, calendar: Calendar, options: FeedOptions) -> list[timedelta]:
    """The VALARMs' offsets before the start: the daemon's reminders (all-day: one, the day
    before), none when the feed leaves alarms out."""
    if not options.include_alarms:
        return []
    offsets = []
    for offset in options.alarm_offsets(entry, calendar):
        if (
            offset.days
            and not entry.all_day
            and timezones.is_zone(entry.start_tz)
            and _in_utc(
                entry.start_utc,
                entry.start_local,
                entry.start_tz,
                entry.start_fold,
                entry.rrule,
            )
        ):
            # A DTSTART written in UTC makes a trigger's days UTC days; the reminder
            # counts them in the entry's zone: say the same instant as exact time.
            due = trigger_instant(
                entry.start_utc, offset, entry.start_tz, all_day=False, wall=entry.start_local
            )
            offset = entry.start_utc - due
        offsets.append(offset)
    return offsets


def _occurrence_values(entry: Entry, walls: Sequence[str]) -> list[date | datetime]:
    """RDATE/EXDATE values: dates for an all-day entry, else times in the entry's zone
    (one property, one TZID, as DTSTART has)."""
    values: list[date | datetime] = []
    for text in walls:
        wall = parse_wall(text)
        if entry.all_day:
            values.append(wall.date() if isinstance(wall, datetime) else wall)
        else:
            values.append(to_local(wall_instant(entry, wall), entry.start_tz))
    return values


def _when(
    instant: datetime, wall: datetime, zone: str, fold: int | None, rrule: str | None
) -> datetime:
    """A DTSTART/DTEND value: the entry's wall time in ``zone``, which icalendar writes with
    TZID=<IANA name> (pytz via ``timezones.as_written``, never ``datetime(...,
    tzinfo=zone)``, which gives LMT offsets; a series' first wall time in a gap keeps its
    digits), or the instant in UTC (``_in_utc``)."""
    if _in_utc(instant, wall, zone, fold, rrule):
        return instant.astimezone(UTC)
    return timezones.as_written(wall, zone, instant)


def _in_utc(
    instant: datetime, wall: datetime, zone: str, fold: int | None, rrule: str | None
) -> bool:
    """Whether a time is written as its instant in UTC rather than as its wall time: where
    the zone cannot be written (the tz database in use does not have it: an entry kept
    after its zone went away), or, but for a series (its RRULE repeats the wall time), the
    wall time is one that a DST change skips or repeats. RFC 5545 reads such a time with
    the offset before the change (the first of two), but readers differ (libical takes
    the second of two), and with ``fold = 1`` that would be another instant anyway."""
    if not timezones.is_zone(zone):
        return True
    return rrule is None and timezones.classify(wall, zone) != "ok"


def _alarm_properties(entry: Entry, offset: timedelta) -> list[Property]:
    return [
        ("action", "DISPLAY"),
        # DISPLAY alarms must have a DESCRIPTION with something in it.
        ("description", _Text(optional_text(entry.title) or "Reminder")),
        ("trigger", -offset),
    ]


def build_header(calendar: Calendar, options: FeedOptions) -> ICalendar:
    """The VCALENDAR with its properties and no components."""
    cal = ICalendar()
    cal.add("version", "2.0")
    cal.add("prodid", PRODID)
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("name", _text(calendar.name))
    cal.add("x-wr-calname", _text(calendar.name))
    if calendar.description:
        cal.add("x-wr-caldesc", _text(calendar.description))
    # Every DATE-TIME here carries a TZID or is UTC, so a default zone moves no
    # instant; it only tells clients which zone the calendar "lives" in.
    cal.add("x-wr-timezone", calendar.timezone)
    refresh = format_duration(options.refresh_interval)
    cal.add("refresh-interval", options.refresh_interval, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", refresh)
    return cal


def build_calendar(calendar: Calendar, entries: Sequence[Entry], options: FeedOptions) -> ICalendar:
    """The whole feed as one ``icalendar.Calendar``: header, VTIMEZONEs (sorted by
    TZID, from ``first_year(entries)`` on), then VEVENTs."""
    cal = build_header(calendar, options)
    year = first_year(entries)
    zones: dict[str, str] = {}
    for zone in used_tzids(entries):
        if (tzid := _tzid_written(zone)) is not None:
            zones.setdefault(tzid, zone)
    for tzid in sorted(zones):
        cal.add_component(vtimezone.vtimezone(zones[tzid], year))
    for entry in entries:
        cal.add_component(build_event(entry, calendar, options))
    return cal


def to_bytes(cal: ICalendar) -> bytes:
    data: bytes = cal.to_ical(sorted=True)
    return data


def render(calendar: Calendar, entries: Sequence[Entry], options: FeedOptions) -> bytes:
    """The feed's bytes, built in one piece by icalendar (``feed.cache`` gives the same, faster)."""
    return to_bytes(build_calendar(calendar, entries, options))


# --- the same bytes in pieces -------------------------------------------------------


def header_bytes(calendar: Calendar, options: FeedOptions) -> bytes:
    """``BEGIN:VCALENDAR`` and the calendar's properties (everything before the components)."""
    data = to_bytes(build_header(calendar, options))
    assert data.endswith(FOOTER)
    return data[: -len(FOOTER)]


def event_bytes(entry: Entry, calendar: Calendar, options: FeedOptions) -> bytes:
    """One serialised VEVENT, exactly as it appears inside ``render``'s output:
    ``build_event(...).to_ical(sorted=True)``, byte for byte (tests check it over every
    kind of entry), written from the same properties without building the component."""
    lines = _component_lines(Event, _event_properties(entry, calendar, options))
    end = lines.pop()
    for offset in _alarms(entry, calendar, options):
        lines += _component_lines(Alarm, _alarm_properties(entry, offset))
    lines.append(end)
    return _fold(lines)


# --- writing content lines as icalendar does ----------------------------------------
#
# A feed's cold render is one VEVENT per entry, and icalendar's generic machinery (a
# property class and a Parameters dict per value, then a content line parsed back
# apart for its parameters) costs about 0.5 ms per VEVENT: a 10,000-entry feed takes
# seconds. The values a VEVENT holds are few kinds, and for each kind the line is
# "NAME[;PARAMS]:VALUE" with a part icalendar decides once: the parameters of a time
# in a given zone, whether it ends in "Z", whether a property is TEXT. Those are asked
# of icalendar itself, by serialising one such value and reading the line back, and
# kept; a value of any other kind (GEO, URL, CATEGORIES, RRULE, RDATE, EXDATE) is
# serialised by icalendar whole.

# icalendar folds a content line of this many octets or more.
_FOLD_AT = 75
_DATE_TIME = "{0.year:04}{0.month:02}{0.day:02}T{0.hour:02}{0.minute:02}{0.second:02}"
_DATE = "{0.year:04}{0.month:02}{0.day:02}"
# (component class, NAME, kind) -> (what comes before the value, what follows it), or
# None where icalendar writes such a value otherwise (then it writes each one).
_Shape = tuple[str, str] | None
_SHAPES: dict[tuple[type[Component], str, object], _Shape] = {}
_MAX_SHAPES = 4096  # one per zone (in each of its offsets) and property: a few dozen


def _component_lines(kind: type[Component], properties: list[Property]) -> list[str]:
    """BEGIN, the properties in icalendar's order (``sorted_keys``), END: unfolded."""
    by_name: dict[str, list[str]] = {}
    for name, value in properties:
        upper = name.upper()
        by_name.setdefault(upper, []).extend(_property_lines(kind, upper, value))
    lines = [f"BEGIN:{kind.name}"]
    for name in _order(kind, tuple(by_name)):
        lines += by_name[name]
    lines.append(f"END:{kind.name}")
    return lines


@lru_cache(maxsize=256)
def _order(kind: type[Component], names: tuple[str, ...]) -> list[str]:
    return canonsort_keys(names, kind.canonical_order)


def _property_lines(kind: type[Component], name: str, value: object) -> list[str]:
    if isinstance(value, _Text):
        return [f"{name}:{value.escaped()}"]
    if isinstance(value, str):
        if name in _CONSTANT_TEXT:
            return [_constant_text_line(kind, name, value)]
        if _is_text(kind, name):
            return [f"{name}:{vText(value).to_ical().decode()}"]
    elif isinstance(value, datetime):
        if (tz := value.tzinfo) is not None:
            # Fixed offsets compare equal whatever their names: they are told apart here.
            key = (tz.utcoffset(None), tz.tzname(None)) if type(tz) is timezone else tz
            shape = _shape(kind, name, key, value)
            if shape is not None:
                return [f"{shape[0]}{_DATE_TIME.format(value)}{shape[1]}"]
    elif isinstance(value, date):
        shape = _shape(kind, name, date, value)
        if shape is not None:
            return [f"{shape[0]}{_DATE.format(value)}{shape[1]}"]
    elif isinstance(value, int) and not isinstance(value, bool):
        shape = _shape(kind, name, int, value)
        if shape is not None:
            return [f"{shape[0]}{value}{shape[1]}"]
    elif isinstance(value, timedelta):
        return _lines_of_value(kind, name, value)
    return _icalendar_lines(kind, name, value)


# Properties whose few values repeat in every VEVENT and VALARM: their lines are kept.
_CONSTANT_TEXT = frozenset(("STATUS", "TRANSP", "ACTION"))


@lru_cache(maxsize=64)
def _constant_text_line(kind: type[Component], name: str, value: str) -> str:
    return _icalendar_lines(kind, name, value)[0]


@lru_cache(maxsize=64)
def _is_text(kind: type[Component], name: str) -> bool:
    """Whether icalendar makes a plain string given for ``name`` a TEXT value (vText)."""
    return kind.types_factory.for_property(name) is vText


def _shape(kind: type[Component], name: str, key: object, value: object) -> _Shape:
    """How icalendar writes ``value`` (a time, date or integer) of ``name``: the line's
    text before and after the value's own digits, learnt from ``value`` itself the first
    time a (property, zone or type) comes up."""
    try:
        return _SHAPES[(kind, name, key)]
    except KeyError:
        pass
    if isinstance(value, datetime):
        digits = _DATE_TIME.format(value)
    elif isinstance(value, date):
        digits = _DATE.format(value)
    else:
        digits = str(value)
    shape: _Shape = None
    lines = _icalendar_lines(kind, name, value)
    if len(lines) == 1:
        head, colon, rest = lines[0].partition(":")
        # The value's digits, then nothing or a "Z": anything else is written whole.
        if colon and rest.startswith(digits) and rest[len(digits) :] in ("", "Z"):
            shape = (head + colon, rest[len(digits) :])
    if len(_SHAPES) >= _MAX_SHAPES:
        _SHAPES.clear()
    _SHAPES[(kind, name, key)] = shape
    return shape


@lru_cache(maxsize=256)
def _lines_of_value(kind: type[Component], name: str, value: timedelta) -> list[str]:
    """A TRIGGER's lines: a few offsets serve every alarm."""
    return _icalendar_lines(kind, name, value)


def _icalendar_lines(kind: type[Component], name: str, value: object) -> list[str]:
    """``name`` with ``value``, as icalendar writes it (a list value may give several)."""
    component = kind()
    component.add(name, value)
    added = component[name]
    values = added if isinstance(added, list) else [added]
    return [str(component.content_line(name, one, sorted=True)) for one in values]


def _fold(lines: list[str]) -> bytes:
    """The lines as icalendar writes them: most are shorter than a fold and are encoded
    directly (icalendar's folding walks every character of a line); the rest go through
    its own ``Contentline.to_ical``."""
    out: list[bytes] = []
    for line in lines:
        data = line.encode("utf-8")
        # A newline would be icalendar's error to raise: leave such a line to it.
        if len(data) >= _FOLD_AT or b"\n" in data:
            data = Contentline(line).to_ical()  # type: ignore[no-untyped-call]
        out.append(data)
    return b"\r\n".join(out) + b"\r\n"


def first_year(entries: Iterable[Entry]) -> int:
    """The year the feed's VTIMEZONEs must start in: the earliest local year of a timed
    entry's start or end, and never later than ``vtimezone.DEFAULT_FIRST_YEAR`` (1970),
    so the usual feed has the usual blocks."""
    year = vtimezone.DEFAULT_FIRST_YEAR
    for entry in entries:
        if not entry.all_day:
            year = min(year, entry.start_local.year, entry.end_local.year)
    return year


def _tzid_written(zone: str) -> str | None:
    """The TZID icalendar writes for times in ``zone``, or None when it writes them as
    UTC (``Z``): UTC itself and zones it holds equal to it."""
    return _tzid_in(timezones.current(), zone)


@lru_cache(maxsize=512)
def _tzid_in(database: object, zone: str) -> str | None:
    del database  # part of the cache key only: another tz database, another answer
    probe = Event()
    probe.add("dtstart", to_local(_PROBE_INSTANT, zone))
    tzid = probe["DTSTART"].params.get("TZID")
    return None if tzid is None else str(tzid)


def timezone_block(
    zone: str, first_year: int = vtimezone.DEFAULT_FIRST_YEAR
) -> tuple[str, bytes] | None:
    """(TZID, VTIMEZONE bytes) for ``zone``, from 1 January of ``first_year`` on and
    never ending (see ``vtimezone``); cached per tz database, zone and year.

    None when no VTIMEZONE is needed (icalendar writes the zone's times with ``Z``), or
    the tz database in use has no such zone (its entries are written in UTC).
    """
    if not timezones.is_zone(zone) or _tzid_written(zone) is None:
        return None
    return vtimezone.vtimezone_bytes(zone, first_year)


def timezone_blocks(
    zones: Iterable[str], first_year: int = vtimezone.DEFAULT_FIRST_YEAR
) -> list[bytes]:
    """The VTIMEZONEs for ``zones``, once per TZID, in ``build_calendar``'s order.

    ``first_year``: ``first_year(entries)`` of the feed's entries; the default covers
    every feed whose timed entries start and end in 1970 or later.
    """
    blocks = dict(
        block for zone in zones if (block := timezone_block(zone, first_year)) is not None
    )
    return [blocks[tzid] for tzid in sorted(blocks)]


def assemble(header: bytes, timezones: Iterable[bytes], events: Iterable[bytes]) -> bytes:
    return b"".join((header, *timezones, *events, FOOTER))
