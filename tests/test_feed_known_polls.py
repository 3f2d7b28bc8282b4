"""Polls of unchanged feeds answered from memory, over real HTTP and raw sockets.

A subscriber's app asks again and again whether a feed changed; once the app
has answered such a poll 304, the server's protocol answers the same request
itself until something it was decided on changes (``feed.protocol``). These
tests hold that path to what a client sees: the same 304 as the app's, in order
on a kept-alive or pipelined connection, counted in ``/metrics``, and gone as
soon as the feed changes; anything unusual (HTTP/1.0, ``Connection: close``, a
body) still gets a right answer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_feed_http import edit_title, feed_config, path
from waiting import wait_for

from calendar_svc.feed import FeedServer
from calendar_svc.store import Store


class CountingApp:
    """The server's app, counting the requests that reach it (the ASGI path)."""

    def __init__(self, app: Any):
        self.app = app
        self.feed_endpoint = app.feed_endpoint
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


@pytest.fixture
def served(trip_store: Store) -> Iterator[tuple[FeedServer, CountingApp]]:
    """A server whose app counts what reaches it, started as after a restart: its render
    cache was written by an earlier one (a first render's own writes are a change the
    server hears, a moment later; here none comes during a test)."""
    config = feed_config(trip_store.url)
    earlier = FeedServer(trip_store, config, host="127.0.0.1")
    earlier.start()
    assert httpx.get(earlier.url + path(trip_store), timeout=5).status_code == 200
    earlier.stop(timeout=5)  # (writes what it queued for the render cache)
    server = FeedServer(trip_store, config, host="127.0.0.1")
    server.start()
    counting = CountingApp(server.app)
    server._serving.current = counting  # type: ignore[assignment]
    yield server, counting
    server.stop(timeout=5)


def polls_counted(server: FeedServer) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=5).text.splitlines():
        if line.startswith('calendar_svc_feed_requests_total{status="304"}'):
            return float(line.split()[-1])
    return 0.0


def exchange(server: FeedServer, raw: bytes) -> bytes:
    """Send ``raw`` in one write and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(raw)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def known_etag(server: FeedServer, target: str) -> str:
    """The feed's ETag (no gzip, as the raw requests ask), after a poll the app answered
    304 and so made known."""
    identity = {"accept-encoding": "identity"}
    etag = httpx.get(server.url + target, headers=identity, timeout=5).headers["etag"]
    again = httpx.get(server.url + target, headers={**identity, "if-none-match": etag}, timeout=5)
    assert again.status_code == 304
    return str(etag)


@pytest.fixture
def known(
    served: tuple[FeedServer, CountingApp], trip_store: Store
) -> tuple[FeedServer, CountingApp, str, str]:
    """(server, its counting app, the feed's path, its ETag), the poll already known."""
    server, app = served
    target = path(trip_store)
    return server, app, target, known_etag(server, target)


def request(target: str, *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [
        f"{method} {target} HTTP/{version}",
        "Host: 127.0.0.1",
        "Accept-Encoding: identity",
        *headers,
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def test_a_known_poll_is_answered_again_and_again_without_the_app(
    served: tuple[FeedServer, CountingApp], trip_store: Store
) -> None:
    server, app = served
    with httpx.Client(base_url=server.url, timeout=5) as http:
        first = http.get(path(trip_store), headers={"accept-encoding": "identity"})
        etag = first.headers["etag"]
        conditional = {"accept-encoding": "identity", "if-none-match": etag}

        assert http.get(path(trip_store), headers=conditional).status_code == 304
        counted = polls_counted(server)  # (a GET /metrics: through the app)
        through_app = app.calls
        assert through_app == 3  # the 200, the 304 the app answered and kept, /metrics
        answers = [http.get(path(trip_store), headers=conditional) for _ in range(50)]
    assert [a.status_code for a in answers] == [304] * 50
    for answer in answers:
        assert answer.content == b""
        assert answer.headers["etag"] == etag
        assert answer.headers["cache-control"] == first.headers["cache-control"]
        assert answer.headers["vary"] == "Accept-Encoding"
        assert "date" in answer.headers and "last-modified" not in answer.headers
    assert app.calls == through_app  # none of the 50 reached the app
    wait_for(lambda: polls_counted(server) == counted + 50, 5, "50 more polls in /metrics")


def test_pipelined_polls_get_their_answers_in_order(
    known: tuple[FeedServer, CountingApp, str, str],
) -> None:
    server, app, target, etag = known
    before = app.calls
    raw = (
        request(target, f"If-None-Match: {etag}")
        + request(target, f"If-None-Match: {etag}", method="HEAD")
        + request(target, 'If-None-Match: "stale"')
        # (after a request still in flight: uvicorn queues it, the app answers it)
        + request(target, f"If-None-Match: {etag}", "Connection: close")
    )
    reply = exchange(server, raw)
    statuses = [line for line in reply.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    assert statuses == [
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.1 304 Not Modified",
        b"HTTP/1.1 200 OK",
        b"HTTP/1.1 304 Not Modified",
    ]
    assert reply.count(b"BEGIN:VCALENDAR") == 1 and reply.endswith(b"\r\n\r\n")
    assert b"connection: close" in reply.rsplit(b"HTTP/1.1 ", 1)[1]
    # The GET and the HEAD of the known poll were answered by the server's protocol; the
    # stale ETag's 200 and the closing request went through the app.
    assert app.calls == before + 2


def test_a_poll_with_a_body_is_answered_and_the_next_request_read(
    known: tuple[FeedServer, CountingApp, str, str],
) -> None:
    server, app, target, etag = known
    before = app.calls
    raw = (
        request(target, f"If-None-Match: {etag}", "Content-Length: 5")
        + b"hello"
        + request("/healthz", "Connection: close")
    )
    reply = exchange(server, raw)
    assert reply.startswith(b"HTTP/1.1 304 Not Modified\r\n")
    assert b"HTTP/1.1 200 OK" in reply and reply.rstrip().endswith(b"}")
    assert app.calls == before + 1  # /healthz; the poll (its body read and dropped) was not


@pytest.mark.parametrize(
    ("version", "extra"), [("1.0", ()), ("1.1", ("Connection: close",))], ids=["1.0", "close"]
)
def test_polls_that_end_their_connection_get_the_same_answer(
    known: tuple[FeedServer, CountingApp, str, str], version: str, extra: tuple[str]
) -> None:
    server, _, target, etag = known
    reply = exchange(server, request(target, f"If-None-Match: {etag}", *extra, version=version))
    # (uvicorn answers HTTP/1.0 in 1.1, as servers do; the connection ends either way)
    assert reply.startswith(b"HTTP/1.1 304 Not Modified\r\n")
    assert f"etag: {etag}".encode() in reply and b"connection: close" in reply


def test_an_edit_ends_the_known_answer(
    served: tuple[FeedServer, CountingApp], trip_store: Store, trip_path: Path
) -> None:
    server, _ = served
    with httpx.Client(base_url=server.url, timeout=5) as http:
        etag = http.get(path(trip_store)).headers["etag"]
        assert http.get(path(trip_store), headers={"if-none-match": etag}).status_code == 304
        assert http.get(path(trip_store), headers={"if-none-match": etag}).status_code == 304
        edit_title(trip_store, trip_path, "noboa-meeting", "Meeting moved")
        changed = http.get(path(trip_store), headers={"if-none-match": etag})
        assert changed.status_code == 200 and b"Meeting moved" in changed.content
        assert changed.headers["etag"] != etag


def test_share_link_polls_are_each_counted(
    served: tuple[FeedServer, CountingApp], trip_store: Store
) -> None:
    """A share link's poll always reaches the app: its fetches are counted, and it may
    expire or be revoked at any time."""
    from calendar_svc.shares import ShareLinks

    server, app = served
    _, token = ShareLinks(trip_store).create("rubio-2025-09", name="press")
    target = f"/feeds/{token}/rubio-2025-09.ics"
    with httpx.Client(base_url=server.url, timeout=5) as http:
        etag = http.get(target).headers["etag"]
        answers = [http.get(target, headers={"if-none-match": etag}) for _ in range(3)]
    assert [a.status_code for a in answers] == [304] * 3
    assert app.calls == 4
