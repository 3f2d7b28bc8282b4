"""A claimed delivery and how one attempt at it ends: ``ClaimedRow`` and ``Outcome``.

A claim (``repository.claim_due``) hands the dispatcher ``ClaimedRow`` values;
the dispatcher ends each with an ``Outcome`` of a named kind
(``Outcome.sent``, ``.retry``, ``.release``, ``.failed``, ``.missed``,
``.cancelled``), which says the status it leaves the row in and whether the
attempt counts; ``repository.finish`` writes it. ``finished_event`` is the
``DeliveryFinished`` the dispatcher tells once that write committed. Pure:
values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from calendar_svc.events import DeliveryFinished, OutcomeKind
from calendar_svc.models import DeliveryStatus


@dataclass(frozen=True)
class ClaimedRow:
    """One delivery row this process claimed (``sending``, leased to it)."""

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

    Each constructor takes ``at``, when the attempt ended. ``next_attempt_at``
    is when a pending row may be claimed again (for a final status, when it
    ended); ``last_error`` the reason of anything but a send.
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
    def retry(cls, id: int, *, at: datetime, after: timedelta, error: str) -> Outcome:
        """Pending again, to be claimed ``after`` from ``at`` on (the backoff's delay)."""
        return cls(OutcomeKind.RETRY, id, next_attempt_at=at + after, last_error=error)

    @classmethod
    def release(cls, id: int, *, at: datetime, reason: str) -> Outcome:
        """Pending again at once, as if this attempt had never been claimed."""
        return cls(OutcomeKind.RELEASE, id, next_attempt_at=at, last_error=reason)

    @classmethod
    def failed(cls, id: int, *, at: datetime, error: str) -> Outcome:
        return cls(OutcomeKind.FAILED, id, next_attempt_at=at, last_error=error)

    @classmethod
    def missed(cls, id: int, *, at: datetime, reason: str) -> Outcome:
        return cls(OutcomeKind.MISSED, id, next_attempt_at=at, last_error=reason)

    @classmethod
    def cancelled(cls, id: int, *, at: datetime, reason: str) -> Outcome:
        return cls(OutcomeKind.CANCELLED, id, next_attempt_at=at, last_error=reason)


def finished_event(
    row: ClaimedRow, outcome: Outcome, at: datetime, send_seconds: float | None = None
) -> DeliveryFinished:
    """The ``DeliveryFinished`` of ``row`` ending as ``outcome`` at ``at``."""
    return DeliveryFinished(
        delivery=row.id,
        calendar=row.calendar_slug,
        uid=row.entry_uid,
        channel=row.channel,
        due_at=row.due_at,
        attempt=row.attempts,
        outcome=outcome.kind,
        finished_at=at,
        late=outcome.late,
        error=outcome.last_error,
        next_attempt_at=outcome.next_attempt_at,
        send_seconds=send_seconds,
    )
