"""APScheduler 3 as an alarm clock (one date job per instant a pending delivery of the
horizon is due at), and
the daemon's loop, which ticks on the monotonic clock.

APScheduler holds only the near horizon, in a memory job store: the
deliveries table is the durable record and decides what was sent (a date job
is removed from APScheduler *before* it runs, so APScheduler's own memory
cannot tell whether a reminder went out). A firing job just wakes the
dispatcher, which claims the row in the table.

The traps of APScheduler 3 are set deliberately here:

* ``misfire_grace_time=None``: the default (1 s) silently skips jobs that
  start late, e.g. 1,000 reminders due in the same second, or all of them after
  a SIGSTOP; a late reminder is still the table's to judge (late or missed).
* ``coalesce=False`` for date jobs (each is its own reminder) and True for the
  tick (ten missed ticks are one).
* ``shutdown(wait=False)``: its ``wait=True`` joins the executor without a bound;
  the daemon bounds the wait itself.
* The tick is NOT an APScheduler job: an interval trigger computes its next run
  on the wall clock, so after the wall clock stepped back an hour it would not
  run for an hour (issue 12). The loop is a thread of its own that waits on the
  monotonic clock (``threading.Event.wait``); ``tick_now()`` runs it at once,
  and ``rewake()`` makes APScheduler recompute its wait after a clock step.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from calendar_svc.clock import Monotonic
from calendar_svc.timezones import UTC

log = logging.getLogger(__name__)


class Alarms:
    def __init__(
        self,
        *,
        wake: Callable[[], None],
        tick: Callable[[], None],
        tick_every: timedelta,
        monotonic: Monotonic = time.monotonic,
    ):
        self._wake = wake
        self._tick = tick
        self.tick_every = tick_every
        self._monotonic = monotonic
        self._poke = threading.Event()
        self._stopping = threading.Event()
        self._loop: threading.Thread | None = None
        self._known: dict[int, datetime] = {}
        # The deliveries due at each instant: one APScheduler job per instant.
        self._at: dict[datetime, set[int]] = {}
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            jobstores={"default": MemoryJobStore()},
            # The jobs are tiny (a wake-up, or the tick); sends run on the dispatcher's pool.
            executors={"default": ThreadPoolExecutor(max_workers=4)},
            job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
            timezone=UTC,
        )

    def start(self) -> None:
        self.scheduler.start()
        self._loop = threading.Thread(target=self._run_loop, name="daemon-loop", daemon=True)
        self._loop.start()

    def shutdown(self) -> None:
        self._stopping.set()
        self._poke.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def tick_now(self) -> None:
        """Run the tick as soon as the loop is free (a reload, a test)."""
        self._poke.set()

    def rewake(self) -> None:
        """The wall clock stepped: APScheduler's wait for the next date job, computed on the
        wall clock, is wrong; make it compute again."""
        if self.scheduler.running:
            self.scheduler.wakeup()

    def _run_loop(self) -> None:
        """Tick every ``tick_every`` on the monotonic clock until ``shutdown``; ticks that
        fall behind (a long tick, SIGSTOP) are one, as a coalescing trigger would do."""
        due = self._monotonic() + self.tick_every.total_seconds()
        while not self._stopping.is_set():
            self._poke.wait(max(0.0, due - self._monotonic()))
            if self._stopping.is_set():
                return
            self._poke.clear()
            due = self._monotonic() + self.tick_every.total_seconds()
            try:
                self._tick()
            except Exception:  # the tick logs its own failures; the loop must outlive any
                log.exception("daemon.tick_failed")

    def set(self, delivery_id: int, when: datetime) -> None:
        """(Re)schedule the alarm of one delivery.

        One APScheduler job per distinct instant, not per delivery: ten thousand
        reminders due in the same second are one job that wakes the dispatcher once,
        rather than ten thousand jobs run by APScheduler's threads while the sends of
        that very burst need the CPU.
        """
        with self._lock:
            before = self._known.get(delivery_id)
            if before == when:
                return
            self._known[delivery_id] = when
            drop = self._leave(delivery_id, before)
            ids = self._at.setdefault(when, set())
            new = not ids
            ids.add(delivery_id)
        if drop is not None:
            self._remove_job(drop)
        if new:
            self.scheduler.add_job(
                self._fire,
                DateTrigger(run_date=when, timezone=UTC),
                args=[when],
                id=_job_id(when),
                replace_existing=True,
            )

    def sync(self, schedule: Mapping[int, datetime]) -> tuple[int, int]:
        """Make the alarms match ``schedule`` (id -> next attempt); returns (added, removed)."""
        with self._lock:
            gone = [i for i in self._known if i not in schedule]
            changed = {i: w for i, w in schedule.items() if self._known.get(i) != w}
        for delivery_id in gone:
            with self._lock:
                drop = self._leave(delivery_id, self._known.pop(delivery_id, None))
            if drop is not None:
                self._remove_job(drop)
        for delivery_id, when in changed.items():
            self.set(delivery_id, when)
        return len(changed), len(gone)

    def _leave(self, delivery_id: int, when: datetime | None) -> datetime | None:
        """Take ``delivery_id`` out of the instant ``when`` (lock held); returns the instant
        when no delivery is left at it, whose job is then to be removed."""
        if when is None:
            return None
        ids = self._at.get(when)
        if ids is None:
            return None
        ids.discard(delivery_id)
        if ids:
            return None
        del self._at[when]
        return when

    def _remove_job(self, when: datetime) -> None:
        with contextlib.suppress(JobLookupError):  # it fired meanwhile
            self.scheduler.remove_job(_job_id(when))

    def count(self) -> int:
        with self._lock:
            return len(self._known)

    def _fire(self, when: datetime) -> None:
        with self._lock:
            for delivery_id in self._at.pop(when, set()):
                if self._known.get(delivery_id) == when:
                    del self._known[delivery_id]
        self._wake()


def _job_id(when: datetime) -> str:
    return f"at:{when.isoformat()}"
