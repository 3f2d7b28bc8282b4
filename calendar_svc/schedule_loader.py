"""A schedule file of either kind -> ``CalendarSpec``: TOML as written, ``.ics`` into a calendar.

``calendar-svc import`` and the daemon's ``schedules`` globs read files through
``load_schedule``: a TOML file names its own calendar; an ``.ics`` file goes
into the calendar it is given (``--calendar``, or a ``schedules`` table's
``calendar``), else the one named after the file (``Team Offsite.ics`` ->
``team-offsite``). An .ics file's floating times and instants use ``zone``,
else the calendar's own zone when the calendar exists.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from calendar_svc.errors import NotFoundError
from calendar_svc.ics_in import IcsOptions, load_ics
from calendar_svc.schedule_files import CalendarSpec, load_file
from calendar_svc.store import Store

ICS_SUFFIXES = (".ics", ".ical", ".ifb", ".icalendar")


@dataclass
class Loaded:
    """A file's spec and what reading it changed or left out (warnings for the person)."""

    spec: CalendarSpec
    warnings: list[str] = field(default_factory=list)


def is_ics(path: Path) -> bool:
    return path.suffix.lower() in ICS_SUFFIXES


def slug_from_path(path: Path) -> str:
    """A calendar slug from a file name: ``Team Offsite 2025.ics`` -> ``team-offsite-2025``."""
    ascii_name = unicodedata.normalize("NFKD", path.stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug or "calendar"


def load_schedule(
    path: Path,
    *,
    store: Store | None,
    calendar: str | None = None,
    zone: str | None = None,
    own_domain: str | None = None,
) -> Loaded:
    """Read one schedule file (TOML or .ics) into a spec, validated."""
    if not is_ics(path):
        return Loaded(load_file(path))
    slug = calendar or slug_from_path(path)
    calendar_zone = None
    if store is not None:
        try:
            calendar_zone = store.get_calendar(slug).timezone
        except NotFoundError:
            calendar_zone = None
    result = load_ics(
        path,
        IcsOptions(slug=slug, zone=zone, calendar_zone=calendar_zone, own_domain=own_domain),
    )
    warnings = list(result.warnings)
    for kind, count in sorted(result.ignored.items()):
        warnings.append(f"{count} {kind} component(s) ignored (only VEVENTs are imported)")
    return Loaded(result.spec, [f"{path}: {w}" for w in warnings])
