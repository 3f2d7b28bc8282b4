"""The daemon's lifecycle in-process: built whole, run once, calls that do not fit refused.

The daemon as systemd and an operator see it (signals, READY, reloads) is
tests/test_service.py, with real processes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import pytest

from calendar_svc.config import Config, parse_config
from calendar_svc.daemon import Daemon, DaemonState, tick_interval
from calendar_svc.db import sqlite_file
from calendar_svc.errors import AlreadyRunningError, DaemonStateError
from calendar_svc.events import (
    DaemonStarted,
    DaemonStartFailed,
    DaemonStopped,
    DaemonStopping,
    Event,
)
from calendar_svc.reminders.lock import DaemonLock
from calendar_svc.sdnotify import ServiceNotifier
from calendar_svc.timezones import UTC

# run() installs signal handlers and logging for the whole process: put back after each test.
pytestmark = pytest.mark.usefixtures("process_state")


def daemon_config(tmp_path: Path) -> Config:
    return parse_config(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'var' / 'd.sqlite3'}"},
            "schedules": [],
            "feed": {"enabled": False},
            "notifiers": {"console": {"type": "console"}},
        },
        path=None,
    )


def build(config: Config) -> Daemon:
    # An empty environment: no $NOTIFY_SOCKET, whatever the test runner has.
    return Daemon(config, load_config=lambda: config, service=ServiceNotifier({}))


def test_run_once_from_new_to_stopped_and_no_second_run(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    daemon = build(daemon_config(tmp_path))
    assert daemon.state is DaemonState.NEW
    with pytest.raises(DaemonStateError, match="only a running one reloads"):
        daemon.reload()
    heard: list[Event] = []
    daemon.events.add_listener(heard.append, [DaemonStarted, DaemonStopping, DaemonStopped])
    daemon.request_stop("test")  # accepted before it runs: it stops as soon as it started
    assert daemon.run() == 0
    assert daemon.state is DaemonState.STOPPED and daemon.abandoned == []
    assert [type(e) for e in heard] == [DaemonStarted, DaemonStopping, DaemonStopped]
    assert isinstance(heard[1], DaemonStopping) and heard[1].reason == "test"
    assert daemon.observers.health.snapshot()["scheduler_running"] is False
    with pytest.raises(DaemonStateError, match="stopped"):
        daemon.run()


class RecordedService(ServiceNotifier):
    """What systemd would be told, without a socket."""

    def __init__(self) -> None:
        super().__init__({})
        self.told: list[tuple[str, ...]] = []

    def notify(self, *lines: str) -> bool:
        self.told.append(lines)
        return True


def test_a_failed_start_stops_what_it_started(tmp_path: Path) -> None:
    """A refused start says it failed to start; it never claims to have stopped."""
    (tmp_path / "var").mkdir()
    config = daemon_config(tmp_path)
    database = sqlite_file(config.database.url)
    assert database is not None
    other = DaemonLock(database)  # another daemon runs on this SQLite file
    other.acquire()
    service = RecordedService()
    refused = Daemon(config, load_config=lambda: config, service=service)
    heard: list[Event] = []
    refused.events.add_listener(heard.append)
    logged: list[logging.LogRecord] = []
    catch = logging.Handler()
    catch.emit = logged.append  # type: ignore[method-assign]
    logging.getLogger("calendar_svc.daemon").addHandler(catch)
    try:
        with pytest.raises(AlreadyRunningError):
            refused.run()
    finally:
        other.release()
        logging.getLogger("calendar_svc.daemon").removeHandler(catch)
    assert refused.state is DaemonState.STOPPED
    assert [type(e) for e in heard] == [DaemonStartFailed]
    assert isinstance(heard[0], DaemonStartFailed) and "another" in heard[0].error
    assert not any(line == "STOPPING=1" for lines in service.told for line in lines)
    assert any(line.startswith("STATUS=start failed: ") for lines in service.told for line in lines)
    [line] = [r for r in logged if r.getMessage().startswith("daemon.")]
    assert (line.getMessage(), line.levelno) == ("daemon.start_failed", logging.ERROR)
    # Nothing of the refused start is left behind: a new daemon runs.
    again = build(config)
    again.request_stop("test")
    assert again.run() == 0


def test_notifiers_stamp_with_the_daemon_s_clock(tmp_path: Path) -> None:
    """One clock for the process: what a notifier stamps (Date, webhook-timestamp) is the
    time the store, planner and dispatcher work by."""
    (tmp_path / "var").mkdir()
    daemon = build(daemon_config(tmp_path))
    at = datetime(2025, 9, 2, 15, 0, tzinfo=UTC)
    daemon.store.clock = lambda: at
    daemon.request_stop("test")
    assert daemon.run() == 0
    assert daemon.notifiers["console"].clock() == at


def test_the_tick_follows_the_watchdog_when_it_wants_pings_sooner() -> None:
    from datetime import timedelta

    assert tick_interval(timedelta(seconds=2), None) == timedelta(seconds=2)
    assert tick_interval(timedelta(seconds=30), 5.0) == timedelta(seconds=5)
    assert tick_interval(timedelta(seconds=2), 5.0) == timedelta(seconds=2)
