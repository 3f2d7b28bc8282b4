"""iCalendar (.ics) files and bodies -> a validated ``CalendarSpec``, as a TOML file gives.

``parse_ics(data, options)`` reads the text (``reader``, with limits and line
numbers), resolves every TZID to an IANA zone (``zones``), turns each VEVENT
into the table a schedule file's ``[[entries]]`` would hold (``vevent``),
resolves series and their overrides (``series``) and validates every table
with the schedule files' own validator. The result goes through the same
``importer.import_specs`` as TOML, in the caller's transaction.

Errors are ``InputError`` naming the file, the VEVENT (its UID and line) and
the property; what was read but changed or left out (a VALARM after the
start, a URL that is not http, a custom VTIMEZONE) is listed in
``IcsCalendar.warnings``. Pure: no database, no network.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from calendar_svc.errors import InputError
from calendar_svc.ics_in import reader, series, values
from calendar_svc.ics_in.vevent import PROPERTY_OF, Context, Event, read_event, with_folds
from calendar_svc.ics_in.zones import ZoneResolver, iana_name
from calendar_svc.models import Origin
from calendar_svc.schedule_files import (
    SLUG_RE,
    CalendarSpec,
    EntrySpec,
    parse_entry,
    read_limited,
)

# What our own feeds say they are (ics.PRODID); their UIDs end in "@<slug>.<domain>".
OWN_PRODID = "-//calendar-svc//calendar-svc//EN"


@dataclass(frozen=True)
class IcsOptions:
    """How to read an .ics file into calendar ``slug``.

    ``zone``: ``--zone`` (a source's ``zone``): where floating times are when the
    file names no zone, and where instants are shown. ``calendar_zone``: the zone
    of the calendar when it exists. ``reminders``: offsets for every entry,
    overriding the VALARMs (None: the VALARMs'). ``own_domain``: ``[feed]
    domain``, so that importing our own feed keeps its uids.
    """

    slug: str
    zone: str | None = None
    calendar_zone: str | None = None
    reminders: tuple[str, ...] | None = None
    own_domain: str | None = None
    origin: Origin | None = None


@dataclass
class IcsCalendar:
    spec: CalendarSpec
    warnings: list[str] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)  # components not imported, by kind


def load_ics(path: str | Path, options: IcsOptions) -> IcsCalendar:
    """Read and convert one .ics file."""
    path = Path(path)
    name = str(path)
    # The schedule files' limit: larger files are refused before they are read (a source
    # has its own limit).
    data = read_limited(path)
    return parse_ics(data, options, source=name)


def parse_ics(data: bytes, options: IcsOptions, *, source: str) -> IcsCalendar:
    """Convert an iCalendar body into the spec of calendar ``options.slug``."""
    if not SLUG_RE.fullmatch(options.slug):
        raise InputError(
            f"calendar {options.slug!r} must be lowercase letters, digits and dashes "
            "(e.g. 'team-events')",
            file=source,
            field="--calendar",
        )
    cal = reader.read(data, source=source)
    warnings: list[str] = []
    x_wr = cal.get("X-WR-TIMEZONE")
    file_zone = iana_name(x_wr.value) if x_wr is not None else None
    if x_wr is not None and file_zone is None:
        warnings.append(f"X-WR-TIMEZONE {x_wr.value!r} is not a zone name; ignored")
    events = [c for c in cal.components if c.name == "VEVENT"]
    ignored = Counter(c.name for c in cal.components if c.name not in ("VEVENT", "VTIMEZONE"))
    common = _common_zone(events)
    display = options.zone or options.calendar_zone or file_zone or common or "UTC"
    resolver = ZoneResolver(
        (c for c in cal.components if c.name == "VTIMEZONE"),
        hints=[file_zone, options.zone, options.calendar_zone, common],
        source=source,
    )
    prodid = cal.get("PRODID")
    own = None
    if options.own_domain and prodid is not None and prodid.value.strip() == OWN_PRODID:
        own = re.compile(r"@[a-z0-9-]+\." + re.escape(options.own_domain) + r"$")
    ctx = Context(
        source=source,
        resolver=resolver,
        display_zone=display,
        floating_zone=file_zone or options.zone,
        reminders=options.reminders,
        own_suffix=own,
        warnings=warnings,
    )
    read = [read_event(component, ctx) for component in events]
    tables = series.entries(read, ctx)
    where = {event.uid: event for event in read}
    entries: list[EntrySpec] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        if table["uid"] in seen:
            continue
        seen.add(table["uid"])
        entries.append(_validated(table, index, source, display, where))
    name_prop = cal.get("X-WR-CALNAME") or cal.get("NAME")
    calendar_name = values.text(name_prop.value).strip() if name_prop is not None else ""
    desc = cal.get("X-WR-CALDESC")
    spec = CalendarSpec(
        source=source,
        slug=options.slug,
        name=calendar_name or options.slug,
        timezone=display,
        description=values.text(desc.value) if desc is not None else "",
        entries=tuple(entries),
        origin=options.origin,
        update_calendar=False,
    )
    return IcsCalendar(spec=spec, warnings=resolver.warnings + warnings, ignored=dict(ignored))


def _validated(
    table: dict[str, object], index: int, source: str, zone: str, where: Mapping[str, Event]
) -> EntrySpec:
    """The schedule files' validator on one table; its error names the VEVENT and property."""
    try:
        try:
            return parse_entry(table, index=index, source=source, default_zone=zone)
        except InputError:
            # Checked only when refused, since it costs as much as the conversion.
            folded = with_folds(table)
            if folded is None:
                raise
            return parse_entry(folded, index=index, source=source, default_zone=zone)
    except InputError as exc:
        uid = str(table.get("uid", f"#{index}"))
        event = where.get(uid.split("+", 1)[0]) or where.get(uid)
        line = getattr(event, "line", None)
        location = f"{uid} (VEVENT at line {line})" if line else uid
        field = PROPERTY_OF.get(exc.field or "", exc.field)
        raise InputError(exc.detail, file=source, location=location, field=field) from None


def _common_zone(events: list[reader.Component]) -> str | None:
    """The IANA zone most DTSTARTs name (a calendar's zone when the file names none)."""
    counts: Counter[str] = Counter()
    for event in events[:2000]:
        start = event.get("DTSTART")
        tzid = start.params.get("TZID") if start is not None else None
        if tzid:
            counts[tzid] += 1
    for tzid, _count in counts.most_common(3):
        zone = iana_name(tzid)
        if zone is not None and zone != "UTC":
            return zone
    return None
