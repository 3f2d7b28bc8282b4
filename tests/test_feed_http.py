"""The feed over real HTTP: FeedServer on 127.0.0.1 (port 0) and httpx, as subscribers poll.

Runs on SQLite and PostgreSQL (the ``store`` fixture). Edits go through the
store or through the CLI in another process, as an operator would make them.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from conftest import FakeClock
from icalendar import Calendar as ICalendar

from calendar_svc.config import Config, default_config
from calendar_svc.errors import CalendarSvcError
from calendar_svc.events import DaemonStarted, DaemonStopping, LoopTicked
from calendar_svc.feed import FeedServer, build_app
from calendar_svc.importer import import_specs
from calendar_svc.observers import Observers
from calendar_svc.schedule_files import load_file
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

SLUG = "rubio-2025-09"


def feed_config(url: str) -> Config:
    config = default_config(url)
    return dataclasses.replace(config, feed=dataclasses.replace(config.feed, port=0))


@pytest.fixture
def server(trip_store: Store) -> Iterator[FeedServer]:
    srv = FeedServer(trip_store, feed_config(trip_store.url), host="127.0.0.1")
    srv.start()
    yield srv
    srv.stop(timeout=5)


@pytest.fixture
def client(server: FeedServer) -> Iterator[httpx.Client]:
    # Identity unless a test asks for gzip, so bodies compare byte for byte.
    with httpx.Client(
        base_url=server.url, timeout=5, headers={"accept-encoding": "identity"}
    ) as http:
        yield http


def path(store: Store, slug: str = SLUG) -> str:
    return f"/feeds/{store.get_calendar(slug).feed_token}/{slug}.ics"


def edit_title(store: Store, trip_path: Path, uid: str, title: str) -> None:
    spec = load_file(trip_path)
    entries = tuple(
        dataclasses.replace(e, title=title) if e.uid == uid else e for e in spec.entries
    )
    with store.write() as session:
        import_specs(session, [dataclasses.replace(spec, entries=entries)], now=store.clock())


def test_start_binds_a_real_port(server: FeedServer) -> None:
    assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
    second = FeedServer(server.store, server.config, host="127.0.0.1", port=server.port)
    with pytest.raises(CalendarSvcError, match="cannot listen"):
        second.start()
    assert not second.changes.live  # a failed start leaves no change watcher behind


def test_feed_headers(client: httpx.Client, trip_store: Store) -> None:
    response = client.get(path(trip_store))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["content-disposition"] == f'inline; filename="{SLUG}.ics"'
    assert response.headers["cache-control"] == "private, max-age=3600"
    assert response.headers["etag"].startswith('"') and "content-encoding" not in response.headers
    last_modified = trip_store.get_calendar(SLUG).updated_at
    assert response.headers["last-modified"] == format_datetime(last_modified, usegmt=True)
    assert response.content.startswith(b"BEGIN:VCALENDAR\r\n")
    assert response.content.count(b"\r\nBEGIN:VEVENT\r\n") == 11


def test_subscription_loop(client: httpx.Client, trip_store: Store, trip_path: Path) -> None:
    """GET, poll with If-None-Match, edit, poll, cancel, delete: what Apple and Google do."""
    url = path(trip_store)
    first = client.get(url)
    etag = first.headers["etag"]
    unchanged = client.get(url, headers={"if-none-match": etag})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged.headers["etag"] == etag
    assert client.get(url).content == first.content  # same bytes, same ETag
    assert client.get(url).headers["etag"] == etag

    edit_title(trip_store, trip_path, "noboa-meeting", "Meeting with President Noboa (moved)")
    edited = client.get(url, headers={"if-none-match": etag})
    assert edited.status_code == 200 and edited.headers["etag"] != etag
    assert b"SUMMARY:Meeting with President Noboa (moved)" in edited.content
    events = {str(e["UID"]): e for e in ICalendar.from_ical(edited.content).walk("VEVENT")}
    assert events[f"noboa-meeting@{SLUG}.calendar-svc.local"]["SEQUENCE"] == 1

    trip_store.set_status("press-mexico-city", "cancelled", SLUG)
    cancelled = client.get(url, headers={"if-none-match": edited.headers["etag"]})
    assert cancelled.status_code == 200
    block = cancelled.content.split(b"UID:press-mexico-city@")[1].split(b"END:VEVENT")[0]
    assert b"STATUS:CANCELLED" in block and b"SEQUENCE:1" in block

    trip_store.delete_entry("embassy-quito", SLUG)
    deleted = client.get(url, headers={"if-none-match": cancelled.headers["etag"]})
    assert deleted.status_code == 200 and b"embassy-quito@" not in deleted.content
    again = client.get(url, headers={"if-none-match": deleted.headers["etag"]})
    assert again.status_code == 304


def test_edit_from_another_process_shows_in_next_request(
    client: httpx.Client, trip_store: Store
) -> None:
    url = path(trip_store)
    etag = client.get(url).headers["etag"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALENDAR_SVC_")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "calendar_svc",
            "--db",
            trip_store.url,
            "cancel",
            "sheinbaum-talks-day-2",
        ],
        check=True,
        capture_output=True,
        timeout=60,
        env=env,
    )
    response = client.get(url, headers={"if-none-match": etag})
    assert response.status_code == 200
    block = response.content.split(b"UID:sheinbaum-talks-day-2@")[1].split(b"END:VEVENT")[0]
    assert b"STATUS:CANCELLED" in block


def test_if_modified_since(client: httpx.Client, trip_store: Store, clock: FakeClock) -> None:
    url = path(trip_store)
    last_modified = client.get(url).headers["last-modified"]
    assert client.get(url, headers={"if-modified-since": last_modified}).status_code == 304
    clock.advance(timedelta(hours=1))
    trip_store.set_status("noboa-meeting", "tentative", SLUG)
    changed = client.get(url, headers={"if-modified-since": last_modified})
    assert changed.status_code == 200
    assert changed.headers["last-modified"] == format_datetime(
        clock.now.astimezone(UTC), usegmt=True
    )
    # If-None-Match wins over If-Modified-Since (RFC 9110).
    stale = client.get(
        url,
        headers={"if-none-match": '"nope"', "if-modified-since": changed.headers["last-modified"]},
    )
    assert stale.status_code == 200


def test_head_has_the_get_headers_and_no_body(client: httpx.Client, trip_store: Store) -> None:
    url = path(trip_store)
    get, head = client.get(url), client.head(url)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
        assert head.headers[name] == get.headers[name]


def test_gzip_when_asked(client: httpx.Client, trip_store: Store) -> None:
    url = path(trip_store)
    plain = client.get(url)
    packed = client.get(url, headers={"accept-encoding": "gzip"})
    assert (
        packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    )
    raw = packed.read()  # httpx decodes; compare to the identity bytes
    assert raw == plain.content
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert gzip.decompress(gzip.compress(raw)) == raw
    assert packed.headers["etag"] != plain.headers["etag"]
    # Either representation's tag validates the other: same content.
    assert (
        client.get(
            url, headers={"accept-encoding": "gzip", "if-none-match": plain.headers["etag"]}
        ).status_code
        == 304
    )
    refused = client.get(url, headers={"accept-encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers


def test_wrong_token_probes_get_identical_404s(client: httpx.Client, trip_store: Store) -> None:
    token = trip_store.get_calendar(SLUG).feed_token
    probes = [
        f"/feeds/{token[:-1]}x/{SLUG}.ics",
        f"/feeds/{'A' * 43}/{SLUG}.ics",
        f"/feeds/{token}/unknown.ics",
        "/feeds/wrong/unknown.ics",
        f"/feeds/{SLUG}.ics",
        f"/feeds//{SLUG}.ics",
        f"/feeds/{token}/{SLUG}",
        "/feeds/",
        "/nothing-here",
        f"/feeds/%C3%A9{token}/{SLUG}.ics",
    ]
    answers = set()
    for probe in probes:
        response = client.get(probe)
        headers = tuple(sorted((k, v) for k, v in response.headers.items() if k != "date"))
        answers.add((response.status_code, headers, response.content))
    assert len(answers) == 1
    status, _, body = answers.pop()
    assert status == 404 and body == b"Not Found\n"


def test_rotate_token_stops_the_old_url(client: httpx.Client, trip_store: Store) -> None:
    old = path(trip_store)
    before = client.get(old)
    new_token = trip_store.rotate_token(SLUG)
    assert client.get(old).status_code == 404
    after = client.get(f"/feeds/{new_token}/{SLUG}.ics")
    assert after.status_code == 200 and after.content == before.content
    assert after.headers["etag"] == before.headers["etag"]  # the token is not in the feed


def test_filters_in_the_query(client: httpx.Client, trip_store: Store) -> None:
    url = path(trip_store)
    quito = client.get(url, params={"city": "quito"})
    assert quito.status_code == 200 and quito.content.count(b"\r\nBEGIN:VEVENT\r\n") == 3
    assert quito.headers["etag"] != client.get(url).headers["etag"]
    day = client.get(url, params={"from": "2025-09-04", "to": "2025-09-04", "category": "flight"})
    assert day.content.count(b"\r\nBEGIN:VEVENT\r\n") == 1
    bad = client.get(url, params={"from": "4 Sep"})
    assert bad.status_code == 400 and b"from expects a date as YYYY-MM-DD" in bad.content
    reversed_range = client.get(url, params={"from": "2025-09-04", "to": "2025-09-01"})
    assert reversed_range.status_code == 400
    # A bad filter with a wrong token is still just a 404.
    assert client.get(f"/feeds/x/{SLUG}.ics", params={"from": "4 Sep"}).status_code == 404


def test_tokens_never_reach_the_logs(
    client: httpx.Client,
    trip_store: Store,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Whatever else in the process re-enables uvicorn's access log, no path may be logged.
    access = logging.getLogger("uvicorn.access")
    monkeypatch.setattr(access, "propagate", True)
    monkeypatch.setattr(access, "disabled", False)
    token = trip_store.get_calendar(SLUG).feed_token
    wrong = "W" * 43
    client.get(f"/feeds/{token}/{SLUG}.ics")
    client.get(f"/feeds/{wrong}/{SLUG}.ics")
    trip_store.set_status("noboa-meeting", "cancelled", SLUG)
    client.get(f"/feeds/{token}/{SLUG}.ics")
    new = trip_store.rotate_token(SLUG)
    client.get(f"/feeds/{token}/{SLUG}.ics")
    client.get(f"/feeds/{new}/{SLUG}.ics")
    # httpx and httpcore are this test's client, which logs the URLs it fetches.
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any(r.name == "calendar_svc.feed" for r in server_side), "the feed logs its renders"
    dumped = "".join(f"{r.getMessage()} {vars(r)!r}" for r in server_side)
    for secret in (token, wrong, new, token[:5], new[:5]):
        assert secret not in dumped


class Monotonic:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_healthz(client: httpx.Client, trip_store: Store) -> None:
    # `serve` alone: no scheduler loop, only the database counts.
    response = client.get("/healthz")
    assert response.status_code == 200
    data = response.json()
    assert data["database"] is True and data["status"] == "ok" and data["version"]
    assert data["scheduler_running"] is None and data["scheduler_stuck"] is False
    assert "last_loop_tick" in data

    # A daemon's feed server: its loop ticks every 40 s, so 3 missed ticks (120 s) is stuck.
    monotonic = Monotonic()
    observers = Observers.build(tick_every=timedelta(seconds=40), monotonic=monotonic)
    daemon_side = FeedServer(
        trip_store, feed_config(trip_store.url), host="127.0.0.1", observers=observers
    )
    daemon_side.start()
    try:
        with httpx.Client(base_url=daemon_side.url, timeout=5) as http:
            started = datetime(2025, 9, 2, 12, 0, tzinfo=UTC)
            observers.events.emit(DaemonStarted(at=started))
            monotonic.now += 119
            assert http.get("/healthz").json()["scheduler_stuck"] is False
            monotonic.now += 2
            stuck = http.get("/healthz")
            assert stuck.status_code == 503 and stuck.json()["scheduler_stuck"] is True
            assert stuck.json()["last_loop_tick"] == "2025-09-02T12:00:00Z"
            observers.events.emit(LoopTicked(at=started))
            assert http.get("/healthz").status_code == 200
            monotonic.now += 3600
            observers.events.emit(DaemonStopping(reason="SIGTERM", in_flight=0))
            assert http.get("/healthz").status_code == 200  # stopping is not stuck
    finally:
        daemon_side.stop(timeout=5)


def test_metrics(client: httpx.Client, trip_store: Store) -> None:
    client.get(path(trip_store))
    client.get(path(trip_store), headers={"if-none-match": '"x"'})
    client.get("/feeds/x/y.ics")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for needle in (
        'calendar_svc_feed_requests_total{status="200"}',
        'calendar_svc_feed_requests_total{status="404"}',
        'calendar_svc_feed_cache_total{result="hit"}',
        "calendar_svc_feed_render_seconds_count",
    ):
        assert needle in text


# --- in-process, without a server (Starlette's TestClient) ---------------------------


def _test_client() -> type:
    """Starlette's TestClient; Starlette 1.x deprecates running it on httpx (wants httpx2)."""
    import warnings

    from starlette.exceptions import StarletteDeprecationWarning

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Using `httpx` with `starlette.testclient`", StarletteDeprecationWarning
        )
        from starlette.testclient import TestClient
    return TestClient


def test_unreachable_database_is_503(tmp_path: Path) -> None:
    store = Store("postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    config = feed_config(f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    app = build_app(store, config)
    with _test_client()(app) as http:
        health_response = http.get("/healthz")
        assert health_response.status_code == 503
        assert health_response.json()["database"] is False
        assert http.get("/feeds/abc/slug.ics").status_code == 503
    store.close()


def test_testclient_serves_the_same_bytes(trip_store: Store, server: FeedServer) -> None:
    app = build_app(trip_store, feed_config(trip_store.url))
    with _test_client()(app) as http, httpx.Client(base_url=server.url, timeout=5) as real:
        url = path(trip_store)
        assert http.get(url).content == real.get(url).content
        assert http.head(url).content == b""
        assert http.post(url).status_code == 405


FREEZE_CHECK = """
import asyncio, gc, sys
from calendar_svc.config import default_config
from calendar_svc.feed import build_app, render_feed
from calendar_svc.ics import FeedOptions
from calendar_svc.store import Store

store = Store(sys.argv[1])
render_feed(store, FeedOptions(), sys.argv[2])  # what `export` does
print(gc.get_freeze_count())
app = build_app(store, default_config(sys.argv[1]))

async def get(query):
    calendar = store.get_calendar(sys.argv[2])
    scope = {"type": "http", "method": "GET", "headers": [], "query_string": query,
             "path": f"/feeds/{calendar.feed_token}/{calendar.slug}.ics"}
    async def receive():
        return {"type": "http.request", "body": b""}
    async def send(message):
        assert message.get("status", 200) == 200, message
    await app(scope, receive, send)

asyncio.run(get(b""))
print(gc.get_freeze_count())
asyncio.run(get(b"city=Quito"))  # a second render: frozen once already
print(gc.get_freeze_count())
"""


def test_the_heap_is_frozen_once_by_a_server_never_by_an_export(trip_store: Store) -> None:
    if "sqlite" not in trip_store.url:
        pytest.skip("one backend is enough for a per-process setting")
    result = subprocess.run(
        [sys.executable, "-c", FREEZE_CHECK, trip_store.url, SLUG],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    after_export, after_first_feed, after_second_feed = map(int, result.stdout.split())
    assert after_export == 0
    assert after_first_feed > 0
    # Frozen objects can still be freed; a second freeze would add the new feed's.
    assert after_second_feed <= after_first_feed
