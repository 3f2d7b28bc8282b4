"""What the HTTP notifiers (webhook, ntfy) share: status mapping, Retry-After, safe URLs."""

from __future__ import annotations

import ipaddress
import socket
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from calendar_svc.errors import NotifierError
from calendar_svc.notifiers.base import Notifier
from calendar_svc.timezones import UTC

USER_AGENT = "calendar-svc"

# Cloud metadata endpoints not already covered by "not a global address".
_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


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


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """False for loopback, private, link-local, shared, reserved and metadata addresses."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and address not in _METADATA


def check_public_host(notifier: Notifier, url: httpx.URL) -> str:
    """Refuse (permanently) a URL whose host resolves to any non-public address.

    Every resolved address is checked; the first is returned, and ``post`` connects
    to exactly that one (``connect_to``), so a name that resolves differently a
    moment later (DNS rebinding) cannot send the request somewhere unchecked.
    """
    host = url.host
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise notifier.retryable(f"{origin(url)}: cannot resolve host: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not is_public(address):
            raise notifier.permanent(
                f"{origin(url)} resolves to the non-public address {address}; "
                "set allow_private = true if this is intended"
            )
    return str(infos[0][4][0]).split("%", 1)[0]


def post(
    notifier: Notifier,
    client: httpx.Client,
    url: httpx.URL,
    *,
    content: bytes,
    headers: dict[str, str],
    now: datetime,
    connect_to: str | None = None,
) -> httpx.Response:
    """POST and map transport failures and statuses to notifier errors.

    ``connect_to``: an address to connect to instead of resolving the URL's host
    again; the request still names the host (``Host``, and TLS SNI and certificate
    checks for https).
    """
    where = origin(url)
    extensions: dict[str, Any] = {}
    if connect_to is not None:
        headers = {**headers, "host": url.netloc.decode("ascii")}
        if url.scheme == "https":
            extensions["sni_hostname"] = url.host
        url = url.copy_with(host=connect_to)
    try:
        response = client.post(url, content=content, headers=headers, extensions=extensions)
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
