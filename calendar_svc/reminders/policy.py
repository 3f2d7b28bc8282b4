"""When a claimed reminder is sent, marked late or recorded missed; how retries back off. Pure.

A reminder sent well after its due time (the daemon was down, the machine was
suspended) is still useful while its entry has not started ("Late: in 1 hour:
…" is better than silence), and within the grace window after that; beyond
both it would only be noise, so it is recorded as ``missed``.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from enum import Enum

# Sends this close to their due time are on time: scheduling jitter, a busy
# burst or a short SIGSTOP must not print "Late:" on a message that is not.
LATE_AFTER = timedelta(seconds=60)


class Timing(Enum):
    ON_TIME = "on_time"
    LATE = "late"
    MISSED = "missed"


def timing(now: datetime, due_at: datetime, occurrence_utc: datetime, grace: timedelta) -> Timing:
    lateness = now - due_at
    if lateness <= LATE_AFTER:
        return Timing.ON_TIME
    if now < occurrence_utc or lateness <= grace:
        return Timing.LATE
    return Timing.MISSED


def retry_delay(
    attempts: int,
    base: timedelta,
    cap: timedelta,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta:
    """Wait before attempt ``attempts + 1``: ``base * 2**(attempts-1)``, capped, with jitter.

    The jitter (50-100 % of the step) spreads out retries of many reminders that
    failed together, so a recovering receiver is not hit by all of them at once.
    A peer's ``Retry-After`` wins, still capped: it is a minimum, so its jitter
    only adds (up to 20 %, at least one second when it is short), and a burst told
    "come back in 120 s" does not come back in the same second.
    """
    draw = (rng or random).uniform
    if retry_after is not None and retry_after >= 0:
        spread = max(retry_after * 0.2, 1.0)
        return min(timedelta(seconds=retry_after + draw(0.0, spread)), cap)
    # The exponent is bounded so that a large attempt count cannot overflow timedelta.
    step = min(cap, base * (1 << min(max(0, attempts - 1), 32)))
    factor: float = draw(0.5, 1.0)
    return step * factor
