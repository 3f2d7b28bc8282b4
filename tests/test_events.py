"""The event bus and its observers: health, metrics and the log lines, each built per test."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

import pytest

from calendar_svc.event_log import EventLog
from calendar_svc.events import (
    ChannelFailing,
    DaemonStarted,
    DaemonStopping,
    DeliveryFinished,
    Event,
    EventBus,
    FeedAnswered,
    LoopTicked,
    MissedReminder,
    OutcomeKind,
    PendingChanged,
    PlannerGap,
    ReminderPlanned,
)
from calendar_svc.health import Health
from calendar_svc.metrics import Metrics
from calendar_svc.observers import Observers
from calendar_svc.timezones import UTC

NOW = datetime(2025, 9, 2, 15, 0, tzinfo=UTC)


def finished(outcome: str, channel: str = "mail", **fields: object) -> DeliveryFinished:
    """An attempt's end (``outcome`` named as ``OutcomeKind``'s values)."""
    values: dict[str, object] = {
        "delivery": 7,
        "calendar": "trip",
        "uid": "bilateral",
        "channel": channel,
        "due_at": NOW,
        "attempt": 1,
        "outcome": OutcomeKind(outcome),
        "finished_at": NOW + timedelta(seconds=2),
        **fields,
    }
    return DeliveryFinished(**values)  # type: ignore[arg-type]


# --- the bus -------------------------------------------------------------------------------


def test_listeners_get_the_kinds_they_asked_for_in_order() -> None:
    bus = EventBus()
    got: list[tuple[str, str]] = []
    bus.add_listener(lambda e: got.append(("all", type(e).__name__)))
    bus.add_listener(lambda e: got.append(("ticks", type(e).__name__)), [LoopTicked])
    bus.add_listener(lambda e: got.append(("any", type(e).__name__)), [Event])
    bus.emit(LoopTicked(at=NOW))
    bus.emit(FeedAnswered(status=200))
    assert got == [
        ("all", "LoopTicked"),
        ("ticks", "LoopTicked"),
        ("any", "LoopTicked"),
        ("all", "FeedAnswered"),
        ("any", "FeedAnswered"),
    ]


def test_a_listener_that_raises_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus()
    heard: list[Event] = []

    def broken(event: Event) -> None:
        raise ZeroDivisionError("observer bug")

    bus.add_listener(broken)
    bus.add_listener(heard.append)
    with caplog.at_level(logging.ERROR, logger="calendar_svc.events"):
        bus.emit(FeedAnswered(status=304))  # does not raise
    assert heard == [FeedAnswered(status=304)]
    [record] = caplog.records
    assert record.getMessage() == "events.listener_failed"
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert vars(record)["event"] == "FeedAnswered"


def test_remove_listener_and_subscriptions_made_later() -> None:
    bus = EventBus()
    heard: list[Event] = []
    bus.emit(LoopTicked(at=NOW))  # routes worked out before anyone listens
    bus.add_listener(heard.append, [LoopTicked])
    bus.emit(LoopTicked(at=NOW))
    assert bus.remove_listener(heard.append) is True
    bus.emit(LoopTicked(at=NOW))
    assert bus.remove_listener(heard.append) is False
    assert heard == [LoopTicked(at=NOW)]


def test_kinds_must_be_event_classes() -> None:
    with pytest.raises(TypeError, match="not an event class"):
        EventBus().add_listener(print, [str])  # type: ignore[list-item]


def test_emitting_from_many_threads_loses_nothing() -> None:
    bus = EventBus()
    metrics = Metrics()
    metrics.attach(bus)

    def poll() -> None:
        for _ in range(500):
            bus.emit(FeedAnswered(status=304))

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert 'calendar_svc_feed_requests_total{status="304"} 2000.0' in metrics.render().decode()


# --- health ---------------------------------------------------------------------------------


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_stuck_deadline_comes_from_the_tick_once() -> None:
    assert Health(tick_every=timedelta(seconds=2)).stuck_after == timedelta(seconds=90)
    assert Health(tick_every=timedelta(minutes=1)).stuck_after == timedelta(minutes=3)
    assert Health().stuck_after is None  # no loop: never stuck


def test_staleness_is_measured_on_the_monotonic_clock() -> None:
    monotonic = Monotonic()
    health = Health(tick_every=timedelta(seconds=40), monotonic=monotonic)
    bus = EventBus()
    health.attach(bus)
    assert not health.stuck()  # not running yet
    bus.emit(DaemonStarted(at=NOW))
    monotonic.now += 120
    assert not health.stuck()
    monotonic.now += 0.5
    assert health.stuck() and health.snapshot()["scheduler_stuck"] is True
    # A tick whose wall time is a day behind (the clock stepped back) still counts.
    bus.emit(LoopTicked(at=NOW - timedelta(days=1)))
    assert not health.stuck()
    assert health.snapshot()["last_loop_tick"] == "2025-09-01T15:00:00Z"
    bus.emit(DaemonStopping(reason="SIGTERM", in_flight=0))
    monotonic.now += 10_000
    assert not health.stuck() and health.snapshot()["scheduler_running"] is False


def test_failing_channels_until_a_send_through_them_succeeds() -> None:
    health = Health()
    bus = EventBus()
    health.attach(bus)
    bus.emit(ChannelFailing(channel="mail", reason="HTTP 503 " + "x" * 300))
    bus.emit(ChannelFailing(channel="hook", reason="gone"))
    bus.emit(finished("retry", channel="mail", error="HTTP 503"))
    assert health.snapshot()["failing_channels"] == {
        "mail": "HTTP 503 " + "x" * 191,
        "hook": "gone",
    }
    bus.emit(finished("sent", channel="mail"))
    assert health.snapshot()["failing_channels"] == {"hook": "gone"}
    bus.emit(PendingChanged(pending=3, next_due=NOW))
    assert health.snapshot()["next_reminder"] == "2025-09-02T15:00:00Z"


# --- metrics ---------------------------------------------------------------------------------


def test_each_metrics_has_its_own_registry_with_the_documented_names() -> None:
    first, second = Observers.build(log=False), Observers.build(log=False)
    first.events.emit(finished("sent", send_seconds=0.25))
    first.events.emit(finished("retry", channel="hook", send_seconds=1.5))
    first.events.emit(finished("release"))
    first.events.emit(
        ReminderPlanned(
            calendar="trip",
            uid="bilateral",
            channel="mail",
            due_at=NOW,
            offset=timedelta(hours=1),
            planned_at=NOW,
        )
    )
    first.events.emit(PendingChanged(pending=4, next_due=None))
    text = first.metrics.render().decode()
    for line in (
        'calendar_svc_reminders_total{channel="mail",outcome="sent"} 1.0',
        'calendar_svc_reminders_total{channel="hook",outcome="retried"} 1.0',
        'calendar_svc_reminders_total{channel="mail",outcome="planned"} 1.0',
        'calendar_svc_send_seconds_count{channel="hook"} 1.0',
        "calendar_svc_lateness_seconds_count 1.0",
        "calendar_svc_pending_deliveries 4.0",
    ):
        assert line in text, line
    # A release is no outcome of the reminder: it is counted when it is sent later.
    assert 'outcome="release"' not in text
    assert "calendar_svc_reminders_total{" not in second.metrics.render().decode()


# --- log lines -------------------------------------------------------------------------------


def test_log_lines_keep_their_names_and_loggers(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    EventLog().attach(bus)
    missed = tuple(
        MissedReminder(calendar="trip", uid=f"e{i}", channel="mail", due_at=NOW) for i in range(60)
    )
    with caplog.at_level(logging.DEBUG, logger="calendar_svc"):
        bus.emit(finished("sent", late=True))
        bus.emit(finished("retry", error="HTTP 503", next_attempt_at=NOW + timedelta(minutes=1)))
        bus.emit(finished("release", error="the daemon stopped"))
        bus.emit(PlannerGap(last_pass=NOW, recorded_from=NOW, until=NOW, missed=missed))
        bus.emit(FeedAnswered(status=200))  # counted, never logged
    lines = [(r.name, r.getMessage(), r.levelname) for r in caplog.records]
    dispatcher, planner = "calendar_svc.reminders.dispatcher", "calendar_svc.reminders.planner"
    assert lines[:3] == [
        (dispatcher, "reminder.sent", "INFO"),
        (dispatcher, "reminder.retry", "WARNING"),
        (dispatcher, "reminder.released", "WARNING"),
    ]
    # At most 50 lines per gap; the summary counts them all.
    assert lines[3:] == [(planner, "reminder.missed", "WARNING")] * 50 + [
        (planner, "planner.gap", "WARNING")
    ]
    sent, retry = caplog.records[0], caplog.records[1]
    assert (vars(sent)["delay"], vars(sent)["late"], vars(sent)["delivery"]) == (2.0, True, 7)
    assert vars(retry)["next"] == "2025-09-02T15:01:00Z"
    assert vars(caplog.records[-1])["missed"] == 60
