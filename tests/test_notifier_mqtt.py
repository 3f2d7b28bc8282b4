"""mqtt notifier against the real Mosquitto broker on 127.0.0.1:1883."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import peers
import pytest

from calendar_svc.config import DisplayConfig
from calendar_svc.errors import ConfigError, PermanentNotifierError, RetryableNotifierError
from calendar_svc.notifiers import Reminder
from calendar_svc.notifiers.mqtt import MqttNotifier
from calendar_svc.timezones import UTC


@pytest.fixture
def broker() -> None:
    if not peers.broker_answers():
        pytest.skip("no MQTT broker answers on 127.0.0.1:1883 (start mosquitto)")


def reminder() -> Reminder:
    return peers.reminder(
        key="rem-mqtt-1",
        calendar="trip",
        start=datetime(2025, 9, 3, 18, 30),
        display=DisplayConfig(),
        uid="quito-arrival",
        title="Llegada a Quito",
        location="Aeropuerto Mariscal Sucre",
        city="Quito",
        start_tz="America/Guayaquil",
        categories=["flight"],
    )


def notifier(topic: str, **overrides: Any) -> MqttNotifier:
    table = {"type": "mqtt", "host": peers.LOOPBACK, "topic": topic, "timeout": 2, **overrides}
    return MqttNotifier("home", table)


def test_json_payload_with_qos_1(broker: None) -> None:
    with peers.MqttSubscriber() as subscriber:
        notifier(subscriber.topic).send(reminder())
        [message] = subscriber.wait_for(1)
    assert message.qos == 1
    assert not message.retain
    payload = json.loads(message.payload)
    assert payload["type"] == "reminder.due"
    data = payload["data"]
    assert data["idempotency_key"] == "rem-mqtt-1"
    assert data["timezone"] == "America/Guayaquil"
    assert data["start"] == "2025-09-03T18:30:00-05:00"
    assert data["body"].startswith("Wed 3 Sep 2025, 18:30 -05 (UTC-05:00)")


def test_the_payload_is_stamped_by_the_notifier_s_clock() -> None:
    at = datetime(2025, 9, 3, 22, 30, tzinfo=UTC)
    table = {"type": "mqtt", "host": peers.LOOPBACK, "topic": "t", "timeout": 2}
    payload = json.loads(MqttNotifier("home", table, clock=lambda: at).payload(reminder()))
    assert payload["timestamp"] == "2025-09-03T22:30:00Z"


def test_retained_message_reaches_a_later_subscriber(broker: None) -> None:
    with peers.MqttSubscriber() as first:
        topic = first.topic
        notifier(topic, retain=True).send(reminder())
        first.wait_for(1)
    try:
        late = peers.MqttSubscriber()
        late.topic = topic
        with late:
            [message] = late.wait_for(1)
        assert message.retain
    finally:
        # An empty retained message clears it from the broker.
        import paho.mqtt.publish as publish

        publish.single(topic, b"", qos=1, retain=True, hostname=peers.LOOPBACK)


def test_refused_connection_is_retryable() -> None:
    with pytest.raises(RetryableNotifierError):
        notifier("cal/test", port=peers.free_port()).send(reminder())


def test_no_acknowledgement_within_the_wait_is_retryable() -> None:
    with (
        peers.silent_mqtt_broker() as port,
        pytest.raises(RetryableNotifierError, match="acknowledge"),
    ):
        notifier("cal/test", port=port, timeout=0.5).send(reminder())


def test_bad_credentials_are_permanent_and_not_echoed(tmp_path: Path) -> None:
    with peers.mosquitto_with_login(tmp_path, "cal", "good-password") as port:
        n = notifier("cal/test", port=port, username="cal", password="bad-password")
        with pytest.raises(PermanentNotifierError) as caught:
            n.send(reminder())
        assert "bad-password" not in str(caught.value)
        # and the right login works against the same broker
        notifier("cal/test", port=port, username="cal", password="good-password").send(reminder())


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"topic": "cal/+/x"}, "notifiers.home.topic"),
        ({"password": "x"}, "notifiers.home.password"),
        ({"ca_file": "ca.pem"}, "notifiers.home.ca_file"),
        ({"retain": "yes"}, "notifiers.home.retain"),
        ({"qos": 2}, "notifiers.home.qos"),
    ],
)
def test_config_errors(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        MqttNotifier("home", {"type": "mqtt", "host": "h", "topic": "cal/test", **overrides})
    assert caught.value.key == key
