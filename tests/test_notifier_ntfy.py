"""ntfy notifier against a local receiver that checks requests per ntfy's publish API."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import peers
import pytest

from calendar_svc.config import DisplayConfig
from calendar_svc.errors import ConfigError, PermanentNotifierError, RetryableNotifierError
from calendar_svc.notifiers import Reminder
from calendar_svc.notifiers.ntfy import NtfyNotifier

TOPIC = "calendar_Xk2p9QzR"
TOKEN = "tk_0123456789abcdefghijklmnopq"


def reminder(*, url: str = "", late: bool = False, feed_url: str | None = None) -> Reminder:
    return peers.reminder(
        key="trip|sheinbaum|20250902T160000Z|3600|phone",
        calendar="trip",
        offset=timedelta(minutes=15),
        late=late,
        display=DisplayConfig(),
        feed_url=feed_url,
        uid="sheinbaum",
        title="Reunión bilateral — Sheinbaum",
        city="Ciudad de México",
        url=url,
        categories=[],
    )


@pytest.fixture
def ntfy() -> Iterator[tuple[peers.NtfyServer, peers.HttpReceiver]]:
    server = peers.NtfyServer(topic=TOPIC, token=TOKEN)
    with peers.HttpReceiver(server.respond) as receiver:
        yield server, receiver


_open: list[NtfyNotifier] = []


@pytest.fixture(autouse=True)
def _close_notifiers() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def notifier(server_url: str, **overrides: Any) -> NtfyNotifier:
    """An ntfy channel; the receivers are on loopback, which only ``allow_private`` permits."""
    table = {
        "type": "ntfy",
        "server": server_url,
        "topic": TOPIC,
        "token": TOKEN,
        "timeout": 2,
        "allow_private": True,
        **overrides,
    }
    built = NtfyNotifier("phone", table)
    _open.append(built)
    return built


def test_publishes_as_the_ntfy_api_defines(ntfy: Any) -> None:
    server, receiver = ntfy
    notifier(receiver.url, priority="high", tags=["date", "mx"]).send(
        reminder(url="https://example.org/agenda/día-2")
    )
    [request] = receiver.wait_for(1)
    [message] = server.published
    assert request.method == "POST" and request.path == f"/{TOPIC}"
    assert message["title"] == "In 15 minutes: Reunión bilateral — Sheinbaum"
    assert message["message"].startswith("Tue 2 Sep 2025, 10:00 CST (UTC-06:00)")
    assert message["priority"] == "4"
    assert message["tags"] == ["date", "mx"]
    assert message["click"] == "https://example.org/agenda/d%C3%ADa-2"
    assert request.header("authorization") == f"Bearer {TOKEN}"
    # The key holds characters ntfy refuses; the sequence id is a stable digest of it.
    sequence = message["sequence_id"]
    notifier(receiver.url).send(reminder())
    assert server.published[-1]["sequence_id"] == sequence


def test_click_falls_back_to_the_feed_and_late_is_tagged(ntfy: Any) -> None:
    server, receiver = ntfy
    notifier(receiver.url).send(reminder(late=True, feed_url="https://cal.example.org/trip"))
    receiver.wait_for(1)
    [message] = server.published
    assert message["click"] == "https://cal.example.org/trip"
    assert "warning" in message["tags"]
    assert message["title"].startswith("Late: ")


def test_wrong_token_is_permanent(ntfy: Any) -> None:
    _, receiver = ntfy
    with pytest.raises(PermanentNotifierError, match="403"):
        notifier(receiver.url, token="tk_wrong_wrong_wrong_wrong_00").send(reminder())


def test_rate_limit_is_retryable_with_retry_after(ntfy: Any) -> None:
    server, receiver = ntfy
    server.failure = (429, {"retry-after": "30"})
    with pytest.raises(RetryableNotifierError) as caught:
        notifier(receiver.url).send(reminder())
    assert caught.value.retry_after == 30
    assert TOPIC not in str(caught.value)


def test_topic_never_reaches_logs_or_errors(ntfy: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    server, receiver = ntfy
    server.failure = (500, {})
    with pytest.raises(RetryableNotifierError) as caught:
        notifier(receiver.url).send(reminder())
    # httpx logs each request URL at INFO; the topic in it is scrubbed.
    assert "HTTP Request" in caplog.text
    assert TOPIC not in caplog.text and TOPIC not in str(caught.value)
    assert TOKEN not in caplog.text


def test_topic_from_env(ntfy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server, receiver = ntfy
    monkeypatch.setenv("TEST_NTFY_TOPIC", TOPIC)
    table = {
        "type": "ntfy",
        "server": receiver.url,
        "topic_env": "TEST_NTFY_TOPIC",
        "token": TOKEN,
        "timeout": 2,
        "allow_private": True,
    }
    built = NtfyNotifier("phone", table)
    _open.append(built)
    built.send(reminder())
    receiver.wait_for(1)
    assert server.published[0]["topic"] == TOPIC


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"topic": "has/slash"}, "notifiers.phone.topic"),
        ({"priority": 9}, "notifiers.phone.priority"),
        ({"priority": "loud"}, "notifiers.phone.priority"),
        ({"server": "ftp://example.org"}, "notifiers.phone.server"),
        ({"tags": "one"}, "notifiers.phone.tags"),
    ],
)
def test_config_errors(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        notifier("https://ntfy.example.org", **overrides)
    assert caught.value.key == key
    assert "has/slash" not in str(caught.value)


def test_a_private_server_is_refused_unless_allowed(ntfy: Any) -> None:
    """Like the webhook: a literal loopback server at start, a name resolving to loopback
    at send (permanent: retrying cannot make it public); nothing reaches the server."""
    _, receiver = ntfy
    with pytest.raises(ConfigError, match="allow_private") as caught:
        notifier(receiver.url, allow_private=False)
    assert caught.value.key == "notifiers.phone.server"
    named = notifier(f"http://localhost:{receiver.port}", allow_private=False)
    with pytest.raises(PermanentNotifierError, match="non-public"):
        named.send(reminder())
    assert receiver.requests == []
