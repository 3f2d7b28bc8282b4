"""Whose key a request carries, and a brake on whoever guesses keys.

``Authorization: Bearer <token>``: the token's digest is looked up on every
request (``api_keys.ApiKeys.authenticate``), so a revoked key is refused from
the next request on in every server. A missing, unknown, revoked or expired key
is 401 with ``WWW-Authenticate``; the failure is logged (``api.auth_failed``,
with the client address, the reason and the key's name when it is known, never
the token).

Failed authentications are counted per client address over a sliding window
(``[api] auth_failures`` within ``auth_window``, on the monotonic clock); an
address over the limit is answered 429 with ``Retry-After`` (seconds until its
oldest failure leaves the window) before its key is even looked at, so
guessing costs a window per few tries. Behind a reverse proxy every client has
the proxy's address: the limit is then the proxy's, which still bounds a
guesser. The counts live in the server's memory (a restart forgets them).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from calendar_svc.api_keys import ApiKeys, KeyInfo
from calendar_svc.errors import ApiProblem
from calendar_svc.logs import log_event

log = logging.getLogger("calendar_svc.api")

# Addresses whose failures are remembered at once; the least recently failing go first.
MAX_ADDRESSES = 10_000
_CHALLENGE = 'Bearer realm="calendar-svc"'


class FailureLimiter:
    """Failed authentications per client address in a sliding window (thread-safe)."""

    def __init__(
        self, limit: int, window: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque[float]:
        times = self._failures.get(address)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[address]
        return times

    def retry_after(self, address: str) -> int | None:
        """Seconds ``address`` must wait (over the limit), or None (it may try)."""
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, address: str) -> int | None:
        """Count a failure of ``address``; returns ``retry_after`` once it is over the limit."""
        with self._lock:
            now = self.clock()
            times = self._recent(address, now)
            times.append(now)
            self._failures[address] = times
            self._failures.move_to_end(address)
            while len(self._failures) > MAX_ADDRESSES:
                self._failures.popitem(last=False)
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - now))


class Authenticator:
    """Turns a request's ``Authorization`` header into the caller's key, or a problem."""

    def __init__(self, keys: ApiKeys, limiter: FailureLimiter) -> None:
        self.keys = keys
        self.limiter = limiter

    def check_address(self, address: str) -> None:
        """429 when ``address`` failed too often lately."""
        wait = self.limiter.retry_after(address)
        if wait is not None:
            raise ApiProblem(
                429,
                f"too many failed authentications from this address; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )

    def authenticate(self, header: str | None, address: str) -> KeyInfo:
        """The key of ``header`` (the ``Authorization`` value); 401 (or 429) otherwise.
        Looks up the database: call it from a worker thread."""
        scheme, _, token = (header or "").strip().partition(" ")
        token = token.strip()
        if not header:
            # No credentials at all is a client that has not been told yet, not a guess.
            raise ApiProblem(
                401,
                "this API needs a key: send Authorization: Bearer <token> "
                "(calendar-svc api-key create)",
                headers={"WWW-Authenticate": _CHALLENGE},
            )
        if scheme.lower() != "bearer" or not token:
            self._fail(address, "malformed", None)
        key, reason = self.keys.authenticate(token)
        if reason:
            self._fail(address, reason, key)
        assert key is not None
        return key

    def _fail(self, address: str, reason: str, key: KeyInfo | None) -> None:
        wait = self.limiter.failed(address)
        log_event(
            log,
            "api.auth_failed",
            logging.WARNING,
            client=address,
            reason=reason,
            key=key.name if key is not None else "",
        )
        if wait is not None:
            log_event(log, "api.rate_limited", logging.WARNING, client=address, retry_after=wait)
        said = {
            "malformed": "expected Authorization: Bearer <token>",
            "unknown": "this key is not known",
            "revoked": "this key was revoked",
            "expired": "this key has expired",
        }[reason]
        raise ApiProblem(
            401,
            said,
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
