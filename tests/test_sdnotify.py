"""sd_notify against a real AF_UNIX datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from calendar_svc.sdnotify import ServiceNotifier, watchdog_interval


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    # A missing datagram fails the test after 5 s instead of hanging it.
    sock.settimeout(5)
    return sock


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    with _receiver(str(path)) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"calendar-svc-test-{uuid.uuid4().hex}"
    with _receiver("\0" + name) as sock:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield sock


@pytest.fixture
def notifier() -> Iterator[ServiceNotifier]:
    with ServiceNotifier() as n:
        yield n


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


@pytest.mark.usefixtures("path_socket")
def test_enabled_with_a_socket(notifier: ServiceNotifier) -> None:
    assert notifier.enabled


def test_ready(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    assert notifier.ready()
    assert recv(path_socket) == "READY=1"


def test_ready_with_status(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    assert notifier.ready("3 reminders planned")
    assert recv(path_socket) == "READY=1\nSTATUS=3 reminders planned"


def test_status(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    assert notifier.status("next reminder 2025-09-02T15:00:00Z; 12 pending, 0 failed")
    assert recv(path_socket) == "STATUS=next reminder 2025-09-02T15:00:00Z; 12 pending, 0 failed"


def test_status_stays_one_line(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    # A newline in the text would otherwise smuggle in another assignment.
    notifier.status("line one\nREADY=1")
    assert recv(path_socket) == "STATUS=line one READY=1"


def test_status_is_utf8(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    notifier.status("Quito — 10:00")
    assert recv(path_socket) == "STATUS=Quito — 10:00"


def test_watchdog(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    assert notifier.watchdog()
    assert recv(path_socket) == "WATCHDOG=1"


def test_reloading_carries_the_monotonic_clock(
    path_socket: socket.socket, notifier: ServiceNotifier
) -> None:
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = recv(path_socket).split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


def test_stopping(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    assert notifier.stopping()
    assert recv(path_socket) == "STOPPING=1"


def test_messages_arrive_in_order(path_socket: socket.socket, notifier: ServiceNotifier) -> None:
    notifier.ready()
    notifier.watchdog()
    notifier.stopping("finishing 2 sends")
    assert [recv(path_socket) for _ in range(3)] == [
        "READY=1",
        "WATCHDOG=1",
        "STOPPING=1\nSTATUS=finishing 2 sends",
    ]


def test_abstract_namespace_socket(abstract_socket: socket.socket) -> None:
    with ServiceNotifier() as notifier:
        assert notifier.enabled
        assert notifier.ready()
        assert notifier.watchdog()
    assert recv(abstract_socket) == "READY=1"
    assert recv(abstract_socket) == "WATCHDOG=1"


def test_explicit_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    path = tmp_path / "n.sock"
    with _receiver(str(path)) as sock, ServiceNotifier({"NOTIFY_SOCKET": str(path)}) as n:
        assert n.ready()
        assert recv(sock) == "READY=1"


def test_no_op_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with ServiceNotifier() as notifier:
        assert not notifier.enabled
        assert not notifier.ready("x")
        assert not notifier.status("x")
        assert not notifier.watchdog()
        assert not notifier.reloading()
        assert not notifier.stopping()


@pytest.mark.parametrize("value", ["", "relative.sock", "@"])
def test_unusable_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", value)
    with ServiceNotifier() as notifier:
        assert not notifier.enabled
        assert not notifier.ready()


def test_missing_socket_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    caplog.set_level("DEBUG", logger="calendar_svc.sdnotify")
    with ServiceNotifier() as notifier:
        assert notifier.enabled
        assert not notifier.ready()
        assert not notifier.watchdog()
    assert "not sent" in caplog.text


def test_socket_that_went_away_never_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "n.sock"
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    with ServiceNotifier() as notifier:
        with _receiver(str(path)) as sock:
            assert notifier.ready()
            assert recv(sock) == "READY=1"
        path.unlink()  # systemd restarted and the old socket is gone
        assert not notifier.watchdog()


# --- watchdog_interval ------------------------------------------------------------


def test_watchdog_interval_is_half_the_timeout() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}) == 1.5


def test_watchdog_interval_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "20000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 10.0
    with ServiceNotifier() as notifier:
        assert notifier.watchdog_interval() == 10.0


def test_watchdog_interval_for_another_process_is_none() -> None:
    # A real other PID: the variables were meant for a parent, not for us.
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    other = child.stdout.strip()
    assert other != str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": other}) is None


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-5"},
        {"WATCHDOG_USEC": "soon"},
        {"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "not-a-pid"},
        {"WATCHDOG_PID": str(os.getpid())},
    ],
)
def test_watchdog_interval_none(environ: dict[str, str]) -> None:
    assert watchdog_interval(environ) is None
