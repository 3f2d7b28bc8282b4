"""The feed HTTP app (Starlette): ``/feeds/{token}/{slug}.ics``, ``/healthz``, ``/metrics``,
the subscribers' page (``calendar_svc.page``) unless ``[feed] page = false``, and the HTTP
API (``calendar_svc.api``, under ``/api/v1``) when ``[api] enabled``.

The feed route is a plain ASGI endpoint rather than a request/response
function: a subscriber's poll answered 304 is the hot path, and skipping
Starlette's Request/Response objects and building headers once per rendered
feed keeps it a dictionary lookup plus one indexed SELECT.

Observers: the app reads health from and renders the metrics of the
``Observers`` it is given, and emits an event per answer, cache lookup and
render; it writes to no global.

Security: whose a token is (the calendar's own, a live share link's, or
nobody's) is decided by ``feed.access``, in constant time for the owner's
token and by digest for share links; a wrong or missing token, an unknown
slug, a revoked or expired link and an unknown path all get the same 404;
tokens are never logged (``logs.redact_token``). A share link's feed is
narrowed to its cities and categories, and its fetches are counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from calendar_svc import __version__, timezones
from calendar_svc.changes import ChangeWatcher
from calendar_svc.config import Config
from calendar_svc.errors import InputError, StoreError
from calendar_svc.events import EventBus, FeedAnswered, FeedCacheLookup, FeedRendered
from calendar_svc.feed.access import Access
from calendar_svc.feed.cache import FeedCache, RenderedFeed, filter_key, freeze_heap_once
from calendar_svc.feed.stored import StoredRenders
from calendar_svc.filters import EntryFilter, parse_query
from calendar_svc.ics import FeedOptions
from calendar_svc.logs import log_event, redact_token
from calendar_svc.observers import Observers
from calendar_svc.shares import OWNER
from calendar_svc.store import CalendarHead, Store

log = logging.getLogger("calendar_svc.feed")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

NOT_FOUND_BODY = b"Not Found\n"
_NOT_FOUND_HEADERS: Headers = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(NOT_FOUND_BODY)).encode()),
]
# Events are immutable: one of each, built once, serves every request (the hot path).
_ANSWERED = {code: FeedAnswered(status=code) for code in (200, 304, 400, 404, 503)}
_HIT, _MISS = FeedCacheLookup(hit=True), FeedCacheLookup(hit=False)
_MAX_HEADS = 10_000  # calendars' heads kept between changes (unknown slugs are not kept)
_MAX_POLLS = 10_000  # owners' 304 answers kept between changes
# (raw path, query string, If-None-Match, Accept-Encoding) of a poll
_PollKey = tuple[bytes, bytes, bytes, bytes | None]


class _Variant:
    """One encoding of a rendered feed: body and the headers of its 200 and 304 answers."""

    __slots__ = ("body", "etag", "etag_bytes", "headers_200", "headers_304")

    def __init__(self, feed: RenderedFeed, body: bytes, *, gzip: bool, max_age: int):
        self.body = body
        # A different encoding is a different representation: its strong ETag differs.
        self.etag = f'"{feed.etag}-gz"' if gzip else f'"{feed.etag}"'
        self.etag_bytes = self.etag.encode()
        # RFC 9110 (15.4.5): a 304 carries the 200's ETag, Cache-Control and Vary (Date is
        # uvicorn's), and no other representation metadata: a client has Last-Modified
        # from the 200, and each header costs a poll time on the server's hot path.
        self.headers_304: Headers = [
            (b"etag", self.etag.encode()),
            (b"cache-control", f"private, max-age={max_age}".encode()),
            (b"vary", b"Accept-Encoding"),
        ]
        self.headers_200 = [
            (b"content-type", b"text/calendar; charset=utf-8"),
            (b"content-disposition", f'inline; filename="{feed.slug}.ics"'.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"last-modified", feed.last_modified_http.encode()),
            *self.headers_304,
            *([(b"content-encoding", b"gzip")] if gzip else []),
        ]


class KnownAnswer:
    """A poll's 304, kept while the store's change ``generation`` and the tz database
    (``tz``) stay those it was answered under: its headers, and as the bytes of a
    response head after the status line (for ``feed.protocol``, which writes it)."""

    __slots__ = ("block", "generation", "headers", "tz")

    def __init__(self, generation: int, tz: object, headers: Headers):
        self.generation = generation
        self.tz = tz
        self.headers = headers
        self.block = b"".join(b"%s: %s\r\n" % header for header in headers) + b"\r\n"


def _conditions(headers: Iterable[tuple[bytes, bytes]]) -> tuple[bytes | None, bytes | None]:
    """(If-None-Match, Accept-Encoding) of a request's headers (names in lower case, as
    uvicorn gives them; the last of a repeated one, as ``_headers`` reads them)."""
    match = encoding = None
    for name, value in headers:
        if name == b"if-none-match":
            match = value
        elif name == b"accept-encoding":
            encoding = value
    return match, encoding


class _Prepared:
    """A rendered feed's two variants, headers built once (kept on ``feed.http``).

    It holds no reference back to the feed, so feed and headers form no cycle
    and go as soon as the cache drops the feed.
    """

    __slots__ = ("gzip", "identity", "max_age")

    def __init__(self, feed: RenderedFeed, max_age: int):
        self.max_age = max_age
        self.identity = _Variant(feed, feed.body, gzip=False, max_age=max_age)
        self.gzip: _Variant | None = None

    def gzipped(self, feed: RenderedFeed) -> _Variant:
        if self.gzip is None:
            self.gzip = _Variant(feed, feed.gzipped(), gzip=True, max_age=self.max_age)
        return self.gzip


class FeedEndpoint:
    """ASGI endpoint of ``GET``/``HEAD /feeds/{token}/{slug}.ics``.

    With a running ``changes`` watcher a calendar's head (id, token, version) is read
    once and kept until the store changes: a poll of an unchanged calendar touches no
    database. Without one, every request reads it (one indexed SELECT).
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        events: EventBus,
        changes: ChangeWatcher | None = None,
    ):
        self.store = store
        self.stored = StoredRenders(store)
        self.cache = FeedCache(store, FeedOptions.from_config(config), stored=self.stored)
        self.changes = changes
        self._heads: dict[str, CalendarHead] = {}
        self._heads_generation = -1
        # Owners' polls answered 304, by what decided the answer (path, query,
        # If-None-Match, Accept-Encoding): the 304's headers, while the store's change
        # generation and the tz database stay those they were answered under.
        self._polls: dict[_PollKey, KnownAnswer] = {}
        self._unreported = 0  # polls answered from ``_polls`` not yet told (event loop only)
        self.max_age = int(config.feed.refresh_interval.total_seconds())
        self.events = events
        # Whose token it is (the owner's or a share link's); the page asks the same one.
        self.access = Access(store, config)

    def close(self) -> None:
        """Write the share links' last fetch counts and the render cache's queued rows (the
        store's held connection goes with the store)."""
        self.access.close()
        self.stored.close()

    def known_poll(
        self, raw_path: bytes, query: bytes, headers: Iterable[tuple[bytes, bytes]]
    ) -> KnownAnswer | None:
        """The 304 of a poll answered before (by raw path, query, If-None-Match and
        Accept-Encoding), when nothing it was decided on has changed since (the store's
        generation, the tz database): then the answer is the same, and nothing else needs
        doing. The hot path of an unchanged feed, asked by the app and, before any ASGI
        request exists, by the server's protocol (``feed.protocol``)."""
        changes = self.changes
        if changes is None or not self._polls:
            return None
        match, encoding = _conditions(headers)
        if match is None:
            return None
        known = self._polls.get((raw_path, query, match, encoding))
        # (A watcher's stop raises its generation: none of these outlives its watcher.)
        if known is None or known.generation != changes.generation:
            return None
        if known.tz is not timezones.current():
            return None
        # Counted (no render cache lookup was made) once this turn of the event loop ends:
        # under load a turn answers several polls, and one event tells them all.
        if not self._unreported:
            asyncio.get_running_loop().call_soon(self._report_polls)
        self._unreported += 1
        return known

    def _report_polls(self) -> None:
        count, self._unreported = self._unreported, 0
        self.events.emit(FeedAnswered(status=304, count=count))

    def _keep_poll(
        self,
        scope: Scope,
        request_headers: dict[bytes, bytes],
        generation: int,
        tz: object,
        headers: Headers,
    ) -> None:
        match = request_headers.get(b"if-none-match")
        encoding = request_headers.get(b"accept-encoding")
        raw_path = scope.get("raw_path")  # (optional in ASGI; uvicorn gives it)
        if match is None or raw_path is None:
            return
        if len(self._polls) >= _MAX_POLLS:
            self._polls = {}
        key = (raw_path, scope.get("query_string", b""), match, encoding)
        self._polls[key] = KnownAnswer(generation, tz, headers)

    def head(self, slug: str) -> CalendarHead | None:
        """The calendar's head: kept while the change generation stays, else read."""
        changes = self.changes
        if changes is None or not changes.live:
            return self.store.calendar_head(slug)
        generation = changes.generation
        if generation != self._heads_generation:
            self._heads = {}
            self._heads_generation = generation
        head = self._heads.get(slug)
        if head is None:
            head = self.store.calendar_head(slug)
            # Read under this generation: kept only if no change came in the meantime.
            if head is not None and changes.generation == generation:
                if len(self._heads) >= _MAX_HEADS:
                    self._heads = {}
                self._heads[slug] = head
        return head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        params = scope["path_params"]
        token: str = params["token"]
        slug: str = params["slug"]
        # What a 304 kept for later is valid under: read before anything it depends on.
        generation = self.changes.generation if self.changes is not None else -1
        tz = timezones.current()
        try:
            head = self.head(slug)
            # Known links (the usual case) without an await: this is every poll's path.
            grants = self.access.known(head)
            if grants is None:
                grant = await self.access.resolve(head, token)
            else:
                grant = self.access.check(head, token, grants)
        except StoreError:
            log_event(log, "feed.database_unavailable", logging.WARNING, slug=slug)
            self.events.emit(_ANSWERED[503])
            await _plain(send, 503, b"Service Unavailable: database unreachable\n")
            return
        if grant is None:
            log_event(log, "feed.not_found", logging.DEBUG, slug=slug, token=redact_token(token))
            self.events.emit(_ANSWERED[404])
            await _not_found(send)
            return
        assert head is not None
        try:
            flt = parse_query(scope.get("query_string", b""))
            if grant is not OWNER:
                flt = grant.narrow(flt)
        except InputError as exc:
            self.events.emit(_ANSWERED[400])
            await _plain(send, 400, f"Bad Request: {exc}\n".encode())
            return
        # The usual poll: the feed is cached and its headers are built (no coroutine).
        cached = self.cache.get(head, filter_key(flt))
        if cached is not None and isinstance(cached.http, _Prepared):
            self.events.emit(_HIT)
            feed, prepared = cached, cached.http
        else:
            feed, prepared = await self._prepare(head, flt, cached)
        request_headers = _headers(scope)
        if grant.share_id is not None:
            self.access.fetched(grant, request_headers.get(b"user-agent"))
        variant = prepared.identity
        if _accepts_gzip(request_headers.get(b"accept-encoding")):
            if prepared.gzip is None:
                await run_in_threadpool(prepared.gzipped, feed)
            variant = prepared.gzipped(feed)
        # A client sends back the ETag it was given: that, byte for byte, needs no parsing.
        if request_headers.get(b"if-none-match") == variant.etag_bytes or _not_modified(
            request_headers, feed
        ):
            self.events.emit(_ANSWERED[304])
            if grant is OWNER and self.changes is not None and self.changes.live:
                # (A share link's poll is counted and may expire: it always comes here.)
                self._keep_poll(scope, request_headers, generation, tz, variant.headers_304)
            await send(
                {"type": "http.response.start", "status": 304, "headers": variant.headers_304}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        self.events.emit(_ANSWERED[200])
        await send({"type": "http.response.start", "status": 200, "headers": variant.headers_200})
        body = b"" if scope["method"] == "HEAD" else variant.body
        await send({"type": "http.response.body", "body": body})

    async def _prepare(
        self, head: CalendarHead, flt: EntryFilter, cached: RenderedFeed | None
    ) -> tuple[RenderedFeed, _Prepared]:
        self.events.emit(_MISS if cached is None else _HIT)
        if cached is not None:
            feed = cached
        else:
            feed, seconds = await run_in_threadpool(self._render, head.id, flt)
            self.events.emit(
                FeedRendered(
                    slug=head.slug,
                    version=feed.version,
                    entries=feed.entries,
                    bytes=len(feed.body),
                    seconds=seconds,
                )
            )
        prepared = feed.http
        if prepared is None:
            # Kept on the feed itself, so it goes when the cache drops the feed.
            prepared = feed.http = _Prepared(feed, self.max_age)
        assert isinstance(prepared, _Prepared)
        return feed, prepared

    def _render(self, calendar_id: int, flt: EntryFilter) -> tuple[RenderedFeed, float]:
        """The rendered feed and the seconds it took (in the thread that renders)."""
        started = time.perf_counter()
        feed = self.cache.render(calendar_id, flt)
        seconds = time.perf_counter() - started
        # A server keeps its caches for good: out of the collector's walks with them.
        freeze_heap_once()
        return feed, seconds


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name: value for name, value in scope["headers"]}


_GZIP_ANSWERS: dict[bytes, bool] = {}  # Accept-Encoding values seen (clients send a few)


def _accepts_gzip(value: bytes | None) -> bool:
    if not value:
        return False
    known = _GZIP_ANSWERS.get(value)
    if known is None:
        known = _parse_accepts_gzip(value)
        if len(_GZIP_ANSWERS) < 256:
            _GZIP_ANSWERS[value] = known
    return known


def _parse_accepts_gzip(value: bytes) -> bool:
    for part in value.decode("latin-1").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if "q=" in params else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def _not_modified(headers: dict[bytes, bytes], feed: RenderedFeed) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since."""
    match = headers.get(b"if-none-match")
    if match is not None:
        for tag in match.decode("latin-1").split(","):
            tag = tag.strip().removeprefix("W/").strip('"').removesuffix("-gz")
            if tag == "*" or tag == feed.etag:
                return True
        return False
    since = headers.get(b"if-modified-since")
    if since is None:
        return False
    try:
        when = parsedate_to_datetime(since.decode("latin-1"))
    except (TypeError, ValueError):
        return False
    if when.tzinfo is None:
        return False
    # HTTP dates have whole seconds.
    return feed.last_modified.replace(microsecond=0) <= when


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _not_found(send: Send) -> None:
    await send({"type": "http.response.start", "status": 404, "headers": _NOT_FOUND_HEADERS})
    await send({"type": "http.response.body", "body": NOT_FOUND_BODY})


def not_found_response() -> Response:
    """The one 404 every unknown path gets, byte for byte the feed's own."""
    response = Response(NOT_FOUND_BODY, status_code=404)
    response.raw_headers = list(_NOT_FOUND_HEADERS)
    return response


class FeedApp(Starlette):
    """Starlette, with feed requests handed straight to the feed endpoint.

    A subscriber's poll is the hot path: matching it here skips the middleware
    stack and the router's regexes (a third of a 304's cost); anything else,
    or any path that does not look like a feed, goes through Starlette.
    """

    feed_endpoint: FeedEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            # A poll answered 304 before, with nothing changed since: answered again.
            raw_path = scope.get("raw_path")
            known = (
                None
                if raw_path is None
                else self.feed_endpoint.known_poll(
                    raw_path, scope.get("query_string", b""), scope["headers"]
                )
            )
            if known is not None:
                await send({"type": "http.response.start", "status": 304, "headers": known.headers})
                await send({"type": "http.response.body", "body": b""})
                return
            parts = scope["path"].split("/")
            # ["", "feeds", token, "<slug>.ics"]
            if (
                len(parts) == 4
                and parts[1] == "feeds"
                and parts[2]
                and parts[3].endswith(".ics")
                and len(parts[3]) > 4
            ):
                scope["path_params"] = {"token": parts[2], "slug": parts[3][:-4]}
                await self.feed_endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]


def build_app(
    store: Store,
    config: Config,
    observers: Observers | None = None,
    changes: ChangeWatcher | None = None,
) -> FeedApp:
    """The feed app for ``store``; ``app.state.feed`` is the endpoint: ``close()`` it when
    the server has stopped, so the share links' last fetch counts are written.

    ``changes``: a started watcher lets polls of unchanged calendars skip the database.

    ``observers``: the bus the app emits to, the health ``/healthz`` reports and the
    metrics ``/metrics`` serves (default: new ones, with no scheduler loop).
    """
    observers = observers if observers is not None else Observers.build()
    endpoint = FeedEndpoint(store, config, observers.events, changes)
    health, metrics = observers.health, observers.metrics

    async def healthz(request: Request) -> Response:
        reachable = await run_in_threadpool(store.ping)
        state = health.snapshot()
        ok = reachable and not state["scheduler_stuck"]
        # Degraded: some entries are left out (isolated_entries), the rest runs.
        body = {
            "status": ("degraded" if state["isolated_entries"] else "ok") if ok else "unavailable",
            "database": reachable,
            "version": __version__,
            **state,
        }
        return Response(
            json.dumps(body, sort_keys=True) + "\n",
            status_code=200 if ok else 503,
            media_type="application/json",
            headers={"cache-control": "no-store"},
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(
            metrics.render(),
            media_type="text/plain; version=0.0.4",
            headers={"cache-control": "no-store"},
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return not_found_response()

    routes: list[BaseRoute] = [
        Route("/feeds/{token}/{slug}.ics", endpoint, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if config.feed.page:
        # Imported here: the page package uses feed.access, and a module-level import
        # would make importing the page first a cycle.
        from calendar_svc.page.endpoint import PageEndpoints

        pages = PageEndpoints(
            store, config, endpoint.access, observers.events, not_found=not_found_response
        )
        routes += pages.routes()
    if config.api.enabled:
        # Imported here: the API is only loaded where it is switched on.
        from calendar_svc.api.app import mount

        routes.append(mount(store, config))
    app = FeedApp(routes=routes, exception_handlers={404: not_found})
    app.state.feed = endpoint
    app.state.observers = observers
    app.feed_endpoint = endpoint
    return app
