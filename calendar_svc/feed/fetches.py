"""Fetch statistics of share links: counted in memory per request, written in batches.

A calendar app polls its feed every refresh interval, a server answers
thousands of such polls a second, and almost all of them are 304s: a database
write per poll would cost more than the answer. ``FetchLog.record`` adds to a
dictionary under a lock; a background thread writes what accumulated every
``interval`` seconds (``[feed] stats_interval``, a minute by default) in one
transaction, and ``close`` writes the rest when the server stops. A write that
fails keeps its counts for the next one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime

from calendar_svc.logs import log_event
from calendar_svc.shares import Fetches

log = logging.getLogger("calendar_svc.feed")

Writer = Callable[[Mapping[int, Fetches]], None]


class _Tally:
    """One link's fetches since the last write, updated in place on every fetch."""

    __slots__ = ("count", "last_at", "user_agent")

    def __init__(self, count: int, last_at: datetime, user_agent: bytes | None):
        self.count = count
        self.last_at = last_at
        self.user_agent = user_agent


class FetchLog:
    """Fetch counts per share link, kept until the next batch write (thread-safe)."""

    def __init__(self, write: Writer, *, interval: float):
        if interval <= 0:
            raise ValueError("the interval between writes must be positive")
        self._write = write
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: dict[int, _Tally] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def record(self, share_id: int, at: datetime, user_agent: bytes | None) -> None:
        """Count one fetch of ``share_id`` at ``at`` by ``user_agent`` (the header's bytes,
        decoded when written: this runs on every poll)."""
        with self._lock:
            tally = self._pending.get(share_id)
            if tally is None:
                self._pending[share_id] = _Tally(1, at, user_agent)
            else:
                tally.count += 1
                tally.last_at = at
                tally.user_agent = user_agent
            start = self._thread is None and not self._closed
            if start:
                self._thread = threading.Thread(
                    target=self._run, name="calendar-svc-fetch-stats", daemon=True
                )
        if start:
            assert self._thread is not None
            self._thread.start()

    def pending(self) -> int:
        """Fetches counted and not written yet."""
        with self._lock:
            return sum(tally.count for tally in self._pending.values())

    def flush(self) -> int:
        """Write what accumulated; returns how many fetches were written (0 on failure)."""
        with self._lock:
            batch, self._pending = self._pending, {}
        if not batch:
            return 0
        counts = {
            share_id: Fetches(count=t.count, last_at=t.last_at, user_agent=_text(t.user_agent))
            for share_id, t in batch.items()
        }
        try:
            self._write(counts)
        except Exception as exc:
            self._restore(counts)
            log_event(
                log,
                "feed.stats_write_failed",
                logging.WARNING,
                links=len(counts),
                error=f"{type(exc).__name__}: {exc}".splitlines()[0],
                hint="kept in memory; written with the next batch",
            )
            return 0
        written = sum(f.count for f in counts.values())
        log_event(log, "feed.stats_written", logging.DEBUG, links=len(counts), fetches=written)
        return written

    def _restore(self, counts: Mapping[int, Fetches]) -> None:
        """Put counts of a failed write back, under any counted since."""
        with self._lock:
            for share_id, old in counts.items():
                newer = self._pending.get(share_id)
                if newer is None:
                    agent = old.user_agent.encode("latin-1") if old.user_agent else None
                    self._pending[share_id] = _Tally(old.count, old.last_at, agent)
                else:
                    newer.count += old.count

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the writer thread and write what is left (the server stops)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._stop.set()
        if thread is not None:
            thread.join(timeout)
        self.flush()


def _text(user_agent: bytes | None) -> str | None:
    """A User-Agent header as text (HTTP header bytes are Latin-1), at most 300 characters."""
    return user_agent.decode("latin-1")[:300] if user_agent else None
