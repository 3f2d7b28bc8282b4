"""uvicorn's httptools protocol, enforcing ``feed.limits.Limits`` on each connection, and
answering the polls of unchanged feeds itself.

Kept apart from ``feed.limits`` because it imports httptools, which is only a
dependency on CPython (``feed.server`` falls back to uvicorn's h11 without it).

**Known polls.** Most requests a feed server sees are subscribers' apps asking
whether a feed changed, with the ETag they were given: answered 304 time after
time. Once the app has answered such a poll, it keeps the answer for as long as
nothing it was decided on changes (``feed.app.FeedEndpoint.known_poll``); a
request that matches one byte for byte is answered here, as soon as its head is
parsed, without the ASGI request, task and response cycle uvicorn would make for
it: a third or more of a 304's cost. Only the plainest case is taken (HTTP/1.1
``GET`` or ``HEAD``, kept alive, nothing else in flight on the connection, no
upgrade); anything else, and any miss, goes to uvicorn and the app as usual.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Protocol

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from calendar_svc.feed.limits import Limits, RefusalLog


class _Refused(Exception):
    """Raised from a parser callback to stop parsing a request that is refused."""


class KnownPolls(Protocol):
    """(raw path, query, request headers) -> the response head after the status line of a
    known poll's 304 (``FeedServer``'s, from the app serving now), or None."""

    def __call__(
        self, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]], /
    ) -> bytes | None: ...


_NOT_MODIFIED = b"HTTP/1.1 304 Not Modified\r\n"

_REASONS = {
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ``limits`` (see the module docstring).

    ``limited_protocol`` makes a subclass per server with its ``limits`` and
    ``refusals``: uvicorn builds the protocol from a class and its own config.
    """

    limits: ClassVar[Limits]
    refusals: ClassVar[RefusalLog]
    known: ClassVar[KnownPolls | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answered = False  # the request being read was answered here (a known poll)
        self._in_head = True
        self._heads = 0
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_since = 0.0  # loop time the head being read began
        self._refusal: int | None = None

    # --- the connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._respond_and_close(503, b"too many connections", retry_after=True)
            self.refusals("connections")
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return  # refused: nothing more is read
        heads, reading_head = self._heads, self._in_head
        super().data_received(data)
        if reading_head and self._in_head and self._heads == heads:
            # Still inside the same request's head: all of this chunk belongs to it.
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_size and not self.transport.is_closing():
                self._refuse(431, "header")

    # --- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._answered = False
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_request_line:
            self._refusal = 414
            raise _Refused  # stops the parser; uvicorn then calls send_400_response

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        if self.known is not None and self._answer_known(self.known):
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._answered:  # (a GET's body, answered or not, is read and dropped)
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._answered:
            super().on_message_complete()

    def _answer_known(self, known: KnownPolls) -> bool:
        """Write the 304 of a known poll (see the module docstring); False when this
        request is not one, or not one this may answer."""
        parser = self.parser
        if (
            self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or parser.get_method() not in (b"GET", b"HEAD")
            or parser.get_http_version() != "1.1"
            or not parser.should_keep_alive()
            or parser.should_upgrade()
        ):
            return False
        path, _, query = self.url.partition(b"?")
        block = known(path, query, self.headers)
        if block is None:
            return False
        head = [_NOT_MODIFIED]
        for name, value in self.server_state.default_headers:  # Date (uvicorn keeps it)
            head += (name, b": ", value, b"\r\n")
        head.append(block)
        self._answered = True
        self.transport.write(b"".join(head))
        # uvicorn's own end of a response: the keep-alive timer, reading resumed.
        self.on_response_complete()
        return True

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            self._refuse(self._refusal, "request_line")
        else:
            super().send_400_response(msg)

    # --- timers and refusals -------------------------------------------------------------

    # A poll answered 304 is the feed's hot path, and a keep-alive connection sends one head
    # after another: a timer per head (made, then cancelled) would cost more than the rest of
    # the limits. So a head only notes when it began; one timer per connection is left
    # running and, when it fires, closes the connection if a head is still being read past
    # the timeout, or else waits again for what is left of the head in progress (or for
    # the next head's start to arm it anew).

    def _arm_head_timer(self) -> None:
        self._head_since = self.loop.time()
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout, self._head_timed_out
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return  # the next head's start arms the timer again
        left = self._head_since + self.limits.header_timeout - self.loop.time()
        if left > 0:  # a later head, still within its own time
            self._head_timer = self.loop.call_later(left, self._head_timed_out)
            return
        self.refusals("header_timeout")
        self.transport.close()

    def _refuse(self, status: int, reason: str) -> None:
        self.refusals(reason)
        self._respond_and_close(status, _REASONS[status].lower())

    def _respond_and_close(self, status: int, body: bytes, *, retry_after: bool = False) -> None:
        self._cancel_head_timer()
        head = [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if retry_after:
            head.append(b"retry-after: 5\r\n")
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()


def limited_protocol(
    limits: Limits, refusals: RefusalLog, known: KnownPolls | None = None
) -> type[LimitedHttpToolsProtocol]:
    """A protocol class for one server, bound to its ``limits`` and ``refusals``, and
    answering the polls ``known`` knows (None: none)."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        # (staticmethod: a function as a class attribute would be called as a method)
        {"limits": limits, "refusals": refusals, "known": staticmethod(known) if known else None},
    )
