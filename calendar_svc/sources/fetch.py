"""One fetch of a source: a conditional GET with limits, for any body a server may send.

* **Conditional**: ``If-None-Match`` / ``If-Modified-Since`` from the last good
  copy; a ``304`` is "unchanged" and costs no parse.
* **Size**: the body, after decompression, is read up to ``max_bytes`` and no
  further; gzip and deflate are decompressed here, in steps no larger than
  what is left of the limit, so a gzip bomb stops at the limit instead of
  filling memory.
* **Time**: one deadline (``timeout``) for the whole exchange, however the
  server trickles its bytes.
* **Redirects**: at most ``MAX_REDIRECTS``, each to http(s) only and checked
  like the first URL.
* **Addresses**: unless ``allow_private``, every address a host resolves to
  must be public (the notifiers' check, ``addresses``), and the
  request goes to exactly the addresses checked (DNS rebinding).
"""

from __future__ import annotations

import base64
import time
import zlib
from dataclasses import dataclass
from typing import Any

import httpx

from calendar_svc import __version__
from calendar_svc.addresses import public_addresses
from calendar_svc.config import SourceConfig
from calendar_svc.errors import AddressError, ConfigError, SourceError
from calendar_svc.notifiers import _http
from calendar_svc.secrets import read_credential, read_env
from calendar_svc.validation import Place

MAX_REDIRECTS = 5
# The longest a single read may wait; the fetch's own deadline bounds the total.
READ_STEP = 10.0


@dataclass(frozen=True)
class Fetched:
    """What a fetch found: ``body`` None when the server said 304 Not Modified."""

    body: bytes | None
    etag: str | None
    last_modified: str | None
    url: str  # after redirects


def safe_url(url: str) -> str:
    """The URL without its query or user info: what logs and errors may show (a private
    feed's secret is often in its query or path; the path stays, cut short)."""
    parsed = httpx.URL(url)
    path = parsed.path if len(parsed.path) <= 60 else parsed.path[:57] + "..."
    return f"{_http.origin(parsed)}{path}"


def auth_headers(source: SourceConfig, config_file: str | None) -> dict[str, str]:
    """The headers a source's secrets make (read now, from the environment or systemd
    credentials): ``Authorization`` and any of ``headers_env``."""
    place = Place(ConfigError, config_file, f"sources.{source.name}")

    def secret(name: str) -> str | None:
        env, credential = getattr(source, f"{name}_env"), getattr(source, f"{name}_credential")
        if env:
            return read_env(env, place=place, field=f"{name}_env")
        if credential:
            return read_credential(credential, place=place, field=f"{name}_credential")
        return None

    headers: dict[str, str] = {}
    token = secret("token")
    password = secret("password")
    if token:
        headers["authorization"] = f"Bearer {token}"
    elif source.username and password:
        pair = f"{source.username}:{password}".encode()
        headers["authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    if source.headers_env:
        text = read_env(source.headers_env, place=place, field="headers_env")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip() or not value.strip().isprintable():
                raise place.fail(
                    "headers_env", f"line {number} of ${source.headers_env} is not 'Name: value'"
                )
            headers[name.strip().lower()] = value.strip()
    return headers


def fetch(
    source: SourceConfig,
    *,
    etag: str | None,
    last_modified: str | None,
    headers: dict[str, str],
    client: httpx.Client | None = None,
) -> Fetched:
    """GET the source's URL within its limits; SourceError (saying why) otherwise."""
    deadline = time.monotonic() + source.timeout.total_seconds()
    own = client is None
    http = client or new_client()
    try:
        url = httpx.URL(source.url)
        conditional = {}
        if etag:
            conditional["if-none-match"] = etag
        if last_modified:
            conditional["if-modified-since"] = last_modified
        for _hop in range(MAX_REDIRECTS + 1):
            response = _get(http, url, source, {**headers, **conditional}, deadline)
            try:
                if response.status_code in (301, 302, 303, 307, 308):
                    location = response.headers.get("location")
                    if not location:
                        raise SourceError(f"{_where(url)} redirects without a Location")
                    target = url.join(location)
                    if target.scheme not in ("http", "https"):
                        raise SourceError(
                            f"{_where(url)} redirects to a {target.scheme}: URL; only http(s)"
                        )
                    if target.host != url.host:
                        # Credentials are for the configured host alone.
                        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                    url = target
                    continue
                if response.status_code == 304:
                    return Fetched(None, etag, last_modified, str(url))
                if not 200 <= response.status_code < 300:
                    raise SourceError(
                        f"{_where(url)} answered {response.status_code} "
                        f"{response.reason_phrase}".rstrip()
                    )
                body = _read_body(response, source, deadline, url)
                return Fetched(
                    body,
                    response.headers.get("etag"),
                    response.headers.get("last-modified"),
                    str(url),
                )
            finally:
                response.close()
        raise SourceError(f"more than {MAX_REDIRECTS} redirects (last: {_where(url)})")
    finally:
        if own:
            http.close()


def new_client() -> httpx.Client:
    """The HTTP client fetches use: redirects followed here, one by one, never by httpx;
    no proxy or netrc from the environment (the address checks must see the real peer)."""
    return httpx.Client(follow_redirects=False, trust_env=False)


def _where(url: httpx.URL) -> str:
    return _http.origin(url)


def _get(
    http: httpx.Client,
    url: httpx.URL,
    source: SourceConfig,
    headers: dict[str, str],
    deadline: float,
) -> httpx.Response:
    """Send the GET (to the checked addresses) and return the streaming response."""
    headers = {
        "user-agent": f"{_http.USER_AGENT}/{__version__}",
        "accept": "text/calendar, */*;q=0.5",
        "accept-encoding": "gzip, deflate",
        **headers,
    }
    addresses: list[str] = []
    if not source.allow_private:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = public_addresses(url.raw_host.decode("ascii"), port, where=_where(url))
        except AddressError as exc:  # either kind: the next fetch tries again
            raise SourceError(str(exc)) from None
    targets: list[tuple[httpx.URL, dict[str, str], dict[str, Any]]] = []
    if addresses:
        extensions: dict[str, Any] = {}
        if url.scheme == "https":
            extensions["sni_hostname"] = url.raw_host.decode("ascii")
        pinned = {**headers, "host": url.netloc.decode("ascii")}
        for address in addresses[: _http.MAX_ADDRESSES]:
            targets.append((url.copy_with(host=address), pinned, extensions))
    else:
        targets.append((url, headers, {}))
    failures = []
    for target, target_headers, extensions in targets:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        timeout = httpx.Timeout(min(left, READ_STEP), connect=left)
        request = http.build_request(
            "GET", target, headers=target_headers, extensions=extensions, timeout=timeout
        )
        try:
            return http.send(request, stream=True)
        except httpx.ConnectError as exc:
            failures.append(f"{target.host}: {exc}")
        except httpx.TimeoutException:
            raise SourceError(f"{_where(url)}: timed out") from None
        except httpx.HTTPError as exc:
            raise SourceError(f"{_where(url)}: {type(exc).__name__}: {exc}") from None
    if not failures:
        raise SourceError(f"{_where(url)}: timed out")
    raise SourceError(f"{_where(url)}: cannot connect ({'; '.join(failures)})")


def _read_body(
    response: httpx.Response, source: SourceConfig, deadline: float, url: httpx.URL
) -> bytes:
    """The decompressed body, refusing past ``max_bytes`` or the deadline."""
    limit = source.max_bytes
    declared = response.headers.get("content-length", "")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity") and declared.isdigit() and int(declared) > limit:
        raise SourceError(f"{_where(url)}: the body is {int(declared):,} bytes; limit {limit:,}")
    decoder: Any = None
    if encoding in ("gzip", "x-gzip"):
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        decoder = zlib.decompressobj()
    elif encoding not in ("", "identity"):
        raise SourceError(f"{_where(url)}: unsupported Content-Encoding {encoding!r}")
    out = bytearray()
    try:
        # No chunk size: httpx would gather that many bytes before handing any over.
        for chunk in response.iter_raw():
            if time.monotonic() > deadline:
                raise SourceError(
                    f"{_where(url)}: the body did not arrive within "
                    f"{source.timeout.total_seconds():g} s"
                )
            if decoder is None:
                out += chunk
            else:
                data = chunk
                while data:
                    # Never more than what the limit leaves (plus one byte to notice).
                    out += decoder.decompress(data, limit - len(out) + 1)
                    data = decoder.unconsumed_tail
                    if len(out) > limit:
                        break
            if len(out) > limit:
                what = "decompressed " if decoder is not None else ""
                raise SourceError(
                    f"{_where(url)}: the {what}body is over the limit of {limit:,} bytes"
                )
        if decoder is not None:
            out += decoder.flush(limit - len(out) + 1)
            if len(out) > limit:
                raise SourceError(f"{_where(url)}: the decompressed body is over {limit:,} bytes")
    except zlib.error as exc:
        raise SourceError(f"{_where(url)}: the {encoding} body is corrupt: {exc}") from None
    except httpx.TimeoutException:
        raise SourceError(f"{_where(url)}: timed out reading the body") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"{_where(url)}: {type(exc).__name__}: {exc}") from None
    return bytes(out)
