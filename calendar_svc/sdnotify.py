"""Telling systemd how the daemon is doing: the sd_notify protocol, in a few lines.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: an ``AF_UNIX``
datagram socket, a file path or, when it starts with ``@``, a name in the
abstract namespace. Each datagram is newline-separated ``KEY=VALUE`` lines
(``READY=1``, ``STATUS=...``, ``WATCHDOG=1``, ``RELOADING=1``, ``STOPPING=1``).
Outside systemd the variable is unset and every call is a no-op.

This is written over the socket rather than with the ``sdnotify`` package so
that the daemon has no extra dependency, and so that no send can ever raise:
a notification is advice to the service manager, and a daemon that sends
reminders must not die because the manager went away.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

# A send to a full socket buffer blocks; the scheduler loop pings the
# watchdog, so it must not hang there longer than this.
SEND_TIMEOUT = 1.0


def _address(value: str) -> str | None:
    """The socket address for ``$NOTIFY_SOCKET``, or None when it is not one we can use."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]  # abstract namespace: a leading NUL instead of "@"
    if value.startswith("/"):
        return value
    return None  # systemd only hands out these two kinds (vsock: needs systemd 253+)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None.

    None when systemd did not ask for pings, or asked another process
    (``$WATCHDOG_PID`` names a different PID: the variables were inherited).
    """
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid is not None:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    # Half the timeout, as sd_watchdog_enabled(3) advises, so one late ping is not fatal.
    return usec / 2 / 1_000_000


class ServiceNotifier:
    """Sends sd_notify messages to ``$NOTIFY_SOCKET``; does nothing without it.

    The daemon calls ``ready()`` once the database is migrated, the notifiers
    are built and the feed port is bound; ``status()`` whenever its summary
    changes; ``watchdog()`` from the scheduler loop; ``reloading()`` on SIGHUP
    and ``ready()`` again when the reload is done; ``stopping()`` on SIGTERM.
    Every method returns whether a datagram was sent and never raises.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env = dict(os.environ if environ is None else environ)
        raw = self._env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        if raw and self._address is None:
            log.debug("sd_notify disabled: unusable NOTIFY_SOCKET %r", raw)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether systemd is listening (``$NOTIFY_SOCKET`` was set to a usable address)."""
        return self._address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=VALUE`` lines as one datagram; False when not sent."""
        if self._address is None:
            return False
        message = "\n".join(lines).encode("utf-8")
        try:
            with self._lock:
                if self._sock is None:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    sock.settimeout(SEND_TIMEOUT)
                    self._sock = sock
                self._sock.sendto(message, self._address)
        except OSError as exc:
            log.debug("sd_notify %r not sent: %s", lines, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *self._status_line(status))

    def status(self, text: str) -> bool:
        return self.notify(*self._status_line(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self, status: str | None = None) -> bool:
        # systemd 253+ (Type=notify-reload) wants the CLOCK_MONOTONIC time of
        # the reload request with RELOADING=1; older versions ignore it.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", *self._status_line(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *self._status_line(status))

    def watchdog_interval(self) -> float | None:
        """``watchdog_interval()`` for the environment this notifier was built from."""
        return watchdog_interval(self._env)

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> ServiceNotifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @staticmethod
    def _status_line(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        # One line: a newline would start a new KEY=VALUE assignment.
        return ("STATUS=" + " ".join(text.splitlines()),)
