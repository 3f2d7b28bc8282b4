"""Steps of the wall clock, with injected clocks (no subprocess): issue 12, findings 3 and 4.

The wall clock and the monotonic clock are both injected, so a step is one
assignment: ``StepWatch`` sees it with its sign, ``LeaseWatch`` judges leases
on the monotonic clock, ``revive_missed_ahead`` gives back what a clock running
ahead recorded missed, and a daemon built with the two clocks (its tick called
directly, its dispatcher drained by hand) tells the step, re-plans in the same
tick and sends a reminder a forward jump had marked missed, once.
tests/test_fault_clock.py does the same to a real process under libfaketime.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import FakeClock
from sqlalchemy import select, update
from test_dispatcher import drain

from calendar_svc.clock import StepWatch
from calendar_svc.config import default_config, parse_config
from calendar_svc.daemon import Daemon
from calendar_svc.events import ClockStepped, Event, PlannerPassed
from calendar_svc.models import Delivery
from calendar_svc.notifiers.base import Notifier, Reminder
from calendar_svc.observers import Observers
from calendar_svc.reminders import repository as repo
from calendar_svc.reminders.leases import LeaseWatch
from calendar_svc.reminders.planner import Planner
from calendar_svc.sdnotify import ServiceNotifier
from calendar_svc.store import Store

# run() installs signal handlers and logging for the whole process: put back after each test.
pytestmark = pytest.mark.usefixtures("process_state")

HOUR = 3600.0
T0 = datetime(2025, 9, 2, 12, 0, tzinfo=UTC)


class Mono:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder(Notifier):
    keys: ClassVar = {}

    def __init__(self) -> None:
        super().__init__("console", {"type": "recorder"})
        self.got: list[Reminder] = []
        self.lock = threading.Lock()

    def send(self, reminder: Reminder) -> None:
        with self.lock:
            self.got.append(reminder)


# --- the step detector ------------------------------------------------------------------


def test_steps_beyond_the_threshold_are_seen_with_their_sign() -> None:
    wall, mono = FakeClock(T0), Mono()
    watch = StepWatch(wall=wall, monotonic=mono)
    assert watch.check() is None  # the first look only sets the reference
    wall.advance(timedelta(seconds=1))
    mono.now += 1
    assert watch.check() is None
    wall.advance(timedelta(seconds=1 - HOUR))  # one tick later, an hour back
    mono.now += 1
    back = watch.check()
    assert back is not None and back.seconds == -HOUR and back.at == wall.now
    assert watch.check() is None  # told once
    wall.advance(timedelta(seconds=HOUR + 2))
    mono.now += 2
    forward = watch.check()
    assert forward is not None and forward.seconds == HOUR
    # A suspend-length gap on both clocks (CLOCK_BOOTTIME counts the sleep) is no step.
    wall.advance(timedelta(hours=8))
    mono.now += 8 * HOUR
    assert watch.check() is None


def test_slow_drift_is_no_step() -> None:
    """NTP slewing (500 ppm at most) for a day, looked at every second: never a step,
    although the two clocks end up 40 s apart."""
    wall, mono = FakeClock(T0), Mono()
    watch = StepWatch(wall=wall, monotonic=mono)
    watch.check()
    for _ in range(86_400 // 60):
        wall.advance(timedelta(seconds=60 * 1.0005))
        mono.now += 60
        assert watch.check() is None
    assert wall.now.timestamp() - T0.timestamp() - (mono.now - 1000.0) > 40


def test_health_and_metrics_show_the_last_step() -> None:
    observers = Observers.build(tick_every=timedelta(seconds=1), log=False)
    assert observers.health.snapshot()["last_clock_step"] is None
    observers.events.emit(ClockStepped(seconds=-HOUR, at=T0, revived=2))
    observers.events.emit(ClockStepped(seconds=30.5, at=T0 + timedelta(hours=1), revived=0))
    assert observers.health.snapshot()["last_clock_step"] == {
        "seconds": 30.5,
        "at": "2025-09-02T13:00:00Z",
        "revived": 0,
    }
    text = observers.metrics.render().decode()
    assert 'calendar_svc_clock_steps_total{direction="back"} 1.0' in text
    assert 'calendar_svc_clock_steps_total{direction="forward"} 1.0' in text
    assert "calendar_svc_clock_last_step_seconds 30.5" in text


# --- leases on the monotonic clock ---------------------------------------------------------


def test_leases_run_out_on_the_monotonic_clock() -> None:
    mono = Mono()
    watch = LeaseWatch(timedelta(seconds=30), monotonic=mono)
    now = T0
    live = now + timedelta(seconds=20)
    # By the wall clock: an expired lease is taken over, a live one is not.
    assert watch.expired({1: now - timedelta(seconds=1), 2: live}, now) == [1]
    # The wall clock steps back an hour: row 2's lease now looks an hour long. Not renewed
    # for a whole lease on the monotonic clock, it ran out anyway.
    watch.stepped(-HOUR)
    now -= timedelta(hours=1)
    # A lease the wall clock still calls run out after the step back is taken over at once
    # (it ran out even longer ago).
    assert watch.expired({2: live, 3: now - timedelta(seconds=1)}, now) == [3]
    mono.now += 29
    assert watch.expired({2: live}, now) == []
    mono.now += 2
    assert watch.expired({2: live}, now) == [2]
    # A renewed lease starts its watch again.
    renewed = live + timedelta(seconds=30)
    assert watch.expired({2: renewed}, now) == []


def test_after_a_forward_step_the_wall_clock_alone_takes_no_lease_over() -> None:
    mono = Mono()
    watch = LeaseWatch(timedelta(seconds=30), monotonic=mono)
    lease = T0 + timedelta(seconds=25)  # a live daemon's lease, renewed every 10 s
    assert watch.expired({7: lease}, T0) == []
    watch.stepped(HOUR)  # the wall clock jumped an hour ahead
    ahead = T0 + timedelta(hours=1)
    # A lease that had run out before the jump still counts as run out.
    assert watch.expired({8: T0 - timedelta(seconds=1)}, ahead) == [8]
    mono.now += 10
    lease += timedelta(seconds=10)
    assert watch.expired({7: lease}, ahead) == []  # wall-expired, but not trusted now
    mono.now += 31  # the live daemon died: no renewal for a whole lease, measured here
    assert watch.expired({7: lease}, ahead) == [7]
    # Put right again: the wall clock is trusted as before.
    watch.stepped(-HOUR)
    assert watch.expired({9: T0 - timedelta(seconds=1), 10: T0 + timedelta(seconds=5)}, T0) == [9]


# --- the revive rule ----------------------------------------------------------------------


def test_only_rows_judged_by_a_clock_running_ahead_are_revived(
    trip_store: Store, clock: FakeClock
) -> None:
    """The trip's bilateral (16:00Z) reminds at 15:00Z and 15:45Z. Marked missed by a
    clock an hour or more ahead, each is revived when the right clock still finds it worth
    sending; a row marked missed in the past, or one whose grace ran out, stays missed."""
    config = default_config(trip_store.url)
    reminders = dataclasses.replace(config.reminders, grace=timedelta(minutes=10))
    clock.set(datetime(2025, 9, 2, 12, 0, tzinfo=UTC))
    Planner(trip_store, reminders).plan()
    with trip_store.write() as session:
        rows = {
            r.due_at.strftime("%H:%M"): r.id
            for r in session.scalars(select(Delivery).where(Delivery.status == "pending"))
        }
        assert {"15:00", "15:45"} <= set(rows)
        # Marked missed at 17:00Z (by a clock running ahead)...
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(rows.values())))
            .values(status="missed", updated_at=datetime(2025, 9, 2, 17, 0, tzinfo=UTC))
        )
    # ... and the right time is 15:50Z: 15:45Z is on time still (5 min late, before the
    # start); 15:00Z is 50 min late, but the entry has not started: sent late.
    right = datetime(2025, 9, 2, 15, 50, tzinfo=UTC)
    with trip_store.write() as session:
        revived = repo.revive_missed_ahead(session, right, reminders.grace)
    assert sorted(revived) == sorted([rows["15:00"], rows["15:45"]])
    with trip_store.read() as session:
        states = {r.id: (r.status, r.next_attempt_at) for r in session.scalars(select(Delivery))}
    assert states[rows["15:45"]][0] == "pending"
    assert states[rows["15:45"]][1] == datetime(2025, 9, 2, 15, 45, tzinfo=UTC)

    # Marked missed at a wall time already past: a real miss, never revived.
    with trip_store.write() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == rows["15:00"])
            .values(status="missed", updated_at=right - timedelta(minutes=1))
        )
        assert repo.revive_missed_ahead(session, right, reminders.grace) == []
    # Marked ahead, but by the right clock the entry started and the grace ran out.
    late = datetime(2025, 9, 2, 16, 11, tzinfo=UTC)
    with trip_store.write() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == rows["15:45"])
            .values(status="missed", updated_at=late + timedelta(hours=1))
        )
        assert repo.revive_missed_ahead(session, late, reminders.grace) == []


# --- the daemon, with both clocks injected -------------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Daemon, FakeClock, Mono, Recorder]]:
    (tmp_path / "var").mkdir()
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "cal.toml").write_text(
        '[calendar]\nslug = "cal"\nname = "Cal"\ntimezone = "UTC"\nreminders = ["PT0S"]\n'
        '[[entries]]\nuid = "later"\ntitle = "Later"\nstart = 2025-09-02T12:05:00Z\n'
        'duration = "PT30M"\n'
    )
    config = parse_config(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'var' / 'd.sqlite3'}"},
            "schedules": [str(tmp_path / "schedules" / "*.toml")],
            "feed": {"enabled": False},
            "notifiers": {"console": {"type": "console"}},
            "reminders": {"channels": ["console"], "grace": "PT10M", "lease": "PT30S"},
        },
        path=None,
    )
    wall, mono = FakeClock(T0), Mono()
    built = Daemon(
        config,
        load_config=lambda: config,
        service=ServiceNotifier({}),
        clock=wall,
        monotonic=mono,
    )
    recorder = Recorder()
    built.store.migrate()
    built.dispatcher.replace(config, {"console": recorder})
    built.steps.check()
    try:
        yield built, wall, mono, recorder
    finally:
        built.dispatcher.stop(1)
        built.store.close()


def statuses(daemon: Daemon) -> list[str]:
    with daemon.store.read() as session:
        return [r.status for r in session.scalars(select(Delivery).order_by(Delivery.id))]


def test_a_step_is_told_and_replanned_at_once(
    daemon: tuple[Daemon, FakeClock, Mono, Recorder],
) -> None:
    built, wall, mono, _ = daemon
    heard: list[Event] = []
    built.events.add_listener(heard.append, [ClockStepped, PlannerPassed])
    built._tick()  # imports the file and plans
    assert statuses(built) == ["pending"]
    heard.clear()
    wall.advance(timedelta(seconds=1 - HOUR))
    mono.now += 1
    built._tick()  # no file changed and the rescan is not due: only the step re-plans
    assert [type(e) for e in heard] == [ClockStepped, PlannerPassed]
    step = heard[0]
    assert isinstance(step, ClockStepped) and step.seconds == -HOUR and step.revived == 0
    assert built.observers.health.snapshot()["last_clock_step"]["seconds"] == -HOUR
    heard.clear()
    wall.advance(timedelta(seconds=1))
    mono.now += 1
    built._tick()
    assert heard == []  # one step, told once


def test_a_forward_jump_put_right_sends_the_reminder_once(
    daemon: tuple[Daemon, FakeClock, Mono, Recorder],
) -> None:
    """Due at 12:05Z; the clock runs an hour ahead from 12:00:01Z for a minute: the
    dispatcher records the reminder missed. The clock is put right at 12:01:01Z: the next
    tick sees the step back, revives the row, and at 12:05Z it is sent, once."""
    built, wall, mono, recorder = daemon
    built._tick()
    wall.advance(timedelta(seconds=1 + HOUR))
    mono.now += 1
    built._tick()  # the forward step: told, nothing to revive
    drain(built.dispatcher)
    assert statuses(built) == ["missed"] and recorder.got == []
    wall.advance(timedelta(seconds=60 - HOUR))
    mono.now += 60
    heard: list[Event] = []
    built.events.add_listener(heard.append, [ClockStepped])
    built._tick()
    assert [getattr(e, "revived", None) for e in heard] == [1]
    assert statuses(built) == ["pending"]
    drain(built.dispatcher)
    assert recorder.got == []  # not before its time
    wall.set(datetime(2025, 9, 2, 12, 5, tzinfo=UTC))
    mono.now += 239
    built._tick()
    drain(built.dispatcher)
    drain(built.dispatcher)
    assert [r.entry.uid for r in recorder.got] == ["later"]
    assert statuses(built) == ["sent"]


def test_a_lease_renewed_since_it_was_read_is_not_taken_over(
    trip_store: Store, clock: FakeClock
) -> None:
    """``recover_leases`` takes a row back only under the lease it read: a daemon that
    renewed in between keeps its row (SQLite and PostgreSQL round-trip the instant)."""
    config = default_config(trip_store.url)
    clock.set(datetime(2025, 9, 2, 15, 0, tzinfo=UTC))
    Planner(trip_store, config.reminders).plan()
    lease = timedelta(seconds=30)
    with trip_store.write() as session:
        claimed = repo.claim_due(session, now=clock.now, limit=10, claimer="ghost", lease=lease)
    assert claimed
    with trip_store.read() as session:
        leases = repo.foreign_leases(session, keep="me")
    assert set(leases) == {c.id for c in claimed}
    with trip_store.read() as session:
        assert repo.foreign_leases(session, keep="ghost") == {}  # its own rows: not foreign
    renewed, dead = claimed[0].id, [c.id for c in claimed[1:]]
    with trip_store.write() as session:
        repo.renew_leases(
            session, [renewed], claimer="ghost", now=clock.now + timedelta(seconds=5), lease=lease
        )
    with trip_store.write() as session:
        recovered = repo.recover_leases(session, leases, clock.now, keep="me")
    assert sorted(recovered) == sorted(dead)


def test_a_jump_forward_and_back_between_two_ticks_is_put_right_too(
    daemon: tuple[Daemon, FakeClock, Mono, Recorder],
) -> None:
    """The clock runs an hour ahead only between two ticks: no tick sees a step, but the
    dispatcher recorded the reminder missed meanwhile. The next tick revives it anyway."""
    built, wall, mono, recorder = daemon
    heard: list[Event] = []
    built.events.add_listener(heard.append, [ClockStepped])
    built._tick()
    wall.advance(timedelta(hours=1))
    drain(built.dispatcher)  # the pump ran while the clock was ahead
    assert statuses(built) == ["missed"]
    wall.advance(timedelta(seconds=1 - HOUR))
    mono.now += 1
    built._tick()
    assert heard == [] and statuses(built) == ["pending"]
    wall.set(datetime(2025, 9, 2, 12, 5, tzinfo=UTC))
    mono.now += 299
    built._tick()
    drain(built.dispatcher)
    assert [r.entry.uid for r in recorder.got] == ["later"]
    assert statuses(built) == ["sent"]
