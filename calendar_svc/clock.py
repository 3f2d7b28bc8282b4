"""The real clock, and the type of the clocks that logic takes instead.

Logic never reads the time itself: it takes a ``Clock`` (a callable giving an
aware UTC ``datetime``) so tests can move time; ``now_utc`` is the real one,
handed in at the edges (the CLI, the daemon, a notifier's default).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def now_utc() -> datetime:
    """The wall clock, as an aware UTC datetime."""
    return datetime.now(UTC)
