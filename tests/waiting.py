"""Waiting in tests: poll a condition until it holds, or fail after a deadline.

The one way the suite waits for something it cannot be told about (a log line,
a row's status, a port that listens). Peers that can signal (the HTTP
receiver, the SMTP recorder, the MQTT subscriber) are waited on through their
own condition variables instead; nothing in the suite sleeps to synchronise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

T = TypeVar("T")

FIRST_STEP = 0.01  # seconds: a condition that holds almost at once costs almost nothing
MAX_STEP = 0.25  # and one that takes seconds (a database query per poll) stays cheap


class HasLog(Protocol):
    """Something whose log a timeout shows: a daemon process (``service_helpers.Service``)."""

    @property
    def name(self) -> str: ...

    def stderr(self) -> str: ...


def wait_for(
    check: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str],
    show: Iterable[HasLog] = (),
) -> T:
    """Call ``check`` until it returns something true and return that; after ``timeout``
    seconds (monotonic) fail with ``what`` (or what it returns, when it is a function that
    describes the state at the time) and the tail of the stderr of each of ``show``.

    ``check`` may raise to give up early (a daemon that exited cannot become ready).
    Polls start 10 ms apart and back off to 250 ms.
    """
    deadline = time.monotonic() + timeout
    step = FIRST_STEP
    pause = threading.Event()  # never set: the pause between two polls
    while True:
        value = check()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            logs = "".join(f"\n--- {s.name} stderr\n{s.stderr()[-4000:]}" for s in show)
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {said}{logs}")
        pause.wait(min(step, left))
        step = min(step * 1.5, MAX_STEP)
