"""Retiring the notifiers a reload replaced: closed only once no send holds one of them.

A reload builds new notifiers and hands them to the dispatcher at once; the
old ones may still be in use by sends in flight or queued, and by a claiming
round that took them before the reload and has not yet handed its rows to
the workers. ``NotifiersInUse`` keeps that account (the dispatcher records
each round and each send in it); ``retire`` waits until the old notifiers are
free, then closes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

from calendar_svc.logs import log_event
from calendar_svc.notifiers import Notifier, close_all

log = logging.getLogger("calendar_svc.daemon")

# After a reload, the longest wait for sends through the old notifiers before closing them.
RETIRE_TIMEOUT = 600.0


class NotifiersInUse:
    """Which notifiers sends in flight (or queued) and claiming rounds hold (thread-safe)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        # The notifier each send in flight (or queued) uses, by delivery id.
        self._sends: dict[int, Notifier] = {}
        # The notifiers each claiming round took before claiming: a reload during the
        # round must not close them before its sends are recorded in ``_sends``.
        self._rounds: list[Mapping[str, Notifier]] = []

    @contextmanager
    def round(self, notifiers: Mapping[str, Notifier]) -> Iterator[None]:
        """``notifiers`` are held while the block (one claiming round) runs."""
        with self._changed:
            self._rounds.append(notifiers)
        try:
            yield
        finally:
            with self._changed:
                index = next(i for i, r in enumerate(self._rounds) if r is notifiers)
                del self._rounds[index]
                self._changed.notify_all()

    def hold(self, delivery: int, notifier: Notifier) -> None:
        """The send of ``delivery`` uses ``notifier`` until ``release``."""
        with self._changed:
            self._sends[delivery] = notifier

    def release(self, delivery: int) -> None:
        with self._changed:
            if self._sends.pop(delivery, None) is not None:
                self._changed.notify_all()

    def wait_released(self, notifiers: Iterable[Notifier], timeout: float) -> bool:
        """Wait until no send or round uses any of ``notifiers``; False on timeout.

        Sends that started with the new notifiers after a reload do not hold this up.
        """
        wanted = {id(n) for n in notifiers}

        def held() -> bool:
            in_rounds = (n for round_ in self._rounds for n in round_.values())
            return any(id(n) in wanted for n in (*self._sends.values(), *in_rounds))

        deadline = time.monotonic() + timeout
        with self._changed:
            while held():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


def retire(
    in_use: NotifiersInUse, old: Mapping[str, Notifier], timeout: float = RETIRE_TIMEOUT
) -> None:
    """Close the notifiers a reload replaced, once the sends that use them are done.

    Sends end by themselves (every notifier has a timeout); ``timeout`` only
    guards against one that never returns. Closing under a send makes it fail as
    retryable, so it is sent again through the new notifiers: never lost.
    """
    if not in_use.wait_released(old.values(), timeout):
        log_event(
            log,
            "config.old_notifiers_busy",
            logging.WARNING,
            channels=",".join(sorted(old)),
            hint=f"closing them after {timeout:.0f} s with sends still running; "
            "those sends are retried",
        )
    close_all(old)
