"""The only module that opens database sessions.

Every write that changes what a feed shows bumps its calendar's ``version`` in
the same transaction; ``change_counter()`` (the sum of versions) lets the
daemon and feed server notice writes from other processes with one cheap query.
The clock is injected (``clock``) so tests can move time.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from calendar_svc.clock import Clock, now_utc
from calendar_svc.db import first_line, is_sqlite, make_engine, migrate
from calendar_svc.errors import InputError, NotFoundError, StoreError
from calendar_svc.filters import EntryFilter as EntryFilter
from calendar_svc.models import Calendar, Entry, EntryStatus
from calendar_svc.schedule_files import CalendarSpec, EntrySpec
from calendar_svc.timezones import day_start_utc

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


def new_feed_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class CalendarReport:
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
    calendars: list[CalendarReport]
    dry_run: bool

    def totals(self) -> dict[str, int]:
        return {
            name: sum(len(getattr(c, name)) for c in self.calendars)
            for name in ("created", "updated", "unchanged", "pruned")
        }

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.calendars)


class Store:
    def __init__(self, url: str, *, clock: Clock = now_utc, engine: Engine | None = None):
        self.url = url
        self.clock = clock
        self.engine = engine or make_engine(url)
        self.sqlite = is_sqlite(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        writer = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.sqlite else self.engine
        )
        self._writers = sessionmaker(writer, expire_on_commit=False)

    # -- lifecycle -------------------------------------------------------------------

    def migrate(self) -> bool:
        return migrate(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that takes the write lock at BEGIN (SQLite) and commits at the end."""
        with self._writers() as session, session.begin():
            yield session

    def ping(self) -> bool:
        try:
            with self.read() as session:
                session.execute(select(1))
            return True
        except Exception:
            return False

    # -- reads -----------------------------------------------------------------------

    def change_counter(self) -> int:
        """Rises whenever any calendar changes (a calendar's version is only ever bumped)."""
        with self.read() as session:
            total = session.scalar(
                select(func.coalesce(func.sum(Calendar.version), 0) + func.count(Calendar.id))
            )
        return int(total or 0)

    def calendars(self) -> list[Calendar]:
        with self.read() as session:
            return list(session.scalars(select(Calendar).order_by(Calendar.slug)))

    def calendar_stats(self) -> dict[str, dict[str, Any]]:
        """Per calendar slug: entry count, first start and last end (UTC)."""
        with self.read() as session:
            rows = session.execute(
                select(
                    Calendar.slug,
                    func.count(Entry.id),
                    func.min(Entry.start_utc),
                    func.max(Entry.end_utc),
                )
                .outerjoin(Entry, Entry.calendar_id == Calendar.id)
                .group_by(Calendar.slug)
            ).all()
        from calendar_svc.timezones import ensure_utc

        return {
            slug: {
                "entries": count,
                "first_start": ensure_utc(first) if isinstance(first, datetime) else None,
                "last_end": ensure_utc(last) if isinstance(last, datetime) else None,
            }
            for slug, count, first, last in rows
        }

    def get_calendar(self, slug: str) -> Calendar:
        with self.read() as session:
            calendar = session.scalar(select(Calendar).where(Calendar.slug == slug))
        if calendar is None:
            raise NotFoundError(f"no calendar {slug!r} ({self._known_slugs()})")
        return calendar

    def find_calendar(self, slug: str) -> Calendar | None:
        with self.read() as session:
            return session.scalar(select(Calendar).where(Calendar.slug == slug))

    def _known_slugs(self) -> str:
        slugs = [c.slug for c in self.calendars()]
        return f"known: {', '.join(slugs)}" if slugs else "the database has no calendars yet"

    def entries(self, flt: EntryFilter | None = None) -> list[Entry]:
        """Entries with their calendar loaded, ordered by start, calendar, uid."""
        flt = flt or EntryFilter()
        query = (
            select(Entry)
            .join(Entry.calendar)
            .options(selectinload(Entry.calendar))
            .order_by(Entry.start_utc, Calendar.slug, Entry.uid)
        )
        if flt.calendar:
            query = query.where(Calendar.slug == flt.calendar)
        if not flt.include_cancelled:
            query = query.where(Entry.status != EntryStatus.CANCELLED)
        # Day bounds depend on each entry's zone: widen by 14 h in SQL, then filter exactly.
        if flt.start:
            # A recurring entry's later occurrences end after its first one: keep it for now.
            query = query.where(
                or_(
                    Entry.rrule.is_not(None),
                    Entry.end_utc >= day_start_utc(flt.start, "Etc/GMT-14"),
                )
            )
        if flt.end:
            query = query.where(Entry.start_utc < day_start_utc(_next_day(flt.end), "Etc/GMT+12"))
        with self.read() as session:
            if (
                flt.calendar
                and session.scalar(select(Calendar.id).where(Calendar.slug == flt.calendar)) is None
            ):
                raise NotFoundError(f"no calendar {flt.calendar!r} ({self._known_slugs()})")
            rows = list(session.scalars(query))
        return [entry for entry in rows if _matches(entry, flt)]

    def find_entry(self, uid: str, calendar: str | None = None) -> Entry:
        """The entry with ``uid`` (in ``calendar`` when given; required if the uid repeats)."""
        query = select(Entry).join(Entry.calendar).options(selectinload(Entry.calendar))
        query = query.where(Entry.uid == uid)
        if calendar:
            query = query.where(Calendar.slug == calendar)
        with self.read() as session:
            found = list(session.scalars(query))
        if not found:
            where = f" in calendar {calendar!r}" if calendar else ""
            raise NotFoundError(f"no entry with uid {uid!r}{where}")
        if len(found) > 1:
            slugs = ", ".join(sorted(e.calendar.slug for e in found))
            raise InputError(f"uid {uid!r} is in several calendars ({slugs}); add --calendar SLUG")
        return found[0]

    # -- writes ----------------------------------------------------------------------

    def _bump(self, calendar: Calendar, now: datetime) -> None:
        calendar.version += 1
        calendar.updated_at = now

    def set_status(
        self, uid: str, status: EntryStatus, calendar: str | None = None
    ) -> tuple[Entry, bool]:
        """Set an entry's status; returns (entry, changed)."""
        target = self.find_entry(uid, calendar)
        now = self.clock()
        with self.write() as session:
            entry = session.get(
                Entry,
                target.id,
                options=[selectinload(Entry.calendar)],
                with_for_update=not self.sqlite,
            )
            if entry is None:
                raise NotFoundError(f"no entry with uid {uid!r}")
            if entry.status == status:
                return entry, False
            entry.status = status
            entry.sequence += 1
            entry.updated_at = now
            self._bump(entry.calendar, now)
            return entry, True

    def delete_entry(self, uid: str, calendar: str | None = None) -> Entry:
        target = self.find_entry(uid, calendar)
        with self.write() as session:
            entry = session.get(Entry, target.id)
            if entry is None:
                raise NotFoundError(f"no entry with uid {uid!r}")
            self._bump(entry.calendar, self.clock())
            session.delete(entry)
        return target

    def rotate_token(self, slug: str) -> str:
        with self.write() as session:
            calendar = session.scalar(select(Calendar).where(Calendar.slug == slug))
            if calendar is None:
                raise NotFoundError(f"no calendar {slug!r}")
            calendar.feed_token = new_feed_token()
            self._bump(calendar, self.clock())
            return calendar.feed_token

    def import_specs(
        self, specs: Sequence[CalendarSpec], *, prune: bool = False, dry_run: bool = False
    ) -> ImportReport:
        """Upsert every calendar and entry of ``specs`` by (slug, uid) in ONE transaction.

        With ``prune``, entries of those calendars that the specs no longer hold are
        deleted. With ``dry_run`` nothing is written and the report says what would be.
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
        now = self.clock()
        reports = []
        with self._writers() as session:
            session.begin()
            try:
                for spec in by_slug.values():
                    reports.append(self._import_one(session, spec, prune=prune, now=now))
                if dry_run:
                    session.rollback()
                else:
                    session.commit()
            except SQLAlchemyError as exc:
                session.rollback()
                raise StoreError(f"the database refused the import: {first_line(exc)}") from exc
            except BaseException:
                session.rollback()
                raise
        return ImportReport(calendars=reports, dry_run=dry_run)

    def _import_one(
        self, session: Session, spec: CalendarSpec, *, prune: bool, now: datetime
    ) -> CalendarReport:
        report = CalendarReport(slug=spec.slug)
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
                e.uid: e
                for e in session.scalars(select(Entry).where(Entry.calendar_id == calendar.id))
            }
        for item in spec.entries:
            values = _entry_values(item)
            digest = _values_hash(values)
            entry = existing.get(item.uid)
            if entry is None:
                session.add(
                    Entry(
                        calendar_id=calendar.id,
                        uid=item.uid,
                        sequence=0,
                        source_hash=digest,
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
                entry.sequence += 1
                entry.updated_at = now
                report.updated.append(item.uid)
            else:
                entry.source_hash = digest
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
            self._bump(calendar, now)
        session.flush()
        return report


def _entry_values(item: EntrySpec) -> dict[str, Any]:
    values = {name: getattr(item, name) for name in ENTRY_FIELDS}
    values["categories"] = list(item.categories)
    values["reminders"] = list(item.reminders) if item.reminders is not None else None
    return values


def _values_hash(values: dict[str, Any]) -> str:
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


def _next_day(day: date) -> date:
    return day + timedelta(days=1)


def _matches(entry: Entry, flt: EntryFilter) -> bool:
    # casefold in Python: SQLite's lower() only folds ASCII ("Łódź" would never match).
    if flt.city and (entry.city or "").casefold() != flt.city.casefold():
        return False
    if flt.category and flt.category.lower() not in {c.lower() for c in entry.categories or []}:
        return False
    if entry.rrule and (flt.start or flt.end):
        return _recurs_within(entry, flt)
    if flt.start:
        day_start = day_start_utc(flt.start, entry.start_tz)
        # An instantaneous entry at exactly the boundary still belongs to that day.
        instant_at_start = entry.end_utc == entry.start_utc == day_start
        if entry.end_utc <= day_start and not instant_at_start:
            return False
    return not (flt.end and entry.start_utc >= day_start_utc(_next_day(flt.end), entry.start_tz))


def _recurs_within(entry: Entry, flt: EntryFilter) -> bool:
    """Whether any occurrence of a recurring entry overlaps the filter's days."""
    from calendar_svc.reminders.rules import occurrences

    length = entry.end_utc - entry.start_utc
    lower = day_start_utc(flt.start, entry.start_tz) - length if flt.start else entry.start_utc
    upper = (
        day_start_utc(_next_day(flt.end), entry.start_tz) - timedelta(microseconds=1)
        if flt.end
        else lower + timedelta(days=3660)
    )
    return any(True for _ in occurrences(entry, max(lower, entry.start_utc), upper))
