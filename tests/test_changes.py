"""The change signal (``changes.ChangeWatcher``): a commit by another process is heard
through PostgreSQL's LISTEN/NOTIFY or SQLite's data_version, polling covers a listening
connection that was killed, and a feed server sees an edit on the next requests with no
database read per poll of an unchanged calendar.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import Service, base_env, schedule_text, soon
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.pool import NullPool
from waiting import wait_for

from calendar_svc.changes import CHANNEL, ChangeWatcher
from calendar_svc.config import default_config
from calendar_svc.feed.server import FeedServer
from calendar_svc.models import Delivery
from calendar_svc.store import Store

SLUG = "rubio-2025-09"


class Heard:
    """The sources of the changes a watcher told its listeners, in order."""

    def __init__(self, watcher: ChangeWatcher):
        self.sources: list[str] = []
        self._lock = threading.Lock()
        watcher.subscribe(self._heard)

    def _heard(self, source: str) -> None:
        with self._lock:
            self.sources.append(source)

    def count(self, source: str) -> int:
        with self._lock:
            return self.sources.count(source)


def edit_in_another_process(
    url: str, uid: str = "embassy-quito", status: str = "cancelled"
) -> None:
    """An edit committed by a separate Python process (as the CLI or another daemon)."""
    code = (
        "import sys\n"
        "from calendar_svc.store import Store\n"
        "store = Store(sys.argv[1])\n"
        "store.set_status(sys.argv[2], sys.argv[3], sys.argv[4])\n"
        "store.close()\n"
    )
    subprocess.run([sys.executable, "-c", code, url, uid, status, SLUG], check=True, timeout=60)


@pytest.fixture
def watched(trip_store: Store) -> Iterator[tuple[ChangeWatcher, Heard]]:
    # fallback: an hour, so that only a notification or data_version can explain a change.
    watcher = ChangeWatcher(trip_store, interval=0.05, fallback=3600)
    heard = Heard(watcher)
    watcher.start()
    yield watcher, heard
    watcher.stop()


def test_a_commit_in_another_process_is_heard(
    watched: tuple[ChangeWatcher, Heard], db_url: str
) -> None:
    watcher, heard = watched
    postgres = db_url.startswith("postgresql")
    if postgres:
        wait_for(lambda: watcher.listening, 10, "the watcher never listened")
    source = "notify" if postgres else "data_version"
    before = heard.count(source)
    edit_in_another_process(db_url)
    wait_for(lambda: heard.count(source) > before, 10, f"no {source} after the commit")


def _listener_pids(url: str) -> list[int]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                    " AND query = :listen AND pid <> pg_backend_pid()"
                ),
                {"listen": f"LISTEN {CHANNEL}"},
            )
            return [int(row[0]) for row in rows]
    finally:
        engine.dispose()


def _terminate(url: str, pid: int) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            conn.commit()
    finally:
        engine.dispose()


def test_polling_covers_a_killed_listening_connection(
    pg_url: str, trip_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from calendar_svc.importer import import_specs
    from calendar_svc.schedule_files import load_file

    store = Store(pg_url)
    store.migrate()
    with store.write() as session:
        import_specs(session, [load_file(trip_path)], now=store.clock())
    # Polls every 50 ms while not listening; reconnects only after a long backoff, so the
    # edit below can only be seen by polling the change counter.
    watcher = ChangeWatcher(store, interval=0.05, fallback=3600)
    heard = Heard(watcher)
    caplog.set_level(logging.INFO, logger="calendar_svc.changes")
    watcher.start()
    try:
        wait_for(lambda: watcher.listening, 10, "the watcher never listened")
        pids = wait_for(lambda: _listener_pids(pg_url), 10, "no LISTEN backend")
        _terminate(pg_url, pids[0])
        wait_for(lambda: "changes.listen_lost" in caplog.messages, 10, "the loss went unseen")
        # Polling has read the counter once before the edit: then the edit is a change.
        wait_for(lambda: watcher._counter is not None or watcher.listening, 10, "no poll")
        before = heard.count("poll") + heard.count("reconnect")
        edit_in_another_process(pg_url)
        wait_for(
            lambda: heard.count("poll") + heard.count("reconnect") > before,
            10,
            "the edit was not seen while the listener was down",
        )
        # And it listens again (with backoff), on a new backend.
        wait_for(lambda: watcher.listening, 30, "the watcher never listened again")
        wait_for(lambda: _listener_pids(pg_url) not in ([], pids), 10, "no new LISTEN backend")
    finally:
        watcher.stop()
        store.close()


def test_the_feed_shows_an_edit_from_another_process(trip_store: Store, db_url: str) -> None:
    """The served feed changes after another process commits (no per-request read)."""
    config = default_config(db_url)
    server = FeedServer(trip_store, config, host="127.0.0.1", port=0)
    server.start()
    try:
        calendar = trip_store.get_calendar(SLUG)
        url = f"{server.url}/feeds/{calendar.feed_token}/{SLUG}.ics"
        with httpx.Client() as http:
            first = http.get(url)
            assert first.status_code == 200 and b"STATUS:CANCELLED" not in first.content
            etag = first.headers["etag"]
            assert http.get(url, headers={"if-none-match": etag}).status_code == 304
            edit_in_another_process(db_url)

            def changed() -> httpx.Response | None:
                response = http.get(url, headers={"if-none-match": etag})
                return response if response.status_code == 200 else None

            after = wait_for(changed, 10, "the edit never reached the feed")
            assert b"STATUS:CANCELLED" in after.content
    finally:
        server.stop(5.0)


def _pending(url: str, uid: str) -> int:
    store = Store(url)
    try:
        with store.read() as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.entry_uid == uid, Delivery.status == "pending")
                )
                or 0
            )
    finally:
        store.close()


def test_the_daemon_replans_on_a_commit_without_waiting_for_its_tick(
    tmp_path: Path, db_url: str, services: list[Service]
) -> None:
    """A CLI cancel is re-planned through the change signal: the daemon's tick (and its
    change-counter poll) is a minute away and its rescan ten."""
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "soon.toml").write_text(
        schedule_text("soon", {"later": soon(3 * 3600)})
    )
    config = tmp_path / "config.toml"
    config.write_text(
        'schedules = ["schedules/*.toml"]\n'
        f'[database]\nurl = "{db_url}"\n[feed]\nenabled = false\n'
        '[reminders]\nchannels = ["console"]\npoll_interval = "PT1M"\n'
        'rescan_interval = "PT10M"\n'
        '[notifiers.console]\ntype = "console"\n'
    )
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())
    wait_for(lambda: _pending(db_url, "later") == 1, 20, "the reminder to be planned", services)
    cli = [sys.executable, "-m", "calendar_svc", "--config", str(config), "cancel", "later"]
    done = subprocess.run(cli, capture_output=True, env=base_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: _pending(db_url, "later") == 0, 30, "the cancel to be re-planned", services)


def test_a_watcher_that_ends_makes_what_was_read_under_it_stale(
    trip_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a server kept under a generation (calendar heads, remembered 304s) is only
    good while the watcher runs: its stop, or its thread failing, raises the generation
    once more, and ``live`` turns false (readers go back to the database)."""
    stopped = ChangeWatcher(trip_store, interval=0.05)
    stopped.start()
    before = stopped.generation
    stopped.stop()
    assert not stopped.live and stopped.generation > before

    def fail() -> None:
        raise RuntimeError("the watcher's connection is gone for good")

    failing = ChangeWatcher(trip_store, interval=0.05)
    monkeypatch.setattr(failing, "_run_sqlite", fail)
    monkeypatch.setattr(failing, "_run_postgres", fail)
    before = failing.generation
    with caplog.at_level(logging.ERROR, logger="calendar_svc.changes"):
        failing.start()
        wait_for(lambda: not failing.live, 10, "the failed watcher still says it is live")
    assert failing.generation > before
    assert "changes.watcher_failed" in caplog.text
    failing.stop()
