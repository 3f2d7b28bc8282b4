"""Edits of single entries by people and programs (the CLI's ``add``/``edit``/``move`` and the
HTTP API), through the one validator schedule files go through.

An edit is never validated on its own terms: the stored entry is turned back
into the ``[[entries]]`` table a schedule file would hold (``raw_of``), the
edit is applied to that table, and the result goes through
``schedule_files.parse_entry``, so an entry is accepted or refused the same
way, with the same words, whether it comes from TOML, an .ics file, the CLI or
the API. ``wall_value`` reads a date or date-time written as text the way TOML
reads it.

The writes work in a transaction their caller owns (as ``importer`` does):
``lock_calendar`` first (the calendar row, then its entries, the order an
import takes them), then ``create``, ``replace`` or ``remove``. Ownership
(``models.Origin``): an entry that a schedule file or a source owns is refused
with OwnedEntryError naming the owner, unless the edit detaches it; then the
entry is owned by the editor (``OriginKind.API``), and imports of that file or
source leave it alone (they list it as kept). Every change that a subscriber
sees raises the entry's SEQUENCE and bumps its calendar's version in the same
transaction, which the feed and the daemon's planner notice on their next look.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from calendar_svc import timezones
from calendar_svc.db import is_sqlite
from calendar_svc.durations import format_duration
from calendar_svc.errors import (
    AlreadyExistsError,
    NotFoundError,
    OwnedEntryError,
    StaleVersionError,
)
from calendar_svc.importer import entry_values
from calendar_svc.models import Calendar, Entry, Origin, OriginKind
from calendar_svc.schedule_files import EntrySpec, parse_entry
from calendar_svc.store import bump

# A date, or a date-time as TOML and RFC 3339 write it ('T' or a space; seconds optional
# here), with an optional offset: what may stand for a TOML date or date-time value.
_WALL = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(?P<offset>Z|[+-]\d{2}:\d{2})?)?",
    re.IGNORECASE,
)


def wall_value(value: Any) -> Any:
    """Text that reads as a TOML date, local date-time or offset date-time, as that value
    (``date``, naive ``datetime`` or aware ``datetime``); anything else unchanged, for the
    validator to refuse in its own words."""
    if not isinstance(value, str):
        return value
    match = _WALL.fullmatch(value.strip())
    if match is None:
        return value
    try:
        day = date.fromisoformat(match["date"])
        if match["time"] is None:
            return day
        clock = time.fromisoformat(match["time"])
        moment = datetime.combine(day, clock)
        offset = match["offset"]
        if offset is None:
            return moment
        return datetime.fromisoformat(
            f"{moment.isoformat()}{offset.upper().replace('Z', '+00:00')}"
        )
    except ValueError:
        return value


def _wall_text_value(text: str) -> date | datetime:
    """A stored RDATE/EXDATE wall time (``recurrence.wall_text``) as the TOML value."""
    return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)


def raw_of(entry: Entry) -> dict[str, Any]:
    """The stored entry as the ``[[entries]]`` table that ``parse_entry`` reads back into it.

    Optional fields at their defaults are left out, so an edit that sets one to its
    default and one that removes it read the same.
    """
    raw: dict[str, Any] = {"uid": entry.uid, "title": entry.title, "timezone": entry.start_tz}
    if entry.all_day:
        raw["start"] = entry.start_day
        raw["end"] = entry.last_day
    else:
        raw["start"] = entry.start_local
        raw["end"] = entry.end_local
        if entry.end_tz != entry.start_tz:
            raw["end_timezone"] = entry.end_tz
        if entry.start_fold is not None:
            raw["fold"] = entry.start_fold
        if entry.end_fold is not None:
            raw["end_fold"] = entry.end_fold
    for key in ("description", "location", "city", "url"):
        if getattr(entry, key):
            raw[key] = getattr(entry, key)
    if entry.geo_lat is not None and entry.geo_lon is not None:
        raw["geo"] = [entry.geo_lat, entry.geo_lon]
    if entry.categories:
        raw["categories"] = list(entry.categories)
    if entry.status != "confirmed":
        raw["status"] = str(entry.status)
    if entry.transparency != "opaque":
        raw["transparency"] = entry.transparency
    if entry.rrule:
        raw["rrule"] = entry.rrule
    if entry.reminders is not None:
        raw["reminders"] = list(entry.reminders)
    if entry.rdates:
        raw["rdate"] = [_wall_text_value(text) for text in entry.rdates]
    if entry.exdates:
        raw["exdate"] = [_wall_text_value(text) for text in entry.exdates]
    return raw


def keep_length(entry: Entry, raw: dict[str, Any], start: Any) -> None:
    """Make ``raw`` (``entry``'s table) start at ``start`` and last as long as ``entry``
    does: a timed entry its exact length (``duration``, ending in its end zone), an
    all-day one its number of days. A start of the other kind (a date for a timed entry)
    keeps no length: the validator's defaults apply."""
    for key in ("end", "fold", "end_fold", "duration"):
        raw.pop(key, None)
    raw["start"] = start
    if isinstance(start, datetime):
        if not entry.all_day:
            raw["duration"] = format_duration(entry.end_utc - entry.start_utc)
    elif isinstance(start, date) and entry.all_day:
        raw["end"] = start + (entry.last_day - entry.start_day)


def validate(raw: dict[str, Any], *, source: str, default_zone: str) -> EntrySpec:
    """``raw`` (an ``[[entries]]`` table) through the schedule files' validator; an
    InputError names ``source``, the entry and the field."""
    return parse_entry(raw, index=1, source=source, default_zone=default_zone)


# --- writes, in the caller's transaction --------------------------------------------------


def lock_calendar(session: Session, slug: str) -> Calendar:
    """The calendar ``slug``, locked for this transaction (PostgreSQL ``FOR UPDATE``; a
    SQLite write transaction excludes every other writer already); NotFoundError if none."""
    query = select(Calendar).where(Calendar.slug == slug)
    if not is_sqlite(session):
        query = query.with_for_update()
    calendar = session.scalar(query)
    if calendar is None:
        raise NotFoundError(f"no calendar {slug!r}")
    return calendar


def find(session: Session, calendar: Calendar, uid: str) -> Entry:
    """The entry ``uid`` of ``calendar`` (locked with it); NotFoundError if none."""
    query = select(Entry).where(Entry.calendar_id == calendar.id, Entry.uid == uid)
    if not is_sqlite(session):
        query = query.with_for_update()
    entry = session.scalar(query)
    if entry is None:
        raise NotFoundError(f"no entry {uid!r} in calendar {calendar.slug!r}")
    return entry


def check_version(row: Entry | Calendar, expected: Collection[int] | None, what: str) -> None:
    """StaleVersionError unless the row is still at one of the versions ``expected`` (None:
    any version will do)."""
    if expected is not None and row.version not in expected:
        said = ", ".join(str(v) for v in sorted(expected)) or "none given"
        raise StaleVersionError(
            f"{what} is at version {row.version}, not {said}: it changed since it was read; "
            "read it again and redo the change"
        )


def owner_text(owner: Origin) -> str:
    """``schedule file /etc/calendar-svc/trip.toml`` or ``source 'conference'``."""
    if owner.kind == OriginKind.FILE:
        return f"schedule file {owner.name}"
    return str(owner)


def check_owner(entry: Entry, *, detach: bool, how: str) -> bool:
    """Whether the edit takes the entry over from a schedule file or source (``detach``);
    OwnedEntryError naming the owner when it belongs to one and the edit does not detach.
    ``how`` says how to detach (``--detach`` or ``"detach": true``)."""
    owner = entry.origin
    if owner is None or owner.kind == OriginKind.API:
        return False
    if detach:
        return True
    raise OwnedEntryError(
        f"entry {entry.uid!r} belongs to {owner_text(owner)}: change it there, or detach "
        f"it with {how} (then that {'file' if owner.kind == OriginKind.FILE else 'source'} "
        "leaves it alone and its imports list it as kept)"
    )


def create(
    session: Session, calendar: Calendar, spec: EntrySpec, *, owner: str, now: datetime
) -> Entry:
    """A new entry of ``calendar`` from ``spec``, owned by ``owner`` (through the API);
    AlreadyExistsError when the calendar has that uid."""
    existing = session.scalar(
        select(Entry.id).where(Entry.calendar_id == calendar.id, Entry.uid == spec.uid)
    )
    if existing is not None:
        raise AlreadyExistsError(
            f"calendar {calendar.slug!r} already has an entry {spec.uid!r}; change that one, "
            "or pick another uid"
        )
    entry = Entry(
        calendar_id=calendar.id,
        uid=spec.uid,
        sequence=0,
        tz_version=timezones.version(),
        created_at=now,
        updated_at=now,
        origin_kind=str(OriginKind.API),
        origin_name=owner,
        **entry_values(spec),
    )
    session.add(entry)
    bump(calendar, now)
    session.flush()
    return entry


def replace(
    session: Session, entry: Entry, spec: EntrySpec, *, owner: str, detach: bool, now: datetime
) -> bool:
    """Make ``entry`` what ``spec`` says; returns whether a subscriber sees a change.

    With ``detach`` the entry is taken over from its schedule file or source (owned by
    ``owner`` through the API from now on); that alone is no change a subscriber sees.
    """
    if detach:
        entry.origin_kind, entry.origin_name = str(OriginKind.API), owner
        entry.source_hash = None
    values = entry_values(spec)
    changed = any(_differs(getattr(entry, key), value) for key, value in values.items())
    if changed:
        for key, value in values.items():
            setattr(entry, key, value)
        entry.tz_version = timezones.version()
        entry.sequence += 1
        entry.updated_at = now
        bump(entry.calendar, now)
    session.flush()
    return changed


def remove(session: Session, entry: Entry, *, now: datetime) -> None:
    """Delete ``entry``: gone from its feed, its reminders cancelled by the next pass."""
    bump(entry.calendar, now)
    session.delete(entry)
    session.flush()


def _differs(current: Any, new: Any) -> bool:
    if isinstance(current, datetime) and isinstance(new, datetime):
        return current != new or (current.tzinfo is None) != (new.tzinfo is None)
    return bool(current != new)
