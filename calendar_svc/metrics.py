"""Prometheus metrics of the process, in one registry that ``/metrics`` serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

FEED_REQUESTS = Counter(
    "calendar_svc_feed_requests",
    "Feed HTTP requests by status code.",
    ["status"],
    registry=REGISTRY,
)
FEED_RENDER_SECONDS = Histogram(
    "calendar_svc_feed_render_seconds",
    "Time to build a feed that was not cached.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10),
    registry=REGISTRY,
)
FEED_CACHE = Counter(
    "calendar_svc_feed_cache",
    "Feed cache lookups by result (hit or miss).",
    ["result"],
    registry=REGISTRY,
)
REMINDERS = Counter(
    "calendar_svc_reminders",
    "Reminder deliveries by outcome (planned, sent, retried, failed, missed, cancelled)"
    " and channel.",
    ["outcome", "channel"],
    registry=REGISTRY,
)
SEND_SECONDS = Histogram(
    "calendar_svc_send_seconds",
    "Time a notifier took to send one reminder.",
    ["channel"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 15, 30),
    registry=REGISTRY,
)
LATENESS_SECONDS = Histogram(
    "calendar_svc_lateness_seconds",
    "Delay between a reminder's due time and its send.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
    registry=REGISTRY,
)
PENDING = Gauge(
    "calendar_svc_pending_deliveries",
    "Deliveries planned and not yet sent.",
    registry=REGISTRY,
)


def render() -> bytes:
    return generate_latest(REGISTRY)
