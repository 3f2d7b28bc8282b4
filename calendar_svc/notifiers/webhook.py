"""``webhook``: a signed JSON POST per reminder, following Standard Webhooks.

Headers (https://www.standardwebhooks.com/): ``webhook-id`` = the idempotency
key (the same on every retry, so receivers can drop duplicates),
``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` =
``v1,`` + base64 HMAC-SHA256 over ``id.timestamp.body`` with the secret in
its ``whsec_<base64>`` form. Any Standard Webhooks library verifies it.

A webhook URL comes from config, but it is still the classic server-side
request forgery hole: URLs resolving to loopback, private, link-local or cloud
metadata addresses, or to IPv6 forms that embed such an IPv4 address
(``addresses``), are refused unless the channel sets ``allow_private = true``.
The request goes to the very address that was checked (not to a second lookup
of the name), and redirects are not followed, for the same reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
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
from calendar_svc.timezones import iso_utc

SECRET_PREFIX = "whsec_"
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_RESERVED_HEADERS = {
    "content-type",
    "content-length",
    "host",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookNotifier(Notifier):
    """POSTs ``{"type": "reminder.due", "timestamp": …, "data": {…}}`` as JSON.

    Keys: ``url``, ``secret`` (secret: ``secret_env`` / ``secret_credential``,
    ``whsec_<base64>``; without one requests are unsigned), ``headers`` (table),
    ``timeout`` (seconds, default 15), ``allow_private`` (default false).
    2xx is sent; 408, 429 and 5xx are retried (``Retry-After`` honoured); 410
    means the endpoint is gone; other statuses are permanent failures.
    """

    keys: ClassVar = {
        "url": Key(str),
        "secret": Key(str, None, secret=True),
        "headers": Key(dict, {}),
        "timeout": Key(float, 15.0),
        "allow_private": Key(bool, False),
    }

    def __init__(self, name: str, table: Any, **kwargs: Any) -> None:
        super().__init__(name, table, **kwargs)
        s = self.settings
        try:
            self.url = httpx.URL(s["url"])
        except httpx.InvalidURL as exc:
            raise self.config_error("url", f"not a URL: {exc}") from None
        if self.url.scheme not in ("http", "https") or not self.url.host:
            raise self.config_error("url", "expected an http:// or https:// URL with a host")
        # Chat webhook URLs (Slack, Discord, …) carry their token in the path.
        if self.url.raw_path not in (b"", b"/"):
            self.hide(self.url.raw_path.decode("ascii"))
        self.allow_private: bool = s["allow_private"]
        self._check_literal_host()
        self.key = self._signing_key(s["secret"])
        if s["timeout"] <= 0:
            raise self.config_error("timeout", "must be more than 0 seconds")
        bad = sorted(h for h in s["headers"] if h.lower() in _RESERVED_HEADERS)
        if bad:
            raise self.config_error("headers", f"{bad[0]!r} is set by the notifier itself")
        for name, value in s["headers"].items():
            # Caught here, a typo is a config error at start instead of a send that
            # fails (and is retried) for ever.
            if not _HEADER_NAME.fullmatch(name):
                raise self.config_error("headers", f"{name!r} is not a valid HTTP header name")
            if not value.isascii() or not value.isprintable():
                raise self.config_error(
                    "headers",
                    f"the value of {name!r} must be printable ASCII (no newlines or accents)",
                )
        self.clients = _http.Clients(timeout=s["timeout"], headers=s["headers"])

    def _check_literal_host(self) -> None:
        # A name is checked on every send, since what it resolves to can change.
        if not self.allow_private:
            try:
                addresses.check_literal(self.url.host)
            except NonPublicAddressError as exc:
                raise self.config_error("url", str(exc)) from None

    def _signing_key(self, secret: str | None) -> bytes | None:
        if secret is None:
            return None
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) < 16:
            # Never echo the value.
            raise self.config_error(
                "secret",
                "expected whsec_ followed by base64 of at least 16 random bytes "
                "(e.g. python -c \"import base64,os; print('whsec_' + "
                'base64.b64encode(os.urandom(32)).decode())")',
            )
        return key

    def payload(self, reminder: Reminder) -> bytes:
        title, body = self.render(reminder)
        data = {
            "type": "reminder.due",
            "timestamp": iso_utc(self.clock()),
            "data": reminder.to_json(title=title, body=body),
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def headers(self, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        headers = {
            "content-type": "application/json; charset=utf-8",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
        if self.key is not None:
            headers["webhook-signature"] = sign(self.key, msg_id, timestamp, body)
        return headers

    def send(self, reminder: Reminder) -> None:
        addresses = [] if self.allow_private else _http.check_public_host(self, self.url)
        now = self.clock()
        body = self.payload(reminder)
        key = reminder.idempotency_key
        # A header value must be printable ASCII; other keys are mapped to a stable digest.
        msg_id = key if key.isascii() and key.isprintable() else message_id_token(key)
        headers = self.headers(msg_id, int(now.timestamp()), body)
        _http.post(
            self,
            self.clients.get(),
            self.url,
            content=body,
            headers=headers,
            now=now,
            connect_to=addresses,
        )

    def close(self) -> None:
        self.clients.close()
