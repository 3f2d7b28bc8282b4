"""Schedule files into the database: upsert calendars and entries by (slug, uid).

``import_specs`` works inside a transaction its caller owns, so the caller
decides what "one import" is and whether it is kept::

    with store.write(dry_run=dry_run, what="the import") as session:
        report = import_specs(session, specs, now=store.clock(), prune=prune)

``dry_run`` rolls the transaction back, so the report says what would have
changed. ``calendar-svc import`` imports all its files in one transaction, the
daemon each changed file in its own. An entry is matched by its calendar's slug
and its uid. It is left alone when the file says what it said at the last
import (a digest of its fields), so an edit made since through the CLI, e.g. a
``cancel``, is kept; it is updated, with its SEQUENCE raised, when a field
changed. Every change bumps the calendar's version in the same transaction.

Every entry has one owner (``models.Origin``): the schedule file it came from
(by path), or the source (``[[sources]]``) that fetched it, or the API. An
import writes, and with ``prune`` deletes, only the entries its own origin holds
(or that have no owner yet, which it adopts); an entry another owner holds is
left alone and listed in the report as ``kept``. A file whose owner was another
file that no longer exists adopts its entries (a renamed schedule file), and
``adopt=True`` takes them from any other file; never from a source or the API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from calendar_svc import timezones
from calendar_svc.errors import InputError
from calendar_svc.models import Calendar, Entry, Origin, OriginKind
from calendar_svc.schedule_files import CalendarSpec, EntrySpec
from calendar_svc.store import bump, new_feed_token

# Entry fields an import compares and copies; a difference in any is an edit.
ENTRY_FIELDS = (
    "title",
    "description",
    "location",
    "city",
    "geo_lat",
    "geo_lon",
    "url",
    "status",
    "transparency",
    "all_day",
    "start_local",
    "start_tz",
    "start_fold",
    "end_local",
    "end_tz",
    "end_fold",
    "start_utc",
    "end_utc",
    "rrule",
)


@dataclass
class CalendarReport:
    """What an import did (or, in a dry run, would do) to one calendar: entry uids by outcome."""

    slug: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    # (uid, owner) of entries the import holds but another owner has: left alone.
    kept: list[tuple[str, str]] = field(default_factory=list)
    calendar_created: bool = False
    calendar_updated: bool = False

    @property
    def changed(self) -> bool:
        return bool(
            self.created
            or self.updated
            or self.pruned
            or self.calendar_created
            or self.calendar_updated
        )


@dataclass
class ImportReport:
    """What an import did, per calendar, in the order of the specs."""

    calendars: list[CalendarReport]

    def totals(self) -> dict[str, int]:
        return {
            name: sum(len(getattr(c, name)) for c in self.calendars)
            for name in ("created", "updated", "unchanged", "pruned")
        }

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.calendars)


def import_specs(
    session: Session,
    specs: Sequence[CalendarSpec],
    *,
    now: datetime,
    prune: bool = False,
    adopt: bool = False,
) -> ImportReport:
    """Upsert every calendar and entry of ``specs`` in ``session``'s transaction.

    With ``prune``, entries of those calendars that the specs no longer hold
    (and that their origin owns) are deleted; with ``adopt``, entries another
    schedule file owns are taken over. Two specs for one calendar are an
    InputError before anything is written. Nothing is committed here: the
    caller's transaction decides.
    """
    by_slug: dict[str, CalendarSpec] = {}
    for spec in specs:
        if spec.slug in by_slug:
            raise InputError(
                f"calendar {spec.slug!r} is also defined in {by_slug[spec.slug].source}; "
                "one calendar per file",
                file=spec.source,
                field="calendar.slug",
            )
        by_slug[spec.slug] = spec
    reports = [
        import_calendar(session, spec, now=now, prune=prune, adopt=adopt)
        for spec in by_slug.values()
    ]
    return ImportReport(calendars=reports)


def origin_of(spec: CalendarSpec) -> Origin:
    """Who owns what ``spec`` imports: its ``origin``, else the schedule file it was read from."""
    return spec.origin or Origin(OriginKind.FILE, spec.source)


def may_write(entry: Entry, origin: Origin, *, adopt: bool = False) -> bool:
    """Whether an import from ``origin`` may change (or prune) ``entry``."""
    owner = entry.origin
    if owner is None or owner == origin:
        return True
    if origin.kind != OriginKind.FILE or owner.kind != OriginKind.FILE:
        return False
    # A file takes over from a file that is gone (renamed), or when told to.
    return adopt or not Path(owner.name).exists()


def import_calendar(
    session: Session,
    spec: CalendarSpec,
    *,
    now: datetime,
    prune: bool = False,
    adopt: bool = False,
) -> CalendarReport:
    """Upsert one calendar and its entries in ``session``'s transaction."""
    report = CalendarReport(slug=spec.slug)
    origin = origin_of(spec)
    # The specs' instants were derived with the tz database in use (rederive.py).
    tz_version = timezones.version()
    calendar = session.scalar(select(Calendar).where(Calendar.slug == spec.slug))
    reminders = list(spec.reminders) if spec.reminders is not None else None
    if calendar is None:
        calendar = Calendar(
            slug=spec.slug,
            name=spec.name,
            description=spec.description,
            timezone=spec.timezone,
            reminders=reminders,
            feed_token=new_feed_token(),
            version=1,
            created_at=now,
            updated_at=now,
        )
        session.add(calendar)
        session.flush()
        report.calendar_created = True
        existing: dict[str, Entry] = {}
    elif spec.update_calendar:
        meta = {
            "name": spec.name,
            "description": spec.description,
            "timezone": spec.timezone,
            "reminders": reminders,
        }
        if any(getattr(calendar, k) != v for k, v in meta.items()):
            for key, value in meta.items():
                setattr(calendar, key, value)
            report.calendar_updated = True
    if not report.calendar_created:
        existing = {
            e.uid: e for e in session.scalars(select(Entry).where(Entry.calendar_id == calendar.id))
        }
    owned = {"origin_kind": str(origin.kind), "origin_name": origin.name}
    for item in spec.entries:
        values = entry_values(item)
        digest = values_digest(values)
        entry = existing.get(item.uid)
        if entry is not None and not may_write(entry, origin, adopt=adopt):
            report.kept.append((item.uid, str(entry.origin)))
            continue
        if entry is not None and entry.origin != origin:
            # Adopted (or owned for the first time): a change of owner alone is no edit.
            entry.origin_kind, entry.origin_name = owned["origin_kind"], owned["origin_name"]
        if entry is None:
            session.add(
                Entry(
                    calendar_id=calendar.id,
                    uid=item.uid,
                    sequence=0,
                    source_hash=digest,
                    tz_version=tz_version,
                    created_at=now,
                    updated_at=now,
                    **owned,
                    **values,
                )
            )
            report.created.append(item.uid)
        elif entry.source_hash == digest:
            # The file says what it said last time: keep edits made since (e.g. cancel).
            report.unchanged.append(item.uid)
        elif any(_differs(getattr(entry, k), v) for k, v in values.items()):
            for key, value in values.items():
                setattr(entry, key, value)
            entry.source_hash = digest
            entry.tz_version = tz_version
            entry.sequence += 1
            entry.updated_at = now
            report.updated.append(item.uid)
        else:
            entry.source_hash = digest
            entry.tz_version = tz_version
            report.unchanged.append(item.uid)
    if prune:
        wanted = {item.uid for item in spec.entries}
        gone = sorted(
            uid
            for uid, entry in existing.items()
            if uid not in wanted and may_write(entry, origin, adopt=adopt)
        )
        if gone:
            session.execute(
                delete(Entry).where(Entry.calendar_id == calendar.id, Entry.uid.in_(gone))
            )
            report.pruned.extend(gone)
    if report.changed and not report.calendar_created:
        bump(calendar, now)
    session.flush()
    return report


def entry_values(item: EntrySpec) -> dict[str, Any]:
    """The column values an entry gets from its spec."""
    values = {name: getattr(item, name) for name in ENTRY_FIELDS}
    values["categories"] = list(item.categories)
    values["reminders"] = list(item.reminders) if item.reminders is not None else None
    # New columns join the digest only when used, so entries imported before they
    # existed keep their digest (and are not all "updated" by the first import after).
    values["rdates"] = list(item.rdates) or None
    values["exdates"] = list(item.exdates) or None
    return values


def values_digest(values: dict[str, Any]) -> str:
    """A digest of what a file says about an entry (kept as ``Entry.source_hash``)."""
    hashed = {k: v for k, v in values.items() if v is not None or k not in _OPTIONAL}
    text = json.dumps(hashed, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_OPTIONAL = frozenset({"rdates", "exdates"})


def _differs(current: Any, new: Any) -> bool:
    if (
        isinstance(current, datetime)
        and isinstance(new, datetime)
        and (current.tzinfo is None) != (new.tzinfo is None)
    ):
        return True
    return bool(current != new)
