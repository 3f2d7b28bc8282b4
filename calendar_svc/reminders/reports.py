"""What the deliveries table says to people: counts by status and lists of rows.

``calendar-svc status`` and the daemon's STATUS line read here; nothing here
writes. Each function takes a session: the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from calendar_svc.models import Delivery, DeliveryStatus


def counts_by_status(session: Session) -> dict[DeliveryStatus, int]:
    """How many rows have each status (every status, 0 when none has it)."""
    rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
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
    """Up to ``limit`` rows with one of ``statuses``, ordered by column ``order_by``."""
    column = getattr(Delivery, order_by)
    query = (
        select(Delivery)
        .where(Delivery.status.in_(statuses))
        .order_by(column.desc() if newest_first else column, Delivery.id)
        .limit(limit)
    )
    return list(session.scalars(query))
