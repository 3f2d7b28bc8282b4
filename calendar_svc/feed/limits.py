"""The feed server's limits on what one client may hold (``[feed]``), and its count of
the connections it refused; ``feed.protocol`` enforces them in uvicorn's protocol.

uvicorn alone accepts every connection and keeps a silent one forever (its
keep-alive timeout starts only after a first response), and httptools buffers
an unfinished header line whole. On issue 12's bad day, 1,100 idle
connections took every descriptor of a daemon under the default soft limit of
1,024 (the feed, ``/healthz`` and the notifiers all failed), and four 64 MB
unfinished headers grew it from 79 MB to 372 MB. Here, per connection:

* **Connection limit**: beyond ``max_connections`` open connections a new one
  is answered ``503`` (``Retry-After``) and closed before any of it is read,
  so the descriptor comes back at once. uvicorn's own ``limit_concurrency``
  is no help here: it answers 503 only once a request has been read, holding
  the descriptor meanwhile. The server passes a limit that leaves the
  process's descriptor reserve free (``resources.descriptors_for_connections``).
* **Header read timeout**: a request's line and headers must arrive within
  ``header_timeout`` of its first byte (of the connection, for the first one),
  or the connection is closed: a slow or silent client holds a descriptor for
  seconds, not for ever.
* **Idle keep-alive**: uvicorn's ``timeout_keep_alive`` between requests.
* **Sizes**: a request line longer than ``max_request_line`` is answered
  ``414``, a request line and headers longer than ``max_header_size`` in all
  ``431``; either way the connection is closed, and at most one read beyond
  the limit is ever buffered.

Refusals are counted and told as one ``feed.refused`` line a minute at most
(a flood must not become a flood of log lines).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

from calendar_svc.logs import log_event

log = logging.getLogger("calendar_svc.feed")

# Seconds between two feed.refused lines.
REFUSED_LOG_EVERY = 60.0


@dataclass(frozen=True)
class Limits:
    """What one connection may hold; durations in seconds."""

    max_connections: int
    header_timeout: float
    keep_alive_timeout: float
    max_header_size: int
    max_request_line: int


class RefusalLog:
    """Counts refused connections by reason and logs them at most once a minute.

    Called from the server's event loop only.
    """

    def __init__(self, every: float = REFUSED_LOG_EVERY) -> None:
        self.every = every
        self.total: Counter[str] = Counter()
        self._pending: Counter[str] = Counter()
        self._last = -every

    def __call__(self, reason: str) -> None:
        self.total[reason] += 1
        self._pending[reason] += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            counts, self._pending = dict(self._pending), Counter()
            log_event(log, "feed.refused", logging.WARNING, **counts)
