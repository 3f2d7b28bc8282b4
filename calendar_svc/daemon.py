"""``calendar-svc run``: the planner, the dispatcher and the feed server in one process.

Start-up, in this order, so that systemd's READY=1 means "working":
the SQLite daemon lock (one daemon per SQLite file; PostgreSQL: any number),
migrations, notifiers, schedule files, the feed port, a first planner pass,
then READY=1 with a status line, and a log line saying what comes next (or
that nothing is due).

Running: a tick every ``poll_interval`` (or ``WATCHDOG_USEC``/2, when shorter)
pings the watchdog when systemd asked for it, re-imports the
schedule files when one changed, re-plans when the store's change counter
moved (a CLI edit in another process) and at least every ``rescan_interval``,
and puts rows whose lease ran out back to pending. Date jobs wake the
dispatcher at each due instant; the dispatcher also looks for due work every
second on its own, so a lost wake-up, SIGSTOP or clock jump costs seconds.

Signals (handled in the main thread): SIGTERM/SIGINT stop planning and
claiming, let sends in flight finish within ``stop_timeout``, put unfinished
rows back to pending and exit 0. SIGHUP reloads config, notifiers and
schedule files; a broken config keeps the old one running and says why.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from calendar_svc.config import Config
from calendar_svc.errors import CalendarSvcError, InputError
from calendar_svc.health import STATE
from calendar_svc.importer import import_specs
from calendar_svc.logs import log_event, setup_logging
from calendar_svc.metrics import PENDING
from calendar_svc.notifiers import Notifier, build_notifiers, close_all
from calendar_svc.reminders import repository as repo
from calendar_svc.reminders.alarms import Alarms
from calendar_svc.reminders.dispatcher import Dispatcher
from calendar_svc.reminders.lock import DaemonLock, sqlite_file
from calendar_svc.reminders.planner import Planner
from calendar_svc.reminders.watch import ScheduleWatch
from calendar_svc.schedule_files import load_file
from calendar_svc.store import Store
from calendar_svc.timezones import iso_utc

log = logging.getLogger("calendar_svc.daemon")

# After a reload, the longest wait for sends through the old notifiers before closing them.
RETIRE_TIMEOUT = 600.0


class _NullService:
    """Stands in for ``sdnotify.ServiceNotifier`` when that module is unavailable."""

    def __getattr__(self, name: str) -> Callable[..., bool]:
        return lambda *args, **kwargs: False


def _service() -> Any:
    try:
        from calendar_svc.sdnotify import ServiceNotifier
    except ImportError:
        return _NullService()
    return ServiceNotifier()


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        load_config: Callable[[], Config],
        feed: bool = True,
        reminders: bool = True,
    ):
        self.config = config
        self._load_config = load_config
        self.feed_enabled = feed and config.feed.enabled
        self.reminders_enabled = reminders and config.reminders.enabled
        self.service = _service()
        # Seconds between WATCHDOG=1 pings, or None when systemd did not ask this process.
        self._watchdog_every: float | None = self.service.watchdog_interval() or None
        self._signal = threading.Event()
        self._stop_reason: str | None = None
        self._reload_requested = False
        self._lock: DaemonLock | None = None
        self._feed: Any = None
        self._counter = -1
        self._last_rescan = 0.0
        self._finished_seen = 0  # the dispatcher's count of recorded outcomes, when last shown
        self._tick_lock = threading.Lock()
        self.watch = ScheduleWatch(config.schedule_files)
        self.store: Store
        self.notifiers: dict[str, Notifier] = {}
        self.planner: Planner
        self.dispatcher: Dispatcher
        self.alarms: Alarms

    # --- the process -----------------------------------------------------------------

    def run(self) -> int:
        setup_logging(self.config.logging.level, self.config.logging.format)
        self._install_signals()
        self._start()
        try:
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
        database = sqlite_file(self.config.database.url)
        if database is not None:
            self._lock = DaemonLock(database)
            self._lock.acquire()
        self.store = Store(self.config.database.url)
        self.store.migrate()
        if self.reminders_enabled:
            self.notifiers = build_notifiers(self.config)
        self._import_schedules(self.watch.changed() or [])
        if self.feed_enabled:
            self._start_feed()
        self.planner = Planner(self.store, self.config.reminders)
        self.dispatcher = Dispatcher(
            self.store,
            self.config,
            self.notifiers,
            on_retry=lambda i, when: self.alarms.set(i, when),
        )
        self.alarms = Alarms(
            wake=self.dispatcher.wake,
            tick=self._tick,
            tick_every=self._tick_every(),
        )
        if self.reminders_enabled:
            if database is not None:
                # This process holds the one-daemon lock: any row still "sending" was
                # left by a daemon that died, and nobody else can be sending it.
                recovered = repo.recover_all_sending(self.store, self.store.clock())
                if recovered:
                    log_event(
                        log,
                        "reminder.recovered",
                        logging.WARNING,
                        count=len(recovered),
                        why="left sending by a daemon that stopped; sent again with "
                        "the same idempotency key",
                    )
            self._plan()
            self.dispatcher.start()
        with STATE.lock:
            STATE.scheduler_running = True
            # The loop's first tick is poll_interval away; /healthz counts staleness from here.
            STATE.last_loop_tick = self.store.clock()
        self.alarms.start()
        status = self._announce()
        self.service.ready(status)

    def _start_feed(self) -> None:
        try:
            from calendar_svc.feed.server import FeedServer
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("calendar_svc.feed"):
                raise
            log_event(
                log,
                "feed.unavailable",
                logging.WARNING,
                reason=str(exc),
                hint="the feed server is not part of this build; reminders only",
            )
            return
        self._feed = FeedServer(self.store, self.config)
        self._feed.start()  # returns once bound; logs feed.listening itself

    def _tick_every(self) -> timedelta:
        """How often the tick runs: ``poll_interval``, or more often when systemd's watchdog
        wants a ``WATCHDOG=1`` sooner (every ``WATCHDOG_USEC``/2)."""
        every = self.config.reminders.poll_interval
        if self._watchdog_every is not None:
            every = min(every, timedelta(seconds=self._watchdog_every))
        # /healthz calls the loop stuck after this long without a tick: a few missed ticks.
        STATE.stuck_after = max(STATE.stuck_after, 3 * every)
        return every

    def _stop(self) -> None:
        timeout = self.config.reminders.stop_timeout.total_seconds()
        deadline = time.monotonic() + timeout
        self.service.stopping(f"stopping ({self._stop_reason or 'error'})")
        log_event(
            log,
            "daemon.stopping",
            signal=self._stop_reason or "error",
            in_flight=self.dispatcher.inflight if hasattr(self, "dispatcher") else 0,
        )
        STATE.scheduler_running = False
        if hasattr(self, "alarms"):
            self.alarms.shutdown()
        released: list[int] = []
        if hasattr(self, "dispatcher"):
            # Most of the budget goes to sends in flight; the rest to the feed and cleanup.
            released = self.dispatcher.stop(max(0.5, timeout * 0.9))
        if self._feed is not None:
            try:
                self._feed.stop(max(0.1, deadline - time.monotonic()))
            except Exception:
                log.exception("feed.stop_failed")
        close_all(self.notifiers)
        if hasattr(self, "store"):
            self.store.close()
        if self._lock is not None:
            self._lock.release()
        log_event(log, "daemon.stopped", released=len(released))
        if released:
            # A notifier is still hung in a worker thread; nothing more will be written,
            # so leave now instead of waiting on it (the interpreter would, at exit).
            logging.shutdown()
            sys.stdout.flush()
            os._exit(0)

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
        """Stop as on SIGTERM (tests and embedding)."""
        self._stop_reason = reason
        self._signal.set()

    def reload(self) -> None:
        """SIGHUP: new config, notifiers and schedules; on any error the old ones stay."""
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
            notifiers = build_notifiers(new) if self.reminders_enabled else {}
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
        old = self.dispatcher.replace(new, notifiers)
        self.notifiers = notifiers
        self.planner.config = new.reminders
        self.config = new
        self.watch.reset(new.schedule_files)
        threading.Thread(target=self._close_later, args=(old,), daemon=True).start()
        log_event(log, "config.reloaded", channels=",".join(sorted(notifiers)))
        self._counter = -1  # re-plan on the next tick: offsets, channels or horizon may differ
        self.service.ready(self._status_text())

    def _close_later(self, old: dict[str, Notifier]) -> None:
        """Close the notifiers a reload replaced, once the sends that use them are done.

        Sends end by themselves (every notifier has a timeout); ``RETIRE_TIMEOUT`` only
        guards against one that never returns. Closing under a send makes it fail as
        retryable, so it is sent again through the new notifiers: never lost.
        """
        if not self.dispatcher.wait_released(old.values(), RETIRE_TIMEOUT):
            log_event(
                log,
                "config.old_notifiers_busy",
                logging.WARNING,
                channels=",".join(sorted(old)),
                hint=f"closing them after {RETIRE_TIMEOUT:.0f} s with sends still running; "
                "those sends are retried",
            )
        close_all(old)

    # --- the tick --------------------------------------------------------------------

    def _tick(self) -> None:
        if not self._tick_lock.acquire(blocking=False):
            return
        try:
            if self._watchdog_every is not None:
                self.service.watchdog()
            with STATE.lock:
                STATE.last_loop_tick = self.store.clock()
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
            recovered = repo.recover_expired(
                self.store, self.store.clock(), keep=self.dispatcher.claimer
            )
            for row_id in recovered:
                log_event(log, "reminder.lease_expired", logging.WARNING, delivery=row_id)
            self.dispatcher.wake()
        except Exception:  # a database hiccup must not end the tick job; the next one retries
            log.exception("daemon.tick_failed")
        finally:
            self._tick_lock.release()

    def _plan(self) -> None:
        counter = self.store.change_counter()
        now = self.store.clock()
        self.planner.plan(now)
        self._counter = counter
        self._last_rescan = time.monotonic()
        with STATE.lock:
            STATE.last_planner_run = now
        self._refresh(now)
        self.dispatcher.wake()

    def _refresh(self, now: datetime) -> None:
        """Alarms, the pending gauge, /healthz's next reminder and systemd's STATUS line,
        from the table: after each planner pass, and after sends finished."""
        self._finished_seen = self.dispatcher.finished
        schedule = repo.schedule_of_pending(self.store, now + self.config.reminders.horizon)
        self.alarms.sync(schedule)
        PENDING.set(len(schedule))
        with STATE.lock:
            STATE.next_reminder = min(schedule.values(), default=None)
        self.service.status(self._status_text())

    def _import_schedules(self, files: list[Any]) -> None:
        for path in files:
            try:
                spec = load_file(path)
                with self.store.write(what="the import") as session:
                    report = import_specs(session, [spec], now=self.store.clock())
            except CalendarSvcError as exc:
                bad_file = isinstance(exc, InputError)
                log_event(
                    log,
                    "schedules.import_failed",
                    logging.ERROR,
                    file=str(path),
                    error=str(exc),
                    hint="fix the file; it is imported again when it changes"
                    if bad_file
                    else "the database refused the import; retrying on the next tick",
                )
                if not bad_file:  # the file is fine, the database was not
                    self.watch.forget()
                continue
            totals = report.totals()
            # "created" is a LogRecord attribute; the fields get names of their own.
            log_event(
                log,
                "schedules.imported",
                file=str(path),
                new=totals["created"],
                updated=totals["updated"],
                unchanged=totals["unchanged"],
            )

    # --- telling people what happens next ---------------------------------------------

    def _status_text(self) -> str:
        with STATE.lock:
            nxt = STATE.next_reminder
        counts = repo.counts_by_status(self.store)
        parts = [f"next reminder {iso_utc(nxt)}" if nxt else "no reminder in horizon"]
        parts += [f"{counts.get(s, 0)} {s}" for s in ("pending", "sent", "failed")]
        return "; ".join(parts)

    def _announce(self) -> str:
        fields: dict[str, Any] = {
            "database": _safe_url(self.config.database.url),
            "channels": ",".join(sorted(self.notifiers)) or "none",
        }
        if not self.reminders_enabled:
            log_event(log, "daemon.ready", reminders="off", **fields)
            return "ready (reminders off)"
        now = self.store.clock()
        horizon = self.config.reminders.horizon
        with STATE.lock:
            nxt = STATE.next_reminder
        if nxt is not None:
            log_event(log, "daemon.ready", next_reminder=iso_utc(nxt), **fields)
            return self._status_text()
        upcoming = self.planner.next_reminder(now)
        if upcoming is not None:
            log_event(
                log,
                "daemon.ready",
                next_reminder=iso_utc(upcoming.due_at),
                next_entry=upcoming.entry_uid,
                note=f"nothing due in the next {_hours(horizon)}; planned when it "
                "enters the horizon",
                **fields,
            )
        else:
            log_event(
                log, "daemon.ready", next_reminder="none", note=self._nothing_due(now), **fields
            )
        return self._status_text()

    def _nothing_due(self, now: datetime) -> str:
        stats = self.store.calendar_stats()
        ends = [s["last_end"] for s in stats.values() if s["last_end"] is not None]
        if not ends:
            return "no entries yet: add schedule files or use `calendar-svc import`"
        last = max(ends)
        if last < now:
            return (
                f"no reminders are due: every entry is in the past (the last ended "
                f"{iso_utc(last)}); `calendar-svc reminders --from DATE --to DATE` shows "
                "what would be sent"
            )
        return "no reminders are due: the upcoming entries have no reminders"


def _hours(delta: Any) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:g} hours"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
