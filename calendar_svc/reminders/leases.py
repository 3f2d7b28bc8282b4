"""Which other daemons' leases ran out, judged on the monotonic clock as well as the wall.

A lease is a wall instant in the table (``lease_until``), because several
daemons share it. The wall clock of this process may step, though: one hour
back, and a dead daemon's row would wait an hour; one hour ahead, and every
live daemon's send would look abandoned and be sent twice. So this process
also watches each lease with its monotonic clock: a lease whose
``lease_until`` has not moved (not renewed) for a whole lease length, as
measured here, has run out whatever the wall clock says; and for one lease
length after a forward step of the wall clock, a lease counts as expired by
the wall clock only if it expired longer ago than the step (a lease from
before a step back expired even longer ago than the wall clock says).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta

from calendar_svc.clock import Monotonic


class LeaseWatch:
    """Remembers, for each row another process is sending, since when (monotonic) its
    lease has stood still; ``expired`` says which ran out. Used from the loop's thread."""

    def __init__(self, lease: timedelta, monotonic: Monotonic = time.monotonic):
        self.lease = lease
        self._monotonic = monotonic
        self._since: dict[int, tuple[datetime | None, float]] = {}
        self._stepped_at: float | None = None
        self._ahead = 0.0  # seconds the wall clock went forward lately (net of steps back)

    def stepped(self, seconds: float) -> None:
        """The wall clock just stepped ``seconds`` (negative: back)."""
        mono = self._monotonic()
        ahead = self._ahead if self._recent(mono) else 0.0
        self._ahead = max(0.0, ahead + seconds)
        self._stepped_at = mono

    def _recent(self, mono: float) -> bool:
        return self._stepped_at is not None and mono - self._stepped_at <= (
            self.lease.total_seconds()
        )

    def expired(self, leases: Mapping[int, datetime | None], now: datetime) -> list[int]:
        """The rows of ``leases`` (id -> lease_until, as read now) whose lease ran out."""
        mono = self._monotonic()
        length = self.lease.total_seconds()
        # After a forward step, "expired" by the wall clock means expired before the step.
        cutoff = now - timedelta(seconds=self._ahead if self._recent(mono) else 0.0)
        since: dict[int, tuple[datetime | None, float]] = {}
        out: list[int] = []
        for row_id, until in leases.items():
            seen = self._since.get(row_id)
            first = seen[1] if seen is not None and seen[0] == until else mono
            since[row_id] = (until, first)
            watched_out = mono - first > length
            wall_out = until is None or until < cutoff
            if watched_out or wall_out:
                out.append(row_id)
        self._since = since  # rows no longer sending are forgotten
        return sorted(out)
