"""Stored UTC instants derived again when the tz database changes.

An entry's truth is its wall time, zone and fold; ``start_utc`` / ``end_utc``
are derived from them with the tz database in use, and ``tz_version`` records
which one (the importer sets it). Governments change their clocks several
times a year, a new tz database follows, and instants derived with the old one
would have reminders fire an hour off. So whenever the version in use is not
the one an entry records (a new pytz, another ``[time] tzdir``, the daemon
noticing that folder changed), the entry is derived again:

* an entry whose instants moved gets the new ones, its SEQUENCE raised, its
  LAST-MODIFIED (``updated_at``) set and its calendar's version bumped, in one
  transaction: the feed shows the change, and the planner (which sees the
  change counter move) cancels the pending reminders whose dedupe key holds the
  old occurrence instant and plans the new ones, once;
* an entry whose instants did not move only records the version;
* a wall time the new rules skip (a gap) or repeat (a fold), with no ``fold``
  given, is read as RFC 5545 reads such a DTSTART (the offset before the gap;
  the first of two repeated times), which is PEP 495's ``fold = 0``: the daemon
  then reminds when subscribers' apps ring. It is reported, for a person to
  confirm (``fold = 0`` / ``fold = 1`` in the schedule file) or move it;
* an entry whose zone the tz database no longer has keeps its last instants
  and its old version (it is looked at again each time), and is reported.

The work goes calendar by calendar, at most ``BATCH`` entries per write
transaction, each batch read under the write lock (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL ``FOR UPDATE``, whose re-check skips rows another daemon has just
done), so two daemons starting together bump an entry once and a big database
is never locked whole. ``dry_run`` reads only (``calendar-svc doctor``).

``TzFollower`` is what the daemon runs: the config's tz database made the one
in use and derived against at start, and on its tick a cheap look at the
folder (``tzsource.FolderWatch``), a switch and a new derivation when it holds
another release.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from calendar_svc import timezones
from calendar_svc.errors import (
    AmbiguousTimeError,
    CalendarSvcError,
    NonexistentTimeError,
    TzDatabaseError,
)
from calendar_svc.logs import log_event
from calendar_svc.models import Calendar, Entry
from calendar_svc.store import Store, bump
from calendar_svc.timezones import day_start_utc, iso_utc, to_utc
from calendar_svc.tzdb import TzDatabase
from calendar_svc.tzsource import FolderWatch, TzSource

log = logging.getLogger(__name__)

# Entries per write transaction.
BATCH = 500


class ProblemKind(StrEnum):
    """Why an entry's wall time does not give one instant under the tz database in use."""

    GAP = "gap"  # the wall time is skipped by a clock change
    FOLD = "fold"  # the wall time happens twice
    UNKNOWN_ZONE = "unknown_zone"  # the tz database has no such zone (or cannot read it)
    END_BEFORE_START = "end_before_start"  # the end's instant is now before the start's


_HINTS = {
    ProblemKind.GAP: "read with the offset before the change (fold = 0), as RFC 5545 reads "
    "it; set fold = 0 or fold = 1 in the schedule file to confirm, or move the entry",
    ProblemKind.FOLD: "read as the first of the two (fold = 0), as RFC 5545 reads it; set "
    "fold = 0 or fold = 1 in the schedule file to confirm",
    ProblemKind.UNKNOWN_ZONE: "its last instants are kept; give the entry a zone the tz "
    "database has (or use a tz database that has this one)",
    ProblemKind.END_BEFORE_START: "its end is kept at its start; fix the end in the schedule file",
}


@dataclass(frozen=True)
class TimeProblem:
    """An entry whose wall time does not give one instant under the tz database in use."""

    calendar: str
    uid: str
    kind: ProblemKind
    field: str  # "start" or "end"
    zone: str
    wall: datetime
    version: str

    @property
    def hint(self) -> str:
        """What was done about it, and what a person should do."""
        return _HINTS[self.kind]

    def text(self) -> str:
        """``10:30 on 2031-03-30 does not exist in Test/Island (tz database 2031a)``."""
        wall = f"{self.wall:%Y-%m-%d %H:%M}"
        what = {
            ProblemKind.GAP: f"{self.field} {wall} does not exist in {self.zone} "
            "(skipped by a clock change)",
            ProblemKind.FOLD: f"{self.field} {wall} happens twice in {self.zone} (a clock change)",
            ProblemKind.UNKNOWN_ZONE: f"zone {self.zone} is not in the tz database",
            ProblemKind.END_BEFORE_START: f"end {wall} {self.zone} is now before the start",
        }[self.kind]
        return f"{what} (tz database {self.version})"


@dataclass(frozen=True)
class Moved:
    """An entry whose instants the tz database in use puts elsewhere."""

    calendar: str
    uid: str
    zone: str
    old_start: datetime
    new_start: datetime
    old_end: datetime
    new_end: datetime
    old_version: str | None  # the version the old instants came from (None: not known)


@dataclass
class Report:
    """What a derivation did (or, in a dry run, would do)."""

    version: str
    checked: int = 0  # entries derived again
    stamped: int = 0  # of those, unmoved: only the version recorded
    moved: list[Moved] = field(default_factory=list)
    problems: list[TimeProblem] = field(default_factory=list)
    calendars: set[str] = field(default_factory=set)  # whose version was bumped

    @property
    def changed(self) -> bool:
        return bool(self.moved)


@dataclass(frozen=True)
class Derived:
    """An entry's instants under the tz database in use (None: they cannot be derived)."""

    start_utc: datetime | None
    end_utc: datetime | None
    problems: tuple[TimeProblem, ...] = ()

    @property
    def derivable(self) -> bool:
        return self.start_utc is not None and self.end_utc is not None


def derive(entry: Entry, calendar: str, version: str | None = None) -> Derived:
    """``entry``'s instants from its wall times, zones and folds, with the tz database in use,
    and what stood in the way (see the module's rules)."""
    version = version or timezones.version()
    problems: list[TimeProblem] = []

    def problem(kind: ProblemKind, which: str, zone: str, wall: datetime) -> None:
        if any((p.kind, p.zone, p.wall) == (kind, zone, wall) for p in problems):
            return  # an end that is its start (an instant): said once, of the start
        problems.append(TimeProblem(calendar, entry.uid, kind, which, zone, wall, version))

    def instant(wall: datetime, zone: str, fold: int | None, which: str) -> datetime | None:
        try:
            if entry.all_day:
                return day_start_utc(wall.date(), zone)
            try:
                return to_utc(wall, zone, fold)
            except NonexistentTimeError:
                problem(ProblemKind.GAP, which, zone, wall)
            except AmbiguousTimeError:
                problem(ProblemKind.FOLD, which, zone, wall)
            return to_utc(wall, zone, fold=0)
        except CalendarSvcError:  # no such zone, or its file is unreadable
            problem(ProblemKind.UNKNOWN_ZONE, which, zone, wall)
            return None

    start = instant(entry.start_local, entry.start_tz, entry.start_fold, "start")
    last = entry.end_local + timedelta(days=1) if entry.all_day else entry.end_local
    end = instant(last, entry.end_tz, entry.end_fold, "end")
    if start is not None and end is not None and end < start:
        problem(ProblemKind.END_BEFORE_START, "end", entry.end_tz, entry.end_local)
        end = start
    if start is None or end is None:
        # Not derivable: keep the last instants; an unknown zone is reported once.
        unique: dict[str, TimeProblem] = {}
        for found in problems:
            if found.kind is ProblemKind.UNKNOWN_ZONE:
                unique.setdefault(found.zone, found)
        return Derived(None, None, tuple(unique.values()))
    return Derived(start, end, tuple(problems))


def stale(version: str) -> ColumnElement[bool]:
    """The SQL condition of entries whose instants came from another tz database version."""
    return or_(Entry.tz_version.is_(None), Entry.tz_version != version)


def rederive(
    store: Store,
    *,
    now: datetime | None = None,
    everything: bool = False,
    dry_run: bool = False,
    batch: int = BATCH,
) -> Report:
    """Derive again, with the tz database in use, the entries whose recorded version is
    another (``everything``: every entry, e.g. when a folder changed its bytes but not its
    version). ``dry_run`` writes nothing and reports what would change."""
    version = timezones.version()
    now = now or store.clock()
    report = Report(version=version)
    with store.read() as session:
        calendars = session.execute(select(Calendar.id, Calendar.slug).order_by(Calendar.slug))
        listed = [(int(i), str(s)) for i, s in calendars]
    for calendar_id, slug in listed:
        after = 0
        while True:
            query = select(Entry).where(Entry.calendar_id == calendar_id, Entry.id > after)
            if not everything:
                query = query.where(stale(version))
            query = query.order_by(Entry.id).limit(batch)
            if dry_run:
                with store.read() as session:
                    rows = list(session.scalars(query))
                    _apply(session, rows, (calendar_id, slug), report, now=now, write=False)
            else:
                with store.write(what="the re-derivation of instants") as session:
                    # The calendar first, as an import takes it: one order, no deadlock.
                    session.get(Calendar, calendar_id, with_for_update=True)
                    rows = list(session.scalars(query.with_for_update()))
                    _apply(session, rows, (calendar_id, slug), report, now=now, write=True)
            # Not "fewer than a batch": another daemon's batch may have taken rows from this
            # one's (PostgreSQL skips the rows it changed), with more to come after them.
            if not rows:
                break
            after = rows[-1].id
    return report


def _apply(
    session: Session,
    entries: Sequence[Entry],
    owner: tuple[int, str],
    report: Report,
    *,
    now: datetime,
    write: bool,
) -> None:
    """Derive ``entries`` (of the calendar ``owner``: id, slug) and, with ``write``, store
    what changed."""
    calendar_id, calendar = owner
    moved_any = False
    for entry in entries:
        derived = derive(entry, calendar, report.version)
        report.checked += 1
        report.problems.extend(derived.problems)
        if not derived.derivable:
            continue  # its old version stays: it is looked at again next time
        assert derived.start_utc is not None and derived.end_utc is not None
        if (derived.start_utc, derived.end_utc) == (entry.start_utc, entry.end_utc):
            report.stamped += 1
            if write:
                entry.tz_version = report.version
            continue
        report.moved.append(
            Moved(
                calendar=calendar,
                uid=entry.uid,
                zone=entry.start_tz,
                old_start=entry.start_utc,
                new_start=derived.start_utc,
                old_end=entry.end_utc,
                new_end=derived.end_utc,
                old_version=entry.tz_version,
            )
        )
        moved_any = True
        if write:
            entry.start_utc, entry.end_utc = derived.start_utc, derived.end_utc
            entry.tz_version = report.version
            entry.sequence += 1
            entry.updated_at = now
    if moved_any:
        report.calendars.add(calendar)
        found = session.get(Calendar, calendar_id) if write else None
        if found is not None:
            bump(found, now)


def stale_count(store: Store, version: str | None = None) -> int:
    """How many entries recorded another tz database version than ``version`` (in use)."""
    with store.read() as session:
        found = session.scalar(
            select(func.count(Entry.id)).where(stale(version or timezones.version()))
        )
    return int(found or 0)


# --- the log lines ------------------------------------------------------------------------


def log_report(report: Report, *, why: str) -> None:
    """One line per moved entry (``time.rules_changed``), per problem, and a summary."""
    for moved in report.moved:
        ends: dict[str, str] = {}
        if moved.new_end - moved.new_start != moved.old_end - moved.old_start:
            ends = {"old_end": iso_utc(moved.old_end), "new_end": iso_utc(moved.new_end)}
        log_event(
            log,
            "time.rules_changed",
            logging.INFO,
            uid=moved.uid,
            calendar=moved.calendar,
            old=iso_utc(moved.old_start),
            new=iso_utc(moved.new_start),
            **ends,
            zone=moved.zone,
            from_tz=moved.old_version or "unknown",
            tz=report.version,
        )
    for problem in report.problems:
        fields = {
            "uid": problem.uid,
            "calendar": problem.calendar,
            "kind": str(problem.kind),
            "field": problem.field,
            "zone": problem.zone,
            "wall": f"{problem.wall:%Y-%m-%dT%H:%M:%S}",
            "tz": problem.version,
            "hint": problem.hint,
        }
        if problem.kind is ProblemKind.UNKNOWN_ZONE:
            log_event(log, "time.zone_missing", logging.ERROR, **fields)
        else:
            log_event(log, "time.wall_time_problem", logging.WARNING, **fields)
    if report.checked:
        log_event(
            log,
            "time.rederived",
            tz=report.version,
            why=why,
            checked=report.checked,
            moved=len(report.moved),
            problems=len(report.problems),
            calendars=",".join(sorted(report.calendars)) or "none",
        )


# --- what the daemon runs ----------------------------------------------------------------


class TzFollower:
    """Keeps a process on the tz database its config names, and the store's instants with it.

    ``start()``: make ``database`` the one in use and derive again what another
    version derived. ``check()`` (on the daemon's tick; it looks at most every
    ``interval``): when the folder holds another release (or a reload named
    another source), open it, switch, derive every entry again and return the
    report; a folder that became unusable is logged once and the database in
    use kept. ``monotonic`` is injectable for tests.
    """

    def __init__(
        self,
        store: Store,
        source: TzSource,
        database: TzDatabase,
        *,
        interval: timedelta,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.interval = interval
        self._monotonic = monotonic
        self._watch = FolderWatch(source, database)
        self._pending: tuple[TzSource, TzDatabase] | None = None
        self._owed = False  # a switch whose derivation has not completed yet
        self._last = monotonic()

    @property
    def source(self) -> TzSource:
        return self._watch.source

    def start(self) -> Report:
        self._switch_to(self._watch.database, announce=False)
        report = rederive(self.store)
        log_report(report, why="start")
        self._last = self._monotonic()
        return report

    def reset(self, source: TzSource, database: TzDatabase) -> None:
        """A reloaded config's source (and its database, opened when it was read); the
        next ``check`` switches when it differs from the one followed now."""
        if source != self._watch.source or database != self._watch.database:
            self._pending = (source, database)

    def check(self) -> Report | None:
        """The report of a switch, when the tz database changed since the last look (or of
        the derivation a failed check owes, e.g. the database was briefly unreachable)."""
        if self._owed:
            return self._derive_all(why="retry")
        pending, self._pending = self._pending, None
        if pending is not None:
            source, database = pending
            self._watch = FolderWatch(source, database)
            return self._follow(database, why="reload")
        if self._monotonic() - self._last < self.interval.total_seconds():
            return None
        self._last = self._monotonic()
        try:
            changed = self._watch.changed()
        except TzDatabaseError as exc:
            log_event(
                log,
                "time.database_unusable",
                logging.ERROR,
                folder=str(self._watch.source.folder),
                error=exc.detail,
                tz=timezones.version(),
                hint="keeping the tz database in use; fix the folder (it is looked at "
                "again when it changes)",
            )
            return None
        if changed is None:
            return None
        return self._follow(changed, why="tz database changed")

    def _follow(self, database: TzDatabase, *, why: str) -> Report | None:
        if database == timezones.current():
            return None
        self._switch_to(database, announce=True)
        return self._derive_all(why=why)

    def _derive_all(self, *, why: str) -> Report:
        # Every entry: a release may change a zone's data and keep its version.
        self._owed = True
        report = rederive(self.store, everything=True)
        self._owed = False
        log_report(report, why=why)
        return report

    def _switch_to(self, database: TzDatabase, *, announce: bool) -> None:
        previous = timezones.use(database)
        if announce or previous != database:
            log_event(
                log,
                "time.database_switched",
                tz=database.version,
                previous=previous.version,
                folder=database.label,
            )
