"""Issue 12, finding 6: the feed server must not starve the notifiers.

* The daemon runs under the default soft limit of 1,024 descriptors (the hard
  limit as the test process has it; with ``CALENDAR_SVC_FAULTS=full`` also a hard
  limit of 1,024). 1,100 idle TCP connections to the feed port; the reminders due
  meanwhile still go out through the webhook AND ntfy (real receivers on
  loopback), and ``/healthz`` answers once the flood ends.
* An unfinished header (``GET / HTTP/1.1\\r\\nX: `` and then 64 MB without the
  final CRLF) is cut off: the connection is closed and the daemon's memory does
  not grow with it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from faults import (
    LOOPBACK,
    Daemon,
    Inbox,
    daemons_killed,
    entry,
    full_only,
    healthz,
    in_seconds,
    limit_nofile,
    now,
    ntfy,
    own_nofile,
    until,
    webhook,
    write_calendar,
    write_config,
)

pytestmark = pytest.mark.slow

FLOOD = 1100


def _answers_healthz(port: int) -> bool:
    try:
        return healthz(port)[0] == 200
    except OSError:
        return False


@pytest.mark.parametrize(
    "hard",
    [
        pytest.param(None, id="soft-1024"),
        pytest.param(1024, id="hard-1024", marks=full_only),
    ],
)
def test_reminders_go_out_while_the_feed_is_flooded(tmp_path: Path, hard: int | None) -> None:
    with own_nofile(FLOOD + 512), Inbox() as hooks, Inbox() as phone, daemons_killed() as started:
        config = write_config(
            tmp_path,
            notifiers={
                "hook": webhook(f"{hooks.url}/hook"),
                "phone": ntfy(phone.url, topic="phone"),
            },
        )
        (tmp_path / "schedules").mkdir()
        daemon = Daemon(config, preexec=limit_nofile(1024, hard))
        started.append(daemon.start())
        daemon.ready()
        port = daemon.feed_port()
        # Started under a soft limit of 1,024, it raised its own to the hard limit.
        (ready,) = daemon.events("daemon.ready")
        if hard is not None:
            assert ready["nofile"] == hard, ready
        else:
            assert ready["nofile"] is None or ready["nofile"] >= FLOOD + 512, ready
        # Planned before the flood, due once it is on; nothing was sent over HTTP before.
        first = in_seconds(8)
        write_calendar(
            tmp_path / "schedules" / "flood.toml",
            "flood",
            [entry("during-flood-1", first), entry("during-flood-2", in_seconds(10))],
        )
        for uid in ("during-flood-1", "during-flood-2"):
            daemon.wait_event("reminder.planned", where=lambda r, u=uid: r.get("uid") == u)

        flood: list[socket.socket] = []
        try:
            for _ in range(FLOOD):
                flood.append(socket.create_connection((LOOPBACK, port), timeout=10))
            assert now() < first, "the flood was not on before the reminders came due"
            for uid in ("during-flood-1", "during-flood-2"):
                # Out at the first attempt: a retry means the flood broke a send.
                for inbox, path in ((hooks, "/hook"), (phone, "/phone")):
                    inbox.wait_uid(
                        uid,
                        30,
                        path=path,
                        daemons=[daemon],
                        fail_on=("reminder.retry", "reminder.failed"),
                    )
        finally:
            for sock in flood:
                sock.close()
        until(lambda: _answers_healthz(port), 20, "/healthz after the flood", [daemon])
        assert sorted(hooks.uids()) == ["during-flood-1", "during-flood-2"]
        assert sorted(phone.uids()) == ["during-flood-1", "during-flood-2"]
        assert daemon.stop() == 0
    assert not daemon.tracebacks(), daemon.stderr()[-6000:]


def test_an_unfinished_header_is_cut_off_without_growing_memory(tmp_path: Path) -> None:
    with daemons_killed() as started:
        daemon = Daemon(write_config(tmp_path))
        started.append(daemon.start())
        daemon.ready()
        port = daemon.feed_port()
        before = daemon.status_kb("VmRSS")

        size, chunk = 64 * 1024 * 1024, b"a" * 65536
        closed = False
        with socket.create_connection((LOOPBACK, port), timeout=10) as sock:
            try:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: calendar\r\nX: ")
                for _ in range(size // len(chunk)):
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                closed = True  # the server gave up on the header and hung up
            except TimeoutError:
                pass  # the server stopped reading without closing: checked below
            grown_kb = daemon.status_kb("VmHWM") - before
            if not closed:
                sock.settimeout(5)
                try:
                    while sock.recv(65536):  # a 4xx answer, then the end of the stream
                        pass
                    closed = True
                except (TimeoutError, ConnectionResetError) as exc:
                    closed = isinstance(exc, ConnectionResetError)
        assert closed and grown_kb < 16 * 1024, (
            f"connection closed: {closed}; the daemon grew by {grown_kb} kB"
        )
        assert _answers_healthz(port)
        assert daemon.stop() == 0
