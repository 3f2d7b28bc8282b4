"""What a running process knows about its own health, for ``/healthz``, kept from events.

``Health`` listens to the daemon's events (started, loop ticked, planner
passed, pending changed, stopping), the dispatcher's (a channel failing,
a send through it succeeding) and the store's (an entry isolated because the
engine cannot use it, or usable again: ``/healthz`` says ``degraded`` and lists
them). Each daemon, feed server and test builds its
own; ``calendar-svc serve`` has no daemon, so ``scheduler_running`` stays
None there and only the database is checked.

The loop counts as stuck when the scheduler runs and has not ticked for
``stuck_after``, measured on the monotonic clock: a step of the wall clock
(NTP, a restored VM) must neither hide a stuck loop nor fake one. The wall
times in the snapshot are for people reading it; ``last_clock_step`` says the
size (signed seconds) and wall time of the last step the loop saw.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from calendar_svc import timezones
from calendar_svc.events import (
    ChannelFailing,
    ClockStepped,
    DaemonStarted,
    DaemonStopping,
    DeliveryFinished,
    EntryIsolated,
    EntryRestored,
    Event,
    EventBus,
    LoopTicked,
    OutcomeKind,
    PendingChanged,
    PlannerPassed,
    SourceFailed,
    SourceFetched,
)
from calendar_svc.timezones import iso_utc

# A loop is never called stuck sooner than this, however short its tick.
MIN_STUCK_AFTER = timedelta(seconds=90)
# ... and not before it missed this many ticks in a row.
MISSED_TICKS = 3

KINDS: tuple[type[Event], ...] = (
    EntryIsolated,
    EntryRestored,
    DaemonStarted,
    DaemonStopping,
    LoopTicked,
    ClockStepped,
    PlannerPassed,
    PendingChanged,
    ChannelFailing,
    DeliveryFinished,
    SourceFetched,
    SourceFailed,
)


class Health:
    """The process's health, updated by events, read by ``/healthz`` (thread-safe).

    ``tick_every`` is the scheduler loop's tick interval (None: no loop runs
    here); the loop is stuck after ``MISSED_TICKS`` of them without a tick, and
    never sooner than ``MIN_STUCK_AFTER``. ``monotonic`` is injectable so tests
    can move time.
    """

    def __init__(
        self,
        *,
        tick_every: timedelta | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.stuck_after: timedelta | None = None
        self.watch_loop(tick_every)
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self.scheduler_running: bool | None = None
        self.last_planner_run: datetime | None = None
        self.last_loop_tick: datetime | None = None
        self._last_tick_monotonic: float | None = None
        self.next_reminder: datetime | None = None
        # The last step of the wall clock the loop saw: its size (signed seconds), when.
        self.last_clock_step: ClockStepped | None = None
        self._failing: dict[str, str] = {}
        # Source name -> what /healthz shows of it (last success, last error, failures).
        self._sources: dict[str, dict[str, Any]] = {}
        # (calendar, uid) -> why the engine cannot use the entry: left out, and listed.
        self._isolated: dict[tuple[str, str], str] = {}

    def watch_loop(self, tick_every: timedelta | None) -> None:
        """The loop ticks every ``tick_every`` from now on (a reload changed it)."""
        self.stuck_after = (
            max(MIN_STUCK_AFTER, MISSED_TICKS * tick_every) if tick_every is not None else None
        )

    def attach(self, bus: EventBus) -> None:
        """Listen to ``bus`` from now on."""
        bus.add_listener(self.on_event, KINDS)

    def on_event(self, event: Event) -> None:
        with self._lock:
            match event:
                case DaemonStarted(at=at):
                    self.scheduler_running = True
                    # The first tick is one interval away: staleness counts from here.
                    self._ticked(at)
                case LoopTicked(at=at):
                    self._ticked(at)
                case ClockStepped():
                    self.last_clock_step = event
                case DaemonStopping():
                    self.scheduler_running = False
                case PlannerPassed(at=at):
                    self.last_planner_run = at
                case PendingChanged(next_due=next_due):
                    self.next_reminder = next_due
                case ChannelFailing(channel=channel, reason=reason):
                    self._failing[channel] = reason[:200]
                case DeliveryFinished(outcome=OutcomeKind.SENT, channel=channel):
                    self._failing.pop(channel, None)
                case EntryIsolated(calendar=calendar, uid=uid, reason=reason):
                    self._isolated[(calendar, uid)] = reason
                case EntryRestored(calendar=calendar, uid=uid):
                    self._isolated.pop((calendar, uid), None)
                case SourceFetched(name=name, at=at):
                    self._sources[name] = {"last_success": _iso(at), "failures": 0}
                case SourceFailed(name=name, error=error, failures=count, last_success=last):
                    self._sources[name] = {
                        "last_success": _iso(last),
                        "last_error": error[:200],
                        "failures": count,
                    }

    def _ticked(self, at: datetime) -> None:
        self.last_loop_tick = at
        self._last_tick_monotonic = self._monotonic()

    def stuck(self) -> bool:
        """Whether the scheduler runs and its loop has not ticked for ``stuck_after``."""
        with self._lock:
            return self._stuck()

    def _stuck(self) -> bool:
        if not self.scheduler_running or self.stuck_after is None:
            return False
        if self._last_tick_monotonic is None:
            return False
        silent = self._monotonic() - self._last_tick_monotonic
        return silent > self.stuck_after.total_seconds()

    def snapshot(self) -> dict[str, Any]:
        """The fields ``/healthz`` shows (besides the database and the version); ``tz_database``
        is the version of the tz database in use, as ``calendar-svc --version`` prints it."""
        with self._lock:
            return {
                "tz_database": timezones.version(),
                "scheduler_running": self.scheduler_running,
                "scheduler_stuck": self._stuck(),
                "last_planner_run": _iso(self.last_planner_run),
                "last_loop_tick": _iso(self.last_loop_tick),
                "next_reminder": _iso(self.next_reminder),
                "last_clock_step": _step(self.last_clock_step),
                "failing_channels": dict(self._failing),
                # Followed feeds whose last fetch failed keep their last good copy.
                "sources": {name: dict(state) for name, state in self._sources.items()},
                # Entries left out of planning and feeds: /healthz says "degraded".
                "isolated_entries": [
                    {"calendar": calendar, "uid": uid, "reason": reason}
                    for (calendar, uid), reason in sorted(self._isolated.items())
                ],
            }

    def degraded(self) -> bool:
        """Whether an entry is isolated (left out: the rest runs, but not everything)."""
        with self._lock:
            return bool(self._isolated)


def _step(step: ClockStepped | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"seconds": step.seconds, "at": iso_utc(step.at), "revived": step.revived}


def _iso(value: datetime | None) -> str | None:
    return iso_utc(value) if value is not None else None
