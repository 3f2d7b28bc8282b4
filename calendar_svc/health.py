"""What the running process knows about its own health, for ``/healthz`` and sd_notify.

The daemon updates one ``HealthState``; the feed app reads it. When no daemon
runs in the process (``calendar-svc serve``), ``scheduler_running`` stays None
and only the database is checked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from calendar_svc.timezones import iso_utc


@dataclass
class HealthState:
    scheduler_running: bool | None = None
    last_planner_run: datetime | None = None
    last_loop_tick: datetime | None = None
    next_reminder: datetime | None = None
    # Loop ticks older than this mean the scheduler loop is stuck.
    stuck_after: timedelta = timedelta(seconds=90)
    failing_channels: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self, now: datetime) -> dict[str, Any]:
        with self.lock:
            stuck = bool(
                self.scheduler_running
                and self.last_loop_tick is not None
                and now - self.last_loop_tick > self.stuck_after
            )
            return {
                "scheduler_running": self.scheduler_running,
                "scheduler_stuck": stuck,
                "last_planner_run": iso_utc(self.last_planner_run)
                if self.last_planner_run
                else None,
                "last_loop_tick": iso_utc(self.last_loop_tick) if self.last_loop_tick else None,
                "next_reminder": iso_utc(self.next_reminder) if self.next_reminder else None,
                "failing_channels": dict(self.failing_channels),
            }


STATE = HealthState()
