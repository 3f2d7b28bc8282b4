"""``calendar-svc run``: the planner, the dispatcher and the feed server in one process.

Lifecycle: a ``Daemon`` is built whole (store, planner, dispatcher, alarm
clock, feed server, observers) and is then ``NEW``; ``run()`` takes it through
``STARTING``, ``RUNNING`` and ``STOPPING`` to ``STOPPED`` and returns the exit
code. A call that does not fit the state is refused (``DaemonStateError``):
``run()`` only once, ``reload()`` only while running. A stop may be asked for
at any time (``request_stop``, SIGTERM): one asked for before or while it
starts lets the start finish, then stops at once. A start that fails (another
daemon holds the SQLite lock, a bad notifier, the database away) stops what
it had started, is told as ``daemon.start_failed`` (and to systemd as a STATUS
line), and raises: a daemon that never ran does not say it is stopping.

Start-up, in this order, so that systemd's READY=1 means "working":
the SQLite daemon lock (one daemon per SQLite file; PostgreSQL: any number),
migrations, notifiers, schedule files, the feed port, a first planner pass,
then READY=1 with a status line, and a log line saying what comes next (or
that nothing is due).

Running: a tick every ``poll_interval`` (or ``WATCHDOG_USEC``/2, when shorter),
counted on the monotonic clock so that no step of the wall clock can stop it,
pings the watchdog when systemd asked for it, re-imports the
schedule files when one changed, re-plans when the store's change counter
moved (a CLI edit in another process) and at least every ``rescan_interval``,
and puts rows whose lease ran out back to pending (``leases``: on the monotonic
clock as well as the wall). Each tick also compares the wall clock with the
monotonic one (``clock.StepWatch``): after a step of more than a few seconds it
tells ``ClockStepped`` (the ``clock.step`` line, ``/healthz``, ``/metrics``),
puts back to pending the rows marked missed while the clock ran ahead that are
still worth sending (``repository.revive_missed_ahead``), and re-plans at
once. The wall clock is only compared with due instants. Date jobs wake the
dispatcher at each due instant; the dispatcher also looks for due work every
second on its own, so a lost wake-up, SIGSTOP or clock jump costs seconds.

Signals (handled in the main thread): SIGTERM/SIGINT stop planning and
claiming, let sends in flight finish within ``stop_timeout``, put unfinished
rows back to pending and exit 0. SIGHUP reloads config, notifiers, schedule
files, the loop's interval and the feed's settings (a new ``[feed]`` host,
port, ``enabled`` or connection limit needs a restart, and
``config.restart_needed`` says so); a
broken config keeps the old one running and says why.

What happens is told as events on the daemon's own bus (``observers``):
health, metrics and the log lines listen there.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from calendar_svc import resources, timezones
from calendar_svc.clock import Clock, ClockStep, Monotonic, StepWatch, boot_monotonic, now_utc
from calendar_svc.config import Config
from calendar_svc.db import safe_url, sqlite_file
from calendar_svc.errors import CalendarSvcError, DaemonStateError
from calendar_svc.events import (
    ClockStepped,
    DaemonStarted,
    DaemonStartFailed,
    DaemonStopped,
    DaemonStopping,
    DeliveryFinished,
    Event,
    LoopTicked,
    OutcomeKind,
    PendingChanged,
    PlannerGap,
)
from calendar_svc.feed.server import FeedServer
from calendar_svc.logs import log_event, setup_logging
from calendar_svc.notifiers import Notifier, build_notifiers, close_all
from calendar_svc.observers import Observers
from calendar_svc.rederive import TzFollower
from calendar_svc.reminders import reports
from calendar_svc.reminders import repository as repo
from calendar_svc.reminders.alarms import Alarms
from calendar_svc.reminders.dispatcher import Dispatcher
from calendar_svc.reminders.leases import LeaseWatch
from calendar_svc.reminders.lock import DaemonLock
from calendar_svc.reminders.planner import Planner
from calendar_svc.reminders.retire import retire
from calendar_svc.reminders.watch import ScheduleWatch
from calendar_svc.schedule_import import import_each
from calendar_svc.sdnotify import ServiceNotifier
from calendar_svc.sources.loop import SourceLoop
from calendar_svc.status_text import ready_fields, status_line
from calendar_svc.store import Store

log = logging.getLogger("calendar_svc.daemon")


class DaemonState(enum.Enum):
    NEW = "new"  # built, not started
    STARTING = "starting"  # lock, migrations, notifiers, schedules, feed, first pass
    RUNNING = "running"  # READY=1 sent; the loop runs
    STOPPING = "stopping"  # no new work; sends in flight finishing
    STOPPED = "stopped"  # everything closed; run() returned or is returning


def tick_interval(poll_interval: timedelta, watchdog_every: float | None) -> timedelta:
    """How often the tick runs: ``poll_interval``, or more often when systemd's watchdog
    wants a ``WATCHDOG=1`` sooner (every ``WATCHDOG_USEC``/2)."""
    if watchdog_every is None:
        return poll_interval
    return min(poll_interval, timedelta(seconds=watchdog_every))


class Daemon:
    """The daemon of ``calendar-svc run``; ``run()`` blocks until a stop and returns 0.

    ``service`` is how systemd is told (default: ``$NOTIFY_SOCKET``, a no-op
    outside systemd). ``clock`` (the wall clock, compared with due instants) and
    ``monotonic`` (what the loop, the lease watch and step detection measure with)
    are injected so tests can step one against the other.
    """

    def __init__(
        self,
        config: Config,
        *,
        load_config: Callable[[], Config],
        feed: bool = True,
        reminders: bool = True,
        service: ServiceNotifier | None = None,
        clock: Clock = now_utc,
        monotonic: Monotonic = boot_monotonic,
    ):
        self.config = config
        self._load_config = load_config
        self.feed_enabled = feed and config.feed.enabled
        self.reminders_enabled = reminders and config.reminders.enabled
        self.service = service if service is not None else ServiceNotifier()
        # Seconds between WATCHDOG=1 pings, or None when systemd did not ask this process.
        self._watchdog_every: float | None = self.service.watchdog_interval() or None
        self.tick_every = tick_interval(config.reminders.poll_interval, self._watchdog_every)
        self.observers = Observers.build(tick_every=self.tick_every, monotonic=monotonic)
        self.events = self.observers.events

        self._state = DaemonState.NEW
        self._state_lock = threading.Lock()
        self._signal = threading.Event()
        self._stop_reason: str | None = None
        self._reload_requested = False
        self._counter = -1
        self._last_rescan = 0.0
        self._finished_seen = 0  # the dispatcher's count of recorded outcomes, when last shown
        self._next_reminder: datetime | None = None
        self._tick_lock = threading.Lock()
        self.abandoned: list[int] = []  # sends still hung in a notifier when run() returned

        # Every collaborator exists from here on; start() and stop() only start and stop.
        self.watch = ScheduleWatch(config.schedule_files)
        self.store = Store(config.database.url, events=self.events, clock=clock)
        database = sqlite_file(config.database.url)
        self._lock = DaemonLock(database) if database is not None else None
        self.notifiers: dict[str, Notifier] = {}
        self.feed = (
            FeedServer(self.store, config, observers=self.observers) if self.feed_enabled else None
        )
        self.planner = Planner(self.store, config.reminders, events=self.events)
        self.dispatcher = Dispatcher(
            self.store, config, self.notifiers, events=self.events, on_retry=self._retry_at
        )
        self.alarms = Alarms(wake=self.dispatcher.wake, tick=self._tick, tick_every=self.tick_every)
        # The wall clock against the monotonic one, looked at every tick.
        self.steps = StepWatch(wall=clock, monotonic=monotonic)
        self.leases = LeaseWatch(config.reminders.lease, monotonic=monotonic)
        # Set when a reminder was recorded missed since the last tick: a step forward and
        # back between two ticks is invisible to ``steps``, so the tick looks anyway.
        self._missed_lately = threading.Event()
        self.events.add_listener(self._on_missed, [DeliveryFinished, PlannerGap])
        # [[sources]]: followed ICS feeds, synced in threads of their own.
        self.sources = SourceLoop(self.store, config, self.events)
        # The config's tz database, and the store's instants kept derived with it.
        self.tz = TzFollower(
            self.store, config.tz, config.tz_database, interval=config.reminders.rescan_interval
        )

    # --- the lifecycle ---------------------------------------------------------------

    @property
    def state(self) -> DaemonState:
        return self._state

    def _enter(self, state: DaemonState, *, only_from: tuple[DaemonState, ...]) -> None:
        with self._state_lock:
            if self._state not in only_from:
                raise DaemonStateError(
                    f"the daemon is {self._state.value}; it can only become "
                    f"{state.value} from {' or '.join(s.value for s in only_from)}"
                )
            self._state = state

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT (or ``request_stop``), stop; returns the exit code.

        Errors while starting propagate (after everything started is stopped), so
        the CLI reports them as it reports any error.
        """
        self._enter(DaemonState.STARTING, only_from=(DaemonState.NEW,))
        setup_logging(self.config.logging.level, self.config.logging.format)
        # Descriptors up to the hard limit, and lazily imported codecs imported now, before
        # a flood of feed connections could make either fail (issue 12).
        resources.secure(log)
        self._install_signals()
        try:
            self._start()
        except Exception as exc:
            self._start_failed(exc)
            raise
        try:
            self._enter(DaemonState.RUNNING, only_from=(DaemonState.STARTING,))
            while self._stop_reason is None:
                self._signal.wait(1.0)
                self._signal.clear()
                if self._reload_requested:
                    self._reload_requested = False
                    self.reload()
        finally:
            self._stop()
        return 0

    def _start(self) -> None:
        if self._lock is not None:
            self._lock.acquire()
        self.store.migrate()
        self.tz.start()  # before anything reads a zone; instants from another release moved
        if self.reminders_enabled:
            self.notifiers = build_notifiers(self.config, clock=self.store.clock)
            self.dispatcher.replace(self.config, self.notifiers)
        self._import_schedules(self.watch.changed() or [])
        if self.feed is not None:
            self.feed.start()  # returns once bound; logs feed.listening itself
        self.sources.start()
        if self.reminders_enabled:
            if self._lock is not None:
                # This process holds the one-daemon lock: any row still "sending" was
                # left by a daemon that died, and nobody else can be sending it.
                with self.store.write() as session:
                    recovered = repo.recover_all_sending(session, self.store.clock())
                if recovered:
                    log_event(
                        log,
                        "reminder.recovered",
                        logging.WARNING,
                        count=len(recovered),
                        why="left sending by a daemon that stopped; sent again with "
                        "the same idempotency key",
                    )
            self._revive_missed_ahead()
            self._plan()
            self.dispatcher.start()
        self.steps.check()  # the first look: steps are counted from here
        # The loop's first tick is one interval away; /healthz counts staleness from here.
        self.events.emit(DaemonStarted(at=self.store.clock()))
        self.alarms.start()
        self.service.ready(self._announce())

    def _start_failed(self, exc: Exception) -> None:
        """Undo a start that raised: nothing ran, so nothing is said to stop."""
        self.service.status(f"start failed: {exc}")
        self.events.emit(DaemonStartFailed(error=str(exc)))
        self._release()
        with self._state_lock:
            self._state = DaemonState.STOPPED

    def _stop(self) -> None:
        with self._state_lock:
            self._state = DaemonState.STOPPING
        reason = self._stop_reason or "error"
        self.service.stopping(f"stopping ({reason})")
        self.events.emit(DaemonStopping(reason=reason, in_flight=self.dispatcher.inflight))
        released = self._release()
        # Their rows are back to pending; the threads may still hang in the notifier.
        self.abandoned = released
        self.events.emit(DaemonStopped(released=len(released)))
        with self._state_lock:
            self._state = DaemonState.STOPPED

    def _release(self) -> list[int]:
        """Stop and close every collaborator, started or not, within ``stop_timeout``;
        returns the ids of sends put back to pending unfinished."""
        timeout = self.config.reminders.stop_timeout.total_seconds()
        deadline = time.monotonic() + timeout
        self.alarms.shutdown()
        self.sources.stop()
        # Most of the budget goes to sends in flight; the rest to the feed and cleanup.
        released = self.dispatcher.stop(max(0.5, timeout * 0.9))
        if self.feed is not None:
            try:
                self.feed.stop(max(0.1, deadline - time.monotonic()))
            except Exception:
                log.exception("feed.stop_failed")
        close_all(self.notifiers)
        self.store.close()
        if self._lock is not None:
            self._lock.release()
        return released

    # --- signals ---------------------------------------------------------------------

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    def _on_stop(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_reason = signal.Signals(signum).name
        self._signal.set()

    def _on_reload(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload_requested = True
        self._signal.set()

    def request_stop(self, reason: str = "request") -> None:
        """Stop as on SIGTERM (tests and embedding); accepted in any state."""
        self._stop_reason = reason
        self._signal.set()

    def reload(self) -> None:
        """SIGHUP: new config, notifiers and schedules; on any error the old ones stay."""
        if self._state is not DaemonState.RUNNING:
            raise DaemonStateError(f"the daemon is {self._state.value}; only a running one reloads")
        self.service.reloading("reloading config")
        try:
            new = self._load_config()
            if new.database.url != self.config.database.url:
                log_event(
                    log,
                    "config.database_changed",
                    logging.WARNING,
                    hint="a new [database] url takes effect on restart; keeping the old one",
                )
                new = dataclasses.replace(new, database=self.config.database)
            notifiers = (
                build_notifiers(new, clock=self.store.clock) if self.reminders_enabled else {}
            )
        except CalendarSvcError as exc:
            log_event(
                log,
                "config.reload_failed",
                logging.ERROR,
                error=str(exc),
                hint="still running with the previous config",
            )
            self.service.ready("reload failed: kept the previous config")
            return
        setup_logging(new.logging.level, new.logging.format)
        restart = self._reload_loop_and_feed(new)
        old = self.dispatcher.replace(new, notifiers)
        self.notifiers = notifiers
        self.planner.config = new.reminders
        self.config = new
        self.watch.reset(new.schedule_files)
        self.sources.reload(new)
        self.tz.reset(new.tz, new.tz_database)  # the next tick follows another tz database
        threading.Thread(target=retire, args=(self.dispatcher.in_use, old), daemon=True).start()
        log_event(log, "config.reloaded", channels=",".join(sorted(notifiers)))
        if restart:
            log_event(
                log,
                "config.restart_needed",
                logging.WARNING,
                keys=",".join(restart),
                hint="these settings take effect on restart; the running daemon keeps "
                "the old ones (the rest of the new config is in use)",
            )
        self._counter = -1  # re-plan on the next tick: offsets, channels or horizon may differ
        self.alarms.tick_now()  # which is now, whatever the old interval was
        self.service.ready(self._status_text())

    def _reload_loop_and_feed(self, new: Config) -> list[str]:
        """A reload's new loop interval, lease and ``[feed]`` settings, applied to what runs;
        returns the keys that need a restart instead."""
        self.tick_every = tick_interval(new.reminders.poll_interval, self._watchdog_every)
        self.alarms.tick_every = self.tick_every  # from the next wait of the loop on
        self.observers.health.watch_loop(self.tick_every)
        self.leases.lease = new.reminders.lease
        restart: list[str] = []
        if self.feed is not None:
            restart += [f"feed.{key}" for key in self.feed.reconfigure(new)]
        if new.feed.enabled != self.config.feed.enabled:
            restart.append("feed.enabled")
        return restart

    # --- the tick --------------------------------------------------------------------

    def _tick(self) -> None:
        if not self._tick_lock.acquire(blocking=False):
            return
        try:
            if self._watchdog_every is not None:
                self.service.watchdog()
            self.events.emit(LoopTicked(at=self.store.clock()))
            step = self.steps.check()
            if step is not None:
                self._clock_stepped(step)
            elif self._missed_lately.is_set() and self.reminders_enabled:
                self._missed_lately.clear()
                if self._revive_missed_ahead():  # a step shorter than a tick, put right
                    self._counter = -1
            if self.tz.check() is not None:  # another tz database: instants derived again
                self._counter = -1  # re-plan now, even if no instant moved
            changed = self.watch.changed()
            if changed is not None:
                self._import_schedules(changed)
            if not self.reminders_enabled:
                return
            rescan = time.monotonic() - self._last_rescan >= (
                self.config.reminders.rescan_interval.total_seconds()
            )
            if rescan or self.store.change_counter() != self._counter:
                self._plan()
            elif self.dispatcher.finished != self._finished_seen:
                # Sends ended since: "next reminder" and the counts in STATUS moved.
                self._refresh(self.store.clock())
            recovered = self._recover_leases()
            for row_id in recovered:
                log_event(log, "reminder.lease_expired", logging.WARNING, delivery=row_id)
            self.dispatcher.wake()
        except Exception:  # a database hiccup must not end the loop; the next tick retries
            log.exception("daemon.tick_failed")
        finally:
            self._tick_lock.release()

    def _on_missed(self, event: Event) -> None:
        if isinstance(event, PlannerGap) or (
            isinstance(event, DeliveryFinished) and event.outcome is OutcomeKind.MISSED
        ):
            self._missed_lately.set()

    def _clock_stepped(self, step: ClockStep) -> None:
        """The wall clock stepped: tell it, revive what a clock running ahead marked missed,
        and re-plan now (the horizon and the missed window moved with the clock)."""
        self.leases.stepped(step.seconds)
        self._missed_lately.clear()
        revived = self._revive_missed_ahead(quiet=True) if self.reminders_enabled else []
        self.events.emit(ClockStepped(seconds=step.seconds, at=step.at, revived=len(revived)))
        self._counter = -1  # re-plan in this very tick
        self._last_rescan = 0.0
        self.alarms.rewake()

    def _revive_missed_ahead(self, *, quiet: bool = False) -> list[int]:
        """Rows recorded missed at a wall time still to come (the clock ran ahead then)
        that are still worth sending: back to pending. At start too: the daemon may have
        been restarted after the clock was put right."""
        now = self.store.clock()
        with self.store.write() as session:
            revived = repo.revive_missed_ahead(session, now, self.config.reminders.grace)
        if revived and not quiet:
            log_event(
                log,
                "reminder.revived",
                logging.WARNING,
                count=len(revived),
                why="recorded missed while the wall clock ran ahead; still due, sent once",
            )
        return revived

    def _recover_leases(self) -> list[int]:
        """Rows other processes left ``sending`` whose lease ran out (``leases.LeaseWatch``:
        by the wall clock, or by this process's monotonic watch after a clock step)."""
        keep = self.dispatcher.claimer
        with self.store.read() as session:
            leases = repo.foreign_leases(session, keep=keep)
        expired = self.leases.expired(leases, self.store.clock())
        if not expired:
            return []
        with self.store.write() as session:
            return repo.recover_leases(
                session, {i: leases[i] for i in expired}, self.store.clock(), keep=keep
            )

    def _retry_at(self, delivery_id: int, when: datetime) -> None:
        self.alarms.set(delivery_id, when)

    def _plan(self) -> None:
        counter = self.store.change_counter()
        now = self.store.clock()
        self.planner.plan(now)
        self._counter = counter
        self._last_rescan = time.monotonic()
        self._refresh(now)
        self.dispatcher.wake()

    def _refresh(self, now: datetime) -> None:
        """Alarms, the pending count, the next reminder and systemd's STATUS line, from the
        table: after each planner pass, and after sends finished."""
        self._finished_seen = self.dispatcher.finished
        with self.store.read() as session:
            schedule = repo.schedule_of_pending(session, now + self.config.reminders.horizon)
        self.alarms.sync(schedule)
        self._next_reminder = min(schedule.values(), default=None)
        self.events.emit(PendingChanged(pending=len(schedule), next_due=self._next_reminder))
        self.service.status(self._status_text())

    def _import_schedules(self, files: list[Path]) -> None:
        if not import_each(self.store, files, events=self.events, config=self.config):
            self.watch.forget()  # the files are fine, the database was not: again next tick

    # --- telling people what happens next ---------------------------------------------

    def _status_text(self) -> str:
        with self.store.read() as session:
            counts = reports.counts_by_status(session)
        return status_line(self._next_reminder, counts)

    def _announce(self) -> str:
        """Log ``daemon.ready`` with what comes next; returns the READY=1 STATUS line."""
        fields: dict[str, Any] = {
            "database": safe_url(self.config.database.url),
            "channels": ",".join(sorted(self.notifiers)) or "none",
            "tz": timezones.version(),
            "nofile": resources.soft_nofile(),  # raised to the hard limit at start
        }
        if not self.reminders_enabled:
            log_event(log, "daemon.ready", reminders="off", **fields)
            return "ready (reminders off)"
        now = self.store.clock()
        what = ready_fields(
            now=now,
            horizon=self.config.reminders.horizon,
            next_reminder=self._next_reminder,
            next_unplanned=lambda: self.planner.next_reminder(now),
            last_ends=lambda: [s["last_end"] for s in self.store.calendar_stats().values()],
        )
        log_event(log, "daemon.ready", **what, **fields)
        return self._status_text()
