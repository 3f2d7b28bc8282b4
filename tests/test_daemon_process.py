"""Real ``calendar-svc run`` processes, real time, a real HTTP receiver behind the webhook notifier.

Every wait polls with a deadline; the only sleeps are the scenario itself (how
long a daemon stays SIGSTOPped, how long the receiver takes to answer). A test
that asserts something did *not* happen (no duplicate, no stray reminder) first
waits until the system is settled: every delivery row final and every attempt
the database records arrived at the receiver, so nothing is still on its way.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from faults import FULL, full_only
from peers import HttpReceiver, HttpRequest, Response
from service_helpers import Service, base_env, instant, schedule_text, soon
from sqlalchemy import func, select
from waiting import wait_for

from calendar_svc.clock import now_utc
from calendar_svc.importer import import_specs
from calendar_svc.models import Delivery, Entry
from calendar_svc.reminders.rules import dedupe_key, idempotency_key
from calendar_svc.schedule_files import load_file, parse_schedule
from calendar_svc.store import Store

pytestmark = pytest.mark.slow

CHANNEL = "hook"


# --- a real receiver ------------------------------------------------------------------


class WebhookPeer:
    """What the daemons' webhook channel posts to (served by ``peers.HttpReceiver``).

    Records each webhook it answered 200 in ``got`` and counts every request by
    ``webhook-id``. ``mode``: ``ok``; ``fail`` (HTTP 500); ``hang`` (holds the
    request until ``release``, then HTTP 503: a peer that times the notifier out,
    for as long as the test wants, never an answer that arrives late and counts).
    Entries whose uid starts with ``reject`` always get HTTP 400.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.url = ""  # set by webhook_peer() once the server listens
        self.got: list[tuple[str, str]] = []
        self.requests: Counter[str] = Counter()
        self.hanging = 0
        self.release = threading.Event()
        self.lock = threading.Lock()

    def respond(self, request: HttpRequest) -> Response:
        key = request.header("webhook-id") or ""
        uid = request.json()["data"]["entry"]["uid"]
        with self.lock:
            self.requests[key] += 1
            mode = self.mode
        if uid.startswith("reject"):
            return 400, {}, b""
        if mode == "fail":
            return 500, {}, b""
        if mode == "hang":
            with self.lock:
                self.hanging += 1
            self.release.wait(60)
            return 503, {}, b""
        with self.lock:
            self.got.append((key, uid))
        return 200, {}, b""

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(key for key, _ in self.got)

    def request_count(self) -> int:
        with self.lock:
            return self.request_count_locked()

    def request_count_locked(self) -> int:
        return sum(self.requests.values())


@contextlib.contextmanager
def webhook_peer() -> Iterator[WebhookPeer]:
    peer = WebhookPeer()
    with HttpReceiver(peer.respond) as server:
        peer.url = f"{server.url}/hook"
        try:
            yield peer
        finally:
            peer.release.set()  # a hung request ends before the server shuts down


@pytest.fixture
def receiver() -> Iterator[WebhookPeer]:
    with webhook_peer() as peer:
        yield peer


def write_config(
    folder: Path,
    db_url: str,
    receiver: WebhookPeer,
    *,
    schedules: bool = True,
    timeout: float = 2.0,
    **reminders: str,
) -> Path:
    settings = {
        "channels": f'["{CHANNEL}"]',
        "poll_interval": '"PT1S"',
        "rescan_interval": '"PT5S"',
        "retry_base": '"PT1S"',
        "retry_max": '"PT2S"',
        "max_attempts": "30",
        "lease": '"PT30S"',
        "stop_timeout": '"PT3S"',
        "grace": '"PT10M"',
    }
    settings.update({k: f'"{v}"' if not v.isdigit() else v for k, v in reminders.items()})
    lines = "\n".join(f"{k} = {v}" for k, v in settings.items())
    path = folder / "config.toml"
    path.write_text(
        textwrap.dedent(f"""\
        schedules = [{'"schedules/*.toml"' if schedules else ""}]

        [database]
        url = "{db_url}"

        [feed]
        enabled = false

        [reminders]
        """)
        + lines
        + textwrap.dedent(f"""

        [notifiers.{CHANNEL}]
        type = "webhook"
        url = "{receiver.url}"
        allow_private = true
        timeout = {timeout}
        """)
    )
    (folder / "schedules").mkdir(exist_ok=True)
    return path


def key_of(slug: str, uid: str, start: datetime) -> str:
    return idempotency_key(
        dedupe_key(slug, uid, start.replace(microsecond=0), timedelta(0), CHANNEL)
    )


def spread(count: int, first: datetime, seconds: float, prefix: str = "e") -> dict[str, datetime]:
    step = seconds / max(1, count - 1)
    return {f"{prefix}{i:04d}": (first + timedelta(seconds=int(i * step))) for i in range(count)}


def statuses(url: str) -> Counter[str]:
    store = Store(url)
    try:
        with store.read() as session:
            rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
            return Counter({status: count for status, count in rows})
    finally:
        store.close()


def attempts_recorded(url: str) -> int:
    store = Store(url)
    try:
        with store.read() as session:
            return int(session.scalar(select(func.coalesce(func.sum(Delivery.attempts), 0))))
    finally:
        store.close()


def settled(url: str, *receivers: WebhookPeer) -> bool:
    """No delivery is pending or being sent and, given the receivers, every attempt the
    database records has reached one of them: nothing more is on its way.

    (Leave the receivers out after a kill -9: a row claimed by the killed daemon counts
    an attempt that was never sent.)"""
    if set(statuses(url)) & {"pending", "sending"}:
        return False
    return not receivers or sum(r.request_count() for r in receivers) >= attempts_recorded(url)


def unsettled(url: str, *receivers: WebhookPeer) -> Callable[[], str]:
    """What ``settled`` waits for, with the state when the wait timed out."""

    def say() -> str:
        received = sum(r.request_count() for r in receivers)
        return (
            f"every delivery to be final (statuses {dict(statuses(url))}, "
            f"{attempts_recorded(url)} attempts recorded, {received} requests received)"
        )

    return say


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'var' / 'cal.sqlite3'}"


# --- the scenarios --------------------------------------------------------------------


def test_edits_while_running(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    """Move, cancel and delete entries while the daemon runs: old reminders never fire."""
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver)
    t = soon(14)
    starts = {"keep": t, "moveme": t, "cancelme": t, "deleteme": t}
    file = tmp_path / "schedules" / "edits.toml"
    file.write_text(schedule_text("edits", starts))
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())

    moved_to = t + timedelta(seconds=5)
    file.write_text(schedule_text("edits", {**starts, "moveme": moved_to}))
    wait_for(
        lambda: "updated=1" in daemon.stderr(), 10, "the edited file to be re-imported", services
    )
    cli = [sys.executable, "-m", "calendar_svc", "--config", str(config)]
    for args in (["cancel", "cancelme"], ["delete", "deleteme", "--yes"]):
        done = subprocess.run(cli + args, capture_output=True, env=base_env(), timeout=30)
        assert done.returncode == 0, done.stderr
    if now_utc() >= t:
        pytest.skip(
            "this runner took longer than the 14 s to the reminders to start the "
            "daemon and make the edits: the old reminders came due before them"
        )

    wait_for(lambda: len(receiver.keys()) >= 2, 30, "the two remaining reminders", services)
    # A stray old reminder would still be pending or on its way.
    wait_for(lambda: settled(url, receiver), 30, unsettled(url, receiver), services)
    assert receiver.keys() == Counter(
        {key_of("edits", "keep", t): 1, key_of("edits", "moveme", moved_to): 1}
    )
    log = daemon.stderr()
    assert log.count("msg=reminder.cancelled") == 3  # old moveme, cancelme, deleteme


def test_kill_9_during_a_burst_then_restart(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    """500 reminders due within 3 s; kill -9 mid-burst; a restart delivers the rest."""
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver)
    starts = spread(500, soon(6), 3)
    (tmp_path / "schedules" / "burst.toml").write_text(schedule_text("burst", starts))
    expected = {key_of("burst", uid, start) for uid, start in starts.items()}
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())

    wait_for(lambda: len(receiver.keys()) >= 150, 30, "the burst to be under way", services)
    daemon.signal(signal.SIGKILL)
    daemon.wait_exit(10)
    at_kill = len(receiver.keys())
    assert at_kill < 500, "the burst was over before the kill; nothing was tested"

    daemon.start().wait_ready()
    wait_for(
        lambda: set(receiver.keys()) >= expected, 60, "every reminder after the restart", services
    )
    wait_for(lambda: settled(url), 30, "every delivery to reach a final status", services)
    keys = receiver.keys()
    assert set(keys) == expected
    # Duplicates only for sends in flight at the kill, and then with the same key.
    duplicates = {k: n for k, n in keys.items() if n > 1}
    assert len(duplicates) <= 64 and all(n == 2 for n in duplicates.values()), duplicates
    assert statuses(url) == Counter({"sent": 500})


@pytest.mark.parametrize("count", [pytest.param(2, marks=full_only), 3])
def test_several_daemons_on_postgresql_send_each_reminder_once(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service], pg_url: str, count: int
) -> None:
    """2,000 reminders due within 12 s, 3 daemons (and 2 with ``CALENDAR_SVC_FAULTS=full``)
    on one PostgreSQL schema.

    The daemons start on an empty schema and the reminders are written while they
    run, so each daemon also has to notice the change and plan."""
    store = Store(pg_url)
    store.migrate()
    config = write_config(tmp_path, pg_url, receiver, schedules=False)
    for i in range(count):
        services.append(Service(config, name=f"daemon{i}").start())
    for d in services:
        d.wait_ready()

    first = soon(8)
    starts = spread(2000, first, 12)
    entries = [
        {"uid": uid, "title": uid, "start": start.replace(tzinfo=None), "duration": "PT30M"}
        for uid, start in starts.items()
    ]
    with store.write() as session:
        import_specs(
            session,
            [
                parse_schedule(
                    {
                        "calendar": {
                            "slug": "many",
                            "name": "Many",
                            "timezone": "UTC",
                            "reminders": ["PT0S"],
                        },
                        "entries": entries,
                    },
                    source="test",
                )
            ],
            now=store.clock(),
        )
    store.close()
    if now_utc() >= first:
        pytest.skip(
            "this runner took longer than the 8 s to the first reminder to start the "
            "daemons and write 2,000 entries: no longer a burst the daemons plan ahead"
        )
    expected = {key_of("many", uid, start) for uid, start in starts.items()}

    wait_for(lambda: set(receiver.keys()) >= expected, 90, "all 2,000 reminders", services)
    # A duplicate would be a row still sending or an attempt still on its way.
    wait_for(lambda: settled(pg_url, receiver), 30, unsettled(pg_url, receiver), services)
    keys = receiver.keys()
    assert set(keys) == expected
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:10]
    assert statuses(pg_url) == Counter({"sent": 2000})
    store = Store(pg_url)
    with store.read() as session:
        claimers = set(session.scalars(select(Delivery.claimed_by).distinct()))
    store.close()
    assert len(claimers) >= 2, claimers  # the work was shared, not done by one


def test_notifier_down_then_back(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    """500s, then timeouts, then recovery: all delivered once, attempts recorded;
    a permanently rejected reminder ends failed without holding up the others.

    Deterministic: each phase ends on what the test saw, not on time. It was flaky
    in two ways: the 500s phase ended after 40 requests, which a row due last could
    miss (then sent at its first attempt, and ``attempts >= 2`` failed); and the
    timeouts came from a peer that slept 1.5 s against a 1 s timeout, so under load
    an answer of the "ok" phase could also take longer than the timeout, reach the
    receiver as a 200 after the notifier gave up, and count as a duplicate. Now the
    500s last until every row was refused at least once, the timeouts come from a
    peer that holds requests until released (and then refuses them), and before
    recovery a reload gives the notifier a timeout no answer on loopback exceeds.
    """
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver, timeout=1.0)
    starts = spread(20, soon(5), 2)
    starts["reject-me"] = starts["e0000"]
    (tmp_path / "schedules" / "down.toml").write_text(schedule_text("down", starts))
    expected = {key_of("down", uid, s) for uid, s in starts.items() if uid != "reject-me"}
    receiver.mode = "fail"
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())

    def refused_each() -> bool:
        with receiver.lock:
            return set(receiver.requests) >= expected and receiver.request_count_locked() >= 40

    wait_for(refused_each, 30, "every row refused with HTTP 500, and retries", services)
    receiver.mode = "hang"
    wait_for(lambda: "timed out" in daemon.stderr(), 30, "a timed-out attempt", services)
    config.write_text(config.read_text().replace("timeout = 1.0", "timeout = 30.0"))
    daemon.signal(signal.SIGHUP)
    wait_for(lambda: "msg=config.reloaded" in daemon.stderr(), 20, "the reload", services)
    receiver.mode = "ok"
    receiver.release.set()  # the held requests end (HTTP 503: retried, never counted)
    wait_for(lambda: set(receiver.keys()) >= expected, 30, "delivery after recovery", services)
    wait_for(lambda: settled(url, receiver), 30, unsettled(url, receiver), services)
    assert receiver.keys() == Counter(dict.fromkeys(expected, 1))
    store = Store(url)
    with store.read() as session:
        rows = {r.entry_uid: r for r in session.scalars(select(Delivery))}
    store.close()
    assert rows["reject-me"].status == "failed" and rows["reject-me"].attempts == 1
    assert "400" in (rows["reject-me"].last_error or "")
    sent = [r for uid, r in rows.items() if uid != "reject-me"]
    assert all(r.status == "sent" and r.attempts >= 2 for r in sent)
    assert "msg=reminder.retry" in daemon.stderr() and "msg=reminder.failed" in daemon.stderr()


def test_sigstop_across_due_times(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    """Stopped across every due time (20 s; 60 s with ``CALENDAR_SVC_FAULTS=full``), the
    daemon sends all overdue reminders once, within 30 s of SIGCONT: nothing is skipped as a
    misfire (APScheduler's own grace would drop a job more than a second late)."""
    stop_for = 60.0 if FULL else 20.0
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver)
    starts = spread(30, soon(12), stop_for * 0.75 - 12)  # due times all inside the stop
    (tmp_path / "schedules" / "stop.toml").write_text(schedule_text("stop", starts))
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())
    if now_utc() >= min(starts.values()):
        pytest.skip(
            "this runner took longer than the 12 s to the first reminder to start the "
            "daemon: a reminder came due before the stop"
        )
    daemon.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    # The stop itself (not a synchronisation), past the last due time.
    last_due = (max(starts.values()) - now_utc()).total_seconds()
    time.sleep(max(stop_for, last_due + 3))
    assert time.monotonic() - stopped >= stop_for
    assert receiver.keys() == Counter()
    daemon.signal(signal.SIGCONT)
    expected = {key_of("stop", uid, s) for uid, s in starts.items()}
    wait_for(lambda: set(receiver.keys()) >= expected, 30, "the overdue reminders", services)
    wait_for(lambda: settled(url, receiver), 30, unsettled(url, receiver), services)
    assert receiver.keys() == Counter(dict.fromkeys(expected, 1))


def test_sigterm_while_the_notifier_hangs(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver, timeout=30.0, stop_timeout="PT2S")
    start = soon(4)
    (tmp_path / "schedules" / "hang.toml").write_text(schedule_text("hang", {"hung": start}))
    receiver.mode = "hang"
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())
    wait_for(lambda: receiver.hanging >= 1, 20, "the send to hang", services)

    daemon.signal(signal.SIGTERM)
    # Waiting for the hung send would take the notifier's 30 s timeout: an exit well
    # before that is stop_timeout (2 s) giving up on it.
    assert daemon.wait_exit(20) == 0
    assert statuses(url) == Counter({"pending": 1})
    assert "msg=reminder.released" in daemon.stderr()

    receiver.mode = "ok"
    receiver.release.set()
    daemon.start().wait_ready()
    wait_for(lambda: receiver.keys(), 20, "the reminder after the restart", services)
    wait_for(lambda: settled(url), 30, "every delivery to reach a final status", services)
    assert receiver.keys() == Counter({key_of("hang", "hung", start): 1})
    assert statuses(url) == Counter({"sent": 1})


def test_three_cli_writers_while_the_daemon_runs_on_sqlite(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    """No "database is locked" reaches a user, and no write is lost."""
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver)
    # The daemon is busy too: reminders come due while the writers write.
    (tmp_path / "schedules" / "busy.toml").write_text(
        schedule_text("busy", spread(100, soon(4), 8))
    )
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())

    rounds = 4
    script = textwrap.dedent(f"""\
        import subprocess, sys
        from datetime import datetime, timedelta, timezone
        writer, rounds = sys.argv[1], {rounds}
        base = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
        for n in range(1, rounds + 1):
            path = f"{tmp_path}/w{{writer}}.toml"
            lines = ['[calendar]', f'slug = "w{{writer}}"', 'name = "w"', 'timezone = "UTC"',
                     'reminders = ["PT0S"]']
            for i in range(n):
                start = (base + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
                lines += ['[[entries]]', f'uid = "u{{i}}"', 'title = "t"', f'start = {{start}}']
            open(path, "w").write("\\n".join(lines) + "\\n")
            done = subprocess.run([sys.executable, "-m", "calendar_svc", "--config",
                                   "{config}", "import", path], capture_output=True, text=True)
            sys.stderr.write(done.stderr)
            if done.returncode:
                sys.exit(done.returncode)
            done = subprocess.run([sys.executable, "-m", "calendar_svc", "--config",
                                   "{config}", "cancel", f"u{{n - 1}}", "--calendar",
                                   f"w{{writer}}"], capture_output=True, text=True)
            sys.stderr.write(done.stderr)
            if done.returncode:
                sys.exit(done.returncode)
        """)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(i)],
            env=base_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    results = [w.communicate(timeout=120) for w in writers]
    for w, (_, err) in zip(writers, results, strict=True):
        assert w.returncode == 0, err
        assert "locked" not in err.lower()
    store = Store(url)
    with store.read() as session:
        uids = list(session.execute(select(Entry.uid, Entry.status).where(Entry.uid.like("u%"))))
    store.close()
    # Every entry each writer imported is there, and each writer's last write (cancel u3) held.
    assert len(uids) == 3 * rounds
    last = f"u{rounds - 1}"
    assert [status for uid, status in uids if uid == last] == ["cancelled"] * 3
    assert "locked" not in daemon.stderr().lower()
    assert daemon.alive()


def test_a_second_daemon_on_one_sqlite_file_is_refused(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver)
    first = Service(config, name="first")
    services.append(first.start().wait_ready())
    second = Service(config, name="second")
    services.append(second.start())
    assert second.wait_exit(20) == 1
    assert "only one daemon may run per SQLite database" in second.stderr()
    assert f"pid {first.pid}" in second.stderr()
    # It never ran: it says its start failed, not that it is stopping.
    assert "msg=daemon.start_failed" in second.stderr()
    assert "msg=daemon.stopping" not in second.stderr()
    assert first.alive()


def test_sighup_reloads_and_a_broken_config_keeps_the_old_one(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    url = sqlite_url(tmp_path)
    config = write_config(tmp_path, url, receiver)
    good = config.read_text()
    daemon = Service(config, name="daemon")
    services.append(daemon.start().wait_ready())

    config.write_text(good.replace('type = "webhook"', 'type = "carrier-pigeon"'))
    daemon.signal(signal.SIGHUP)
    wait_for(
        lambda: "msg=config.reload_failed" in daemon.stderr(), 10, "the failed reload", services
    )
    assert "unknown notifier type 'carrier-pigeon'" in daemon.stderr()

    with webhook_peer() as other:
        config.write_text(good.replace(receiver.url, other.url))
        daemon.signal(signal.SIGHUP)
        wait_for(lambda: "msg=config.reloaded" in daemon.stderr(), 10, "the reload", services)
        start = soon(3)
        (tmp_path / "schedules" / "hup.toml").write_text(schedule_text("hup", {"after": start}))
        wait_for(lambda: other.keys(), 20, "the reminder through the reloaded channel", services)
        wait_for(
            lambda: settled(url, receiver, other), 30, unsettled(url, receiver, other), services
        )
        assert other.keys() == Counter({key_of("hup", "after", start): 1})
        assert receiver.keys() == Counter()
    assert daemon.alive()


def test_reminders_due_while_the_daemon_was_down(
    tmp_path: Path, receiver: WebhookPeer, services: list[Service]
) -> None:
    """Late-or-missed after downtime, on a real daemon: a reminder whose entry has not
    started goes out marked late; one whose entry started and whose grace ran out is
    recorded missed and never sent; one that was never planned (its entry was added while
    no daemon ran) is recorded missed too, not forgotten."""
    from calendar_svc.config import load_config
    from calendar_svc.reminders.planner import Planner

    url = sqlite_url(tmp_path)
    config_path = write_config(tmp_path, url, receiver)
    now = now_utc().replace(microsecond=0)
    late_start = now + timedelta(minutes=3)  # PT1H before it was 57 min ago
    gone_start = now - timedelta(minutes=20)  # PT15M before it was 35 min ago
    (tmp_path / "schedules" / "down.toml").write_text(
        textwrap.dedent(f"""\
        [calendar]
        slug = "down"
        name = "down"
        timezone = "UTC"

        [[entries]]
        uid = "still-ahead"
        title = "Still ahead"
        start = {instant(late_start)}
        reminders = ["PT1H"]

        [[entries]]
        uid = "already-started"
        title = "Already started"
        start = {instant(gone_start)}
        reminders = ["PT15M"]
        """)
    )
    # A daemon planned both rows 40 minutes ago, then went down before sending either.
    config = load_config(config_path)
    earlier = now - timedelta(minutes=40)
    store = Store(url, clock=lambda: earlier)
    store.migrate()
    with store.write() as session:
        import_specs(session, [load_file(tmp_path / "schedules" / "down.toml")], now=store.clock())
    Planner(store, config.reminders).plan(earlier)
    store.close()
    assert statuses(url) == Counter({"pending": 2})
    # Added while no daemon ran: its reminder came due 30 minutes ago with no row.
    (tmp_path / "schedules" / "added.toml").write_text(
        textwrap.dedent(f"""\
        [calendar]
        slug = "added"
        name = "added"
        timezone = "UTC"

        [[entries]]
        uid = "added-while-down"
        title = "Added while down"
        start = {instant(now - timedelta(minutes=15))}
        reminders = ["PT15M"]
        """)
    )

    daemon = Service(config_path, name="daemon")
    services.append(daemon.start().wait_ready())
    wait_for(lambda: settled(url), 30, "both deliveries to reach a final status", services)

    assert [uid for _, uid in receiver.got] == ["still-ahead"]
    check = Store(url)
    with check.read() as session:
        by_uid = {d.entry_uid: d for d in session.scalars(select(Delivery))}
    check.close()
    assert (by_uid["still-ahead"].status, by_uid["still-ahead"].late) == ("sent", True)
    assert by_uid["already-started"].status == "missed"
    never = by_uid["added-while-down"]
    assert never.status == "missed" and never.attempts == 0
    assert "while no daemon planned" in (never.last_error or "")
    assert "msg=reminder.missed" in daemon.stderr()
    assert "msg=planner.gap" in daemon.stderr() and "missed=1" in daemon.stderr()
