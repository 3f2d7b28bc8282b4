"""The SQL of the deliveries table, portable across SQLite and PostgreSQL.

Every write that decides who sends what is one conditional statement, so that
the table, not any process's memory, is the truth:

* plan: insert-if-absent on ``dedupe_key`` (a cancelled row is revived when its
  reminder is wanted again, e.g. an entry moved back);
* claim: ``pending -> sending`` only where the row is still pending and due
  (on PostgreSQL ``FOR UPDATE SKIP LOCKED``, so several daemons split a burst
  instead of queueing on each other's row locks);
* finish/release: only rows still ``sending`` *and* claimed by this process;
* lease recovery: ``sending`` rows whose lease ran out go back to ``pending``;
* after the wall clock stepped back: rows marked ``missed`` while it ran ahead
  and still worth sending go back to ``pending``.

Every function takes a session and runs in the caller's transaction: the
caller (planner, dispatcher, daemon) decides what belongs together and opens
``store.write()`` (``BEGIN IMMEDIATE`` on SQLite) or ``store.read()`` around
it. A claimed row and how it ends (``ClaimedRow``, ``Outcome``) are in
``outcome``; the entry reads in ``entries``, the planner's own state in
``passes``, the status reports in ``reports``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from calendar_svc.db import is_sqlite
from calendar_svc.models import Delivery, DeliveryStatus
from calendar_svc.reminders.outcome import ClaimedRow, Outcome
from calendar_svc.reminders.policy import Timing, timing
from calendar_svc.reminders.rules import PlannedReminder

TABLE = Delivery.metadata.tables["deliveries"]
T = TABLE.c
# Rows per multi-row INSERT: well under SQLite's bound-parameter limit.
INSERT_CHUNK = 400


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


class PendingRow(NamedTuple):
    id: int
    dedupe_key: str
    calendar_slug: str
    entry_uid: str
    channel: str


def pending_rows(session: Session, until: datetime) -> list[PendingRow]:
    """The pending rows due up to ``until``."""
    query = select(T.id, T.dedupe_key, T.calendar_slug, T.entry_uid, T.channel).where(
        T.status == DeliveryStatus.PENDING, T.due_at <= until
    )
    return [PendingRow(*row) for row in session.execute(query)]


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

    The claim holds once the caller's write transaction commits. It never takes
    more than ``limit`` rows: on PostgreSQL the ``LIMIT … FOR UPDATE SKIP LOCKED``
    choice is a ``MATERIALIZED`` CTE, run exactly once. As ``id IN (subquery)``
    the planner may re-run it inside a nested loop, every run locking the next
    ``limit`` rows, and one claim took a whole burst of 2,000 rows (issue 12),
    leaving the other daemons idle and stranding everything if this one died.
    """
    if limit <= 0:
        return []
    due = (
        select(T.id)
        .where(T.status == DeliveryStatus.PENDING, T.next_attempt_at <= now)
        .order_by(T.next_attempt_at, T.id)
        .limit(limit)
    )
    if is_sqlite(session):
        # One writer at a time (BEGIN IMMEDIATE): the subquery runs once, as it always did.
        chosen: ColumnElement[bool] = T.id.in_(due.scalar_subquery())
    else:
        batch = due.with_for_update(skip_locked=True).cte("due").prefix_with("MATERIALIZED")
        chosen = T.id == batch.c.id
    stmt = (
        update(TABLE)
        .where(chosen, T.status == DeliveryStatus.PENDING)
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


def finish(
    session: Session, outcomes: Sequence[Outcome], *, claimer: str, now: datetime
) -> set[int]:
    """Record outcomes of rows this process claimed; returns the ids of the rows it still
    owned, the only ones written (another daemon took the others over)."""
    ids = [o.id for o in outcomes]
    owned: set[int] = set()
    for start in range(0, len(ids), INSERT_CHUNK):
        mine = select(T.id).where(
            T.id.in_(ids[start : start + INSERT_CHUNK]),
            T.status == DeliveryStatus.SENDING,
            T.claimed_by == claimer,
        )
        if not is_sqlite(session):  # SQLite's writer already excludes every other
            mine = mine.with_for_update()
        owned.update(session.scalars(mine))
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
        if o.id in owned
    ]
    if params:
        session.connection().execute(_FINISH, params)
    return owned


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


# --- after a step of the wall clock ------------------------------------------------------


def revive_missed_ahead(session: Session, now: datetime, grace: timedelta) -> list[int]:
    """Rows recorded ``missed`` at a wall time later than ``now`` become pending again when,
    by ``now``, they are still worth sending; returns their ids.

    A row can only have been marked at a time still in the future if the wall clock ran
    ahead when it was marked (a forward step since reversed): it was judged "too late" by
    a clock that was wrong. Judged again by the right one (``policy.timing``: not past
    its entry's start and the grace), it goes out once, at its due time, with the same
    idempotency key; one that came due and ran out of grace meanwhile stays missed.
    """
    query = select(T.id, T.due_at, T.occurrence_utc).where(
        T.status == DeliveryStatus.MISSED, T.updated_at > now
    )
    ids = [
        row_id
        for row_id, due_at, occurrence in session.execute(query)
        if timing(now, due_at, occurrence, grace) is not Timing.MISSED
    ]
    for start in range(0, len(ids), INSERT_CHUNK):
        session.execute(
            update(TABLE)
            .where(T.id.in_(ids[start : start + INSERT_CHUNK]), T.status == DeliveryStatus.MISSED)
            .values(
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=T.due_at,
                last_error="revived: recorded missed while the wall clock ran ahead",
                claimed_by=None,
                claimed_at=None,
                lease_until=None,
                late=False,
                updated_at=now,
            )
        )
    return ids


def foreign_leases(session: Session, *, keep: str) -> dict[int, datetime | None]:
    """``id -> lease_until`` of the rows other processes than ``keep`` are sending."""
    query = select(T.id, T.lease_until).where(
        T.status == DeliveryStatus.SENDING, T.claimed_by != keep
    )
    return {row_id: until for row_id, until in session.execute(query)}


def recover_leases(
    session: Session, leases: dict[int, datetime | None], now: datetime, *, keep: str
) -> list[int]:
    """Rows of ``leases`` still ``sending`` under the same lease (not renewed since it was
    read) become pending again: their daemon stopped renewing them."""
    recovered: list[int] = []
    reason = "lease expired: the claiming daemon stopped or hung"
    for row_id, until in sorted(leases.items()):
        same = T.lease_until.is_(None) if until is None else T.lease_until == until
        recovered += _back_to_pending(
            session, now, reason, T.id == row_id, T.claimed_by != keep, same
        )
    return recovered
