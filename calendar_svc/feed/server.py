"""Runs the feed app under uvicorn in a background thread.

``calendar-svc run`` (the daemon) calls ``start()`` and ``stop()``;
``calendar-svc serve`` calls ``serve_forever()``. The socket is bound here,
before uvicorn starts, so a port taken or refused fails ``start()`` at once
with a clear error, and ``port`` is the real port when the config says 0.
Every connection is held to ``[feed]``'s limits (``feed.limits``: connections,
header read time, idle time, header and request line sizes), so that no client
can take the descriptors the reminders need.

A reload (SIGHUP) hands the server a new config (``reconfigure``): the app is
built again from it and swapped in behind the one uvicorn serves, so the new
``[feed]`` settings (refresh interval, alarms, domain, page, ...) and reminder
offsets apply to the next request. What was fixed when the socket was bound
(``host``, ``port``) needs a restart; ``reconfigure`` says which.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Awaitable
from types import FrameType
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.types import Receive, Scope, Send

from calendar_svc.changes import ChangeWatcher
from calendar_svc.config import Config
from calendar_svc.errors import CalendarSvcError
from calendar_svc.feed.app import FeedApp, build_app
from calendar_svc.feed.limits import Limits, RefusalLog
from calendar_svc.logs import log_event
from calendar_svc.observers import Observers
from calendar_svc.resources import descriptors_for_connections
from calendar_svc.store import Store

if TYPE_CHECKING:  # (it imports httptools, which may be missing: see _protocol)
    from calendar_svc.feed.protocol import KnownPolls

log = logging.getLogger("calendar_svc.feed")

_START_TIMEOUT = 15.0


class _Server(uvicorn.Server):
    """uvicorn's server that says when it is ready or has given up starting."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.ready.set()


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _silence_access_log() -> None:
    """Make sure no access-log line is ever written: its request path holds the feed token.

    ``access_log=False`` is not enough: uvicorn decides per connection from
    ``hasHandlers()``, so any handler reachable from ``uvicorn.access`` (a root
    handler once something turns propagation back on) would log full paths.
    A filter on the logger itself drops the records wherever they would go.
    """
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _DropAll) for f in access.filters):
        access.addFilter(_DropAll())


class _Swappable:
    """The ASGI app uvicorn serves: hands each request to ``current``, which a reload
    replaces; a request already running finishes on the app it started on."""

    def __init__(self, app: FeedApp):
        self.current = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # The app's own coroutine, not one of this hop's around it (every poll passes here).
        return self.current(scope, receive, send)


# [feed] settings fixed for the life of the server: the socket was bound with the first
# two, and uvicorn's connections are held to the others from the start.
RESTART_KEYS = (
    "host",
    "port",
    "max_connections",
    "header_timeout",
    "keep_alive_timeout",
    "max_header_size",
    "max_request_line",
)


class FeedServer:
    """The feed app on ``host:port`` (default: ``[feed]`` in the config).

    ``observers`` are the daemon's (its health in ``/healthz``, its metrics in
    ``/metrics``); without them the server has its own, with no scheduler loop.
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        host: str | None = None,
        port: int | None = None,
        observers: Observers | None = None,
        changes: ChangeWatcher | None = None,
    ):
        self.store = store
        # The daemon's own watcher, or one this server starts and stops itself.
        self._own_changes = changes is None
        self.changes = changes if changes is not None else ChangeWatcher(store)
        self.config = config
        self.host = host if host is not None else config.feed.host
        self._requested_port = port if port is not None else config.feed.port
        self.port: int = self._requested_port
        self.observers = observers if observers is not None else Observers.build()
        self.app = build_app(store, config, self.observers, self.changes)
        self._serving = _Swappable(self.app)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.limits: Limits | None = None  # in force once started
        self._started_with = config.feed  # what RESTART_KEYS keep until a restart
        self.refusals = RefusalLog()

    @property
    def url(self) -> str:
        """The local URL the server listens on (not the public one: see ``feed.public_url``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Bind, start serving in a background thread, and return once requests are answered."""
        if self._thread is not None:
            raise RuntimeError("FeedServer.start() called twice")
        _silence_access_log()
        self._socket = _bind(self.host, self._requested_port)
        self.port = int(self._socket.getsockname()[1])
        if self._own_changes:  # once the port is ours: a failed bind leaves no thread behind
            self.changes.start()
        self.limits = feed_limits(self.config)
        self._started_with = self.config.feed
        uv_config = uvicorn.Config(
            self._serving,
            log_config=None,  # our logging (logs.setup_logging) stays as configured
            access_log=False,  # request paths hold feed tokens
            lifespan="off",
            # (uvicorn would guess ASGI 2 from a __call__ that is not a coroutine function)
            interface="asgi3",
            server_header=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=max(1, round(self.limits.keep_alive_timeout)),
            # The h11 parser's own cap (used only where httptools is not installed).
            h11_max_incomplete_event_size=self.limits.max_header_size,
            **_protocol(self.limits, self.refusals, self._known_poll),
        )
        self._server = _Server(uv_config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="calendar-svc-feed",
            daemon=True,
        )
        self._thread.start()
        if not self._server.ready.wait(_START_TIMEOUT) or not self._server.started:
            self.stop(timeout=2.0)
            raise CalendarSvcError(f"the feed server did not start on {self.url}")
        log_event(
            log,
            "feed.listening",
            url=self.url,
            host=self.host,
            port=self.port,
            http=_implementation(uv_config),
            max_connections=self.limits.max_connections,
        )

    def _known_poll(
        self, raw_path: bytes, query: bytes, headers: list[tuple[bytes, bytes]]
    ) -> bytes | None:
        """For the protocol: the response head of a known poll of the app serving now."""
        known = self._serving.current.feed_endpoint.known_poll(raw_path, query, headers)
        return None if known is None else known.block

    def reconfigure(self, config: Config) -> list[str]:
        """Serve with ``config`` from now on; returns the ``[feed]`` keys that changed but
        take effect only on restart (``RESTART_KEYS``), which keep their old values."""
        old = self.app
        self.app = build_app(self.store, config, self.observers, self.changes)
        self._serving.current = self.app
        started = {key: getattr(self._started_with, key) for key in RESTART_KEYS}
        started.update(host=self.host, port=self._requested_port)
        restart = [key for key in RESTART_KEYS if getattr(config.feed, key) != started[key]]
        self.config = config
        # The old app's share-link counts are written (a fetch counted by a request still
        # on it after this is lost: a count, never a feed).
        old.state.feed.close()
        return restart

    def stop(self, timeout: float) -> None:
        """Stop taking connections, let requests in flight finish for up to ``timeout`` s."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(2.0)
            log_event(log, "feed.stopped", url=self.url)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        # After the last request: the share links' fetch counts of this process are written.
        self.app.state.feed.close()
        if self._own_changes:
            self.changes.stop()
        self._server = None
        self._thread = None

    def serve_forever(self, stop_timeout: float = 10.0) -> None:
        """Serve until SIGINT or SIGTERM, then stop cleanly (``calendar-svc serve``).

        uvicorn's own handlers would re-raise the signal after shutting down
        (the process would then die by it); here the main thread owns the
        signals and the server runs in its thread, so the command exits 0.
        """
        stopping = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            log_event(log, "feed.signal", signal=signal.Signals(signum).name)
            stopping.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not stopping.wait(0.5):
                if not self.running:
                    raise CalendarSvcError("the feed server stopped unexpectedly")
        finally:
            self.stop(stop_timeout)
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def feed_limits(config: Config) -> Limits:
    """``[feed]``'s limits, with the connection limit lowered so that the process's
    descriptor reserve stays free under the soft limit in force now."""
    feed = config.feed
    return Limits(
        max_connections=descriptors_for_connections(feed.max_connections),
        header_timeout=feed.header_timeout.total_seconds(),
        keep_alive_timeout=feed.keep_alive_timeout.total_seconds(),
        max_header_size=feed.max_header_size,
        max_request_line=feed.max_request_line,
    )


def _protocol(limits: Limits, refusals: RefusalLog, known: KnownPolls) -> dict[str, Any]:
    """uvicorn's ``http`` option: the limited httptools protocol, answering ``known`` polls
    itself, when httptools is there (it is a dependency on CPython); else uvicorn's h11
    with its size cap and keep-alive timeout only, and a warning."""
    try:
        from calendar_svc.feed.protocol import limited_protocol
    except ImportError:
        log_event(
            log,
            "feed.limits_partial",
            logging.WARNING,
            why="httptools is not installed: no connection limit or header read timeout",
        )
        return {"http": "h11"}
    return {"http": limited_protocol(limits, refusals, known)}


def _implementation(config: uvicorn.Config) -> str:
    """Which HTTP parser and event loop uvicorn chose: "httptools+uvloop" when both are
    installed (a dependency; about 2.5x the 304s per second of "h11+asyncio")."""
    protocol = getattr(config, "http_protocol_class", None)
    parser = "httptools" if protocol is not None and "HttpTools" in protocol.__name__ else "h11"
    if not hasattr(config, "get_loop_factory"):  # older uvicorn: only the setting is known
        return f"{parser}+{config.loop}"
    factory = config.get_loop_factory()
    loop = "uvloop" if factory is not None and "uvloop" in (factory.__module__ or "") else "asyncio"
    return f"{parser}+{loop}"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CalendarSvcError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(set [feed] host/port, or --host/--port)"
        ) from None
    sock.set_inheritable(True)
    return sock
