"""Helpers for the tests that run ``calendar-svc run`` for real (tests/test_service.py,
tests/test_daemon_process.py): the daemon process, a real ``$NOTIFY_SOCKET``, config and
schedule files written into the test's folder, reads of the daemon's SQLite file.

Every wait is a poll (``waiting.wait_for``) or a socket receive with a deadline;
nothing sleeps to synchronise. Processes are killed by the ``services`` fixture
(conftest.py) that the test appends them to.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

from waiting import wait_for

from calendar_svc.clock import now_utc
from calendar_svc.timezones import UTC

LOOPBACK = "127.0.0.1"


# --- sd_notify ----------------------------------------------------------------------------


Message = dict[str, str]


class NotifySocket:
    """The ``AF_UNIX`` datagram socket systemd would pass as ``$NOTIFY_SOCKET``.

    Bound in ``folder`` when the path fits ``sun_path`` (108 bytes), else in a short
    temporary folder. ``messages`` keeps every datagram received, parsed into a dict.
    """

    def __init__(self, folder: Path) -> None:
        path = folder / "notify.sock"
        self._tmp: str | None = None
        if len(os.fsencode(path)) >= 100:
            self._tmp = tempfile.mkdtemp(prefix="cs-notify-")
            path = Path(self._tmp) / "notify.sock"
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[Message] = []

    @property
    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path)}

    def receive(self, until: Callable[[Message], bool], timeout: float, what: str) -> Message:
        """Read datagrams until one satisfies ``until``; return it (all are kept)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                got = "\n".join(repr(m) for m in self.messages[-20:])
                raise AssertionError(
                    f"no sd_notify message {what} within {timeout}s; last ones:\n{got}"
                )
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            message = parse_notify(data)
            self.messages.append(message)
            if until(message):
                return message

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)
        if self._tmp is not None:
            os.rmdir(self._tmp)


def parse_notify(data: bytes) -> Message:
    """``b"READY=1\\nSTATUS=x"`` -> ``{"READY": "1", "STATUS": "x"}`` (every line must be K=V)."""
    message: Message = {}
    for line in data.decode("utf-8").split("\n"):
        key, sep, value = line.partition("=")
        assert sep and key.isupper(), f"not a KEY=VALUE line: {line!r} in {data!r}"
        message[key] = value
    return message


# --- the daemon process ----------------------------------------------------------------------


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment minus anything that would steer the daemon elsewhere."""
    skip = ("CALENDAR_SVC_", "NOTIFY_SOCKET", "WATCHDOG_", "CREDENTIALS_DIRECTORY", "LISTEN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Service:
    """One ``python -m calendar_svc --config FILE run`` (or another ``command``); stdout and
    stderr go to files.

    ``start`` may be called again after the process ended (a restart); each run
    writes files of its own (``NAME.stderr``, then ``NAME.2.stderr``, ...), so
    ``stderr()`` and the waits read the current run only.
    """

    def __init__(
        self,
        config: Path,
        *,
        env: Mapping[str, str] | None = None,
        name: str = "svc",
        command: Sequence[str] = ("run",),
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.command = list(command)
        self.env = base_env(**(env or {}))
        self.preexec = preexec  # run in the child before exec (resource limits, umask)
        self.runs = 0
        self.out_path = config.parent / f"{name}.stdout"
        self.err_path = config.parent / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        assert not self.alive(), f"{self.name} is already running"
        self.runs += 1
        suffix = "" if self.runs == 1 else f".{self.runs}"
        self.out_path = self.config.parent / f"{self.name}{suffix}.stdout"
        self.err_path = self.config.parent / f"{self.name}{suffix}.stderr"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "calendar_svc", "--config", str(self.config), *self.command],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.config.parent,
                env=self.env,
                preexec_fn=self.preexec,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise AssertionError(
                f"{self.name} exited early ({self.proc and self.proc.returncode})"
                f":\n{self.stderr()[-6000:]}"
            )

    def wait_stderr(self, text: str, timeout: float = 20, count: int = 1) -> str:
        def found() -> bool:
            err = self.stderr()
            if err.count(text) >= count:
                return True
            self.check_alive()
            return False

        wait_for(found, timeout, f"{text!r} x{count} in {self.name}'s stderr", [self])
        return self.stderr()

    def wait_stdout(self, text: str, timeout: float = 20, count: int = 1) -> str:
        def found() -> bool:
            if self.stdout().count(text) >= count:
                return True
            self.check_alive()
            return False

        wait_for(found, timeout, f"{text!r} x{count} on {self.name}'s stdout", [self])
        return self.stdout()

    def wait_ready(self, timeout: float = 30) -> Self:
        """Wait for this run's ``daemon.ready`` line (text or JSON logs)."""

        def ready() -> bool:
            if re.search(r'msg=daemon\.ready\b|"msg": "daemon\.ready"', self.stderr()):
                return True
            self.check_alive()
            return False

        wait_for(ready, timeout, f"{self.name} to be ready", [self])
        return self

    def feed_port(self, timeout: float = 20) -> int:
        """The port the feed listens on, from the ``feed.listening`` log line (text or JSON)."""

        def port() -> int | None:
            for line in self.stderr().splitlines():
                if "feed.listening" not in line:
                    continue
                if line.startswith("{"):
                    return int(json.loads(line)["port"])
                match = re.search(r"\bport=(\d+)", line)
                if match:
                    return int(match.group(1))
            self.check_alive()
            return None

        return int(wait_for(port, timeout, f"{self.name}'s feed.listening line", [self]))

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# --- HTTP against the daemon ----------------------------------------------------------------


def http_get(url: str, *, method: str = "GET", timeout: float = 10) -> tuple[int, bytes]:
    """(status, body) of a request; HTTP errors are answers too, not exceptions."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def healthz(port: int) -> tuple[int, dict[str, Any]]:
    status, body = http_get(f"http://{LOOPBACK}:{port}/healthz")
    return status, json.loads(body)


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text, or None when the series is absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        if series == name and not labels:
            return float(value)
        if not series.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series[len(name) :]))
        if found == labels:
            return float(value)
    return None


# --- files ---------------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for what these tests write
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def config_text(
    db_path: Path,
    *,
    port: int = 0,
    schedules: list[str] | None = None,
    notifiers: Mapping[str, Mapping[str, Any]] | None = None,
    reminders: Mapping[str, Any] | None = None,
    display: Mapping[str, Any] | None = None,
    logging: Mapping[str, Any] | None = None,
) -> str:
    """A config.toml: SQLite in the test folder, the feed on 127.0.0.1, fast timers."""
    notifiers = notifiers if notifiers is not None else {"console": {"type": "console"}}
    rem: dict[str, Any] = {
        "channels": list(notifiers),
        "poll_interval": "PT1S",
        "rescan_interval": "PT5S",
        "retry_base": "PT1S",
        "retry_max": "PT2S",
        "lease": "PT30S",
        "stop_timeout": "PT3S",
        "offsets": ["PT0S"],
    }
    rem.update(reminders or {})
    tables: dict[str, Mapping[str, Any]] = {
        "database": {"url": f"sqlite:///{db_path}"},
        "feed": {
            "enabled": True,
            "host": LOOPBACK,
            "port": port,
            "public_url": f"http://{LOOPBACK}:{port or 8080}",
        },
        "reminders": rem,
    }
    if display:
        tables["display"] = display
    if logging:
        tables["logging"] = logging
    for name, table in notifiers.items():
        tables[f"notifiers.{name}"] = table
    lines = [
        f"schedules = {toml_value(schedules if schedules is not None else ['schedules/*.toml'])}"
    ]
    for header, table in tables.items():
        lines.append(f"\n[{header}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in table.items())
    return "\n".join(lines) + "\n"


def instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_text(slug: str, starts: Mapping[str, datetime]) -> str:
    """A calendar in UTC whose entries remind at their start (PT0S)."""
    parts = [
        f'[calendar]\nslug = "{slug}"\nname = "{slug}"\ntimezone = "UTC"\nreminders = ["PT0S"]\n'
    ]
    for uid, start in starts.items():
        parts.append(
            f'[[entries]]\nuid = "{uid}"\ntitle = "Entry {uid}"\n'
            f'start = {instant(start)}\nduration = "PT30M"\n'
        )
    return "\n".join(parts)


def soon(seconds: float) -> datetime:
    return (now_utc() + timedelta(seconds=seconds)).replace(microsecond=0)


@contextmanager
def sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the daemon's SQLite file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def tables_of(path: Path) -> set[str]:
    with sqlite(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def feed_token(path: Path, slug: str) -> str:
    with sqlite(path) as conn:
        row = conn.execute("SELECT feed_token FROM calendars WHERE slug = ?", (slug,)).fetchone()
    assert row is not None, f"no calendar {slug!r} in {path}"
    return str(row[0])


def deliveries(path: Path) -> list[tuple[str, str, str]]:
    """(entry uid, channel, status) of every delivery row, sorted."""
    with sqlite(path) as conn:
        rows = conn.execute("SELECT entry_uid, channel, status FROM deliveries").fetchall()
    return sorted((str(u), str(c), str(s)) for u, c, s in rows)
