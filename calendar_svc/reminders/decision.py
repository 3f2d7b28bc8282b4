"""What the dispatcher does with one claimed row: send it, or end it without sending.

A claimed row is sent only if its entry still exists and the rules still
produce its reminder (the planner may not have run since an edit), it is not
too late (``policy.timing``), no later reminder of the same occurrence and
channel was claimed with it while both are late (``superseded``), and its
channel has a notifier. Otherwise it ends at once as ``cancelled``,
``missed`` or ``failed``. After a send failed, ``after_failure`` says whether
it is tried again (with the backoff's delay) or given up. Pure: values in,
values out; the dispatcher does the sending and the writing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from calendar_svc.config import Config, RemindersConfig
from calendar_svc.links import reminder_feed_url
from calendar_svc.messages import build_reminder
from calendar_svc.models import Entry
from calendar_svc.notifiers.base import Notifier
from calendar_svc.notifiers.reminder import Reminder
from calendar_svc.reminders.outcome import ClaimedRow, Outcome
from calendar_svc.reminders.policy import Timing, retry_delay, timing
from calendar_svc.reminders.rules import Slot, reminders_between, slot_of


@dataclass(frozen=True)
class Send:
    """Hand ``reminder`` to ``notifier`` (``late``: after its due time, within the grace)."""

    notifier: Notifier
    reminder: Reminder
    late: bool


def decide(
    row: ClaimedRow,
    entry: Entry | None,
    *,
    now: datetime,
    config: Config,
    notifiers: Mapping[str, Notifier],
    superseded: set[int],
) -> Send | Outcome:
    """Send ``row`` (``entry`` is its entry, None when gone), or how it ends unsent."""
    if entry is None or not still_wanted(row, entry, config):
        reason = "no longer wanted: the entry changed or is gone"
        return Outcome.cancelled(row.id, at=now, reason=reason)
    when = timing(now, row.due_at, row.occurrence_utc, config.reminders.grace)
    if row.id in superseded:
        reason = "superseded by a later reminder of the same occurrence"
        return Outcome.missed(row.id, at=now, reason=reason)
    if when is Timing.MISSED:
        reason = "too late: the entry started and grace ran out"
        return Outcome.missed(row.id, at=now, reason=reason)
    notifier = notifiers.get(row.channel)
    if notifier is None:
        error = f"no notifier for channel {row.channel!r}"
        return Outcome.failed(row.id, at=now, error=error)
    late = when is Timing.LATE
    reminder = build_reminder(
        idempotency_key=row.idempotency_key,
        calendar_slug=row.calendar_slug,
        entry=entry,
        start_utc=row.occurrence_utc,
        offset=row.offset,
        due_at=row.due_at,
        late=late,
        display=config.display,
        feed_url=reminder_feed_url(config.feed.public_url, entry.calendar),
    )
    return Send(notifier=notifier, reminder=reminder, late=late)


def after_failure(
    row: ClaimedRow,
    error: str,
    *,
    at: datetime,
    config: RemindersConfig,
    retry_after: float | None = None,
) -> Outcome:
    """A retry after the backoff's delay (or the peer's ``retry_after``), or, once
    ``max_attempts`` attempts were made, failed for good."""
    if row.attempts >= config.max_attempts:
        return Outcome.failed(
            row.id, at=at, error=f"gave up after {row.attempts} attempts: {error}"
        )
    delay = retry_delay(row.attempts, config.retry_base, config.retry_max, retry_after=retry_after)
    return Outcome.retry(row.id, at=at, after=delay, error=error)


def still_wanted(row: ClaimedRow, entry: Entry, config: Config) -> bool:
    """Whether the rules still produce this row's reminder (the planner may not have run yet)."""
    around = timedelta(seconds=1)
    found = reminders_between(
        entry,
        entry.calendar.slug,
        entry.calendar.reminders,
        config.reminders,
        row.due_at - around,
        row.due_at + around,
    )
    return any(r.dedupe_key == row.dedupe_key for r in found)


def superseded(rows: list[ClaimedRow], now: datetime, config: Config) -> set[int]:
    """Late rows of one occurrence and channel claimed together: all but the latest-due one."""
    latest: dict[Slot, ClaimedRow] = {}
    late = [
        r
        for r in rows
        if timing(now, r.due_at, r.occurrence_utc, config.reminders.grace) is not Timing.ON_TIME
    ]
    for r in late:
        slot = slot_of(r)
        if slot not in latest or latest[slot].due_at < r.due_at:
            latest[slot] = r
    keep = {r.id for r in latest.values()}
    return {r.id for r in late if r.id not in keep}
