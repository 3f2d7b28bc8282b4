"""webhook notifier against a real HTTP receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import peers
import pytest
from click.testing import Result
from standardwebhooks import Webhook

from calendar_svc import addresses as addresses_module
from calendar_svc.clock import now_utc
from calendar_svc.config import DisplayConfig
from calendar_svc.errors import ConfigError, PermanentNotifierError, RetryableNotifierError
from calendar_svc.notifiers import Reminder, _http
from calendar_svc.notifiers.webhook import WebhookNotifier
from calendar_svc.timezones import UTC

SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


def reminder(key: str = "rem-1") -> Reminder:
    return peers.reminder(
        key=key,
        calendar="trip",
        late=True,
        display=DisplayConfig(),
        uid="sheinbaum",
        title="Reunión",
        categories=[],
    )


def verifying(request: peers.HttpRequest) -> peers.Response:
    try:
        Webhook(SECRET).verify(request.body, request.headers)
    except Exception as exc:
        return 401, {}, str(exc).encode()
    return 200, {}, b"ok"


_open: list[WebhookNotifier] = []


@pytest.fixture(autouse=True)
def _close_notifiers() -> Any:
    yield
    while _open:
        _open.pop().close()


def notifier(url: str, **overrides: Any) -> WebhookNotifier:
    table = {
        "type": "webhook",
        "url": url,
        "secret": SECRET,
        "allow_private": True,
        "timeout": 2,
        **overrides,
    }
    built = WebhookNotifier("hook", table)
    _open.append(built)
    return built


def test_signed_json_that_standardwebhooks_verifies() -> None:
    with peers.HttpReceiver(verifying) as receiver:
        n = notifier(f"{receiver.url}/in", headers={"X-Team": "ops"})
        n.send(reminder())
        n.close()
        [request] = receiver.wait_for(1)
    assert request.method == "POST" and request.path == "/in"
    assert request.header("webhook-id") == "rem-1"
    assert request.header("x-team") == "ops"
    assert request.header("content-type").startswith("application/json")
    event = Webhook(SECRET).verify(request.body, request.headers)
    assert event["type"] == "reminder.due"
    data = event["data"]
    assert data["idempotency_key"] == "rem-1"
    assert data["late"] is True
    assert data["title"].startswith("Late: Reunión")
    assert data["start"] == "2025-09-02T10:00:00-06:00"
    assert data["start_utc"] == "2025-09-02T16:00:00Z"
    assert data["offset"] == "PT1H"
    assert data["entry"]["location"] == "Palacio Nacional"


def test_a_wrong_secret_fails_verification() -> None:
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with (
        peers.HttpReceiver(verifying) as receiver,
        pytest.raises(PermanentNotifierError, match="401"),
    ):
        notifier(receiver.url, secret=other).send(reminder())


@pytest.mark.parametrize(
    ("status", "headers", "error", "attrs"),
    [
        (410, {}, PermanentNotifierError, {"gone": True}),
        (404, {}, PermanentNotifierError, {"gone": False}),
        (302, {"location": "http://127.0.0.1:1/elsewhere"}, PermanentNotifierError, {}),
        (503, {}, RetryableNotifierError, {"retry_after": None}),
        (408, {}, RetryableNotifierError, {}),
        (429, {"retry-after": "120"}, RetryableNotifierError, {"retry_after": 120.0}),
    ],
)
def test_status_mapping(
    status: int, headers: dict[str, str], error: type[Exception], attrs: dict[str, Any]
) -> None:
    with peers.HttpReceiver(lambda _r: (status, headers, b"")) as receiver:
        with pytest.raises(error) as caught:
            notifier(receiver.url).send(reminder())
        assert len(receiver.requests) == 1  # a redirect is not followed
    for name, value in attrs.items():
        assert getattr(caught.value, name) == value


def test_retry_after_as_http_date() -> None:
    now = datetime(2025, 9, 2, 15, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert _http.parse_retry_after(later, now) == 90
    assert _http.parse_retry_after("soon", now) is None


def test_timeout_is_retryable() -> None:
    release = threading.Event()

    def slow(_request: peers.HttpRequest) -> peers.Response:
        release.wait(5)
        return 200, {}, b""

    with peers.HttpReceiver(slow) as receiver:
        try:
            with pytest.raises(RetryableNotifierError, match="timed out"):
                notifier(receiver.url, timeout=0.2).send(reminder())
        finally:
            release.set()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:192.168.1.1]/hook",
        "http://100.100.100.200/",
    ],
)
def test_private_literal_addresses_are_refused_at_start(url: str) -> None:
    with pytest.raises(ConfigError, match="allow_private") as caught:
        notifier(url, allow_private=False)
    assert caught.value.key == "notifiers.hook.url"


def test_names_resolving_to_private_addresses_are_refused_at_send() -> None:
    with peers.HttpReceiver() as receiver:
        n = notifier(f"http://localhost:{receiver.port}/hook", allow_private=False)
        with pytest.raises(PermanentNotifierError, match="non-public"):
            n.send(reminder())
        assert receiver.requests == []


def test_the_request_goes_to_the_address_that_was_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the name answers a checked address, then another one. The request
    must go to the address that was checked, still naming the host."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "hook.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        # The first answer is the receiver (accepted as public below); any later one is
        # an address where nothing listens, as a rebinding attacker's would be.
        return real("127.0.0.1" if len(lookups) == 1 else "127.0.0.2", port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    monkeypatch.setattr(addresses_module, "is_public", lambda address: str(address) == "127.0.0.1")
    with peers.HttpReceiver(verifying) as receiver:
        n = notifier(f"http://hook.test:{receiver.port}/in", allow_private=False)
        n.send(reminder())
        [request] = receiver.wait_for(1)
    assert lookups == ["hook.test"]  # resolved once, by the check
    assert request.header("host") == f"hook.test:{receiver.port}"
    assert request.path == "/in"


def _resolving(monkeypatch: pytest.MonkeyPatch, name: str, addresses: list[str]) -> None:
    """Make ``name`` resolve to ``addresses`` (in that order), all accepted as public."""
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return real(host, port, *args, **kwargs)
        return [info for a in addresses for info in real(a, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(addresses_module, "is_public", lambda address: str(address) in addresses)


def test_a_dead_address_falls_back_to_the_next_checked_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name with two addresses, the first refusing connections (one server down, or
    no route): the reminder still goes out, once, to the second."""
    with peers.HttpReceiver(verifying) as receiver:
        # Nothing listens on 127.0.0.2 at the receiver's port: connection refused.
        _resolving(monkeypatch, "hook.test", ["127.0.0.2", "127.0.0.1"])
        n = notifier(f"http://hook.test:{receiver.port}/in", allow_private=False)
        n.send(reminder())
        [request] = receiver.wait_for(1)
    assert request.header("host") == f"hook.test:{receiver.port}"
    assert len(receiver.requests) == 1


def test_every_address_dead_is_retryable_and_names_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = peers.free_port()
    _resolving(monkeypatch, "hook.test", ["127.0.0.2", "127.0.0.3"])
    n = notifier(f"http://hook.test:{port}/secret-path", allow_private=False)
    with pytest.raises(RetryableNotifierError) as caught:
        n.send(reminder())
    message = str(caught.value)
    assert "any of 2 addresses" in message
    assert "127.0.0.2" in message and "127.0.0.3" in message
    assert "secret-path" not in message


def test_fallback_stays_within_the_one_connect_timeout() -> None:
    """Blackholed addresses use up the connect timeout: the next address gets what is
    left, not a fresh timeout each, so a send takes no longer than with one address."""
    clock = [1000.0]
    given: list[float] = []

    def blackhole(request: httpx.Request) -> httpx.Response:
        connect = request.extensions["timeout"]["connect"]
        given.append(connect)
        clock[0] += connect * 0.6 if len(given) == 1 else connect  # waits, then gives up
        raise httpx.ConnectTimeout("timed out", request=request)

    client = httpx.Client(transport=httpx.MockTransport(blackhole), timeout=10)
    with pytest.raises(RetryableNotifierError) as caught:
        _http.post(
            notifier("https://hook.example.org/in"),
            client,
            httpx.URL("https://hook.example.org/in"),
            content=b"{}",
            headers={},
            now=now_utc(),
            connect_to=["203.0.113.1", "203.0.113.2", "203.0.113.3"],
            monotonic=lambda: clock[0],
        )
    client.close()
    assert given == [10, pytest.approx(4)]  # the third is never tried: no time left
    assert "any of 2 addresses" in str(caught.value)


def test_a_name_is_resolved_in_the_ascii_form_it_is_sent_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """faß: IDNA 2008 (Host, SNI) is xn--fa-hia; the resolver's own IDNA 2003 would look up
    "fass", another domain. The check and the connection must be for the same name."""
    with peers.HttpReceiver(verifying) as receiver:
        _resolving(monkeypatch, "xn--fa-hia.test", ["127.0.0.1"])
        n = notifier(f"http://faß.test:{receiver.port}/in", allow_private=False)
        n.send(reminder())
        [request] = receiver.wait_for(1)
    assert request.header("host") == f"xn--fa-hia.test:{receiver.port}"


def test_a_server_that_answered_is_not_tried_again_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fallback is for connections that were never made: a 503 from the first address
    is retried later by the dispatcher, not re-sent to the second at once."""
    with peers.HttpReceiver(lambda request: (503, {}, b"busy")) as receiver:
        # 127.0.0.1 answers 503; nothing listens on 127.0.0.2 (it would be refused).
        _resolving(monkeypatch, "hook.test", ["127.0.0.1", "127.0.0.2"])
        n = notifier(f"http://hook.test:{receiver.port}/in", allow_private=False)
        with pytest.raises(RetryableNotifierError, match="503"):
            n.send(reminder())
        assert len(receiver.requests) == 1


def _pinned_request(url: str, address: str) -> httpx.Request:
    """The request ``_http.post`` makes for ``url`` pinned to ``address`` (not sent)."""
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        _http.post(
            notifier("https://hook.example.org/in"),
            client,
            httpx.URL(url),
            content=b"{}",
            headers={},
            now=now_utc(),
            connect_to=[address],
        )
    [request] = sent
    return request


def test_https_to_a_checked_address_keeps_the_name_for_tls() -> None:
    """With https, the pinned request still sends the name as SNI (and so checks the
    certificate against it)."""
    request = _pinned_request("https://hook.example.org:8443/in", "203.0.113.7")
    assert str(request.url) == "https://203.0.113.7:8443/in"
    assert request.headers["host"] == "hook.example.org:8443"
    assert request.extensions["sni_hostname"] == "hook.example.org"


def test_https_to_a_checked_address_verifies_the_name_s_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real TLS handshake with the request pinned to 127.0.0.1: the server sees the
    name as SNI, and the certificate (issued for the name only) is accepted."""
    tls = peers.make_tls(tmp_path, names=("hook.test",))
    server_names: list[str | None] = []
    tls.server_context.sni_callback = lambda _sock, name, _ctx: server_names.append(name)
    with peers.HttpReceiver(verifying, tls=tls.server_context) as receiver:
        _resolving(monkeypatch, "hook.test", ["127.0.0.1"])
        n = notifier(f"https://hook.test:{receiver.port}/in", allow_private=False)
        n.clients.close()
        n.clients = _http.Clients(  # trusts the test CA instead of the system's
            timeout=5, headers={}, verify=ssl.create_default_context(cafile=str(tls.ca_file))
        )
        n.send(reminder())
        [request] = receiver.wait_for(1)
    assert server_names == ["hook.test"]
    assert request.header("host") == f"hook.test:{receiver.port}"


def test_an_international_name_is_sent_as_its_ascii_form_for_tls() -> None:
    request = _pinned_request("https://münchen.example/in", "203.0.113.7")
    assert request.headers["host"] == "xn--mnchen-3ya.example"
    assert request.extensions["sni_hostname"] == "xn--mnchen-3ya.example"


@pytest.mark.parametrize("secret", ["hunter2", "whsec_not-base64!!", "whsec_c2hvcnQ="])
def test_bad_secret_is_a_config_error_without_the_value(secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        notifier("https://example.org/hook", secret=secret)
    assert secret not in str(caught.value)
    assert caught.value.key == "notifiers.hook.secret"


def test_reserved_headers_cannot_be_overridden() -> None:
    with pytest.raises(ConfigError, match=r"(?i)webhook-id"):
        notifier("https://example.org/hook", headers={"Webhook-Id": "x"})


def test_url_path_is_not_shown_in_errors() -> None:
    port = peers.free_port()
    with pytest.raises(RetryableNotifierError) as caught:
        notifier(f"http://127.0.0.1:{port}/services/T000/B000/XXXXSECRET").send(reminder())
    assert "XXXXSECRET" not in str(caught.value)


def test_signature_timestamp_is_current() -> None:
    with peers.HttpReceiver() as receiver:
        notifier(receiver.url).send(reminder())
        [request] = receiver.wait_for(1)
    assert abs(int(request.header("webhook-timestamp")) - now_utc().timestamp()) < 60


def test_webhook_non_ascii_header_value_is_a_config_error(
    run_cli: Callable[..., Result], add_to_config: Callable[[str], None]
) -> None:
    """`headers = { "X-Team" = "Ñandú" }` makes notify-test (and the daemon at start)
    die with a UnicodeEncodeError traceback from httpx instead of a config error."""
    add_to_config(
        """
        [notifiers.hook]
        type = "webhook"
        url = "http://127.0.0.1:1/hook"
        allow_private = true
        headers = { "X-Team" = "Ñandú" }
        """,
    )
    result = run_cli("notify-test", "hook", "--sample")
    assert result.exit_code == 2
    assert "notifiers.hook.headers" in result.output


@pytest.mark.parametrize(
    "headers",
    ['{ "bad header" = "x" }', '{ "X-Team" = "a\\nb" }'],
    ids=["space-in-name", "newline-in-value"],
)
def test_webhook_invalid_header_is_a_config_error(
    run_cli: Callable[..., Result], add_to_config: Callable[[str], None], headers: str
) -> None:
    """An illegal header name or value is accepted at start and then fails every send
    as *retryable* (the daemon retries a config typo for an hour); it is a config error."""
    add_to_config(
        f"""
        [notifiers.hook]
        type = "webhook"
        url = "http://127.0.0.1:1/hook"
        allow_private = true
        headers = {headers}
        """,
    )
    result = run_cli("notify-test", "hook", "--sample")
    assert result.exit_code == 2, result.output
    assert "notifiers.hook.headers" in result.output
