"""One contract, every built-in notifier, each against its real peer.

A ``Channel`` knows how to configure one notifier type for its peer and how to
read back what the peer received; the tests below are the same for all.
"""

from __future__ import annotations

import email
import email.policy
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import peers
import pytest
from standardwebhooks import Webhook

from calendar_svc.errors import PermanentNotifierError, RetryableNotifierError
from calendar_svc.notifiers import Notifier, Reminder, build_notifier, notifier_class

# Apprise loads its plugins with `imghdr` (deprecated since Python 3.11), nothing we can change.
pytestmark = pytest.mark.filterwarnings("ignore:'imghdr' is deprecated:DeprecationWarning")

TYPES = ["console", "smtp", "webhook", "ntfy", "mqtt", "apprise"]
KEY = "rem-7f3a9c-sheinbaum-PT1H"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SMTP_PASSWORD = "s3cret-smtp-pässword"
NTFY_TOPIC = "cal_9f8e7d6c5b4a"
NTFY_TOKEN = "tk_abcdefghijklmnopqrstuvwx"
MQTT_PASSWORD = "mqtt-Secret-42"
APPRISE_PASSWORD = "apprise-pw-777"


@dataclass
class Received:
    title: str
    body: str
    key: str | None
    # The payload's own feed_url field, for the types whose payload has one (JSON).
    feed_url: str | None = None


@dataclass
class Channel:
    type: str
    table: dict[str, Any]
    received: Callable[[], Received]
    refused_table: dict[str, Any] | None
    # Makes the peer refuse the next delivery for good; None if the type has no such case.
    permanent_table: Callable[[], dict[str, Any]] | None
    secrets: tuple[str, ...]
    passes_key: bool = True


def reminder(feed_url: str | None = None) -> Reminder:
    return peers.reminder(
        key=KEY,
        feed_url=feed_url,
        title="Reunión bilateral con la Presidenta Claudia Sheinbaum 🇲🇽",
        city="Ciudad de México",
        url="https://example.org/día",
        description="Año 2025",
        categories=["reunión"],
    )


# --- one builder per type ------------------------------------------------------------------


def console_channel(capsys: pytest.CaptureFixture[str], **_: Any) -> Iterator[Channel]:
    def received() -> Received:
        line = capsys.readouterr().out.strip().splitlines()[-1]
        text, _, key = line.rpartition(" [")
        title, _, body = text.partition(" | ")
        return Received(title, body, key.rstrip("]"))

    yield Channel("console", {"type": "console"}, received, None, None, ())


def smtp_channel(tmp_path: Path, **_: Any) -> Iterator[Channel]:
    tls = peers.make_tls(tmp_path)
    with peers.smtp_server(starttls=tls.server_context, login=("cal", SMTP_PASSWORD)) as (
        recorder,
        port,
    ):
        table = {
            "type": "smtp",
            "host": peers.LOOPBACK,
            "port": port,
            "security": "starttls",
            "username": "cal",
            "password": SMTP_PASSWORD,
            "from": "calendar@example.org",
            "to": ["ops@example.org"],
            "ca_file": str(tls.ca_file),
            "timeout": 5,
        }

        def received() -> Received:
            mail = recorder.wait_for(1)[-1]
            msg = email.message_from_bytes(mail.data, policy=email.policy.default)
            body = msg.get_content().strip().splitlines()[0]
            key = str(msg["Message-ID"]).strip("<>").split("@")[0]
            return Received(str(msg["Subject"]), body, key)

        yield Channel(
            "smtp",
            table,
            received,
            refused_table={**table, "port": peers.free_port()},
            permanent_table=lambda: {**table, "to": ["nobody@invalid.example"]},
            secrets=(SMTP_PASSWORD,),
        )


def _webhook_verifier(request: peers.HttpRequest) -> peers.Response:
    if request.path == "/gone-for-good":
        return 404, {}, b"not found"
    try:
        Webhook(WEBHOOK_SECRET).verify(request.body, request.headers)
    except Exception:
        return 401, {}, b"bad signature"
    return 204, {}, b""


def webhook_channel(**_: Any) -> Iterator[Channel]:
    with peers.HttpReceiver(_webhook_verifier) as receiver:
        table = {
            "type": "webhook",
            "url": f"{receiver.url}/hook",
            "secret": WEBHOOK_SECRET,
            "allow_private": True,
            "timeout": 3,
        }

        def received() -> Received:
            request = receiver.wait_for(1)[-1]
            data = request.json()["data"]
            return Received(
                data["title"], data["body"], request.header("webhook-id"), data["feed_url"]
            )

        yield Channel(
            "webhook",
            table,
            received,
            refused_table={**table, "url": f"http://{peers.LOOPBACK}:{peers.free_port()}/hook"},
            permanent_table=lambda: {**table, "url": f"{receiver.url}/gone-for-good"},
            secrets=(WEBHOOK_SECRET, WEBHOOK_SECRET.removeprefix("whsec_")),
        )


def ntfy_channel(**_: Any) -> Iterator[Channel]:
    server = peers.NtfyServer(topic=NTFY_TOPIC, token=NTFY_TOKEN)
    with peers.HttpReceiver(server.respond) as receiver:
        table = {
            "type": "ntfy",
            "server": receiver.url,
            "topic": NTFY_TOPIC,
            "token": NTFY_TOKEN,
            "timeout": 3,
            "allow_private": True,  # the peer is on loopback
        }

        def received() -> Received:
            receiver.wait_for(1)
            message = server.published[-1]
            return Received(message["title"], message["message"], message["sequence_id"])

        yield Channel(
            "ntfy",
            table,
            received,
            refused_table={**table, "server": f"http://{peers.LOOPBACK}:{peers.free_port()}"},
            permanent_table=lambda: {**table, "token": "tk_revoked_token_0000000000"},
            secrets=(NTFY_TOPIC, NTFY_TOKEN),
        )


def mqtt_channel(tmp_path: Path, **_: Any) -> Iterator[Channel]:
    if not peers.broker_answers():
        pytest.skip("no MQTT broker answers on 127.0.0.1:1883 (start mosquitto)")
    with peers.MqttSubscriber() as subscriber:
        table = {
            "type": "mqtt",
            "host": peers.LOOPBACK,
            "topic": subscriber.topic,
            "username": "cal",
            "password": MQTT_PASSWORD,
            "timeout": 3,
        }

        def received() -> Received:
            data = json.loads(subscriber.wait_for(1)[-1].payload)["data"]
            return Received(data["title"], data["body"], data["idempotency_key"], data["feed_url"])

        stack: list[Any] = []

        def permanent() -> dict[str, Any]:
            cm = peers.mosquitto_with_login(tmp_path, "cal", "the-right-password")
            port = cm.__enter__()
            stack.append(cm)
            return {**table, "port": port}

        try:
            yield Channel(
                "mqtt",
                table,
                received,
                refused_table={**table, "port": peers.free_port()},
                permanent_table=permanent,
                secrets=(MQTT_PASSWORD,),
            )
        finally:
            for cm in stack:
                cm.__exit__(None, None, None)


def apprise_channel(**_: Any) -> Iterator[Channel]:
    with peers.HttpReceiver() as receiver:
        url = f"json://cal:{APPRISE_PASSWORD}@{peers.LOOPBACK}:{receiver.port}/notify"
        table = {"type": "apprise", "urls": [url]}

        def received() -> Received:
            data = receiver.wait_for(1)[-1].json()
            return Received(data["title"], data["message"], None)

        yield Channel(
            "apprise",
            table,
            received,
            refused_table={
                "type": "apprise",
                "urls": [f"json://{peers.LOOPBACK}:{peers.free_port()}/notify"],
            },
            permanent_table=None,
            secrets=(APPRISE_PASSWORD,),
            passes_key=False,
        )


BUILDERS = {
    "console": console_channel,
    "smtp": smtp_channel,
    "webhook": webhook_channel,
    "ntfy": ntfy_channel,
    "mqtt": mqtt_channel,
    "apprise": apprise_channel,
}


@pytest.fixture(params=TYPES)
def channel(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Channel]:
    yield from BUILDERS[request.param](tmp_path=tmp_path, capsys=capsys)


def make(table: dict[str, Any]) -> Notifier:
    return build_notifier("contract", table)


def attempt(table: dict[str, Any]) -> Exception:
    notifier = make(table)
    try:
        with pytest.raises((RetryableNotifierError, PermanentNotifierError)) as caught:
            notifier.send(reminder())
    finally:
        notifier.close()
    return caught.value


# --- the contract --------------------------------------------------------------------------


def test_delivers_non_ascii_text(channel: Channel) -> None:
    sent = reminder()
    notifier = make(channel.table)
    try:
        assert notifier.send(sent) is None
    finally:
        notifier.close()
    got = channel.received()
    assert (
        got.title
        == sent.title
        == ("In 1 hour: Reunión bilateral con la Presidenta Claudia Sheinbaum 🇲🇽")
    )
    assert got.body == sent.body
    assert "Ciudad de México" in got.body


def test_passes_the_idempotency_key(channel: Channel) -> None:
    if not channel.passes_key:
        pytest.skip(f"{channel.type}: Apprise services have no message-id field to carry it")
    notifier = make(channel.table)
    try:
        notifier.send(reminder())
    finally:
        notifier.close()
    assert channel.received().key == KEY


def test_refused_connection_is_retryable(channel: Channel) -> None:
    if channel.refused_table is None:
        pytest.skip(f"{channel.type} has no network peer")
    error = attempt(channel.refused_table)
    assert isinstance(error, RetryableNotifierError), error


def test_rejection_is_permanent(channel: Channel) -> None:
    if channel.permanent_table is None:
        pytest.skip(f"{channel.type}: the peer cannot say 'never' (every failure is retryable)")
    error = attempt(channel.permanent_table())
    assert isinstance(error, PermanentNotifierError), error


def secret_keys(type_name: str) -> set[str]:
    """The keys the notifier class declares secret (``Key(..., secret=True)``)."""
    return {
        name
        for name, key in notifier_class(type_name).keys.items()
        if getattr(key, "secret", False)
    }


def test_secret_keys_are_found() -> None:
    """Without it, every case below would skip as "no secret key"."""
    assert secret_keys("smtp") == {"password"}


def test_never_logs_secrets(channel: Channel, caplog: pytest.LogCaptureFixture) -> None:
    declared = secret_keys(channel.type)
    if not declared:
        pytest.skip(f"{channel.type} has no secret key: nothing it could leak")
    # The channel really uses its secret keys, and the test looks for each value given
    # (or the part of it that is secret: the password inside an Apprise URL).
    given: list[str] = []
    for name in declared & set(channel.table):
        value = channel.table[name]
        given.extend(map(str, value) if isinstance(value, list) else [str(value)])
    assert given, f"the {channel.type} channel sets none of its secret keys {sorted(declared)}"
    for value in given:
        assert any(secret in str(value) for secret in channel.secrets), "not looked for"
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    notifier = make(channel.table)
    try:
        notifier.send(reminder())
        errors.append(repr(notifier))
    finally:
        notifier.close()
    if channel.refused_table is not None:
        errors.append(str(attempt(channel.refused_table)))
    if channel.permanent_table is not None:
        errors.append(str(attempt(channel.permanent_table())))
    seen = caplog.text + "\n".join(errors)
    for secret in channel.secrets:
        assert secret not in seen


FEED_URL = "https://cal.example.org/feeds/tok3n_of-the-calendar/rubio-2025-09.ics"


def test_carries_the_feed_url(channel: Channel) -> None:
    notifier = make({**channel.table, "body_template": "Subscribe: $feed_url"})
    try:
        notifier.send(reminder(feed_url=FEED_URL))
    finally:
        notifier.close()
    got = channel.received()
    assert got.body == f"Subscribe: {FEED_URL}"
    if channel.type in ("webhook", "mqtt"):
        assert got.feed_url == FEED_URL
