"""Prometheus metrics of one daemon or feed server, counted from events, served by ``/metrics``.

Each ``Metrics`` has its own ``CollectorRegistry``, so two daemons (or two
tests) in one process never add to each other's counters. The names and
labels are documented in the README (HTTP) and stay as they are.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from calendar_svc.events import (
    ClockStepped,
    DeliveryFinished,
    EntryIsolated,
    EntryRestored,
    Event,
    EventBus,
    FeedAnswered,
    FeedCacheLookup,
    FeedRendered,
    OutcomeKind,
    PageAnswered,
    PendingChanged,
    PlannerGap,
    ReminderCancelled,
    ReminderPlanned,
    SourceFailed,
    SourceFetched,
)

KINDS: tuple[type[Event], ...] = (
    EntryIsolated,
    EntryRestored,
    FeedAnswered,
    PageAnswered,
    FeedCacheLookup,
    FeedRendered,
    ReminderPlanned,
    ReminderCancelled,
    PlannerGap,
    DeliveryFinished,
    PendingChanged,
    SourceFetched,
    SourceFailed,
    ClockStepped,
)

# DeliveryFinished.outcome -> the ``outcome`` label of calendar_svc_reminders_total. A
# release (a send given back unfinished at a stop) is no outcome of the reminder: it is
# sent later, and counted then.
_OUTCOME_LABEL = {
    OutcomeKind.SENT: "sent",
    OutcomeKind.RETRY: "retried",
    OutcomeKind.FAILED: "failed",
    OutcomeKind.MISSED: "missed",
    OutcomeKind.CANCELLED: "cancelled",
}


class Metrics:
    """The counters, histograms and gauge, in a registry of their own (thread-safe)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Counted on every feed request, an unchanged feed's poll included: plain numbers.
        self.feed_requests = _Tally(
            "calendar_svc_feed_requests", "Feed HTTP requests by status code.", "status"
        )
        self.registry.register(self.feed_requests)
        self.page_requests = Counter(
            "calendar_svc_page_requests",
            "Subscribers' page requests (pages and per-entry .ics) by status code.",
            ["status"],
            registry=self.registry,
        )
        self.feed_render_seconds = Histogram(
            "calendar_svc_feed_render_seconds",
            "Time to build a feed that was not cached.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10),
            registry=self.registry,
        )
        self.feed_cache = _Tally(
            "calendar_svc_feed_cache", "Feed cache lookups by result (hit or miss).", "result"
        )
        self.registry.register(self.feed_cache)
        self.reminders = Counter(
            "calendar_svc_reminders",
            "Reminder deliveries by outcome (planned, sent, retried, failed, missed, cancelled)"
            " and channel.",
            ["outcome", "channel"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "calendar_svc_send_seconds",
            "Time a notifier took to send one reminder.",
            ["channel"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 15, 30),
            registry=self.registry,
        )
        self.lateness_seconds = Histogram(
            "calendar_svc_lateness_seconds",
            "Delay between a reminder's due time and its send.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.pending = Gauge(
            "calendar_svc_pending_deliveries",
            "Deliveries planned and not yet sent.",
            registry=self.registry,
        )
        self.source_fetches = Counter(
            "calendar_svc_source_fetches",
            "Fetches of followed ICS feeds by source and result (changed, unchanged, failed).",
            ["source", "result"],
            registry=self.registry,
        )
        self.source_last_success = Gauge(
            "calendar_svc_source_last_success_timestamp_seconds",
            "When each source was last fetched successfully (Unix time).",
            ["source"],
            registry=self.registry,
        )
        self.source_failures = Gauge(
            "calendar_svc_source_consecutive_failures",
            "Failed fetches of each source in a row (0 after a success).",
            ["source"],
            registry=self.registry,
        )
        self.isolated_entries = Gauge(
            "calendar_svc_isolated_entries",
            "Entries left out of planning, feeds and the page: the engine cannot use a value "
            "they hold (see /healthz and the entry.isolated log line).",
            registry=self.registry,
        )
        self.clock_steps = Counter(
            "calendar_svc_clock_steps",
            "Steps of the wall clock the daemon's loop saw (wall vs monotonic drift beyond "
            "a few seconds), by direction (forward or back).",
            ["direction"],
            registry=self.registry,
        )
        self.clock_last_step = Gauge(
            "calendar_svc_clock_last_step_seconds",
            "Size of the last step of the wall clock, in seconds (negative: back).",
            registry=self.registry,
        )
        self._isolated: set[tuple[str, str]] = set()

    def attach(self, bus: EventBus) -> None:
        """Count the events of ``bus`` from now on."""
        bus.add_listener(self.on_event, KINDS)

    def on_event(self, event: Event) -> None:
        match event:
            case FeedAnswered(status=status, count=count):
                self.feed_requests.inc(_STATUS_LABELS.get(status) or str(status), count)
            case PageAnswered(status=status):
                self.page_requests.labels(status=str(status)).inc()
            case FeedCacheLookup(hit=hit):
                self.feed_cache.inc("hit" if hit else "miss")
            case FeedRendered(seconds=seconds):
                self.feed_render_seconds.observe(seconds)
            case ReminderPlanned(channel=channel):
                self.reminders.labels("planned", channel).inc()
            case ReminderCancelled(channel=channel):
                self.reminders.labels("cancelled", channel).inc()
            case PlannerGap(missed=missed):
                for reminder in missed:
                    self.reminders.labels("missed", reminder.channel).inc()
            case DeliveryFinished():
                self._delivery(event)
            case PendingChanged(pending=pending):
                self.pending.set(pending)
            case EntryIsolated(calendar=calendar, uid=uid):
                self._isolated.add((calendar, uid))
                self.isolated_entries.set(len(self._isolated))
            case EntryRestored(calendar=calendar, uid=uid):
                self._isolated.discard((calendar, uid))
                self.isolated_entries.set(len(self._isolated))
            case SourceFetched(name=name, at=at, changed=changed):
                self.source_fetches.labels(name, "changed" if changed else "unchanged").inc()
                self.source_last_success.labels(name).set(at.timestamp())
                self.source_failures.labels(name).set(0)
            case ClockStepped(seconds=seconds):
                self.clock_steps.labels("forward" if seconds > 0 else "back").inc()
                self.clock_last_step.set(seconds)
            case SourceFailed(name=name, failures=failures):
                self.source_fetches.labels(name, "failed").inc()
                self.source_failures.labels(name).set(failures)

    def _delivery(self, event: DeliveryFinished) -> None:
        if event.send_seconds is not None:
            self.send_seconds.labels(event.channel).observe(event.send_seconds)
        if event.outcome is OutcomeKind.SENT:
            self.lateness_seconds.observe(max(0.0, event.lateness.total_seconds()))
        label = _OUTCOME_LABEL.get(event.outcome)
        if label is not None:
            self.reminders.labels(label, event.channel).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


_STATUS_LABELS = {code: str(code) for code in (200, 304, 400, 404, 503)}


class _Tally(Collector):
    """A counter by one label, kept in plain integers and exposed as a Prometheus counter
    when scraped: a feed poll is counted on every request, and a ``Counter`` child's
    ``inc`` (checks and a lock of its own per call) costs several times this."""

    def __init__(self, name: str, documentation: str, label: str):
        self._name, self._documentation, self._label = name, documentation, label
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def inc(self, value: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[value] = self._counts.get(value, 0) + amount

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self._name, self._documentation, labels=[self._label])

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        with self._lock:
            counts = sorted(self._counts.items())
        for value, count in counts:
            family.add_metric([value], count)
        yield family
