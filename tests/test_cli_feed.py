"""The feed commands: export, feed-url, rotate-token, serve."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from calendar_svc.config import load_config
from calendar_svc.feed import FeedServer
from calendar_svc.store import Store

SLUG = "rubio-2025-09"
Cli = Callable[..., Result]


@pytest.fixture
def cli(run_cli: Cli) -> Cli:
    result = run_cli("import", f"schedules/{SLUG}.toml")
    assert result.exit_code == 0, result.output
    return run_cli


@pytest.fixture
def served(cli: Cli, workdir: Path) -> Iterator[tuple[FeedServer, Store]]:
    config = load_config(workdir / "config.toml")
    store = Store(config.database.url)
    server = FeedServer(store, config, host="127.0.0.1")
    server.start()
    yield server, store
    server.stop(timeout=5)
    store.close()


def fetch(server: FeedServer, store: Store, **params: str) -> httpx.Response:
    token = store.get_calendar(SLUG).feed_token
    with httpx.Client(base_url=server.url, timeout=5) as http:
        return http.get(
            f"/feeds/{token}/{SLUG}.ics", params=params, headers={"accept-encoding": "identity"}
        )


def stdout_bytes(result: Result) -> bytes:
    return result.stdout_bytes


def test_export_is_the_served_feed(cli: Cli, served: tuple[FeedServer, Store]) -> None:
    server, store = served
    exported = cli("export")
    assert exported.exit_code == 0
    assert stdout_bytes(exported) == fetch(server, store).content
    quito = cli("export", "--calendar", SLUG, "--city", "Quito", "--from", "2025-09-04")
    assert (
        stdout_bytes(quito) == fetch(server, store, city="Quito", **{"from": "2025-09-04"}).content
    )
    flights = cli("export", "--category", "flight", "--to", "2025-09-03")
    assert stdout_bytes(flights) == fetch(server, store, category="flight", to="2025-09-03").content
    assert stdout_bytes(flights).count(b"\r\nBEGIN:VEVENT\r\n") == 2


def test_export_to_a_file(cli: Cli, workdir: Path) -> None:
    result = cli("export", "-o", "trip.ics")
    assert result.exit_code == 0
    assert (workdir / "trip.ics").read_bytes() == stdout_bytes(cli("export"))
    assert "11 entries" in result.stderr


def test_export_rejects_bad_filters(cli: Cli) -> None:
    result = cli("export", "--from", "2025-09-40")
    assert result.exit_code == 2
    assert "--from expects a date as YYYY-MM-DD, got '2025-09-40'" in result.stderr
    reverse = cli("export", "--from", "2025-09-04", "--to", "2025-09-02")
    assert reverse.exit_code == 2 and "before" in reverse.stderr


def test_export_needs_calendar_when_there_are_several(cli: Cli, workdir: Path) -> None:
    text = (workdir / "schedules" / f"{SLUG}.toml").read_text()
    other = text.replace(f'slug = "{SLUG}"', 'slug = "copy"')
    (workdir / "schedules" / "copy.toml").write_text(other)
    assert cli("import", "schedules/copy.toml").exit_code == 0
    result = cli("export")
    assert result.exit_code == 2
    assert f"several calendars (copy, {SLUG})" in result.stderr
    assert cli("export", "--calendar", "copy").exit_code == 0
    missing = cli("export", "--calendar", "nope")
    assert missing.exit_code == 2 and "nope" in missing.stderr


def test_feed_url_prints_http_and_webcal(cli: Cli, workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_text(
        config.read_text().replace(
            "port = 0", 'port = 0\npublic_url = "https://cal.example.org/base/"'
        )
    )
    result = cli("feed-url", SLUG)
    assert result.exit_code == 0
    token = Store(load_config(config).database.url).get_calendar(SLUG).feed_token
    assert result.stdout.splitlines() == [
        f"https://cal.example.org/base/feeds/{token}/{SLUG}.ics",
        f"webcal://cal.example.org/base/feeds/{token}/{SLUG}.ics",
        f"https://cal.example.org/base/c/{token}/{SLUG}",
    ]
    filtered = cli("feed-url", "--city", "Mexico City").stdout.splitlines()
    assert filtered[0].endswith(f"/{SLUG}.ics?city=Mexico+City")
    assert filtered[2].endswith(f"/c/{token}/{SLUG}?city=Mexico+City")
    # With the page turned off, there is no page to point to.
    config.write_text(config.read_text().replace("[feed]\n", "[feed]\npage = false\n"))
    assert len(cli("feed-url", SLUG).stdout.splitlines()) == 2


def test_feed_url_refuses_port_0_without_public_url(cli: Cli, workdir: Path) -> None:
    """Port 0 binds any free port: the URL subscribers reach is unknown, so say so."""
    store = Store(load_config(workdir / "config.toml").database.url)
    token = store.get_calendar(SLUG).feed_token
    for command in (["feed-url", SLUG], ["rotate-token", SLUG]):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert "[feed] port is 0" in result.stderr and "set public_url" in result.stderr
        assert ":0/" not in result.stdout
    # rotate-token refused before it rotated: the URL subscribers have still works.
    assert store.get_calendar(SLUG).feed_token == token
    store.close()


def test_rotate_token(cli: Cli, served: tuple[FeedServer, Store], workdir: Path) -> None:
    server, store = served
    config = workdir / "config.toml"
    config.write_text(
        config.read_text().replace("port = 0", f'port = 0\npublic_url = "{server.url}"')
    )
    old_token = store.get_calendar(SLUG).feed_token
    assert fetch(server, store).status_code == 200
    result = cli("rotate-token", SLUG)
    assert result.exit_code == 0
    new_token = store.get_calendar(SLUG).feed_token
    assert new_token != old_token and len(new_token) >= 43
    assert f"/feeds/{new_token}/{SLUG}.ics" in result.stdout and "webcal://" in result.stdout
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.get(f"/feeds/{old_token}/{SLUG}.ics").status_code == 404
        assert http.get(f"/feeds/{new_token}/{SLUG}.ics").status_code == 200
    assert cli("rotate-token", "nope").exit_code == 2


def test_help_texts_have_examples(cli: Cli) -> None:
    for command in ("export", "serve", "feed-url", "rotate-token"):
        result = cli(command, "--help")
        assert result.exit_code == 0 and "calendar-svc " + command in result.output


def _lines(stream: object, into: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.put(line)


def test_serve_runs_until_sigterm_and_exits_0(cli: Cli, workdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALENDAR_SVC_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "calendar_svc", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=workdir,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            match = re.search(r"feed\.listening.*port=(\d+)", line)
            port = int(match.group(1)) if match else None
        assert port, f"no feed.listening line in {seen!r}"
        # httptools and uvloop are dependencies (a 304 costs ~2.5x more without them):
        # the server must really run on them, and say so.
        assert "http=httptools+uvloop" in seen[-1], seen[-1]
        store = Store(load_config(workdir / "config.toml").database.url)
        token = store.get_calendar(SLUG).feed_token
        store.close()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            assert http.get(f"/feeds/{token}/{SLUG}.ics").status_code == 200
            assert http.get(f"/feeds/{'x' * 43}/{SLUG}.ics").status_code == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=10)  # ends at EOF, once the process is gone
        assert proc.stderr is not None
        proc.stderr.close()
    while not lines.empty():
        seen.append(lines.get())
    assert token not in "".join(seen)
