"""What the HTTP notifiers (webhook, ntfy) share: kept-alive clients, status mapping,
Retry-After, safe URLs."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from calendar_svc import __version__, addresses
from calendar_svc.errors import NonPublicAddressError, NotifierError, UnresolvedHostError
from calendar_svc.notifiers.base import Notifier
from calendar_svc.timezones import UTC

USER_AGENT = "calendar-svc"

# At most this many of a name's checked addresses are tried, in the resolver's order,
# when connecting to the earlier ones fails (one dead address, or no IPv6 route).
MAX_ADDRESSES = 4


class Clients:
    """A channel's HTTP clients: one per thread that sends, each keeping its connection
    alive, all closed together by ``close`` (the notifier's).

    The channel's sends run on ``concurrency`` threads of its own, so it holds at most
    that many connections, reused by every reminder of a burst instead of a TCP (and
    TLS) handshake each. Not one client shared by those threads: httpcore's pool runs
    every request's start and end under one lock, and at 32 threads that lock, not the
    network, held a burst to a third of the rate one client per thread reaches
    (bench/RESULTS.md).
    """

    def __init__(
        self,
        *,
        timeout: float,
        headers: Mapping[str, str],
        verify: ssl.SSLContext | bool = True,
    ):
        """``verify``: the TLS context to trust (default: the system's CAs)."""
        self._timeout = timeout
        self._verify = verify
        # One TLS context for all of the channel's clients, made on the first send:
        # loading the CA bundle costs milliseconds of CPU, per client if each made its own.
        self._tls: ssl.SSLContext | None = verify if isinstance(verify, ssl.SSLContext) else None
        self._headers = {"user-agent": f"{USER_AGENT}/{__version__}", **headers}
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[httpx.Client] = []
        self._closed = False

    def get(self) -> httpx.Client:
        """This thread's client (made on its first send)."""
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is not None:
            return client
        with self._lock:
            if self._tls is None:
                self._tls = httpx.create_ssl_context(verify=self._verify)
            tls = self._tls
        client = httpx.Client(
            timeout=self._timeout,
            follow_redirects=False,
            headers=self._headers,
            verify=tls,
            # One request at a time per thread; a second connection only while ``post``
            # moves on to the next address of a name.
            limits=httpx.Limits(
                max_connections=2, max_keepalive_connections=1, keepalive_expiry=30.0
            ),
        )
        with self._lock:
            if self._closed:
                client.close()
                raise RuntimeError("the notifier is closed")
            self._all.append(client)
        self._local.client = client
        return client

    @property
    def open(self) -> int:
        """Clients made and not closed."""
        with self._lock:
            return 0 if self._closed else len(self._all)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients, self._all = self._all, []
        for client in clients:
            client.close()


def origin(url: httpx.URL) -> str:
    """``https://host:port``: what may be shown of a URL whose path can be a secret."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def raise_for_status(
    notifier: Notifier, response: httpx.Response, where: str, now: datetime
) -> None:
    """Return on 2xx; otherwise raise the retryable or permanent error the status means."""
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"{where} answered {status} {response.reason_phrase}".rstrip()
    if status in (408, 425, 429) or status >= 500:
        after = parse_retry_after(response.headers.get("retry-after"), now)
        raise notifier.retryable(reason, retry_after=after)
    if status == 410:
        raise notifier.permanent(f"{reason}: the endpoint is gone", gone=True)
    if 300 <= status < 400:
        raise notifier.permanent(f"{reason}: redirects are not followed; configure the final URL")
    raise notifier.permanent(reason)


def check_public_host(notifier: Notifier, url: httpx.URL) -> list[str]:
    """Refuse (permanently) a URL whose host resolves to any non-public address.

    The check is ``addresses.public_addresses``; the distinct addresses are
    returned, and ``post`` connects to exactly those (``connect_to``), so a name
    that resolves differently a moment later (DNS rebinding) cannot send the
    request somewhere unchecked. A failed lookup is retryable.
    """
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        return addresses.public_addresses(url.raw_host.decode("ascii"), port, where=origin(url))
    except UnresolvedHostError as exc:
        raise notifier.retryable(str(exc)) from None
    except NonPublicAddressError as exc:
        raise notifier.permanent(str(exc)) from None


def post(
    notifier: Notifier,
    client: httpx.Client,
    url: httpx.URL,
    *,
    content: bytes,
    headers: dict[str, str],
    now: datetime,
    connect_to: Sequence[str] = (),
    monotonic: Callable[[], float] = time.monotonic,
) -> httpx.Response:
    """POST and map transport failures and statuses to notifier errors.

    ``connect_to``: addresses to connect to instead of resolving the URL's host
    again; the request still names the host (``Host``, and TLS SNI and certificate
    checks for https). When connecting to one fails, the next is tried (at most
    ``MAX_ADDRESSES``, all within the client's one connect timeout, so a send takes
    no longer than with a single address); a request that reached a server is never
    sent again. ``monotonic`` is the clock of that one timeout (tests move it).
    """
    where = origin(url)
    if not connect_to:
        try:
            return _post_once(
                notifier, client, url, where, content, headers, {}, now, client.timeout
            )
        except _ConnectFailed as exc:
            raise notifier.retryable(f"{where}: {exc}") from None
    pinned_headers = {**headers, "host": url.netloc.decode("ascii")}
    extensions: dict[str, Any] = {}
    if url.scheme == "https":
        extensions["sni_hostname"] = url.raw_host.decode("ascii")
    limits = client.timeout
    deadline = None if limits.connect is None else monotonic() + limits.connect
    failures: list[str] = []
    for address in list(connect_to)[:MAX_ADDRESSES]:
        timeout = limits
        if deadline is not None:
            left = deadline - monotonic()
            if left <= 0:
                break
            timeout = httpx.Timeout(
                connect=left, read=limits.read, write=limits.write, pool=limits.pool
            )
        try:
            return _post_once(
                notifier,
                client,
                url.copy_with(host=address),
                where,
                content,
                pinned_headers,
                extensions,
                now,
                timeout,
            )
        except _ConnectFailed as exc:
            failures.append(f"{address}: {exc}")
    if len(failures) == 1:
        raise notifier.retryable(f"{where}: {failures[0]}")
    raise notifier.retryable(
        f"{where}: could not connect to any of {len(failures)} addresses ({'; '.join(failures)})"
    )


class _ConnectFailed(Exception):
    """No connection was made: safe to try the next address."""


def _post_once(
    notifier: Notifier,
    client: httpx.Client,
    url: httpx.URL,
    where: str,
    content: bytes,
    headers: dict[str, str],
    extensions: dict[str, Any],
    now: datetime,
    timeout: httpx.Timeout,
) -> httpx.Response:
    try:
        response = client.post(
            url, content=content, headers=headers, extensions=extensions, timeout=timeout
        )
    except httpx.ConnectTimeout:
        raise _ConnectFailed("timed out connecting") from None
    except httpx.ConnectError as exc:
        raise _ConnectFailed(f"{type(exc).__name__}: {exc}") from None
    except httpx.TimeoutException:
        raise notifier.retryable(f"{where}: timed out") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise notifier.permanent(f"{where}: {exc}") from None
    except httpx.TransportError as exc:
        raise notifier.retryable(f"{where}: {type(exc).__name__}: {exc}") from None
    except NotifierError:
        raise
    raise_for_status(notifier, response, where, now)
    return response
