"""One process's event bus with its observers subscribed: health, metrics and the log lines.

A daemon builds one with its tick interval (``Observers.build(tick_every=...)``)
and hands the bus to the planner, the dispatcher and the feed app; ``calendar-svc
serve`` builds one without a tick (no scheduler loop runs there); a test builds
its own, so nothing it counts leaks into another.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from calendar_svc.event_log import EventLog
from calendar_svc.events import EventBus
from calendar_svc.health import Health
from calendar_svc.metrics import Metrics


@dataclass(frozen=True)
class Observers:
    events: EventBus
    health: Health
    metrics: Metrics

    @classmethod
    def build(
        cls,
        *,
        tick_every: timedelta | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        log: bool = True,
        events: EventBus | None = None,
    ) -> Observers:
        """A new bus (or ``events``, e.g. the store's) with a new ``Health`` (stuck after
        missed ticks of ``tick_every``), new ``Metrics`` and, unless ``log`` is false, the
        log lines, all subscribed."""
        events = events if events is not None else EventBus()
        health = Health(tick_every=tick_every, monotonic=monotonic)
        metrics = Metrics()
        health.attach(events)
        metrics.attach(events)
        if log:
            EventLog().attach(events)
        return cls(events=events, health=health, metrics=metrics)
