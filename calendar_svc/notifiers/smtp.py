"""``smtp``: one e-mail per reminder to a list of recipients, with smtplib.

Transport security is explicit: ``starttls`` (default; the server must offer
STARTTLS, or nothing is sent: never a silent fall back to plaintext),
``tls`` (implicit TLS, port 465) or ``plain`` (only for a trusted relay on the
same host or network). Certificates are always verified, against the system
store or ``ca_file``.
"""

from __future__ import annotations

import base64
import logging
import smtplib
import ssl
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, ClassVar

from calendar_svc.errors import NotifierError
from calendar_svc.logs import log_event
from calendar_svc.notifiers.base import Notifier
from calendar_svc.notifiers.keys import Key
from calendar_svc.notifiers.reminder import Reminder
from calendar_svc.notifiers.tokens import message_id_token

log = logging.getLogger(__name__)

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "plain": 25}


class SmtpNotifier(Notifier):
    """Sends a UTF-8 text e-mail whose ``Message-ID`` is derived from the idempotency key.

    Keys: ``host``, ``port`` (587 / 465 / 25 by ``security``), ``security``,
    ``username``, ``password`` (secret: ``password_env`` / ``password_credential``),
    ``from``, ``to`` (list), ``ca_file``, ``timeout`` (seconds, default 15).
    """

    keys: ClassVar = {
        "host": Key(str),
        "port": Key(int, None, bounds=(1, 65535)),
        "security": Key(str, "starttls", choices=("starttls", "tls", "plain")),
        "username": Key(str, None),
        "password": Key(str, None, secret=True),
        "from": Key(str),
        "to": Key(list),
        "ca_file": Key(str, None),
        "timeout": Key(float, 15.0),
    }

    def __init__(self, name: str, table: Any, **kwargs: Any) -> None:
        super().__init__(name, table, **kwargs)
        s = self.settings
        self.security: str = s["security"]
        self.port: int = s["port"] or _DEFAULT_PORTS[self.security]
        self.sender = self._address("from", s["from"])
        if not s["to"]:
            raise self.config_error("to", "needs at least one recipient")
        self.recipients = [self._address("to", item) for item in s["to"]]
        if (s["username"] is None) != (s["password"] is None):
            raise self.config_error(
                "username",
                "set both username and password (password_env / password_credential), or neither",
            )
        if s["timeout"] <= 0:
            raise self.config_error("timeout", "must be more than 0 seconds")
        self.ca_file = self.existing_file("ca_file")

    def _address(self, key: str, text: str) -> Address:
        # Accept "Name <user@example.org>" as well as a bare address.
        display, spec = parseaddr(text)
        try:
            address = Address(display_name=display, addr_spec=(spec or text).strip())
        except (ValueError, IndexError, HeaderParseError) as exc:
            raise self.config_error(key, f"{text!r} is not an e-mail address ({exc})") from None
        if not address.username or not address.domain:
            raise self.config_error(key, f"{text!r} is not an e-mail address (user@domain)")
        return address

    def ssl_context(self) -> ssl.SSLContext:
        """A verifying context: system CAs, or only ``ca_file`` when set."""
        return ssl.create_default_context(cafile=self.ca_file)

    def message(self, reminder: Reminder) -> EmailMessage:
        title, body = self.render(reminder)
        msg = EmailMessage()  # default policy: RFC 2047 subject, UTF-8 body as needed
        msg["Subject"] = title
        msg["From"] = self.sender
        msg["To"] = self.recipients
        msg["Date"] = format_datetime(self.clock())
        # The same key gives the same Message-ID on every attempt, so a re-send after a
        # crash is recognisably the same message.
        token = message_id_token(reminder.idempotency_key)
        msg["Message-ID"] = f"<{token}@{self.sender.domain}>"
        # RFC 3834: no vacation auto-replies to a robot.
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(body + "\n" + (f"\n{reminder.entry.url}\n" if reminder.entry.url else ""))
        return msg

    def send(self, reminder: Reminder) -> None:
        msg = self.message(reminder)
        where = f"{self.settings['host']}:{self.port}"
        try:
            self._deliver(msg)
        except NotifierError:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise self.retryable(f"{where} deferred every recipient: {codes}") from None
            raise self.permanent(f"{where} refused every recipient: {_refusals(exc)}") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise self.permanent(f"{where} rejected the login: {_reply(exc)}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise self.permanent(f"{where} does not support a needed command: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            text = f"{where} answered {_reply(exc)}"
            if exc.smtp_code >= 500:
                raise self.permanent(text) from None
            raise self.retryable(text) from None
        except ssl.SSLCertVerificationError as exc:
            # A wrong certificate does not fix itself; retrying would only hide it.
            raise self.permanent(
                f"{where}: TLS certificate not trusted: {exc.verify_message}"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts, DNS, TLS handshakes: the network.
            raise self.retryable(f"{where}: {type(exc).__name__}: {exc}") from None

    def _deliver(self, msg: EmailMessage) -> None:
        host, timeout = self.settings["host"], self.settings["timeout"]
        if self.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, self.port, timeout=timeout, context=self.ssl_context()
            )
        else:
            client = smtplib.SMTP(host, self.port, timeout=timeout)
        with client:
            client.ehlo()
            if self.security == "starttls":
                if not client.has_extn("starttls"):
                    raise self.permanent(
                        f"{host}:{self.port} does not offer STARTTLS; refusing to send in "
                        'plaintext (set security = "plain" only for a trusted local relay)'
                    )
                client.starttls(context=self.ssl_context())
                client.ehlo()
            if self.settings["username"]:
                self._login(client)
            refused = client.send_message(msg)
        if refused:
            # Sent: the others have it, and a retry would send them a duplicate. The
            # recipients the server refused are named in a warning, not hidden.
            log_event(
                log,
                "notifier.recipients_refused",
                logging.WARNING,
                channel=self.name,
                server=f"{host}:{self.port}",
                refused=", ".join(f"{addr} ({code})" for addr, (code, _) in refused.items()),
                delivered=len(self.recipients) - len(refused),
            )

    def _login(self, client: smtplib.SMTP) -> None:
        username, password = self.settings["username"], self.settings["password"]
        if username.isascii() and password.isascii():
            client.login(username, password)
            return
        # smtplib encodes credentials as ASCII; RFC 4954 AUTH PLAIN carries UTF-8.
        if "plain" not in client.esmtp_features.get("auth", "").lower().split():
            raise self.permanent(
                "non-ASCII username or password need AUTH PLAIN, which the server does not offer"
            )
        token = base64.b64encode(f"\0{username}\0{password}".encode()).decode("ascii")
        code, reply = client.docmd("AUTH", f"PLAIN {token}")
        if code != 235:
            raise smtplib.SMTPAuthenticationError(code, reply)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{exc.smtp_code} {text}".strip()


def _refusals(exc: smtplib.SMTPRecipientsRefused) -> str:
    return ", ".join(f"{addr} ({code})" for addr, (code, _) in exc.recipients.items())
