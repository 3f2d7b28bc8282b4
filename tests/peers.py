"""Real peers on loopback for the notifier tests: an HTTP receiver, SMTP servers, MQTT.

Every server binds 127.0.0.1 on a free port, records what it received, and is
shut down by its context manager. Waiting is done on conditions with
deadlines, never by sleeping.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import ssl
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from waiting import wait_for

LOOPBACK = "127.0.0.1"
MOSQUITTO_PORT = 1883


def free_port() -> int:
    """A TCP port nothing listens on right now (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# --- HTTP ---------------------------------------------------------------------------------


@dataclass
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    # The client's (address, port): one port for many requests is one kept-alive connection.
    peer: tuple[str, int] = ("", 0)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


# A responder returns (status, headers, body) for a request.
Response = tuple[int, dict[str, str], bytes]
Responder = Callable[[HttpRequest], Response]


def ok(_request: HttpRequest) -> Response:
    return 200, {"content-type": "application/json"}, b"{}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Several daemons with 16 send workers each connect at once; the default backlog of 5
    # makes the kernel reset connections, which is not the peer a test means to model.
    request_queue_size = 128


class HttpReceiver:
    """A threaded HTTP server recording every request; ``responder`` decides the answer.

    The one HTTP peer of the suite: notifier tests, the notify-test command and the
    daemon processes all post to it. A responder may take its time (a slow or hung
    peer); a client that gave up before the answer is not an error here.
    """

    def __init__(self, responder: Responder = ok, *, tls: ssl.SSLContext | None = None) -> None:
        """``tls``: serve https with this server context (see ``make_tls``)."""
        self.responder = responder
        self.requests: list[HttpRequest] = []
        # The clients' (address, port) of the connections that ended (the client closed).
        self.closed: list[tuple[str, int]] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                request = HttpRequest(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length),
                    peer=(str(self.client_address[0]), int(self.client_address[1])),
                )
                with receiver._changed:
                    receiver.requests.append(request)
                    receiver._changed.notify_all()
                status, headers, body = receiver.responder(request)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if isinstance(body, bytes):
                        self.send_header("content-length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    else:
                        # An iterable body is sent piece by piece (a server that trickles),
                        # its end marked by closing the connection.
                        self.send_header("connection", "close")
                        self.close_connection = True
                        self.end_headers()
                        for piece in body:
                            self.wfile.write(piece)
                            self.wfile.flush()
                except OSError:
                    self.close_connection = True  # the client gave up (its timeout) or left

            do_POST = do_PUT = do_GET = _handle

            def finish(self) -> None:
                super().finish()
                with receiver._changed:
                    receiver.closed.append(
                        (str(self.client_address[0]), int(self.client_address[1]))
                    )
                    receiver._changed.notify_all()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = _Server((LOOPBACK, 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.url = f"{'https' if tls else 'http'}://{LOOPBACK}:{self.port}"
        # A short poll interval: shutdown() waits for the loop to notice it.
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[HttpRequest]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} request(s), got {len(self.requests)}")
            return list(self.requests)

    def wait_closed(self, peers: set[tuple[str, int]], timeout: float = 5.0) -> None:
        """Wait until the connections from ``peers`` have all ended."""
        with self._changed:
            if not self._changed.wait_for(lambda: peers <= set(self.closed), timeout):
                raise AssertionError(f"still open: {sorted(peers - set(self.closed))}")


# --- SMTP ---------------------------------------------------------------------------------


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpRecorder:
    """aiosmtpd handler: records messages, refuses recipients at ``@invalid.example``."""

    messages: list[ReceivedMail] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.endswith("@invalid.example"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
        )
        with self.changed:
            self.messages.append(mail)
            self.changed.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMail]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} mail(s), got {len(self.messages)}")
            return list(self.messages)


@dataclass
class Tls:
    """A throwaway CA (trustme) and a certificate for 127.0.0.1 / localhost signed by it."""

    ca_file: Path
    server_context: ssl.SSLContext


def make_tls(folder: Path, names: tuple[str, ...] = (LOOPBACK, "localhost")) -> Tls:
    ca = trustme.CA()
    cert = ca.issue_cert(*names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = folder / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return Tls(ca_file=ca_file, server_context=context)


class _Authenticator:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username.encode(), password.encode()

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == self.username
            and auth_data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def smtp_server(
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> Iterator[tuple[SmtpRecorder, int]]:
    """An aiosmtpd server on loopback: plain, STARTTLS (required) or implicit TLS."""
    recorder = SmtpRecorder()
    kwargs: dict[str, Any] = {}
    if starttls is not None:
        kwargs.update(tls_context=starttls, require_starttls=True)
    if implicit_tls is not None:
        kwargs.update(ssl_context=implicit_tls)
    if login is not None:
        kwargs.update(
            authenticator=_Authenticator(*login),
            auth_require_tls=starttls is not None or implicit_tls is not None,
        )
    port = free_port()
    controller = Controller(recorder, hostname=LOOPBACK, port=port, ready_timeout=5, **kwargs)
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


# --- MQTT ---------------------------------------------------------------------------------


def broker_answers(host: str = LOOPBACK, port: int = MOSQUITTO_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


class MqttSubscriber:
    """Subscribes (QoS 1) to a fresh topic on a broker and records what arrives."""

    def __init__(self, host: str = LOOPBACK, port: int = MOSQUITTO_PORT) -> None:
        self.topic = f"calendar-svc-test/{uuid.uuid4().hex}"
        self.messages: list[mqtt.MQTTMessage] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def __enter__(self) -> MqttSubscriber:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            self.__exit__()
            raise AssertionError("the broker did not acknowledge the subscription")
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[mqtt.MQTTMessage]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"expected {count} MQTT message(s), got {len(self.messages)}")
            return list(self.messages)


@contextlib.contextmanager
def mosquitto_with_login(folder: Path, username: str, password: str) -> Iterator[int]:
    """A private Mosquitto on a free loopback port that requires a login; yields the port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd")
    if not Path(binary).exists() or passwd is None:
        import pytest

        pytest.skip("mosquitto / mosquitto_passwd not installed: cannot run a broker with logins")
    password_file = folder / "passwords"
    subprocess.run(
        [passwd, "-b", "-c", str(password_file), username, password],
        check=True,
        capture_output=True,
        timeout=10,
    )
    password_file.chmod(0o600)
    port = free_port()
    config = folder / "mosquitto.conf"
    config.write_text(
        f"listener {port} {LOOPBACK}\nallow_anonymous false\npassword_file {password_file}\n"
        "persistence false\nlog_dest none\nuser root\n"
    )
    process = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(
            lambda: broker_answers(LOOPBACK, port) or process.poll() is not None,
            5,
            "the private mosquitto to listen",
        )
        if process.poll() is not None:
            raise AssertionError(f"mosquitto exited with {process.returncode}")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def silent_mqtt_broker() -> Iterator[int]:
    """A TCP peer that accepts an MQTT connection (CONNACK) but never acknowledges a publish.

    Mosquitto always acknowledges, so this stands in for a broker that is stuck.
    """
    server = socket.create_server((LOOPBACK, 0))
    port = int(server.getsockname()[1])
    stop = threading.Event()
    connections: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connections.append(conn)
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.recv(1024)  # CONNECT
                conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, accepted

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for conn in connections:
            conn.close()


# --- ntfy ---------------------------------------------------------------------------------

_NTFY_TOPIC = re.compile(r"^/([-_A-Za-z0-9]{1,64})$")
_NTFY_PRIORITIES = {"1", "2", "3", "4", "5", "min", "low", "default", "high", "max", "urgent"}
_NTFY_SEQUENCE = re.compile(r"^[-_A-Za-z0-9]{1,64}$")


def _decode_header(value: str) -> str:
    """What ntfy does with a header value: RFC 2047 encoded words are decoded."""
    return str(make_header(decode_header(value)))


class NtfyServer:
    """Checks each request the way ntfy's publish API defines it (https://docs.ntfy.sh/publish/).

    ``POST``/``PUT`` to ``/<topic>``, body = message, ``Title``/``Priority``/``Tags``/
    ``Click``/``X-Sequence-ID`` headers (and their short aliases), optional bearer
    token. Answers 200 with the message JSON, or ntfy's JSON error.
    """

    def __init__(self, topic: str, token: str | None = None) -> None:
        self.topic = topic
        self.token = token
        self.published: list[dict[str, Any]] = []
        self.failure: tuple[int, dict[str, str]] | None = None  # forced (status, headers)

    @staticmethod
    def _error(status: int, code: int, text: str) -> Response:
        body = json.dumps({"code": code, "http": status, "error": text}).encode()
        return status, {"content-type": "application/json"}, body

    def respond(self, request: HttpRequest) -> Response:
        if self.failure is not None:
            status, headers = self.failure
            return status, headers, b'{"error": "forced"}'
        match = _NTFY_TOPIC.match(request.path)
        if request.method not in ("POST", "PUT") or not match:
            return self._error(404, 40401, "page not found")
        if self.token is not None and request.header("authorization") != f"Bearer {self.token}":
            return self._error(403, 40301, "forbidden")

        def first(*names: str) -> str | None:
            return next((v for n in names if (v := request.header(n)) is not None), None)

        priority = first("x-priority", "priority", "prio", "p")
        if priority is not None and priority not in _NTFY_PRIORITIES:
            return self._error(400, 40007, "invalid priority")
        sequence = first("x-sequence-id", "sequence-id", "sid")
        if sequence is not None and not _NTFY_SEQUENCE.match(sequence):
            return self._error(400, 40049, "invalid sequence ID")
        title = first("x-title", "title", "t")
        tags = first("x-tags", "tags", "tag", "ta")
        message = {
            "id": uuid.uuid4().hex[:12],
            "event": "message",
            "topic": match.group(1),
            "message": request.body.decode("utf-8"),
            "title": _decode_header(title) if title else None,
            "priority": priority,
            "tags": _decode_header(tags).split(",") if tags else [],
            "click": first("x-click", "click"),
            "sequence_id": sequence,
        }
        self.published.append(message)
        return 200, {"content-type": "application/json"}, json.dumps(message).encode()


# --- a sample reminder --------------------------------------------------------------------


def sheinbaum_entry(**overrides: Any) -> Any:
    """The first entry of the trip, with just the attributes ``build_reminder`` reads."""
    from types import SimpleNamespace

    fields = {
        "uid": "sheinbaum-bilateral",
        "title": "Bilateral meeting with President Claudia Sheinbaum",
        "location": "Palacio Nacional",
        "city": "Mexico City",
        "url": "",
        "start_tz": "America/Mexico_City",
        "all_day": False,
        "description": "",
        "categories": ["meeting"],
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


WASHINGTON = {"timezone": "America/New_York", "label": "Washington"}


def reminder(
    *,
    key: str = "rem-sample",
    calendar: str = "rubio-2025-09",
    start: datetime | None = None,
    offset: timedelta = timedelta(hours=1),
    late: bool = False,
    display: Any = None,
    feed_url: str | None = None,
    entry: Any = None,
    **fields: Any,
) -> Any:
    """A reminder as the dispatcher builds it: of ``entry`` (default: ``sheinbaum_entry``
    with ``fields`` changed), starting at wall time ``start`` in its zone (default
    2025-09-02 10:00), due ``offset`` before; ``display`` defaults to Washington's.

    The one sample every notifier test sends: "In 1 hour: Bilateral meeting with …".
    """
    from calendar_svc.config import DisplayConfig
    from calendar_svc.messages import build_reminder
    from calendar_svc.timezones import to_utc

    if entry is not None and fields:
        raise TypeError(f"give entry or its fields, not both: {sorted(fields)}")
    entry = entry if entry is not None else sheinbaum_entry(**fields)
    start_utc = to_utc(start or datetime(2025, 9, 2, 10, 0), entry.start_tz)
    return build_reminder(
        idempotency_key=key,
        calendar_slug=calendar,
        entry=entry,
        start_utc=start_utc,
        offset=offset,
        due_at=start_utc - offset,
        late=late,
        display=display if display is not None else DisplayConfig(**WASHINGTON),
        feed_url=feed_url,
    )
