"""``mqtt``: a JSON message per reminder to an MQTT topic (Home Assistant, Node-RED, …).

Published with QoS 1 and counted as sent only once the broker acknowledged it
(PUBACK) within ``timeout``; otherwise the reminder is retried. A connection is
opened per reminder: reminders are rare, and a short-lived connection has no
reconnect state to get wrong.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from calendar_svc.notifiers.base import Notifier
from calendar_svc.notifiers.keys import Key
from calendar_svc.notifiers.reminder import Reminder
from calendar_svc.timezones import iso_utc

# CONNACK / PUBACK reasons that retrying with the same config cannot fix.
_PERMANENT_REASONS = {
    "Bad user name or password",
    "Not authorized",
    "Client identifier not valid",
    "Bad authentication method",
    "Banned",
    "Topic Name invalid",
    "Payload format invalid",
    "Unsupported protocol version",
}


class MqttNotifier(Notifier):
    """Keys: ``host``, ``port`` (1883, or 8883 with ``tls``), ``topic``, ``retain`` (default
    false), ``username``, ``password`` (secret: ``password_env`` / ``password_credential``),
    ``tls`` (default false), ``ca_file``, ``client_id`` (prefix; a random suffix keeps
    parallel sends apart), ``timeout`` (seconds for connect and acknowledgement, default 10).
    """

    keys: ClassVar = {
        "host": Key(str),
        "port": Key(int, None, bounds=(1, 65535)),
        "topic": Key(str),
        "retain": Key(bool, False),
        "username": Key(str, None),
        "password": Key(str, None, secret=True),
        "tls": Key(bool, False),
        "ca_file": Key(str, None),
        "client_id": Key(str, "calendar-svc"),
        "timeout": Key(float, 10.0),
    }

    def __init__(self, name: str, table: Any, **kwargs: Any) -> None:
        super().__init__(name, table, **kwargs)
        s = self.settings
        topic = s["topic"]
        if not topic or "+" in topic or "#" in topic or "\0" in topic:
            raise self.config_error("topic", "a topic to publish to: not empty, no + or #")
        if s["password"] is not None and s["username"] is None:
            raise self.config_error("password", "a password needs a username")
        if s["timeout"] <= 0:
            raise self.config_error("timeout", "must be more than 0 seconds")
        self.port: int = s["port"] or (8883 if s["tls"] else 1883)
        if s["ca_file"] is not None and not s["tls"]:
            raise self.config_error("ca_file", "only used with tls = true")
        self.ca_file = self.existing_file("ca_file")

    def payload(self, reminder: Reminder) -> bytes:
        title, body = self.render(reminder)
        data = {
            "type": "reminder.due",
            "timestamp": iso_utc(self.clock()),
            "data": reminder.to_json(title=title, body=body),
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{s['client_id']}-{uuid.uuid4().hex[:8]}",
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.connect_timeout = s["timeout"]
        if s["username"] is not None:
            client.username_pw_set(s["username"], s["password"])
        if s["tls"]:
            client.tls_set_context(ssl.create_default_context(cafile=self.ca_file))
        return client

    def send(self, reminder: Reminder) -> None:
        s = self.settings
        where = f"{s['host']}:{self.port}"
        payload = self.payload(reminder)
        timeout: float = s["timeout"]
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            return max(0.0, deadline - time.monotonic())

        connected = threading.Event()
        connack: list[ReasonCode] = []
        puback: list[ReasonCode] = []

        def on_connect(_c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            connack.append(reason)
            connected.set()

        def on_publish(_c: Any, _u: Any, _mid: Any, reason: ReasonCode, _p: Any) -> None:
            puback.append(reason)

        client = self._client()
        client.on_connect = on_connect
        client.on_publish = on_publish
        try:
            client.connect(s["host"], self.port, keepalive=60)
        except ssl.SSLCertVerificationError as exc:
            raise self.permanent(
                f"{where}: TLS certificate not trusted: {exc.verify_message}"
            ) from None
        except (OSError, ValueError) as exc:
            raise self.retryable(f"{where}: {type(exc).__name__}: {exc}") from None
        client.loop_start()
        try:
            if not connected.wait(remaining()):
                raise self.retryable(f"{where}: no answer to CONNECT within {timeout:g} s")
            self._check_reason(connack[0], f"{where} refused the connection")
            info = client.publish(s["topic"], payload, qos=1, retain=s["retain"])
            try:
                info.wait_for_publish(remaining())
                published = info.is_published()
            except (ValueError, RuntimeError) as exc:
                raise self.retryable(f"{where}: publish failed: {exc}") from None
            if not published:
                raise self.retryable(
                    f"{where}: the broker did not acknowledge within {timeout:g} s"
                )
            if puback:
                self._check_reason(puback[0], f"{where} refused the message")
        finally:
            client.disconnect()
            client.loop_stop()

    def _check_reason(self, reason: ReasonCode, what: str) -> None:
        if not reason.is_failure:
            return
        if str(reason) in _PERMANENT_REASONS:
            raise self.permanent(f"{what}: {reason}")
        raise self.retryable(f"{what}: {reason}")
