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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from calendar_svc import timezones
from calendar_svc.errors import InputError
from calendar_svc.models import Calendar, Entry
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
) -> ImportReport:
    """Upsert every calendar and entry of ``specs`` in ``session``'s transaction.

    With ``prune``, entries of those calendars that the specs no longer hold
    are deleted. Two specs for one calendar are an InputError before anything
    is written. Nothing is committed here: the caller's transaction decides.
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
    reports = [import_calendar(session, spec, now=now, prune=prune) for spec in by_slug.values()]
    return ImportReport(calendars=reports)


def import_calendar(
    session: Session, spec: CalendarSpec, *, now: datetime, prune: bool = False
) -> CalendarReport:
    """Upsert one calendar and its entries in ``session``'s transaction."""
    report = CalendarReport(slug=spec.slug)
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
    else:
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
        existing = {
            e.uid: e for e in session.scalars(select(Entry).where(Entry.calendar_id == calendar.id))
        }
    for item in spec.entries:
        values = entry_values(item)
        digest = values_digest(values)
        entry = existing.get(item.uid)
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
        gone = sorted(uid for uid in existing if uid not in wanted)
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
    return values


def values_digest(values: dict[str, Any]) -> str:
    """A digest of what a file says about an entry (kept as ``Entry.source_hash``)."""
    text = json.dumps(values, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _differs(current: Any, new: Any) -> bool:
    if (
        isinstance(current, datetime)
        and isinstance(new, datetime)
        and (current.tzinfo is None) != (new.tzinfo is None)
    ):
        return True
    return bool(current != new)
