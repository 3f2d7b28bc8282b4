"""The real clocks, the types of the clocks that logic takes instead, and a step detector.

Logic never reads the time itself: it takes a ``Clock`` (a callable giving an
aware UTC ``datetime``) so tests can move time; ``now_utc`` is the real one,
handed in at the edges (the CLI, the daemon, a notifier's default).

Two clocks, two jobs. The wall clock (``Clock``) is only compared with due
instants, which are wall instants. Anything that measures how long something
took or how long to wait (the daemon's loop, leases watched in memory, the
freshness of ``/healthz``) runs on a ``Monotonic`` clock, which NTP steps and
VM restores do not move. ``StepWatch`` compares the two to notice when the
wall clock stepped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Clock = Callable[[], datetime]
# Seconds from an arbitrary origin that never goes back and never jumps (time.monotonic).
Monotonic = Callable[[], float]

# Wall-vs-monotonic drift between two looks that counts as a step of the wall clock.
# NTP slews at most 500 ppm (0.5 ms per second), so between two ticks of the loop
# (at most a few minutes) a slew stays far below this; a step (ntpdate, chrony's
# makestep, a restored VM, a person with `date -s`) is seconds to hours.
STEP_THRESHOLD = 5.0


def now_utc() -> datetime:
    """The wall clock, as an aware UTC datetime."""
    return datetime.now(UTC)


def boot_monotonic() -> float:
    """Monotonic seconds that keep counting while the machine sleeps (``CLOCK_BOOTTIME``
    where Linux has it): a suspend must not look like a forward step of the wall clock."""
    return time.clock_gettime(_BOOT_CLOCK)


_BOOT_CLOCK: int = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The wall clock moved ``seconds`` (signed: negative is a step back) more than the
    monotonic clock did between two looks; ``at`` is the wall time after the step."""

    seconds: float
    at: datetime


class StepWatch:
    """Notices steps of the wall clock by comparing it with a monotonic one.

    ``check()`` is called from one thread (the daemon's loop, every tick): it
    returns the step since its previous call when the wall clock moved more
    than ``threshold`` seconds further (or less far) than the monotonic clock,
    else None. Each look is compared with the one before it, not with the
    first: slow NTP slewing over days never adds up to a step.
    """

    def __init__(
        self,
        wall: Clock = now_utc,
        monotonic: Monotonic = boot_monotonic,
        *,
        threshold: float = STEP_THRESHOLD,
    ):
        self._wall = wall
        self._monotonic = monotonic
        self.threshold = threshold
        self._offset: float | None = None

    def check(self) -> ClockStep | None:
        mono = self._monotonic()
        wall = self._wall()
        offset = wall.timestamp() - mono
        previous, self._offset = self._offset, offset
        if previous is None:
            return None
        drift = offset - previous
        if abs(drift) <= self.threshold:
            return None
        return ClockStep(seconds=round(drift, 3), at=wall)
