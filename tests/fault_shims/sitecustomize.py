"""Test-only shim, on PYTHONPATH of processes run under libfaketime (tests/faults.py).

libfaketime with a real monotonic clock (``FAKETIME_DONT_FAKE_MONOTONIC=1``) makes
``clock_nanosleep(TIMER_ABSTIME)`` fail with EINVAL, which is what ``time.sleep``
uses, so every sleep in the faked process would raise. Waiting on an Event with
a timeout takes another path and works. Never part of the package.
"""

from __future__ import annotations

import threading
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    threading.Event().wait(seconds)


time.sleep = _sleep
