"""``calendar-svc run`` as a service, end to end: sd_notify, signals, logs, health, metrics.

Real daemon processes on 127.0.0.1 with their config, SQLite file and
``$NOTIFY_SOCKET`` in the test's folder. tests/test_daemon_process.py covers
delivery under stress (kill -9, SIGSTOP, several daemons, a hung notifier at
SIGTERM, a reload to another receiver); this file covers what systemd and an
operator see: readiness, status, watchdog, reload/stop notifications, what a
reload keeps, the log stream, ``/healthz`` and ``/metrics``.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from peers import HttpReceiver, HttpRequest, Response
from service_helpers import (
    LOOPBACK,
    Message,
    NotifySocket,
    Service,
    config_text,
    deliveries,
    feed_token,
    healthz,
    http_get,
    metric,
    schedule_text,
    soon,
    tables_of,
)
from waiting import wait_for

from calendar_svc.timezones import iso_utc

pytestmark = pytest.mark.slow


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path)
    yield sock
    sock.close()


def _is(key: str, value: str = "1") -> Callable[[Message], bool]:
    """A predicate for ``NotifySocket.receive``: the datagram sets ``key=value``."""
    return lambda m: m.get(key) == value


# --- sd_notify -------------------------------------------------------------------------------


def test_sd_notify_ready_status_watchdog_reload_stop(
    tmp_path: Path, services: list[Service], notify_socket: NotifySocket
) -> None:
    db = tmp_path / "var" / "cal.sqlite3"
    config = tmp_path / "config.toml"
    # A slow poll_interval: WATCHDOG=1 must still come every WATCHDOG_USEC/2. No rescan
    # within the test: STATUS must follow a send by itself, not wait for a planner pass.
    config.write_text(
        config_text(db, port=0, reminders={"poll_interval": "PT30S", "rescan_interval": "PT1H"})
    )
    (tmp_path / "schedules").mkdir()
    first, later = soon(6), soon(3600)
    (tmp_path / "schedules" / "s.toml").write_text(
        schedule_text("svc", {"first": first, "later": later})
    )
    service = Service(config, env={**notify_socket.env, "WATCHDOG_USEC": "1000000"})
    services.append(service.start())

    ready = notify_socket.receive(_is("READY"), 30, "READY=1")
    # Freeze the daemon the moment READY=1 arrives: whatever READY promises must be
    # true already, not a few instructions later.
    service.signal(signal.SIGSTOP)
    try:
        port = service.feed_port(timeout=1)
        with socket.create_connection((LOOPBACK, port), timeout=5):
            pass  # the kernel completes the handshake: the port is bound and listening
        assert {"alembic_version", "calendars", "entries", "deliveries"} <= tables_of(db)
    finally:
        service.signal(signal.SIGCONT)
    before_ready = notify_socket.messages[:-1]
    assert not any("READY" in m for m in before_ready), before_ready
    assert "WATCHDOG" not in ready and "RELOADING" not in ready
    assert ready["STATUS"] == f"next reminder {iso_utc(first)}; 2 pending; 0 sent; 0 failed"

    status, body = healthz(port)
    assert status == 200, body
    assert body["database"] is True and body["scheduler_running"] is True
    assert body["next_reminder"] == iso_utc(first)
    assert body["last_planner_run"] and body["last_loop_tick"] and not body["scheduler_stuck"]

    # WATCHDOG=1 keeps coming from the scheduler loop (WATCHDOG_USEC=1 s: every 0.5 s).
    for _ in range(3):
        notify_socket.receive(_is("WATCHDOG"), 10, "WATCHDOG=1")
    # The counts in STATUS follow what the daemon does.
    service.wait_stdout("Entry first", timeout=20)
    counted = notify_socket.receive(
        lambda m: "1 sent" in m.get("STATUS", ""), 20, "STATUS with 1 sent"
    )
    assert counted["STATUS"] == f"next reminder {iso_utc(later)}; 1 pending; 1 sent; 0 failed"
    assert healthz(port)[1]["next_reminder"] == iso_utc(later)

    # SIGHUP: RELOADING=1 with the CLOCK_MONOTONIC time of the request, then READY=1.
    service.signal(signal.SIGHUP)
    reloading = notify_socket.receive(_is("RELOADING"), 10, "RELOADING=1")
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert abs(mono - int(reloading["MONOTONIC_USEC"])) < 60_000_000
    again = notify_socket.receive(_is("READY"), 10, "READY=1 after the reload")
    assert again["STATUS"].startswith(f"next reminder {iso_utc(later)}")

    # A broken config: RELOADING=1, then READY=1 saying the old config is kept.
    good = config.read_text()
    config.write_text(good + "[broken\n")
    service.signal(signal.SIGHUP)
    notify_socket.receive(_is("RELOADING"), 10, "RELOADING=1 (broken config)")
    kept = notify_socket.receive(_is("READY"), 10, "READY=1 after the failed reload")
    assert "reload failed" in kept["STATUS"]

    # SIGTERM when idle: STOPPING=1, exit 0, well within TimeoutStopSec.
    service.signal(signal.SIGTERM)
    stopping = notify_socket.receive(_is("STOPPING"), 10, "STOPPING=1")
    assert "SIGTERM" in stopping.get("STATUS", "")
    assert service.wait_exit(15) == 0
    err = service.stderr()
    assert "msg=daemon.stopped" in err and "Traceback" not in err


# --- signals -----------------------------------------------------------------------------------


def test_sighup_keeps_planned_reminders_and_applies_label_channel_and_schedule_globs(
    tmp_path: Path, services: list[Service]
) -> None:
    """A reminder planned before SIGHUP fires once after it, with the new [display] label
    and also through a channel the reload added; a glob the reload added is imported.
    A broken config before that keeps the old one: the next reminder still goes out."""
    db = tmp_path / "var" / "cal.sqlite3"
    config = tmp_path / "config.toml"
    display = {"timezone": "America/New_York", "label": "Washington"}
    config.write_text(config_text(db, display=display))
    (tmp_path / "schedules").mkdir()
    (tmp_path / "more").mkdir()
    t1 = soon(7)
    t2 = t1 + timedelta(seconds=7)
    (tmp_path / "schedules" / "hup.toml").write_text(schedule_text("hup", {"one": t1, "two": t2}))
    (tmp_path / "more" / "extra.toml").write_text(schedule_text("extra", {"three": t2}))
    service = Service(config)
    services.append(service.start())
    service.wait_stderr("msg=daemon.ready")
    assert deliveries(db) == [("one", "console", "pending"), ("two", "console", "pending")]

    # A broken config: logged with the reason, the old config keeps working.
    config.write_text(config.read_text().replace('type = "console"', 'type = "console'))
    service.signal(signal.SIGHUP)
    err = service.wait_stderr("msg=config.reload_failed")
    assert "TOML syntax error" in err and "still running with the previous config" in err
    if time.time() >= t1.timestamp():
        pytest.skip(
            "this runner took longer than the 7 s to the first reminder to start the "
            "daemon and fail a reload: nothing left to test"
        )
    out = service.wait_stdout("Entry one")
    assert "in Washington" in out

    with HttpReceiver() as receiver:
        config.write_text(
            config_text(
                db,
                schedules=["schedules/*.toml", "more/*.toml"],
                display={**display, "label": "Foggy Bottom"},
                notifiers={
                    "console": {"type": "console"},
                    "hook": {
                        "type": "webhook",
                        "url": receiver.url + "/hook",
                        "allow_private": True,
                        "timeout": 5.0,
                    },
                },
            )
        )
        service.signal(signal.SIGHUP)
        service.wait_stderr("msg=config.reloaded")
        if time.time() >= t2.timestamp():
            pytest.skip(
                "this runner took longer than the 7 s between the two reminders to "
                "reload: the reminder meant to follow the reload came before it"
            )
        receiver.wait_for(2, timeout=20)
        out = service.wait_stdout("Entry two")
        service.wait_stdout("Entry three")
        wait_for(
            lambda: all(s == "sent" for _, _, s in deliveries(db)),
            20,
            "every delivery to be recorded sent",
            [service],
        )
        uids = sorted(r.json()["data"]["entry"]["uid"] for r in receiver.requests)

    # "one" was due seconds before the reload: the added channel catches up on it within
    # [reminders] grace, as a restart with that config would.
    assert uids == ["one", "three", "two"]
    assert out.count("Entry one") == out.count("Entry two") == out.count("Entry three") == 1
    line_two = next(line for line in out.splitlines() if "Entry two" in line)
    assert "in Foggy Bottom" in line_two and "Washington" not in line_two
    assert deliveries(db) == [
        ("one", "console", "sent"),
        ("one", "hook", "sent"),
        ("three", "console", "sent"),
        ("three", "hook", "sent"),
        ("two", "console", "sent"),
        ("two", "hook", "sent"),
    ]
    assert "channels=console,hook" in service.stderr()
    assert service.alive()


def test_sigterm_lets_a_send_in_flight_finish_then_exits_0(
    tmp_path: Path, services: list[Service]
) -> None:
    """The receiver holds the request until the daemon has been told to stop: the send
    still completes, is recorded sent (not put back to pending), and the exit is 0."""
    db = tmp_path / "var" / "cal.sqlite3"
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "t.toml").write_text(schedule_text("term", {"busy": soon(3)}))
    release = threading.Event()

    def held(request: HttpRequest) -> Response:
        release.wait(30)
        return 200, {}, b""

    with HttpReceiver(held) as receiver:
        try:
            config = tmp_path / "config.toml"
            config.write_text(
                config_text(
                    db,
                    notifiers={
                        "hook": {
                            "type": "webhook",
                            "url": receiver.url + "/hook",
                            "allow_private": True,
                            "timeout": 20.0,
                        }
                    },
                )
            )
            service = Service(config)
            services.append(service.start())
            receiver.wait_for(1, timeout=30)
            service.signal(signal.SIGTERM)
            err = service.wait_stderr("msg=daemon.stopping")
            assert "in_flight=1" in err
        finally:
            release.set()
        assert service.wait_exit(15) == 0
    err = service.stderr()
    assert "msg=reminder.sent" in err and "msg=reminder.released" not in err
    assert deliveries(db) == [("busy", "hook", "sent")]


# --- logs ------------------------------------------------------------------------------------


def test_json_logs_at_debug_carry_no_feed_token_and_no_secret(
    tmp_path: Path, services: list[Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The noisiest settings (debug, JSON): one JSON object per stderr line, and neither the
    feed token nor the webhook's signing secret or secret URL path anywhere in the output,
    through a feed request (good and wrong token) and a signed webhook reminder."""
    secret = "whsec_" + base64.b64encode(b"s3cret-signing-key-0123456789").decode()
    path_secret = "T0kenInThePath9f8e7d"
    db = tmp_path / "var" / "cal.sqlite3"
    config = tmp_path / "config.toml"
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "logs.toml").write_text(schedule_text("logs", {"soon": soon(3)}))
    with HttpReceiver() as receiver:
        config.write_text(
            config_text(
                db,
                logging={"level": "debug", "format": "json"},
                notifiers={
                    "hook": {
                        "type": "webhook",
                        "url": f"{receiver.url}/hook/{path_secret}",
                        "secret_env": "CS_TEST_HOOK_SECRET",
                        "allow_private": True,
                        "timeout": 5.0,
                    }
                },
            )
        )
        service = Service(config, env={"CS_TEST_HOOK_SECRET": secret})
        services.append(service.start())
        service.wait_stderr('"msg": "daemon.ready"')
        port = service.feed_port()
        token = feed_token(db, "logs")
        base = f"http://{LOOPBACK}:{port}/feeds"
        status, body = http_get(f"{base}/{token}/logs.ics")
        assert status == 200 and b"BEGIN:VCALENDAR" in body
        assert http_get(f"{base}/{token}/logs.ics", method="HEAD")[0] == 200
        assert http_get(f"{base}/{token[:-2]}xx/logs.ics")[0] == 404
        assert http_get(f"{base}/{token}/nope.ics")[0] == 404
        [request] = receiver.wait_for(1, timeout=20)
        assert request.path == f"/hook/{path_secret}"
        assert (request.header("webhook-signature") or "").startswith("v1,")
        service.wait_stderr('"msg": "reminder.sent"')
        service.signal(signal.SIGTERM)
        assert service.wait_exit(15) == 0

    err, out = service.stderr(), service.stdout()
    records = []
    for line in err.splitlines():
        record = json.loads(line)  # every line, not only ours: uvicorn, httpx, alembic
        assert isinstance(record, dict), line
        assert {"ts", "level", "logger", "msg"} <= set(record), line
        records.append(record)
    levels = {r["level"] for r in records}
    assert "debug" in levels and "info" in levels
    msgs = {r["msg"] for r in records}
    assert {"daemon.ready", "feed.listening", "reminder.sent", "daemon.stopped"} <= msgs
    for value in (token, secret, secret.removeprefix("whsec_"), path_secret):
        assert value not in err and value not in out, f"{value[:6]}… leaked"


# --- health, metrics, log levels -------------------------------------------------------------


def _by_path(request: HttpRequest) -> Response:
    """/good answers 200, /bad 500 until the test sets BAD_STATUS, /gone 410."""
    status = {"/good": 200, "/bad": BAD_STATUS[0], "/gone": 410}.get(request.path, 404)
    return status, {"content-type": "application/json"}, b"{}"


BAD_STATUS = [500]


def test_health_metrics_and_warning_level_after_a_real_run(
    tmp_path: Path, services: list[Service], notify_socket: NotifySocket
) -> None:
    """Three webhook channels (200, 500 then 200, 410), one reminder missed while the daemon
    was down, a feed request: /healthz and /metrics say what happened; with
    ``level = "warning"`` no info line is written; a WATCHDOG_PID of another process: no ping."""
    from calendar_svc.config import RemindersConfig
    from calendar_svc.importer import import_specs
    from calendar_svc.reminders.planner import Planner
    from calendar_svc.schedule_files import load_file
    from calendar_svc.store import Store

    db = tmp_path / "var" / "cal.sqlite3"
    db.parent.mkdir()
    config = tmp_path / "config.toml"
    channels = ("good", "bad", "gone")
    (tmp_path / "schedules").mkdir()
    now_one, later = soon(3), soon(3600)
    (tmp_path / "schedules" / "h.toml").write_text(
        schedule_text("health", {"now": now_one, "later": later})
    )
    # While "the daemon was down", a reminder 5 minutes ago was planned and never sent.
    past = soon(-300)
    old = tmp_path / "old.toml"
    old.write_text(schedule_text("old", {"past": past}))
    store = Store(f"sqlite:///{db}")
    try:
        store.migrate()
        with store.write() as session:
            import_specs(session, [load_file(old)], now=store.clock())
        Planner(store, RemindersConfig(offsets=(timedelta(0),), channels=("good",))).plan(
            past - timedelta(seconds=1)
        )
    finally:
        store.close()
    assert deliveries(db) == [("past", "good", "pending")]

    BAD_STATUS[0] = 500
    with HttpReceiver(_by_path) as receiver:
        config.write_text(
            config_text(
                db,
                port=free_tcp_port(),
                logging={"level": "warning"},
                reminders={"grace": "PT1M", "max_attempts": 50},
                notifiers={
                    name: {
                        "type": "webhook",
                        "url": f"{receiver.url}/{name}",
                        "allow_private": True,
                        "timeout": 5.0,
                    }
                    for name in channels
                },
            )
        )
        # systemd asked another process for watchdog pings (inherited variables): none here.
        service = Service(
            config, env={**notify_socket.env, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
        )
        services.append(service.start())
        notify_socket.receive(_is("READY"), 30, "READY=1")
        port = int(config.read_text().split("port = ")[1].split("\n")[0])

        def states() -> dict[tuple[str, str], str]:
            return {(uid, ch): st for uid, ch, st in deliveries(db)}

        wait_for(
            lambda: (
                states().get(("now", "good")) == "sent"
                and states().get(("now", "gone")) == "failed"
                and states().get(("past", "good")) == "missed"
                and sum(r.path == "/bad" for r in receiver.requests) >= 2
            ),
            30,
            "sent, failed, missed and a retried send",
            [service],
        )
        status, body = healthz(port)
        assert status == 200, body
        assert body["status"] == "ok" and body["database"] is True
        assert body["scheduler_running"] is True and body["scheduler_stuck"] is False
        assert body["last_planner_run"] and body["last_loop_tick"]
        assert body["next_reminder"] is not None
        failing = body["failing_channels"]
        assert set(failing) == {"bad", "gone"}, failing
        assert "500" in failing["bad"] and failing["gone"] == "gone"

        # The 500 goes away: the next retry is sent and the channel is no longer failing.
        BAD_STATUS[0] = 200
        wait_for(lambda: states().get(("now", "bad")) == "sent", 20, "the retry", [service])
        wait_for(
            lambda: "bad" not in healthz(port)[1]["failing_channels"],
            10,
            "/healthz to forget the recovered channel",
            [service],
        )
        # Recomputed at the next planner pass (rescan_interval), once nothing earlier is left.
        wait_for(
            lambda: healthz(port)[1]["next_reminder"] == iso_utc(later),
            20,
            "next_reminder to move on to the later entry",
            [service],
        )

        token = feed_token(db, "health")
        assert http_get(f"http://{LOOPBACK}:{port}/feeds/{token}/health.ics")[0] == 200
        assert http_get(f"http://{LOOPBACK}:{port}/feeds/{token}x/health.ics")[0] == 404
        status, raw = http_get(f"http://{LOOPBACK}:{port}/metrics")
        assert status == 200
        text = raw.decode()

        service.signal(signal.SIGTERM)
        assert service.wait_exit(15) == 0

    reminders = "calendar_svc_reminders_total"
    for channel in channels:
        assert (metric(text, reminders, outcome="planned", channel=channel) or 0) >= 1, channel
    assert metric(text, reminders, outcome="sent", channel="good") == 1
    assert metric(text, reminders, outcome="sent", channel="bad") == 1
    assert (metric(text, reminders, outcome="retried", channel="bad") or 0) >= 1
    assert metric(text, reminders, outcome="failed", channel="gone") == 1
    assert metric(text, reminders, outcome="missed", channel="good") == 1
    assert (metric(text, "calendar_svc_send_seconds_count", channel="good") or 0) >= 1
    assert (metric(text, "calendar_svc_send_seconds_count", channel="bad") or 0) >= 2
    assert (metric(text, "calendar_svc_lateness_seconds_count") or 0) >= 2
    assert metric(text, "calendar_svc_lateness_seconds_bucket", le="+Inf") is not None
    assert metric(text, "calendar_svc_feed_requests_total", status="200") == 1
    assert metric(text, "calendar_svc_feed_requests_total", status="404") == 1
    assert metric(text, "calendar_svc_pending_deliveries") is not None

    # level = "warning": the retries, the failure and the miss are logged, nothing at info.
    err = service.stderr()
    levels = {line.split(" level=")[1].split(" ")[0] for line in err.splitlines()}
    assert levels <= {"warning", "error"}, levels
    for event in ("msg=reminder.retry", "msg=reminder.failed", "msg=reminder.missed"):
        assert event in err
    assert "msg=daemon.ready" not in err and "msg=reminder.sent" not in err
    assert not any("WATCHDOG" in m for m in notify_socket.messages)


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def test_healthz_is_503_when_the_scheduler_loop_is_stuck(tmp_path: Path) -> None:
    """The loop has not ticked for its deadline, measured on the monotonic clock, while the
    scheduler claims to run; a step of the wall clock neither hides nor fakes it."""
    import asyncio

    import httpx

    from calendar_svc.clock import now_utc
    from calendar_svc.config import Config, DatabaseConfig
    from calendar_svc.events import DaemonStarted, DaemonStopping, LoopTicked, PlannerPassed
    from calendar_svc.feed.app import build_app
    from calendar_svc.observers import Observers
    from calendar_svc.store import Store

    monotonic = [5000.0]
    store = Store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    store.migrate()
    config = Config(path=None, schedules=(), database=DatabaseConfig(store.url))
    # A 2-second tick: stuck after the minimum of 90 s rather than after 3 ticks.
    observers = Observers.build(tick_every=timedelta(seconds=2), monotonic=lambda: monotonic[0])
    app = build_app(store, config, observers)
    events = observers.events
    try:

        def get_healthz() -> httpx.Response:
            async def get() -> httpx.Response:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    return await client.get("/healthz")

            return asyncio.run(get())

        now = now_utc()
        events.emit(DaemonStarted(at=now))
        events.emit(PlannerPassed(at=now, planned=0, cancelled=0, missed=0))
        monotonic[0] += 91
        stuck = get_healthz()
        assert stuck.status_code == 503
        body = stuck.json()
        assert body["status"] == "unavailable" and body["scheduler_stuck"] is True
        assert body["database"] is True and body["scheduler_running"] is True
        assert body["last_loop_tick"] == iso_utc(now)
        assert body["last_planner_run"] == iso_utc(now)
        assert stuck.headers["cache-control"] == "no-store"

        # A tick whose wall time is an hour behind (the clock stepped back): the loop runs.
        events.emit(LoopTicked(at=now - timedelta(hours=1)))
        fresh = get_healthz()
        assert fresh.status_code == 200 and fresh.json()["scheduler_stuck"] is False
        assert fresh.json()["last_loop_tick"] == iso_utc(now - timedelta(hours=1))
        # Not running any more (stopping): an old tick is not "stuck".
        events.emit(DaemonStopping(reason="SIGTERM", in_flight=0))
        monotonic[0] += 3600
        assert get_healthz().status_code == 200
    finally:
        store.close()


def test_sighup_applies_the_feed_settings_and_says_which_need_a_restart(
    tmp_path: Path, services: list[Service]
) -> None:
    """Review bug: a reload re-read [feed] but the running feed kept its old FeedOptions.
    After SIGHUP the feed answers with the new refresh interval (Cache-Control, the
    REFRESH-INTERVAL), include_alarms and domain; a new port is logged as needing a
    restart and the old one keeps serving."""
    import urllib.request

    db = tmp_path / "var" / "cal.sqlite3"
    config = tmp_path / "config.toml"

    def write(feed_extra: str, port: int = 0) -> None:
        text = config_text(db, port=port)
        config.write_text(text.replace("[feed]\n", f"[feed]\n{feed_extra}", 1))

    write('refresh_interval = "PT1H"\ninclude_alarms = true\ndomain = "old.example"\n')
    (tmp_path / "schedules").mkdir()
    later = soon(3600 * 24)
    (tmp_path / "schedules" / "f.toml").write_text(schedule_text("feedcal", {"one": later}))
    service = Service(config)
    services.append(service.start())
    port = service.feed_port()
    service.wait_stderr("msg=daemon.ready")
    url = f"http://{LOOPBACK}:{port}/feeds/{feed_token(db, 'feedcal')}/feedcal.ics"

    def get() -> tuple[str, str]:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.headers["cache-control"], response.read().decode()

    cache, body = get()
    assert cache == "private, max-age=3600" and "BEGIN:VALARM" in body
    assert ".old.example" in body

    write(
        'refresh_interval = "PT30M"\ninclude_alarms = false\ndomain = "new.example"\n'
        'header_timeout = "PT3S"\n',
        1,
    )
    service.signal(signal.SIGHUP)
    err = service.wait_stderr("msg=config.reloaded")
    needed = next(line for line in err.splitlines() if "msg=config.restart_needed" in line)
    assert "port" in needed and "header_timeout" in needed, needed
    assert "refresh_interval" not in needed and "domain" not in needed, needed
    cache, body = get()  # the old port still serves: a new bind needs a restart
    assert cache == "private, max-age=1800", cache
    assert "BEGIN:VALARM" not in body and ".new.example" in body
    assert "PT30M" in body
    assert service.alive()
