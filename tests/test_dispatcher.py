"""The dispatcher on SQLite and PostgreSQL with an injected clock: claim once, retry, fail,
late-or-missed, lease recovery, stop."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from calendar_svc.config import Config, default_config
from calendar_svc.errors import PermanentNotifierError, RetryableNotifierError
from calendar_svc.events import ChannelFailing, DeliveryFinished, Event, EventBus
from calendar_svc.importer import import_specs
from calendar_svc.models import Delivery
from calendar_svc.notifiers.base import Notifier, Reminder
from calendar_svc.reminders import dispatcher as dispatcher_module
from calendar_svc.reminders import repository as repo
from calendar_svc.reminders.dispatcher import Dispatcher
from calendar_svc.reminders.outcome import Outcome
from calendar_svc.reminders.planner import Planner
from calendar_svc.store import Store


def Z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Recorder(Notifier):
    """A test channel: records what it got; ``behaviour(reminder)`` may raise."""

    keys: ClassVar = {}

    def __init__(self, behaviour: Callable[[Reminder], None] | None = None):
        super().__init__("console", {"type": "recorder"})
        self.behaviour = behaviour
        self.got: list[Reminder] = []
        self.lock = threading.Lock()

    def send(self, reminder: Reminder) -> None:
        if self.behaviour is not None:
            self.behaviour(reminder)
        with self.lock:
            self.got.append(reminder)


def rows(store: Store, uid: str | None = None) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.due_at, Delivery.id)
    if uid:
        query = query.where(Delivery.entry_uid == uid)
    with store.read() as session:
        return list(session.scalars(query))


def recover_expired(store: Store, now: datetime, *, keep: str | None = None) -> list[int]:
    """What the daemon's tick does: lease-expired rows back to pending, in its own write."""
    with store.write() as session:
        return repo.recover_expired(session, now, keep=keep)


def drain(dispatcher: Dispatcher) -> None:
    """Claim and send everything due now, synchronously (the pump thread is not started)."""
    while True:
        claimed = dispatcher.run_once()
        assert dispatcher.wait_idle(10)
        dispatcher.flush()
        if not claimed:
            return


@pytest.fixture
def config(store: Store) -> Config:
    base = default_config(store.url)
    return dataclasses.replace(
        base,
        reminders=dataclasses.replace(
            base.reminders,
            retry_base=timedelta(seconds=30),
            retry_max=timedelta(minutes=10),
            max_attempts=4,
            lease=timedelta(minutes=5),
        ),
    )


@pytest.fixture
def planned(trip_store: Store, clock, config: Config) -> Store:
    """The trip with the bilateral's two reminders (15:00Z, 15:45Z) planned at 12:00Z."""
    clock.set(Z("2025-09-02T12:00:00Z"))
    Planner(trip_store, config.reminders).plan()
    return trip_store


@pytest.fixture
def make() -> Iterator[Callable[..., Dispatcher]]:
    made: list[Dispatcher] = []

    def build(store: Store, config: Config, notifier: Notifier, **kwargs: Any) -> Dispatcher:
        d = Dispatcher(store, config, {"console": notifier}, workers=4, **kwargs)
        made.append(d)
        return d

    yield build
    for d in made:
        d.stop(1)


def test_nothing_is_sent_before_its_time(planned: Store, clock, config, make) -> None:
    recorder = Recorder()
    drain(make(planned, config, recorder))
    assert recorder.got == []
    assert {r.status for r in rows(planned)} == {"pending"}


def test_due_reminder_is_sent_once_with_its_key(planned: Store, clock, config, make) -> None:
    recorder = Recorder()
    dispatcher = make(planned, config, recorder)
    clock.set(Z("2025-09-02T15:00:00.5Z"))
    drain(dispatcher)
    drain(dispatcher)
    assert [r.entry.uid for r in recorder.got] == ["sheinbaum-bilateral"]
    sent, pending = rows(planned)
    assert (sent.status, sent.attempts, sent.late) == ("sent", 1, False)
    assert sent.sent_at == clock.now and sent.claimed_by == dispatcher.claimer
    assert recorder.got[0].idempotency_key == sent.idempotency_key
    assert recorder.got[0].title == "In 1 hour: Bilateral meeting with President Claudia Sheinbaum"
    assert "10:00 CST (UTC-06:00)" in recorder.got[0].body
    assert pending.status == "pending"


def test_two_dispatchers_racing_send_each_row_once(store: Store, clock, config, make) -> None:
    """200 rows due at once, two daemons' dispatchers claiming concurrently."""
    from calendar_svc.schedule_files import parse_schedule

    entries = [
        {
            "uid": f"e{i:03d}",
            "title": f"Entry {i}",
            "start": datetime(2025, 9, 2, 10, 0),
            "reminders": ["PT0S"],
        }
        for i in range(200)
    ]
    with store.write() as session:
        import_specs(
            session,
            [
                parse_schedule(
                    {
                        "calendar": {
                            "slug": "burst",
                            "name": "Burst",
                            "timezone": "America/Mexico_City",
                        },
                        "entries": entries,
                    },
                    source="test",
                )
            ],
            now=store.clock(),
        )
    clock.set(Z("2025-09-02T15:59:00Z"))
    Planner(store, config.reminders).plan()
    clock.set(Z("2025-09-02T16:00:00Z"))
    recorders = [Recorder(), Recorder()]
    dispatchers = [make(store, config, r, claimer=f"host:{i}") for i, r in enumerate(recorders)]
    threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    keys = [r.idempotency_key for rec in recorders for r in rec.got]
    assert len(keys) == len(set(keys)) == 200
    assert {r.status for r in rows(store)} == {"sent"}


def test_retry_with_backoff_then_success(planned: Store, clock, config, make) -> None:
    failures = iter([RetryableNotifierError("HTTP 503"), RetryableNotifierError("timed out")])

    def flaky(_: Reminder) -> None:
        error = next(failures, None)
        if error:
            raise error

    recorder = Recorder(flaky)
    retried: list[tuple[int, datetime]] = []
    dispatcher = make(planned, config, recorder, on_retry=lambda i, w: retried.append((i, w)))
    clock.set(Z("2025-09-02T15:00:00Z"))
    drain(dispatcher)
    row = rows(planned)[0]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 503")
    # First retry 15-30 s later (base 30 s with 50-100 % jitter), and its alarm was set.
    assert timedelta(seconds=15) <= row.next_attempt_at - clock.now <= timedelta(seconds=30)
    assert retried == [(row.id, row.next_attempt_at)]
    drain(dispatcher)
    assert rows(planned)[0].attempts == 1  # not due again yet
    clock.set(row.next_attempt_at)
    drain(dispatcher)
    row = rows(planned)[0]
    assert (row.status, row.attempts) == ("pending", 2)
    assert timedelta(seconds=30) <= row.next_attempt_at - clock.now <= timedelta(seconds=60)
    clock.set(row.next_attempt_at)
    drain(dispatcher)
    row = rows(planned)[0]
    assert (row.status, row.attempts, row.sent_at) == ("sent", 3, clock.now)
    assert len(recorder.got) == 1


def test_retry_after_from_the_peer_wins(planned: Store, clock, config, make) -> None:
    def busy(_: Reminder) -> None:
        raise RetryableNotifierError("HTTP 429", retry_after=120)

    dispatcher = make(planned, config, Recorder(busy))
    clock.set(Z("2025-09-02T15:00:00Z"))
    drain(dispatcher)
    wait = rows(planned)[0].next_attempt_at - clock.now
    assert timedelta(seconds=120) <= wait <= timedelta(seconds=144)  # never before asked


def test_observers_hear_each_attempt_through_the_dispatcher_s_bus(
    planned: Store, clock, config, make
) -> None:
    """Health and metrics of this dispatcher's own bus, nothing global: a retry marks the
    channel failing, the send that follows clears it; both are counted."""
    from calendar_svc.events import DeliveryFinished
    from calendar_svc.observers import Observers

    observers = Observers.build(log=False)
    heard: list[DeliveryFinished] = []
    observers.events.add_listener(heard.append, [DeliveryFinished])  # type: ignore[arg-type]
    failures = iter([RetryableNotifierError("HTTP 503")])

    def flaky(_: Reminder) -> None:
        if (error := next(failures, None)) is not None:
            raise error

    dispatcher = make(planned, config, Recorder(flaky), events=observers.events)
    clock.set(Z("2025-09-02T15:00:00Z"))
    drain(dispatcher)
    assert [(e.outcome, e.attempt, e.error) for e in heard] == [("retry", 1, "HTTP 503")]
    assert heard[0].send_seconds is not None and heard[0].next_attempt_at > clock.now
    assert observers.health.snapshot()["failing_channels"] == {"console": "HTTP 503"}
    clock.set(rows(planned)[0].next_attempt_at)
    drain(dispatcher)
    assert [e.outcome for e in heard] == ["retry", "sent"]
    assert observers.health.snapshot()["failing_channels"] == {}
    text = observers.metrics.render().decode()
    assert 'calendar_svc_reminders_total{channel="console",outcome="retried"} 1.0' in text
    assert 'calendar_svc_reminders_total{channel="console",outcome="sent"} 1.0' in text


def test_max_attempts_ends_in_failed(planned: Store, clock, config, make) -> None:
    def down(_: Reminder) -> None:
        raise RetryableNotifierError("HTTP 500")

    dispatcher = make(planned, config, Recorder(down))
    clock.set(Z("2025-09-02T15:00:00Z"))
    for _ in range(config.reminders.max_attempts):
        drain(dispatcher)
        clock.set(max(clock.now, rows(planned)[0].next_attempt_at))
    row = rows(planned)[0]
    assert (row.status, row.attempts) == ("failed", 4)
    assert row.last_error.startswith("gave up after 4 attempts: HTTP 500")


def test_permanent_error_fails_one_without_blocking_others(
    planned: Store, clock, config, make
) -> None:
    def picky(reminder: Reminder) -> None:
        if reminder.offset == timedelta(hours=1):
            raise PermanentNotifierError("HTTP 400: bad payload")

    recorder = Recorder(picky)
    dispatcher = make(planned, config, recorder)
    clock.set(Z("2025-09-02T15:45:00Z"))  # both due now (the first 45 min late, entry not started)
    drain(dispatcher)
    first, second = rows(planned)
    assert (first.status, first.attempts, first.last_error) == (
        "failed",
        1,
        "HTTP 400: bad payload",
    )
    assert second.status == "sent"
    assert [r.offset for r in recorder.got] == [timedelta(minutes=15)]


def test_a_notifier_bug_is_retried_not_fatal(planned: Store, clock, config, make) -> None:
    def buggy(_: Reminder) -> None:
        raise KeyError("oops")

    dispatcher = make(planned, config, Recorder(buggy))
    clock.set(Z("2025-09-02T15:00:00Z"))
    drain(dispatcher)
    row = rows(planned)[0]
    assert (row.status, row.last_error) == ("pending", "KeyError: 'oops'")


def test_late_reminder_is_sent_marked_late(planned: Store, clock, config, make) -> None:
    # The daemon was down from 14:55Z to 15:30Z: the 1-hour reminder is 30 min late but the
    # meeting (16:00Z) has not started, so it goes out, marked late.
    recorder = Recorder()
    clock.set(Z("2025-09-02T15:30:00Z"))
    drain(make(planned, config, recorder))
    first = rows(planned)[0]
    assert (first.status, first.late) == ("sent", True)
    assert recorder.got[0].late and recorder.got[0].title.startswith("Late: ")


def test_missed_when_the_entry_started_and_grace_ran_out(
    planned: Store, clock, config, make
) -> None:
    recorder = Recorder()
    clock.set(Z("2025-09-02T16:20:00Z"))  # both reminders late, entry started 20 min ago
    drain(make(planned, config, recorder))
    assert [r.status for r in rows(planned)] == ["missed", "missed"]
    assert recorder.got == []


def test_late_burst_sends_only_the_latest_of_an_occurrence(
    planned: Store, clock, config, make
) -> None:
    # Down until 15:50Z: both reminders of the 16:00Z meeting are overdue; one message is enough.
    recorder = Recorder()
    clock.set(Z("2025-09-02T15:50:00Z"))
    drain(make(planned, config, recorder))
    assert [(r.offset_seconds, r.status) for r in rows(planned)] == [
        (3600, "missed"),
        (900, "sent"),
    ]
    assert [r.offset for r in recorder.got] == [timedelta(minutes=15)]


def test_entry_cancelled_before_the_planner_ran_again(planned: Store, clock, config, make) -> None:
    planned.set_status("sheinbaum-bilateral", "cancelled")
    recorder = Recorder()
    clock.set(Z("2025-09-02T15:00:00Z"))
    drain(make(planned, config, recorder))
    assert recorder.got == []
    assert rows(planned)[0].status == "cancelled"


def test_lease_recovery_resends_with_the_same_idempotency_key(
    planned: Store, clock, config, make
) -> None:
    clock.set(Z("2025-09-02T15:00:00Z"))
    # A daemon claims the row, then dies (kill -9) without recording anything.
    with planned.write() as session:
        claimed = repo.claim_due(
            session, now=clock.now, limit=10, claimer="dead-host:1", lease=config.reminders.lease
        )
    assert [c.entry_uid for c in claimed] == ["sheinbaum-bilateral"]
    recorder = Recorder()
    dispatcher = make(planned, config, recorder)
    drain(dispatcher)
    assert recorder.got == []  # still leased
    assert recover_expired(planned, clock.now) == []
    clock.advance(config.reminders.lease + timedelta(seconds=1))
    assert recover_expired(planned, clock.now) == [claimed[0].id]
    drain(dispatcher)
    row = rows(planned)[0]
    assert (row.status, row.attempts, row.claimed_by) == ("sent", 2, dispatcher.claimer)
    assert [r.idempotency_key for r in recorder.got] == [claimed[0].idempotency_key]


def test_a_stale_owner_cannot_overwrite_a_row_taken_over(planned: Store, clock, config) -> None:
    clock.set(Z("2025-09-02T15:00:00Z"))
    with planned.write() as session:
        [row] = repo.claim_due(
            session, now=clock.now, limit=1, claimer="slow:1", lease=timedelta(seconds=5)
        )
    clock.advance(timedelta(seconds=6))
    recover_expired(planned, clock.now)
    with planned.write() as session:
        [again] = repo.claim_due(
            session, now=clock.now, limit=1, claimer="fast:2", lease=timedelta(seconds=5)
        )
    assert again.id == row.id
    with planned.write() as session:
        owned = repo.finish(
            session,
            [Outcome.failed(row.id, at=clock.now, error="late")],
            claimer="slow:1",
            now=clock.now,
        )
    assert owned == set()
    assert rows(planned)[0].status == "sending"


def test_stop_puts_a_hung_send_back_to_pending(planned: Store, clock, config, make) -> None:
    entered, release = threading.Event(), threading.Event()

    def hang(_: Reminder) -> None:
        entered.set()
        release.wait(10)

    recorder = Recorder(hang)
    retried: list[int] = []
    dispatcher = make(planned, config, recorder, on_retry=lambda i, _: retried.append(i))
    clock.set(Z("2025-09-02T15:00:00Z"))
    dispatcher.run_once()
    assert rows(planned)[0].status == "sending"
    # The send is under way (not merely queued, which a stop releases without sending).
    assert entered.wait(10)
    assert dispatcher.stop(0.2) == [rows(planned)[0].id]
    row = rows(planned)[0]
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, clock.now)
    assert retried == []  # released, not a retry: no alarm for a later attempt
    release.set()
    # A later daemon sends it, once.
    fresh = Recorder()
    drain(make(planned, config, fresh))
    assert len(fresh.got) == 1 and rows(planned)[0].status == "sent"


def test_sends_queued_at_a_stop_are_released_once_and_not_retried(
    store: Store, clock, config, caplog: pytest.LogCaptureFixture
) -> None:
    """One worker, two reminders due: the first hangs in its notifier, the second waits in
    the queue. A stop gives both back (attempt not counted, no retry alarm), says so once
    for each, and the queued one is never sent."""
    import logging

    from calendar_svc.schedule_files import parse_schedule

    spec = parse_schedule(
        {
            "calendar": {"slug": "pair", "name": "Pair", "timezone": "America/Mexico_City"},
            "entries": [
                {
                    "uid": uid,
                    "title": uid,
                    "start": datetime(2025, 9, 2, 10, 0),
                    "reminders": ["PT0S"],
                }
                for uid in ("first", "second")
            ],
        },
        source="test",
    )
    with store.write() as session:
        import_specs(session, [spec], now=store.clock())
    clock.set(Z("2025-09-02T15:59:00Z"))
    Planner(store, config.reminders).plan()
    clock.set(Z("2025-09-02T16:00:00Z"))
    entered, release = threading.Event(), threading.Event()

    def hang(_: Reminder) -> None:
        entered.set()
        release.wait(10)

    recorder = Recorder(hang)
    retried: list[int] = []
    dispatcher = Dispatcher(
        store, config, {"console": recorder}, workers=1, on_retry=lambda i, _: retried.append(i)
    )
    assert dispatcher.run_once() == 2
    assert entered.wait(10)
    with caplog.at_level(logging.INFO, logger="calendar_svc.reminders.dispatcher"):
        released = dispatcher.stop(0.2)
        release.set()
        assert dispatcher.wait_idle(10)
    assert sorted(released) == sorted(r.id for r in rows(store))
    assert {(r.status, r.attempts) for r in rows(store)} == {("pending", 0)}
    assert retried == []
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("reminder.released") == 2 and "reminder.retry" not in messages
    assert [r.entry.uid for r in recorder.got] == ["first"]  # the hung one finished; not the other


def test_unknown_channel_fails_with_a_reason(planned: Store, clock, config) -> None:
    dispatcher = Dispatcher(planned, config, {}, workers=1)
    clock.set(Z("2025-09-02T15:00:00Z"))
    try:
        drain(dispatcher)
    finally:
        dispatcher.stop(1)
    row = rows(planned)[0]
    assert (row.status, row.last_error) == ("failed", "no notifier for channel 'console'")


def test_a_long_send_keeps_its_lease_and_is_never_sent_twice(
    planned: Store, clock, config, make
) -> None:
    """A send that outlives reminders.lease (or a clock jump) must not be taken back and
    sent again by the same daemon while it is still running."""
    release = threading.Event()
    recorder = Recorder(lambda _: release.wait(10))
    dispatcher = make(planned, config, recorder)
    clock.set(Z("2025-09-02T15:00:00Z"))
    dispatcher.run_once()
    assert [r.status for r in rows(planned)].count("sending") == 1
    # Time passes beyond the lease while the send hangs; the daemon's next rounds run.
    clock.advance(config.reminders.lease + timedelta(minutes=1))
    dispatcher._renewed -= config.reminders.lease.total_seconds()  # the round is due to renew
    dispatcher.run_once()
    assert rows(planned)[0].lease_until > clock.now  # renewed
    assert recover_expired(planned, clock.now, keep=dispatcher.claimer) == []
    # Even an expired lease is not taken back from its living owner.
    clock.advance(config.reminders.lease * 2)
    assert recover_expired(planned, clock.now, keep=dispatcher.claimer) == []
    dispatcher.run_once()
    release.set()
    assert dispatcher.wait_idle(10)
    dispatcher.flush()
    assert len(recorder.got) == 1
    assert rows(planned)[0].status == "sent" and rows(planned)[0].attempts == 1


def test_claimers_differ_between_processes_with_the_same_host_and_pid() -> None:
    from calendar_svc.reminders.dispatcher import default_claimer

    assert default_claimer() != default_claimer()


def test_an_error_after_the_claim_puts_the_rows_back(
    planned: Store, clock, config, make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claimed rows a database error keeps from starting go back to pending (an attempt,
    retried after the backoff); /healthz does not blame their channel: no send failed."""
    from calendar_svc.observers import Observers

    observers = Observers.build(log=False)
    failing: list[ChannelFailing] = []
    observers.events.add_listener(failing.append, [ChannelFailing])  # type: ignore[arg-type]
    dispatcher = make(planned, config, Recorder(), events=observers.events)
    clock.set(Z("2025-09-02T15:00:00Z"))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(dispatcher_module, "entries_by_key", broken)
    with pytest.raises(RuntimeError):
        dispatcher.run_once()
    row = rows(planned)[0]
    assert row.status == "pending" and "database went away" in (row.last_error or "")
    assert row.attempts == 1 and row.next_attempt_at > clock.now  # backoff, not a hot loop
    assert failing == []
    assert observers.health.snapshot()["failing_channels"] == {}


def test_a_finished_attempt_is_told_once_its_outcome_is_written(
    planned: Store, clock, config, make
) -> None:
    """Listeners (logs, metrics, health) hear of an attempt when the table already says it."""
    bus = EventBus()
    seen: list[tuple[str, str]] = []

    def look(event: Event) -> None:
        assert isinstance(event, DeliveryFinished)
        [row] = [r for r in rows(planned) if r.id == event.delivery]
        seen.append((event.outcome, row.status))

    bus.add_listener(look, [DeliveryFinished])
    dispatcher = make(planned, config, Recorder(), events=bus)
    clock.set(Z("2025-09-02T15:00:00.5Z"))
    drain(dispatcher)
    assert seen == [("sent", "sent")]


def test_an_attempt_on_a_row_taken_over_is_not_told(planned: Store, clock, config, make) -> None:
    """A send that outlived its lease: another daemon took the row over, so this attempt
    is neither written nor counted as a send (the other daemon's attempt is)."""
    entered, release = threading.Event(), threading.Event()

    def hang(_: Reminder) -> None:
        entered.set()
        assert release.wait(20)

    bus, heard = EventBus(), []
    bus.add_listener(heard.append, [DeliveryFinished])
    dispatcher = make(planned, config, Recorder(hang), events=bus)
    clock.set(Z("2025-09-02T15:00:00Z"))
    assert dispatcher.run_once() == 1
    assert entered.wait(10)
    clock.advance(config.reminders.lease + timedelta(seconds=1))
    [row_id] = recover_expired(planned, clock.now)
    with planned.write() as session:
        [again] = repo.claim_due(
            session, now=clock.now, limit=1, claimer="other:2", lease=config.reminders.lease
        )
    assert again.id == row_id
    release.set()
    assert dispatcher.wait_idle(10)
    dispatcher.flush()
    assert heard == []
    row = rows(planned)[0]
    assert (row.status, row.claimed_by) == ("sending", "other:2")


def test_a_reload_waits_for_sends_through_the_old_notifier(
    planned: Store, clock, config, make
) -> None:
    """After a reload, old notifiers are closed only once the sends using them are done;
    sends through the new notifiers do not hold that up."""
    entered, release = threading.Event(), threading.Event()

    def hang(_: Reminder) -> None:
        entered.set()
        assert release.wait(20)

    old = Recorder(hang)
    dispatcher = make(planned, config, old)
    clock.set(Z("2025-09-02T15:00:00.5Z"))
    assert dispatcher.run_once() == 1
    assert entered.wait(10)
    new = Recorder()
    returned = dispatcher.replace(config, {"console": new})
    assert returned == {"console": old}
    assert dispatcher.in_use.wait_released([new], 0)  # nothing uses the new one
    assert not dispatcher.in_use.wait_released([old], 0.2)  # the hanging send still does
    release.set()
    assert dispatcher.in_use.wait_released([old], 10)
    assert dispatcher.wait_idle(10)
    dispatcher.flush()
    assert [r.entry.uid for r in old.got] == ["sheinbaum-bilateral"]
    assert rows(planned)[0].status == "sent"


def test_a_reload_during_a_claim_does_not_release_the_round_s_notifiers(
    planned: Store, clock, config, make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload that lands after a round took its notifiers but before its sends are
    registered: the old notifiers are still held, so the daemon does not close one that
    is about to send."""
    old, new = Recorder(), Recorder()
    dispatcher = make(planned, config, old)
    clock.set(Z("2025-09-02T15:00:00.5Z"))
    real_claim = repo.claim_due
    released_during_claim: list[bool] = []

    def claim_with_a_reload(*args: Any, **kwargs: Any) -> Any:
        if not released_during_claim:  # the reload, from another thread, mid-round

            def reload() -> None:
                dispatcher.replace(config, {"console": new})
                released_during_claim.append(dispatcher.in_use.wait_released([old], 0.2))

            thread = threading.Thread(target=reload)
            thread.start()
            thread.join(10)
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(repo, "claim_due", claim_with_a_reload)
    assert dispatcher.run_once() == 1
    assert released_during_claim == [False]  # held by the round
    assert dispatcher.in_use.wait_released([old], 10)  # and released once its send is done
    assert dispatcher.wait_idle(10)
    dispatcher.flush()
    assert [r.entry.uid for r in old.got] == ["sheinbaum-bilateral"]
    assert new.got == []
