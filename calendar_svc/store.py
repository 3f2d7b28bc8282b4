"""One database: the only module that opens ORM sessions, and the reads and writes of
calendars and entries.

Callers own their transactions: ``with store.write() as session:`` is one
transaction, committed when the block ends (``store.read()`` likewise for
reads), and functions elsewhere that work on the database take that session
(``importer.import_specs``, the reminders repository). Every write that
changes what a feed shows bumps its calendar's ``version`` in the same
transaction (``bump``); ``change_counter()`` (the sum of versions) lets the
daemon and feed server notice writes from other processes with one cheap
query. The feed's per-request reads (``calendar_head``, ``entry_keys``) skip
the ORM for speed but still go through here. The clock is injected
(``clock``) so tests can move time.

Entries read for planning or rendering pass the store's ``screen``
(``isolation.Screen``): one whose stored values the engine cannot use (a row
an old version or a hand wrote) is left out and told on the store's
``events`` bus as ``EntryIsolated``, once per change; every other entry is
read as usual. ``select_entries`` and ``entries_by_id`` screen; the planner
screens what it reads with ``store.screen`` too.

Raw connections open in ``db``, always on the store's engine: the held
autocommit connection of the feed's per-request reads (``db.HeldConnection``,
which the store keeps) and those of migrations (``db.migrate``,
``db.current_revision``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, Select, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from sqlalchemy.sql import bindparam

from calendar_svc.clock import Clock, now_utc
from calendar_svc.db import (
    DriverQuery,
    HeldConnection,
    is_sqlite,
    make_engine,
    migrate,
    sqlite_file,
    unique_violation,
    why,
)
from calendar_svc.errors import InputError, NotFoundError, ReadOnlyEntryError, StoreError
from calendar_svc.events import EventBus
from calendar_svc.filters import EntryFilter, matches, next_day
from calendar_svc.isolation import Screen, keys_of
from calendar_svc.models import Calendar, Entry, EntryStatus, OriginKind, recurring
from calendar_svc.timezones import day_start_utc, ensure_utc

_LOAD_CHUNK = 500  # ids per IN (...) when loading entries by id
# How often a write that lost a race on a unique index is tried (write_retrying).
_RACE_ATTEMPTS = 5
T = TypeVar("T")
log = logging.getLogger(__name__)


def new_feed_token() -> str:
    """An unguessable feed token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def bump(calendar: Calendar, now: datetime) -> None:
    """Record a change a feed shows: call it in the transaction that makes the change."""
    calendar.version += 1
    calendar.updated_at = now


@dataclass(frozen=True)
class CalendarHead:
    """What a feed request needs before anything else: which calendar, its token and version."""

    id: int
    slug: str
    token: str
    version: int


_CALENDAR_HEAD = select(Calendar.id, Calendar.feed_token, Calendar.version).where(
    Calendar.slug == bindparam("slug")
)

_ENTRY_KEYS = (
    # Feed order (that of Store.entries within one calendar), read in index order from
    # ix_entries_feed_order: on SQLite from the index alone (the rowid id is in every
    # index), on PostgreSQL with a visit to each row for id, but no sort. An edit a
    # subscriber sees moves updated_at and sequence; uid guards against an id that
    # SQLite hands out again after a delete.
    select(Entry.id, Entry.uid, Entry.updated_at, Entry.sequence)
    .where(Entry.calendar_id == bindparam("calendar_id"))
    .order_by(Entry.start_utc, Entry.uid)
)


def _selection(flt: EntryFilter, join: ColumnElement[bool]) -> Select[Entry]:
    """The entries ``flt`` may select, in list order, by what SQL can tell (its calendar,
    cancelled or not, the end of its span); ``matches`` decides exactly."""
    query = (
        select(Entry)
        .join(Calendar, join)
        .options(selectinload(Entry.calendar))
        .order_by(Entry.start_utc, Calendar.slug, Entry.uid)
    )
    if flt.calendar:
        query = query.where(Calendar.slug == flt.calendar)
    if not flt.include_cancelled:
        query = query.where(Entry.status != EntryStatus.CANCELLED)
    # Day bounds depend on each entry's zone: widen by 14 h in SQL, then filter exactly.
    if flt.end:
        query = query.where(Entry.start_utc < day_start_utc(next_day(flt.end), "Etc/GMT+12"))
    return query


class Store:
    """One database: its engine, its sessions, and the reads and writes of calendars and entries.

    ``events``: the bus its ``screen`` tells isolated entries on (default: a new one,
    ``store.events``, for whoever wants to listen).
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = now_utc,
        engine: Engine | None = None,
        events: EventBus | None = None,
    ):
        self.url = url
        self.clock = clock
        self.events = events if events is not None else EventBus()
        self.screen = Screen(self.events)
        self.engine = engine or make_engine(url)
        self._sqlite = is_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        writer = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE") if self._sqlite else self.engine
        )
        self._writers = sessionmaker(writer, expire_on_commit=False)
        self._held = HeldConnection(self.engine)
        # Called after each commit of ``write`` (changes.ChangeWatcher: this process's own
        # writes are seen before ``write`` returns). Replaced, never mutated.
        self._after_commit: tuple[Callable[[], None], ...] = ()

    # -- lifecycle -------------------------------------------------------------------

    def migrate(self) -> bool:
        return migrate(self.engine)

    def close(self) -> None:
        self._held.close()
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def write(self, *, dry_run: bool = False, what: str | None = None) -> Iterator[Session]:
        """One write transaction, owned by the ``with`` block: committed when it ends.

        It takes the write lock at BEGIN (SQLite ``BEGIN IMMEDIATE``), so a
        read-then-write never fails half-way. It is rolled back when the block
        raises, and with ``dry_run`` (the block's reads still see its own
        writes). With ``what`` ("the import"), a database that refuses the
        transaction raises StoreError "the database refused the import: …".
        """
        with self._writers() as session:
            session.begin()
            try:
                yield session
                if dry_run:
                    session.rollback()
                else:
                    session.commit()
                    for callback in self._after_commit:
                        callback()
            except SQLAlchemyError as exc:
                session.rollback()
                if what is None:
                    raise
                reason = why(exc, sqlite_file(self.url))
                raise StoreError(f"the database refused {what}: {reason}") from exc
            except BaseException:
                session.rollback()
                raise

    def write_retrying(
        self,
        work: Callable[[Session], T],
        *,
        what: str,
        dry_run: bool = False,
        attempts: int = _RACE_ATTEMPTS,
    ) -> T:
        """``work(session)`` in one write transaction (``write``), run again from the start
        when a unique index refused a row that a concurrent transaction committed first:
        several daemons or imports bringing in the same new calendar at once on PostgreSQL.
        The next attempt sees the other's rows and updates them instead. Quietly: only when
        every attempt lost the race does the StoreError of ``write`` reach the caller."""
        for attempt in range(1, attempts + 1):
            try:
                with self.write(dry_run=dry_run, what=what) as session:
                    return work(session)
            except StoreError as exc:
                if attempt == attempts or not unique_violation(exc.__cause__ or exc):
                    raise
                log.debug("store.retry", extra={"what": what, "attempt": attempt})
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every transaction ``write`` commits (quick, no raise)."""
        self._after_commit = (*self._after_commit, callback)

    def remove_after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit = tuple(c for c in self._after_commit if c != callback)

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
                raise NotFoundError(f"no calendar {slug!r} ({_known_slugs(session)})")
        return calendar

    def calendar_by_id(self, session: Session, calendar_id: int) -> Calendar:
        """The calendar with id ``calendar_id``, in ``session``'s transaction."""
        calendar = session.get(Calendar, calendar_id)
        if calendar is None:
            raise NotFoundError(f"no calendar with id {calendar_id}")
        return calendar

    def entries(self, flt: EntryFilter | None = None, *, every: bool = False) -> list[Entry]:
        """Entries with their calendar loaded, ordered by start, calendar, uid (``every``:
        see ``select_entries``)."""
        with self.read() as session:
            return self.select_entries(session, flt, every=every)

    def select_entries(
        self, session: Session, flt: EntryFilter | None = None, *, every: bool = False
    ) -> list[Entry]:
        """``entries(flt)``, read in ``session``'s transaction: the entries the engine can
        use (``screen``). With ``every``, a listing with no filter but the calendar also
        shows the others (``calendar-svc list``: what is stored, to be fixed)."""
        flt = flt or EntryFilter()
        if (
            flt.calendar
            and session.scalar(select(Calendar.id).where(Calendar.slug == flt.calendar)) is None
        ):
            raise NotFoundError(f"no calendar {flt.calendar!r} ({_known_slugs(session)})")
        if not flt.start:
            found = list(session.scalars(_selection(flt, Calendar.id == Entry.calendar_id)))
        else:
            # The entries that end after the start, and the recurring ones (their later
            # occurrences end after their first): two reads, each on an index
            # (ix_entries_span, ix_entries_recurring), as one OR would read every entry
            # that starts before the end, at a million entries most of a week's feed.
            # The join is on ``calendar_id + 0`` so that SQLite cannot take the
            # feed-order index (calendar_id first), which visits every row that starts
            # before the end for its end_utc.
            join = Calendar.id == Entry.calendar_id + 0
            ended = Entry.end_utc >= day_start_utc(flt.start, "Etc/GMT-14")
            unique: dict[int, Entry] = {}
            for condition in (ended, recurring()):
                query = _selection(flt, join).where(condition)
                unique.update((entry.id, entry) for entry in session.scalars(query))
            found = sorted(unique.values(), key=lambda e: (e.start_utc, e.calendar.slug, e.uid))
        plain = replace(flt, calendar=None, include_cancelled=True) == EntryFilter()
        if every and plain:
            return found
        return [entry for entry in self.screen.usable(found) if matches(entry, flt)]

    def find_entry(self, uid: str, calendar: str | None = None) -> Entry:
        """The entry with ``uid`` (in ``calendar`` when given; required if the uid repeats)."""
        with self.read() as session:
            return self._find_entry(session, uid, calendar)

    def _find_entry(
        self, session: Session, uid: str, calendar: str | None, *, for_update: bool = False
    ) -> Entry:
        query = select(Entry).join(Entry.calendar).options(selectinload(Entry.calendar))
        query = query.where(Entry.uid == uid)
        if calendar:
            query = query.where(Calendar.slug == calendar)
        if for_update and not self._sqlite:  # SQLite's writer already excludes every other
            query = query.with_for_update(of=Entry)
        found = list(session.scalars(query))
        if not found:
            where = f" in calendar {calendar!r}" if calendar else ""
            raise NotFoundError(f"no entry with uid {uid!r}{where}")
        if len(found) > 1:
            slugs = ", ".join(sorted(e.calendar.slug for e in found))
            raise InputError(f"uid {uid!r} is in several calendars ({slugs}); add --calendar SLUG")
        return found[0]

    # -- the feed's reads, below the ORM (see db.HeldConnection) --------------------------

    @cached_property
    def _head_query(self) -> DriverQuery:
        return DriverQuery(_CALENDAR_HEAD, self.engine.dialect)

    @cached_property
    def _entry_keys_query(self) -> DriverQuery:
        return DriverQuery(_ENTRY_KEYS, self.engine.dialect)

    def calendar_head(self, slug: str) -> CalendarHead | None:
        """The calendar called ``slug`` (id, token, version), or None: one indexed SELECT
        on a held autocommit connection, for every feed request. Raises StoreError if the
        database fails."""
        rows = self._held.rows(self._head_query, {"slug": slug})
        if not rows:
            return None
        row = rows[0]
        return CalendarHead(id=int(row[0]), slug=slug, token=str(row[1]), version=int(row[2]))

    def entry_keys(self, session: Session, calendar_id: int) -> list[tuple[Any, ...]]:
        """(id, uid, updated_at, sequence) of every entry of a calendar, in feed order, as
        the driver gives them, read in ``session``'s transaction. A feed compares them with
        the keys of the VEVENTs it cached to find what changed."""
        return self._entry_keys_query.rows(
            session.connection().connection, {"calendar_id": calendar_id}
        )

    def entry_keys_of(self, session: Session, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """``entry_keys`` of these entries only (any order): a feed filtered to a week of a
        million-entry calendar compares a week's keys, not a million."""
        found: list[tuple[Any, ...]] = []
        for start in range(0, len(ids), _LOAD_CHUNK):
            # Integers, so written into the SQL; the rows come back as the driver gives
            # them, the very values ``entry_keys`` gives, to compare with the cached ones.
            listed = ", ".join(str(int(i)) for i in ids[start : start + _LOAD_CHUNK])
            rows = session.connection().exec_driver_sql(
                f"SELECT id, uid, updated_at, sequence FROM entries WHERE id IN ({listed})"
            )
            found.extend(tuple(row) for row in rows)
        return found

    def entries_by_id(self, session: Session, ids: Sequence[int]) -> Iterator[Entry]:
        """The usable entries with these ids, in ``session``'s transaction (any order)."""
        for start in range(0, len(ids), _LOAD_CHUNK):
            chunk = ids[start : start + _LOAD_CHUNK]
            yield from self.screen.usable(session.scalars(select(Entry).where(Entry.id.in_(chunk))))

    def recheck_isolated(self) -> None:
        """Look again at the entries the screen isolated: those fixed or deleted since are
        told as restored (the planner does this on every pass)."""
        isolated = list(self.screen.isolated())
        if not isolated:
            return
        slugs, uids = keys_of(isolated)
        with self.read() as session:
            query = (
                select(Entry)
                .join(Entry.calendar)
                .options(selectinload(Entry.calendar))
                .where(Calendar.slug.in_(slugs), Entry.uid.in_(uids))
            )
            found = {(entry.calendar.slug, entry.uid): entry for entry in session.scalars(query)}
            self.screen.recheck(found)

    # -- writes ----------------------------------------------------------------------

    @staticmethod
    def check_writable(entry: Entry) -> None:
        """ReadOnlyEntryError for an entry only its source may change (a followed feed)."""
        if entry.origin_kind == OriginKind.SOURCE:
            raise ReadOnlyEntryError(
                f"entry {entry.uid!r} comes from source {entry.origin_name!r} and is "
                "read-only here: change it in that calendar, or remove the source from the "
                "config"
            )

    def set_status(
        self, uid: str, status: EntryStatus, calendar: str | None = None
    ) -> tuple[Entry, bool]:
        """Set an entry's status, in one transaction; returns (entry, changed)."""
        now = self.clock()
        with self.write() as session:
            entry = self._find_entry(session, uid, calendar, for_update=True)
            self.check_writable(entry)
            if entry.status == status:
                return entry, False
            entry.status = status
            entry.sequence += 1
            entry.updated_at = now
            bump(entry.calendar, now)
            return entry, True

    def delete_entry(self, uid: str, calendar: str | None = None) -> Entry:
        """Delete an entry, in one transaction; returns it as it was."""
        with self.write() as session:
            entry = self._find_entry(session, uid, calendar, for_update=True)
            self.check_writable(entry)
            bump(entry.calendar, self.clock())
            session.delete(entry)
        return entry

    def rotate_token(self, slug: str) -> str:
        with self.write() as session:
            calendar = session.scalar(select(Calendar).where(Calendar.slug == slug))
            if calendar is None:
                raise NotFoundError(f"no calendar {slug!r}")
            calendar.feed_token = new_feed_token()
            bump(calendar, self.clock())
            return calendar.feed_token


def _known_slugs(session: Session) -> str:
    """The calendars there are, for a "no calendar" message."""
    slugs = list(session.scalars(select(Calendar.slug).order_by(Calendar.slug)))
    return f"known: {', '.join(slugs)}" if slugs else "the database has no calendars yet"
