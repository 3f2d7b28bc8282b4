"""Fault injection for the fault suite (``tests/test_fault_*.py``, issue 12).

What a bad day does to calendar-svc, made repeatable: schedule and config files
written from plain data, the CLI run in-process (fast) or as a real process,
``calendar-svc run`` started under a descriptor limit or libfaketime, database
snapshots to prove that a refused import wrote nothing, a small tmpfs to fill,
the daemon's RSS read from ``/proc``.

Scenarios longer than the CI budget run only with ``CALENDAR_SVC_FAULTS=full``
(``full_only``). Defects that issue 12 names and that are not fixed yet carry
``xfail_today(...)``: a strict xfail, so the test turns the suite red the day
the fix lands until its marker is deleted.

Every wait polls with a deadline (``until``, on ``service_helpers.wait_for``);
the only sleeps are the fault itself (how long the clock stays wrong). Processes
started in ``daemons_killed()`` are killed when it ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from peers import HttpReceiver, HttpRequest, Response
from service_helpers import Service, base_env, wait_for

ROOT = Path(__file__).resolve().parents[1]
TRIP = ROOT / "schedules" / "rubio-2025-09.toml"
TRIP_SLUG = "rubio-2025-09"
LOOPBACK = "127.0.0.1"
SHIMS = Path(__file__).resolve().parent / "fault_shims"
# Debian's package `faketime` (multiarch folder; the multi-threaded variant: the daemon has
# threads).
FAKETIME_LIB = next(
    iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketimeMT.so.1"))),
    Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"),
)

FULL = os.environ.get("CALENDAR_SVC_FAULTS", "") == "full"
full_only = pytest.mark.skipif(
    not FULL, reason="a longer fault scenario; run it with CALENDAR_SVC_FAULTS=full"
)


def xfail_today(finding: str) -> pytest.MarkDecorator:
    """Issue 12 names this defect and it is not fixed yet: delete the marker with the fix."""
    return pytest.mark.xfail(strict=True, reason=f"issue 12: {finding}")


# --- TOML from plain data -----------------------------------------------------------------


def toml_string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; no surrogates may reach here)."""
    return json.dumps(text, ensure_ascii=False)


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: Any) -> str:
    """Any value tomllib can return, written back as TOML (inline tables and arrays)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def toml_document(data: Mapping[str, Any]) -> str:
    """A document: scalars first, then tables, then arrays of tables (``[[entries]]``)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, table in tables:
        lines.append(f"\n[{toml_key(key)}]")
        lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items())
    for key, items in arrays:
        for item in items:
            lines.append(f"\n[[{toml_key(key)}]]")
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC instant to the second (what schedule files hold)."""
    return value.astimezone(UTC).replace(microsecond=0)


def now() -> datetime:
    """The test process's wall clock (the daemon under test may be faked, never this one)."""
    return datetime.now(UTC)


def in_seconds(seconds: float) -> datetime:
    return utc(now() + timedelta(seconds=seconds))


def entry(uid: str, start: datetime | date, **fields: Any) -> dict[str, Any]:
    """One ``[[entries]]`` table: a title naming the uid, 30 minutes long when timed."""
    table: dict[str, Any] = {"uid": uid, "title": f"Entry {uid}", "start": start}
    if isinstance(start, datetime) and "end" not in fields:
        table["duration"] = "PT30M"
    table.update(fields)
    return table


def calendar_data(
    slug: str,
    entries: Sequence[Mapping[str, Any]],
    *,
    timezone: str = "UTC",
    reminders: Sequence[str] | None = ("PT0S",),
) -> dict[str, Any]:
    cal: dict[str, Any] = {"slug": slug, "name": f"Calendar {slug}", "timezone": timezone}
    if reminders is not None:
        cal["reminders"] = list(reminders)
    return {"calendar": cal, "entries": [dict(e) for e in entries]}


def write_calendar(path: Path, slug: str, entries: Sequence[Mapping[str, Any]], **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(toml_document(calendar_data(slug, entries, **kw)), encoding="utf-8")
    return path


# --- config.toml --------------------------------------------------------------------------


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    """A webhook channel to a loopback receiver (which only ``allow_private`` permits)."""
    return {"type": "webhook", "url": url, "allow_private": True, "timeout": 5, **extra}


def ntfy(server: str, topic: str = "faults", **extra: Any) -> dict[str, Any]:
    """An ntfy channel to a loopback server; ``allow_private`` once ntfy knows that key.

    ntfy has no private-address check yet (issue 12 adds one, with ``allow_private``);
    a key the notifier does not declare would stop the daemon at start.
    """
    from calendar_svc.notifiers.ntfy import NtfyNotifier

    table = {"type": "ntfy", "server": server, "topic": topic, "timeout": 5, **extra}
    if "allow_private" in NtfyNotifier.keys:
        table["allow_private"] = True
    return table


def write_config(
    folder: Path,
    *,
    database: str | None = None,
    notifiers: Mapping[str, Mapping[str, Any]] | None = None,
    schedules: Sequence[str] = ("schedules/*.toml",),
    reminders: Mapping[str, Any] | None = None,
    feed: bool = True,
    name: str = "config.toml",
) -> Path:
    """A config in ``folder`` (mode 0600: notifier secrets may be inline), JSON logs, fast
    timers, SQLite in ``folder/var`` unless ``database`` says otherwise."""
    notifiers = notifiers if notifiers is not None else {"console": {"type": "console"}}
    rem: dict[str, Any] = {
        "channels": list(notifiers),
        "offsets": ["PT0S"],
        "poll_interval": "PT1S",
        "rescan_interval": "PT5S",
        "retry_base": "PT1S",
        "retry_max": "PT2S",
        "lease": "PT30S",
        "stop_timeout": "PT3S",
    }
    rem.update(reminders or {})
    data: dict[str, Any] = {
        "schedules": list(schedules),
        "database": {"url": database or f"sqlite:///{folder / 'var' / 'calendar.sqlite3'}"},
        "feed": {
            "enabled": feed,
            "host": LOOPBACK,
            "port": 0,
            "public_url": f"http://{LOOPBACK}:8080",
        },
        "reminders": rem,
        "logging": {"format": "json"},
    }
    text = toml_document(data)
    for channel, table in notifiers.items():
        text += f"\n[notifiers.{toml_key(channel)}]\n"
        text += "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in table.items())
    path = folder / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def sqlite_path(config: Path) -> Path:
    return config.parent / "var" / "calendar.sqlite3"


# --- the CLI ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one CLI run ended: exit code, output, and any exception that escaped."""

    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    def describe(self) -> str:
        escaped = f" ({type(self.exception).__name__}: {self.exception})" if self.exception else ""
        return (
            f"calendar-svc {' '.join(self.args)} -> exit {self.exit_code}{escaped}\n"
            f"--- stdout\n{self.stdout[-2000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


class CommandHung(Exception):
    """Raised into a command that ran past its ``limit``: the suite must end, whatever the
    input (a rule that never fires its COUNT makes dateutil search to the year 9999)."""


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Interrupt this (main) thread with ``CommandHung`` after ``seconds``.

    A bound on termination, not a speed check: it is far above what any command
    needs, and only a command that would never return reaches it.
    """

    def interrupt(_signum: int, _frame: Any) -> None:
        raise CommandHung(f"did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cli(config: Path, *args: str, limit: float = 30) -> Outcome:
    """``calendar-svc --config CONFIG ARGS`` in this process (click's runner), interrupted
    after ``limit`` seconds (``CommandHung``, reported as an escaped exception)."""
    from calendar_svc.cli import cli as command

    with hang_guard(limit):
        result = CliRunner().invoke(
            command, ["--config", str(config), *args], catch_exceptions=True
        )
    escaped = None if isinstance(result.exception, SystemExit) else result.exception
    stderr = result.stderr
    if escaped is not None and result.exc_info is not None:
        import traceback

        stderr += "".join(traceback.format_exception(*result.exc_info))
    return Outcome(tuple(args), result.exit_code, result.stdout, stderr, escaped)


def cli_process(
    config: Path,
    *args: str,
    timeout: float = 60,
    env: Mapping[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
) -> Outcome:
    """``python -m calendar_svc --config CONFIG ARGS`` as a real process (killed after
    ``timeout`` seconds: an Outcome with exit code -9 and ``CommandHung``)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "calendar_svc", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=config.parent,
            env=base_env(**(env or {})),
            preexec_fn=preexec,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        return Outcome(
            tuple(args), -9, out, err, CommandHung(f"did not finish within {timeout:g} s")
        )
    return Outcome(tuple(args), done.returncode, done.stdout, done.stderr)


def assert_no_traceback(outcome: Outcome) -> None:
    assert outcome.exception is None, outcome.describe()
    assert "Traceback (most recent call last)" not in outcome.stderr, outcome.describe()


def assert_refused(outcome: Outcome, *mentions: str, exit_code: int | None = 2) -> str:
    """A refusal a person can act on: the exit code, ONE line on stderr, no traceback,
    naming each of ``mentions`` (file, entry, field, option). Returns the line."""
    assert_no_traceback(outcome)
    if exit_code is None:
        assert outcome.exit_code != 0, outcome.describe()
    else:
        assert outcome.exit_code == exit_code, outcome.describe()
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, outcome.describe()
    for text in mentions:
        assert text in lines[0], f"{text!r} not named in the error\n{outcome.describe()}"
    return lines[0]


def assert_ok(outcome: Outcome) -> None:
    assert_no_traceback(outcome)
    assert outcome.exit_code == 0, outcome.describe()


# --- the database ---------------------------------------------------------------------------


def sqlite_dump(path: Path) -> list[str]:
    """Every row of every table as SQL, in a stable order: "row for row unchanged"."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def sqlite_execute(path: Path, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
    """One write (a poison row, a hijacked lease) straight into the database; the row count."""
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            return conn.execute(sql, params).rowcount
    finally:
        conn.close()


def sqlite_rows(path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return list(conn.execute(sql, params))
    finally:
        conn.close()


def feed_token(db: Path, slug: str) -> str:
    rows = sqlite_rows(db, "SELECT feed_token FROM calendars WHERE slug = ?", (slug,))
    assert rows, f"no calendar {slug!r} in {db}"
    return str(rows[0][0])


def prepared_database(template: Path, folder: Path) -> tuple[Path, Path]:
    """A config in ``folder`` whose SQLite file is a copy of ``template``: (config, db)."""
    config = write_config(folder)
    db = sqlite_path(config)
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, db)
    return config, db


# --- receivers ----------------------------------------------------------------------------


class Inbox:
    """A real HTTP receiver on loopback for the webhook and ntfy channels.

    ``delay``: seconds each answer waits (a slow receiver; the wait is the scenario).
    A delivery is named by its entry uid: the webhook body's ``data.entry.uid``, or for
    ntfy the uid in the title (``Entry <uid>``, see ``entry``).
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.receiver = HttpReceiver(self._answer)
        self.url = self.receiver.url

    def _answer(self, _request: HttpRequest) -> Response:
        if self.delay:
            threading.Event().wait(self.delay)
        return 200, {"content-type": "application/json"}, b"{}"

    def __enter__(self) -> Inbox:
        self.receiver.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.__exit__(*exc)

    @property
    def requests(self) -> list[HttpRequest]:
        return list(self.receiver.requests)

    def uids(self, path: str | None = None) -> list[str]:
        """The entry uid of every request received (at ``path`` when given), in order."""
        found = []
        for request in self.requests:
            if path is not None and request.path != path:
                continue
            uid = request_uid(request)
            if uid is not None:
                found.append(uid)
        return found

    def wait_uid(
        self,
        uid: str,
        timeout: float,
        *,
        path: str | None = None,
        daemons: Sequence[Daemon] = (),
        fail_on: Iterable[str] = (),
    ) -> None:
        """Wait for a delivery of ``uid``; fail at once when a daemon exits or logs one of
        ``fail_on`` (e.g. ``reminder.retry``: the first attempt already failed)."""
        fail_on = tuple(fail_on)

        def arrived() -> bool:
            for daemon in daemons:
                daemon.check_alive()
                bad = [r for r in daemon.events() if r.get("msg") in fail_on]
                if bad:
                    raise AssertionError(f"{daemon.name} logged {bad[0]}")
            return uid in self.uids(path)

        until(arrived, timeout, f"a reminder for {uid!r} at {self.url}{path or ''}", daemons)


def request_uid(request: HttpRequest) -> str | None:
    try:
        return str(request.json()["data"]["entry"]["uid"])
    except (ValueError, KeyError, TypeError):
        pass
    title = request.header("title") or ""
    match = re.search(r"Entry (\S+)", title)
    return match.group(1) if match else None


# --- daemon processes ------------------------------------------------------------------------


def limit_nofile(soft: int, hard: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` giving the child ``ulimit -Sn soft`` (and ``-Hn hard`` when given)."""

    def apply() -> None:
        _, current_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (soft, hard if hard is not None else current_hard)
        )

    return apply


def umask(mask: int) -> Callable[[], None]:
    """A ``preexec_fn`` giving the child ``umask MASK``."""

    def apply() -> None:
        os.umask(mask)

    return apply


class Daemon(Service):
    """A calendar-svc process whose logs are JSON lines (``write_config`` asks for them):
    ``events(msg)`` parses them, ``wait_event`` waits for one."""

    def __init__(
        self,
        config: Path,
        *,
        name: str = "daemon",
        command: Sequence[str] = ("run",),
        env: Mapping[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config, env=env, name=name, command=command, preexec=preexec)

    def events(self, msg: str | None = None) -> list[dict[str, Any]]:
        """The JSON log records (``msg`` = the event name, when given), in order."""
        found = []
        for line in self.stderr().splitlines():
            if not line.startswith("{"):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line being written right now
            if msg is None or record.get("msg") == msg:
                found.append(record)
        return found

    def wait_event(
        self,
        msg: str,
        timeout: float = 20,
        *,
        count: int = 1,
        where: Callable[[dict[str, Any]], bool] = lambda r: True,
        fail_on: Iterable[str] = (),
    ) -> list[dict[str, Any]]:
        """Wait for ``count`` records of ``msg``; fail at once if the process exits or logs
        one of ``fail_on`` (event names that mean the awaited thing cannot come)."""
        fail_on = tuple(fail_on)

        def seen() -> list[dict[str, Any]] | None:
            records = self.events()
            bad = [r for r in records if r.get("msg") in fail_on]
            if bad:
                raise AssertionError(f"{self.name} logged {bad[0]}\n{self.stderr()[-6000:]}")
            hits = [r for r in records if r.get("msg") == msg and where(r)]
            if len(hits) >= count:
                return hits
            self.check_alive()
            return None

        return list(until(seen, timeout, f"{msg!r} x{count} in {self.name}'s log", [self]))

    def ready(self, timeout: float = 30) -> Daemon:
        self.wait_event("daemon.ready", timeout)
        return self

    def feed_port(self, timeout: float = 30) -> int:
        return int(self.wait_event("feed.listening", timeout)[0]["port"])

    def tracebacks(self) -> list[str]:
        text = self.stderr()
        return [line for line in text.splitlines() if "Traceback (most recent call last)" in line]

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM and wait: the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def status_kb(self, field: str) -> int:
        """A ``kB`` line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.pid}/status")


def until(
    check: Callable[[], Any], timeout: float, what: str, daemons: Sequence[Daemon] = ()
) -> Any:
    """``service_helpers.wait_for``, failing at once when one of ``daemons`` has exited, and
    showing the tail of their logs on a timeout."""

    def probe() -> Any:
        for daemon in daemons:
            daemon.check_alive()
        return check()

    try:
        return wait_for(probe, timeout, what)
    except AssertionError as exc:
        logs = "".join(f"\n--- {d.name} stderr\n{d.stderr()[-4000:]}" for d in daemons)
        raise AssertionError(f"{exc}{logs}") from None


def until_changed(
    read: Callable[[], Any], times: int, timeout: float, what: str, daemons: Sequence[Daemon] = ()
) -> None:
    """Wait until ``read()`` has given ``times`` values other than its first one (a clock
    field of /healthz moving on: so many more ticks or planner passes happened)."""
    seen = [read()]

    def moved() -> bool:
        value = read()
        if value != seen[-1]:
            seen.append(value)
        return len(seen) > times

    until(moved, timeout, what, daemons)


@contextlib.contextmanager
def daemons_killed() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for daemon in started:
            daemon.kill()


def http(port: int, path: str, *, timeout: float = 10) -> tuple[int, bytes]:
    """(status, body) of a GET to the daemon; HTTP errors are answers, not exceptions."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    status, body = http(port, "/healthz")
    return status, json.loads(body)


# --- libfaketime ----------------------------------------------------------------------------


class Faketime:
    """Steps the wall clock of the processes started with ``env`` (the monotonic clock stays
    real, as after an NTP step or a VM restore).

    ``time.sleep`` under libfaketime with a real monotonic clock fails with EINVAL
    (``clock_nanosleep(TIMER_ABSTIME)``), so ``tests/fault_shims`` goes on the
    child's PYTHONPATH: its ``sitecustomize`` waits on an Event instead.
    """

    def __init__(self, folder: Path) -> None:
        if not FAKETIME_LIB.exists():
            pytest.skip(f"libfaketime is not installed ({FAKETIME_LIB}); apt-get install faketime")
        self.file = folder / "faketime.offset"
        self.offset = 0
        self.file.write_text("+0\n")

    @property
    def env(self) -> dict[str, str]:
        path = [str(SHIMS), *filter(None, [os.environ.get("PYTHONPATH", "")])]
        return {
            "LD_PRELOAD": str(FAKETIME_LIB),
            "FAKETIME_TIMESTAMP_FILE": str(self.file),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "PYTHONPATH": os.pathsep.join(path),
        }

    def set(self, seconds: int) -> None:
        """The faked clock is ``seconds`` off the real one from now on."""
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{seconds:+d}\n")
        os.replace(tmp, self.file)  # a reader never sees a half-written file
        self.offset = seconds

    def fake_now(self) -> datetime:
        return now() + timedelta(seconds=self.offset)


# --- descriptors ----------------------------------------------------------------------------


@contextlib.contextmanager
def own_nofile(at_least: int) -> Iterator[None]:
    """Raise this process's soft descriptor limit (the flood needs more than 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < at_least:
        pytest.skip(f"the hard descriptor limit is {hard}; this test needs {at_least}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, at_least), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- a small, full disk ---------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted on ``folder``; always unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        result = subprocess.run(["umount", str(folder)], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:  # a process still holds a file: lazily, but unmount
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path, name: str = "filler") -> Path:
    """Write a file in ``folder`` until the filesystem is full (ENOSPC)."""
    path = folder / name
    chunk = b"\0" * 4096
    with open(path, "ab", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            if exc.errno != 28:  # ENOSPC
                raise
    # Whatever space a smaller write can still take, take it too.
    with open(path, "ab", buffering=0) as out:
        for size in (1024, 64, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return path
