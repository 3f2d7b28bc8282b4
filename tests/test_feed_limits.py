"""What one client may hold of the feed server (issue 12, finding 6), over real sockets.

Each limit of ``[feed]`` against a FeedServer on 127.0.0.1, with limits small
enough that a test reaches them at once: the request line (414), the head
(431), a silent connection (closed after ``header_timeout``), connections over
``max_connections`` (503 and closed before being read, the others still
served), and that ordinary and keep-alive requests pass. The daemon-wide
guarantee (reminders delivered under 1,100 idle connections) is
``test_fault_descriptors.py``; the descriptor limit and the preloaded codecs
are checked here in-process.
"""

from __future__ import annotations

import codecs
import dataclasses
import resource
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest
from service_helpers import wait_for

from calendar_svc import resources
from calendar_svc.config import Config, default_config
from calendar_svc.feed import FeedServer
from calendar_svc.feed.server import feed_limits
from calendar_svc.store import Store


def limited(url: str, **feed: object) -> Config:
    config = default_config(url)
    return dataclasses.replace(config, feed=dataclasses.replace(config.feed, port=0, **feed))


@pytest.fixture
def server(sqlite_store: Store) -> Iterator[FeedServer]:
    config = limited(
        sqlite_store.url,
        max_connections=4,
        header_timeout=timedelta(seconds=1),
        max_header_size=4096,
        max_request_line=1024,
    )
    srv = FeedServer(sqlite_store, config, host="127.0.0.1")
    srv.start()
    yield srv
    srv.stop(timeout=5)


def connect(server: FeedServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection ("" when it closed
    without a word)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def healthz(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: feed\r\n\r\n")
    return sock.recv(65536)


def test_ordinary_and_keep_alive_requests_pass(server: FeedServer) -> None:
    with connect(server) as sock:
        for _ in range(3):  # one connection, three requests
            assert healthz(sock).startswith(b"HTTP/1.1 200 ")


def test_a_request_line_over_the_limit_is_414_and_closed(server: FeedServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: feed\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 414 ")
    assert server.refusals.total["request_line"] == 1


def test_an_unfinished_head_over_the_limit_is_431_and_closed(server: FeedServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: feed\r\nX: ")
        try:
            for _ in range(64):  # 1 MB, never a final CRLF
                sock.sendall(b"a" * 16384)
        except (BrokenPipeError, ConnectionResetError):
            pass  # cut off while sending: the point
        assert answer(sock).startswith(b"HTTP/1.1 431 ")
    assert server.refusals.total["header"] == 1


def test_a_silent_connection_is_closed_after_the_header_timeout(server: FeedServer) -> None:
    with connect(server) as sock:
        sock.settimeout(10)  # far above header_timeout: only a hang reaches it
        assert answer(sock) == b""
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a head that never ends
        sock.settimeout(10)
        assert answer(sock) == b""
    assert server.refusals.total["header_timeout"] == 2


def test_connections_over_the_limit_are_503_and_the_rest_still_served(
    server: FeedServer,
) -> None:
    held = [connect(server) for _ in range(4)]
    try:
        # The four are accepted and served; the fifth is refused before it is read.
        for sock in held:
            assert healthz(sock).startswith(b"HTTP/1.1 200 ")
        with connect(server) as extra:
            refused = answer(extra)
        assert refused.startswith(b"HTTP/1.1 503 ") and b"retry-after: 5" in refused
        assert server.refusals.total["connections"] == 1
    finally:
        for sock in held:
            sock.close()

    def served_again() -> bool:
        with connect(server) as sock:
            return healthz(sock).startswith(b"HTTP/1.1 200 ")

    wait_for(served_again, 10, "a connection to be served once the others closed")


def test_the_connection_limit_leaves_the_descriptor_reserve_free(sqlite_store: Store) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    config = limited(sqlite_store.url, max_connections=100_000)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        assert feed_limits(config).max_connections == 1024 - resources.DESCRIPTOR_RESERVE
        limit = resources.raise_descriptor_limit()
        assert limit.before == 1024 and limit.raised and limit.error is None
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limit.soft
        if hard != resource.RLIM_INFINITY:
            assert limit.soft == limit.hard == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_codecs_name_resolution_needs_are_preloaded() -> None:
    """socket.getaddrinfo looks up the idna codec by name on first use; under EMFILE that
    import failed and the failure was cached for good (issue 12)."""
    assert resources.preload() == []
    for name in resources.CODECS:
        assert codecs.lookup(name)
