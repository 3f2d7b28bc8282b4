"""``ntfy``: a push notification to a phone through an ntfy server (https://ntfy.sh).

Published as ntfy's publish API defines it: ``POST <server>/<topic>`` with the
body as the message and ``Title``, ``Priority``, ``Tags``, ``Click`` and
``X-Sequence-ID`` headers. The sequence id is the idempotency key, so a retry
replaces the notification on the phone instead of adding a second one.

On ntfy.sh a topic name is the only thing between a stranger and your phone,
so the topic is a secret: it may come from ``topic_env`` / ``topic_credential``
and is never logged.

The server URL comes from config, and like the webhook's it may not point at a
non-public address (loopback, the LAN, metadata endpoints, IPv4 hidden in
IPv6: ``addresses``) unless the channel sets ``allow_private = true`` (a
self-hosted ntfy on the LAN); the request goes to the address that was checked.
"""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar

import httpx

from calendar_svc import addresses
from calendar_svc.errors import NonPublicAddressError
from calendar_svc.notifiers import _http
from calendar_svc.notifiers.base import Notifier
from calendar_svc.notifiers.keys import Key
from calendar_svc.notifiers.reminder import Reminder
from calendar_svc.notifiers.tokens import message_id_token

# ntfy's own rules for topic names and priorities.
_TOPIC = re.compile(r"^[-_A-Za-z0-9]{1,64}$")
PRIORITIES = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}


def header_text(value: str) -> str:
    """A header value ntfy reads back as ``value``: RFC 2047 for non-ASCII text.

    HTTP headers are Latin-1 at best; ntfy decodes ``=?UTF-8?B?…?=``.
    """
    value = " ".join(value.split())  # no newlines in a header
    if value.isascii():
        return value
    return "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="


class NtfyNotifier(Notifier):
    """Keys: ``server`` (default ``https://ntfy.sh``), ``topic`` (secret: ``topic_env`` /
    ``topic_credential``), ``token`` (secret, access token sent as a bearer), ``priority``
    (1–5 or min/low/default/high/max), ``tags`` (list), ``click`` (URL opened on tap; default
    the entry's URL, else the calendar's feed), ``timeout`` (seconds, default 15),
    ``allow_private`` (default false: a server at a non-public address is refused).
    """

    keys: ClassVar = {
        "server": Key(str, "https://ntfy.sh"),
        "topic": Key(str, secret=True),
        "token": Key(str, None, secret=True),
        "priority": Key(object, "default"),
        "tags": Key(list, ["calendar"]),
        "click": Key(str, None),
        "timeout": Key(float, 15.0),
        "allow_private": Key(bool, False),
    }

    def __init__(self, name: str, table: Any, **kwargs: Any) -> None:
        super().__init__(name, table, **kwargs)
        s = self.settings
        if not _TOPIC.match(s["topic"]):
            # Never echo the topic.
            raise self.config_error("topic", "a topic is 1 to 64 letters, digits, - or _")
        try:
            server = httpx.URL(s["server"])
        except httpx.InvalidURL as exc:
            raise self.config_error("server", f"not a URL: {exc}") from None
        if server.scheme not in ("http", "https") or not server.host:
            raise self.config_error("server", "expected an http:// or https:// URL")
        self.url = server.join(server.path.rstrip("/") + "/" + s["topic"])
        self.allow_private: bool = s["allow_private"]
        if not self.allow_private:
            # A name is checked on every send, since what it resolves to can change.
            try:
                addresses.check_literal(server.host)
            except NonPublicAddressError as exc:
                raise self.config_error("server", str(exc)) from None
        self.priority = self._priority(s["priority"])
        if s["timeout"] <= 0:
            raise self.config_error("timeout", "must be more than 0 seconds")
        auth = {"authorization": f"Bearer {s['token']}"} if s["token"] else {}
        self.clients = _http.Clients(timeout=s["timeout"], headers=auth)

    def _priority(self, value: object) -> int:
        if isinstance(value, str) and value.lower() in PRIORITIES:
            return PRIORITIES[value.lower()]
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
            return value
        raise self.config_error(
            "priority", f"expected 1 to 5 or one of {', '.join(PRIORITIES)}, got {value!r}"
        )

    def headers(self, reminder: Reminder, title: str) -> dict[str, str]:
        headers = {
            "Title": header_text(title),
            "Priority": str(self.priority),
            "X-Sequence-ID": message_id_token(reminder.idempotency_key),
        }
        # A late reminder is still worth a glance, but should look different.
        tags = [*self.settings["tags"], *(["warning"] if reminder.late else [])]
        if tags:
            headers["Tags"] = header_text(",".join(tags))
        click = self.settings["click"] or reminder.entry.url or reminder.feed_url
        if click:
            headers["Click"] = str(httpx.URL(click))  # percent-encodes a non-ASCII URL
        return headers

    def send(self, reminder: Reminder) -> None:
        connect_to = [] if self.allow_private else _http.check_public_host(self, self.url)
        title, body = self.render(reminder)
        now = self.clock()
        _http.post(
            self,
            self.clients.get(),
            self.url,
            content=body.encode("utf-8"),
            headers={"content-type": "text/plain; charset=utf-8", **self.headers(reminder, title)},
            now=now,
            connect_to=connect_to,
        )

    def close(self) -> None:
        self.clients.close()
