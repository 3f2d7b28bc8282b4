"""The SQL of the deliveries table (and the entry reads the planner needs), portable across
SQLite and PostgreSQL.

Every write that decides who sends what is one conditional statement, so that
the table, not any process's memory, is the truth:

* plan: insert-if-absent on ``dedupe_key`` (a cancelled row is revived when its
  reminder is wanted again, e.g. an entry moved back);
* claim: ``pending -> sending`` only where the row is still pending and due
  (on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so several daemons split a burst
  instead of queueing on each other's row locks);
* finish/release: only rows still ``sending`` *and* claimed by this process;
* lease recovery: ``sending`` rows whose lease ran out go back to ``pending``.

Every function takes a session and runs in the caller's transaction: the
caller (planner, dispatcher, daemon, ``calendar-svc status``) decides what
belongs together and opens ``store.write()`` (``BEGIN IMMEDIATE`` on SQLite)
or ``store.read()`` around it.

How a claimed row ends is an ``Outcome`` of a named kind (``Outcome.sent``,
``.retry``, ``.release``, ``.failed``, ``.missed``, ``.cancelled``), which
says the status it leaves and whether the attempt counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, bindparam, cast, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, contains_eager

from calendar_svc.db import is_sqlite
from calendar_svc.durations import parse_duration
from calendar_svc.events import OutcomeKind
from calendar_svc.models import Calendar, Delivery, DeliveryStatus, Entry, PlannerState
from calendar_svc.reminders.rules import PlannedReminder

TABLE = Delivery.metadata.tables["deliveries"]
T = TABLE.c
# Rows per multi-row INSERT: well under SQLite's bound-parameter limit.
INSERT_CHUNK = 400


@dataclass(frozen=True)
class ClaimedRow:
    id: int
    dedupe_key: str
    idempotency_key: str
    calendar_slug: str
    entry_uid: str
    occurrence_utc: datetime
    offset: timedelta
    channel: str
    due_at: datetime
    attempts: int


# The status each kind (``events.OutcomeKind``, shared with the events) leaves the row in.
_STATUS = {
    OutcomeKind.SENT: DeliveryStatus.SENT,
    OutcomeKind.RETRY: DeliveryStatus.PENDING,
    OutcomeKind.RELEASE: DeliveryStatus.PENDING,
    OutcomeKind.FAILED: DeliveryStatus.FAILED,
    OutcomeKind.MISSED: DeliveryStatus.MISSED,
    OutcomeKind.CANCELLED: DeliveryStatus.CANCELLED,
}


@dataclass(frozen=True)
class Outcome:
    """How one claimed delivery ended; build it with the named constructors below.

    ``next_attempt_at`` is when a pending row may be claimed again (for a final
    status, when it ended); ``last_error`` the reason of anything but a send.
    """

    kind: OutcomeKind
    id: int
    next_attempt_at: datetime
    last_error: str | None = None
    sent_at: datetime | None = None
    late: bool = False

    @property
    def status(self) -> DeliveryStatus:
        return _STATUS[self.kind]

    @property
    def attempts_delta(self) -> int:
        """-1 gives back the attempt the claim counted: a released send was never made."""
        return -1 if self.kind is OutcomeKind.RELEASE else 0

    @classmethod
    def sent(cls, id: int, *, at: datetime, late: bool) -> Outcome:
        return cls(OutcomeKind.SENT, id, next_attempt_at=at, sent_at=at, late=late)

    @classmethod
    def retry(cls, id: int, *, at: datetime, error: str) -> Outcome:
        """Pending again, to be claimed from ``at`` on (the backoff's next attempt)."""
        return cls(OutcomeKind.RETRY, id, next_attempt_at=at, last_error=error)

    @classmethod
    def release(cls, id: int, *, now: datetime, reason: str) -> Outcome:
        """Pending again at once, as if this attempt had never been claimed."""
        return cls(OutcomeKind.RELEASE, id, next_attempt_at=now, last_error=reason)

    @classmethod
    def failed(cls, id: int, *, now: datetime, error: str) -> Outcome:
        return cls(OutcomeKind.FAILED, id, next_attempt_at=now, last_error=error)

    @classmethod
    def missed(cls, id: int, *, now: datetime, reason: str) -> Outcome:
        return cls(OutcomeKind.MISSED, id, next_attempt_at=now, last_error=reason)

    @classmethod
    def cancelled(cls, id: int, *, now: datetime, reason: str) -> Outcome:
        return cls(OutcomeKind.CANCELLED, id, next_attempt_at=now, last_error=reason)


# --- entries ---------------------------------------------------------------------------


def entries_for_window(
    session: Session, start: datetime, end: datetime, *, lead: timedelta, all_day_lead: timedelta
) -> list[Entry]:
    """Entries that may have reminders due in ``[start, end]`` (calendar loaded).

    A timed entry's reminders are due at most ``lead`` before it starts, an
    all-day entry's at most ``all_day_lead``; recurring entries are all
    returned, their occurrences are found by the rules.
    """
    query = (
        select(Entry)
        .join(Entry.calendar)
        .options(contains_eager(Entry.calendar))
        .where(
            or_(
                and_(Entry.all_day.is_(False), Entry.start_utc.between(start, end + lead)),
                and_(Entry.all_day.is_(True), Entry.start_utc.between(start, end + all_day_lead)),
                Entry.rrule.is_not(None),
            )
        )
        .order_by(Entry.start_utc)
    )
    return list(session.scalars(query).unique())


def entries_by_key(
    session: Session, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Entry]:
    wanted = set(keys)
    if not wanted:
        return {}
    query = (
        select(Entry)
        .join(Entry.calendar)
        .options(contains_eager(Entry.calendar))
        .where(Calendar.slug.in_({s for s, _ in wanted}), Entry.uid.in_({u for _, u in wanted}))
    )
    found = {(e.calendar.slug, e.uid): e for e in session.scalars(query).unique()}
    return {key: entry for key, entry in found.items() if key in wanted}


def longest_offset(session: Session, defaults: Sequence[timedelta]) -> timedelta:
    """The largest offset any entry can have: config, calendar and entry overrides."""
    texts: set[str] = set()
    for offsets in session.scalars(select(Calendar.reminders)):
        texts.update(offsets or [])
    # Few distinct override lists exist; compare them as text (PostgreSQL's json has no "=").
    for raw in session.scalars(select(cast(Entry.reminders, Text)).distinct()):
        texts.update((json.loads(raw) if raw else None) or [])
    return max([parse_duration(t) for t in texts] + list(defaults), default=timedelta(0))


# --- planning --------------------------------------------------------------------------


def existing_states(session: Session, keys: Sequence[str]) -> dict[str, DeliveryStatus]:
    """``dedupe_key -> status`` of the rows that exist among ``keys``."""
    found: dict[str, DeliveryStatus] = {}
    for start in range(0, len(keys), INSERT_CHUNK):
        chunk = keys[start : start + INSERT_CHUNK]
        rows = session.execute(select(T.dedupe_key, T.status).where(T.dedupe_key.in_(chunk)))
        found.update({key: status for key, status in rows})
    return found


def insert_planned(session: Session, planned: Sequence[PlannedReminder], now: datetime) -> None:
    """Insert-if-absent pending rows; a concurrent planner's row wins silently."""
    _insert(session, [_row(p, now) for p in planned])


def insert_missed(
    session: Session, missed: Sequence[PlannedReminder], now: datetime, reason: str
) -> None:
    """Insert-if-absent rows recorded ``missed`` at once: reminders that came due unplanned."""
    _insert(
        session,
        [_row(p, now, status=DeliveryStatus.MISSED, last_error=reason) for p in missed],
    )


def _insert(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = sqlite.insert if is_sqlite(session) else postgresql.insert
    # One statement, many parameter sets: SQLAlchemy batches them ("insertmanyvalues")
    # and compiles the statement once, not once per distinct row count.
    stmt = insert(TABLE).on_conflict_do_nothing(index_elements=["dedupe_key"])
    session.connection().execute(stmt, rows)


def last_pass(session: Session) -> tuple[datetime | None, str | None]:
    """When the last planner pass of any daemon on this database ran, and which planner
    made it ((None, None): never)."""
    state = session.get(PlannerState, 1)
    return (state.last_pass_at, state.last_pass_by) if state is not None else (None, None)


def record_pass(session: Session, now: datetime, by: str, *, reset: bool = False) -> None:
    """Remember this pass; ``reset`` takes ``now`` even if an earlier pass is later."""
    state = session.get(PlannerState, 1)
    if state is None:
        session.add(PlannerState(id=1, last_pass_at=now, last_pass_by=by))
    else:
        # Small disagreements between daemons' clocks must not reopen a gap that was
        # already accounted for; a real step back is the planner's call (``reset``).
        # The pass recorded stays the one whose time is kept, with who made it.
        if reset or now >= state.last_pass_at:
            state.last_pass_at, state.last_pass_by = now, by


def revive(session: Session, keys: Sequence[str], now: datetime) -> None:
    """Cancelled rows wanted again become fresh pending rows (attempts start over)."""
    for start in range(0, len(keys), INSERT_CHUNK):
        session.execute(
            update(TABLE)
            .where(
                T.dedupe_key.in_(keys[start : start + INSERT_CHUNK]),
                T.status == DeliveryStatus.CANCELLED,
            )
            .values(
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=T.due_at,
                last_error=None,
                claimed_by=None,
                claimed_at=None,
                lease_until=None,
                late=False,
                updated_at=now,
            )
        )


def _row(
    p: PlannedReminder,
    now: datetime,
    *,
    status: DeliveryStatus = DeliveryStatus.PENDING,
    last_error: str | None = None,
) -> dict[str, Any]:
    return {
        "dedupe_key": p.dedupe_key,
        "idempotency_key": p.idempotency_key,
        "calendar_slug": p.calendar_slug,
        "entry_uid": p.entry_uid,
        "occurrence_utc": p.occurrence_utc,
        "offset_seconds": int(p.offset.total_seconds()),
        "channel": p.channel,
        "due_at": p.due_at,
        "status": status,
        "attempts": 0,
        "next_attempt_at": p.due_at,
        "last_error": last_error,
        "late": False,
        "created_at": now,
        "updated_at": now,
    }


def pending_rows(session: Session, until: datetime) -> list[tuple[int, str, datetime]]:
    """``(id, dedupe_key, due_at)`` of pending rows due up to ``until``."""
    query = select(T.id, T.dedupe_key, T.due_at).where(
        T.status == DeliveryStatus.PENDING, T.due_at <= until
    )
    return list(session.execute(query))


def oldest_pending_due(session: Session) -> datetime | None:
    value: datetime | None = session.scalar(
        select(func.min(T.due_at)).where(T.status == DeliveryStatus.PENDING)
    )
    return value


def cancel(session: Session, ids: Sequence[int], now: datetime, reason: str) -> int:
    count = 0
    for start in range(0, len(ids), INSERT_CHUNK):
        result = session.execute(
            update(TABLE)
            .where(T.id.in_(ids[start : start + INSERT_CHUNK]), T.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.CANCELLED, last_error=reason, updated_at=now)
        )
        count += result.rowcount  # type: ignore[attr-defined]
    return count


# --- dispatching -----------------------------------------------------------------------


def claim_due(
    session: Session, *, now: datetime, limit: int, claimer: str, lease: timedelta
) -> list[ClaimedRow]:
    """Claim up to ``limit`` due pending rows for ``claimer``; only claimed rows may be sent.

    The claim holds once the caller's write transaction commits.
    """
    if limit <= 0:
        return []
    due = (
        select(T.id)
        .where(T.status == DeliveryStatus.PENDING, T.next_attempt_at <= now)
        .order_by(T.next_attempt_at, T.id)
        .limit(limit)
    )
    if not is_sqlite(session):
        due = due.with_for_update(skip_locked=True)
    stmt = (
        update(TABLE)
        .where(T.id.in_(due.scalar_subquery()), T.status == DeliveryStatus.PENDING)
        .values(
            status=DeliveryStatus.SENDING,
            claimed_by=claimer,
            claimed_at=now,
            lease_until=now + lease,
            attempts=T.attempts + 1,
            updated_at=now,
        )
        .returning(
            T.id,
            T.dedupe_key,
            T.idempotency_key,
            T.calendar_slug,
            T.entry_uid,
            T.occurrence_utc,
            T.offset_seconds,
            T.channel,
            T.due_at,
            T.attempts,
        )
    )
    rows = session.execute(stmt).all()
    claimed = [
        ClaimedRow(
            id=r.id,
            dedupe_key=r.dedupe_key,
            idempotency_key=r.idempotency_key,
            calendar_slug=r.calendar_slug,
            entry_uid=r.entry_uid,
            occurrence_utc=r.occurrence_utc,
            offset=timedelta(seconds=r.offset_seconds),
            channel=r.channel,
            due_at=r.due_at,
            attempts=r.attempts,
        )
        for r in rows
    ]
    claimed.sort(key=lambda c: (c.due_at, c.id))
    return claimed


_FINISH = (
    update(TABLE)
    .where(
        T.id == bindparam("b_id"),
        T.status == DeliveryStatus.SENDING,
        T.claimed_by == bindparam("b_claimer"),
    )
    .values(
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next"),
        last_error=bindparam("b_error"),
        sent_at=bindparam("b_sent"),
        late=bindparam("b_late"),
        attempts=T.attempts + bindparam("b_delta"),
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)


def finish(session: Session, outcomes: Sequence[Outcome], *, claimer: str, now: datetime) -> int:
    """Record outcomes of rows this process claimed; returns how many rows it still owned."""
    if not outcomes:
        return 0
    params = [
        {
            "b_id": o.id,
            "b_claimer": claimer,
            "b_status": o.status,
            "b_next": o.next_attempt_at,
            "b_error": o.last_error,
            "b_sent": o.sent_at,
            "b_late": o.late,
            "b_delta": o.attempts_delta,
            "b_now": now,
        }
        for o in outcomes
    ]
    result = session.connection().execute(_FINISH, params)
    return int(result.rowcount)


def renew_leases(
    session: Session, ids: Sequence[int], *, claimer: str, now: datetime, lease: timedelta
) -> int:
    """Extend the lease of rows this process is still sending, so no one takes them over."""
    if not ids:
        return 0
    stmt = (
        update(TABLE)
        .where(T.id.in_(list(ids)), T.status == DeliveryStatus.SENDING, T.claimed_by == claimer)
        .values(lease_until=now + lease, updated_at=now)
    )
    return int(session.connection().execute(stmt).rowcount)


def _back_to_pending(session: Session, now: datetime, reason: str, *conditions: Any) -> list[int]:
    stmt = (
        update(TABLE)
        .where(T.status == DeliveryStatus.SENDING, *conditions)
        .values(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now,
            lease_until=None,
            updated_at=now,
            last_error=reason,
        )
        .returning(T.id)
    )
    return list(session.scalars(stmt))


def recover_expired(session: Session, now: datetime, *, keep: str | None = None) -> list[int]:
    """Rows left ``sending`` past their lease (their daemon died) become pending again.

    ``keep`` is this process's claimer: its own rows are never taken back from it (a
    forward clock jump can expire a lease before it was renewed).
    """
    conditions = [T.lease_until < now] + ([T.claimed_by != keep] if keep is not None else [])
    return _back_to_pending(
        session, now, "lease expired: the claiming daemon stopped or hung", *conditions
    )


def recover_all_sending(session: Session, now: datetime) -> list[int]:
    """Every ``sending`` row back to pending: only for the one daemon of a SQLite file,
    which holds the daemon lock, so no other process can be sending them."""
    return _back_to_pending(session, now, "the previous daemon stopped while sending")


def schedule_of_pending(session: Session, until: datetime) -> dict[int, datetime]:
    """``id -> next attempt`` of pending rows whose next attempt is before ``until``."""
    query = select(T.id, T.next_attempt_at).where(
        T.status == DeliveryStatus.PENDING, T.next_attempt_at <= until
    )
    return {row_id: when for row_id, when in session.execute(query)}


# --- reporting -------------------------------------------------------------------------


def counts_by_status(session: Session) -> dict[DeliveryStatus, int]:
    """How many rows have each status (every status, 0 when none has it)."""
    rows = session.execute(select(T.status, func.count()).group_by(T.status))
    counts = dict.fromkeys(DeliveryStatus, 0)
    counts.update({status: int(count) for status, count in rows})
    return counts


def deliveries(
    session: Session,
    *,
    statuses: Sequence[DeliveryStatus],
    newest_first: bool,
    limit: int,
    order_by: str = "due_at",
) -> list[Delivery]:
    column = getattr(Delivery, order_by)
    query = (
        select(Delivery)
        .where(Delivery.status.in_(statuses))
        .order_by(column.desc() if newest_first else column, Delivery.id)
        .limit(limit)
    )
    return list(session.scalars(query))
