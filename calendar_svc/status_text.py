"""What the daemon tells people about what comes next: systemd's STATUS line and the note
of its ``daemon.ready`` log line. Pure: text from what the daemon read.

A daemon that starts with nothing due must say why instead of sitting silent:
the next reminder is beyond the planning horizon (and when it is), every entry
is in the past (and how to see what would have been sent), there are no
entries, or the upcoming entries have no reminders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from calendar_svc.models import DeliveryStatus
from calendar_svc.reminders.rules import PlannedReminder
from calendar_svc.timezones import iso_utc

# The counts STATUS shows, in this order.
STATUS_COUNTS = (DeliveryStatus.PENDING, DeliveryStatus.SENT, DeliveryStatus.FAILED)


def status_line(next_reminder: datetime | None, counts: Mapping[DeliveryStatus, int]) -> str:
    """``next reminder 2025-09-02T15:00:00Z; 2 pending; 0 sent; 0 failed``."""
    parts = [
        f"next reminder {iso_utc(next_reminder)}" if next_reminder else "no reminder in horizon"
    ]
    parts += [f"{counts.get(status, 0)} {status}" for status in STATUS_COUNTS]
    return "; ".join(parts)


def ready_fields(
    *,
    now: datetime,
    horizon: timedelta,
    next_reminder: datetime | None,
    next_unplanned: Callable[[], PlannedReminder | None],
    last_ends: Callable[[], Iterable[datetime | None]],
) -> dict[str, Any]:
    """The fields of ``daemon.ready`` that say what comes next.

    ``next_reminder`` is the first pending one of the horizon; only without one
    are ``next_unplanned`` (the first reminder beyond it) and ``last_ends`` (each
    calendar's last entry end) asked, since they read the database.
    """
    if next_reminder is not None:
        return {"next_reminder": iso_utc(next_reminder)}
    upcoming = next_unplanned()
    if upcoming is not None:
        note = f"nothing due in the next {hours(horizon)}; planned when it enters the horizon"
        return {
            "next_reminder": iso_utc(upcoming.due_at),
            "next_entry": upcoming.entry_uid,
            "note": note,
        }
    return {"next_reminder": "none", "note": nothing_due(last_ends(), now)}


def nothing_due(last_ends: Iterable[datetime | None], now: datetime) -> str:
    """Why no reminder is due at all, from each calendar's last entry end (None: empty)."""
    ends = [end for end in last_ends if end is not None]
    if not ends:
        return "no entries yet: add schedule files or use `calendar-svc import`"
    last = max(ends)
    if last < now:
        return (
            f"no reminders are due: every entry is in the past (the last ended "
            f"{iso_utc(last)}); `calendar-svc reminders --from DATE --to DATE` shows "
            "what would be sent"
        )
    return "no reminders are due: the upcoming entries have no reminders"


def hours(delta: timedelta) -> str:
    """``6 hours``, ``0.5 hours``."""
    return f"{delta.total_seconds() / 3600:g} hours"
