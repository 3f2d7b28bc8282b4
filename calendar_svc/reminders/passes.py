"""The planner's own state in the database: one pass at a time, and when the last one ran.

``serialise_passes`` makes planner passes of several daemons take turns: on
SQLite the write transaction's ``BEGIN IMMEDIATE`` already does, on
PostgreSQL a transaction-scoped advisory lock does. ``last_pass`` and
``record_pass`` keep the one ``planner_state`` row that says when the last
pass of any daemon ran, and which planner made it, so the next pass can tell
a gap (no daemon ran) from normal operation. Each function takes a session:
the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from calendar_svc.db import is_sqlite
from calendar_svc.models import PlannerState

# Arbitrary constant ("remplan"): the advisory lock that serialises planner passes on PostgreSQL.
_PG_PLANNER_LOCK = 0x72656D706C616E


def serialise_passes(session: Session) -> None:
    """Wait until no other planner pass runs on this database, until the transaction ends."""
    if not is_sqlite(session):
        session.execute(select(func.pg_advisory_xact_lock(_PG_PLANNER_LOCK)))


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
