"""The daemon's source loop: a thread of its own that syncs each source every ``interval``.

Each source is due ``interval`` after its last sync began (measured on the
monotonic clock, so a step of the wall clock neither stalls nor floods it);
the first sync of each is at start. Due sources are synced by a small pool
of workers, at most one sync per source at a time, so a slow or hostile
feed (a trickle, a bomb, a timeout) occupies one worker for at most its
``timeout`` and delays neither the other sources nor the reminders, which
run in threads of their own. ``fetch_now(name)`` makes a source due at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from calendar_svc.config import Config, SourceConfig
from calendar_svc.events import EventBus
from calendar_svc.sources.fetch import new_client
from calendar_svc.sources.sync import SyncResult, sync
from calendar_svc.store import Store

log = logging.getLogger(__name__)

MAX_WORKERS = 4


class SourceLoop:
    """Syncs ``config.sources`` in the background; ``start()``, ``stop()``, ``reload()``."""

    def __init__(
        self,
        store: Store,
        config: Config,
        events: EventBus,
        *,
        on_change: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.config = config
        self.events = events
        self._on_change = on_change
        self._monotonic = monotonic
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Re-entrant: a done callback may run in the thread that submitted the sync.
        self._lock = threading.RLock()
        self._due: dict[str, float] = {s.name: 0.0 for s in config.sources}
        self._running: dict[str, Future[SyncResult]] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, min(MAX_WORKERS, len(config.sources))),
            thread_name_prefix="source",
        )
        self._thread = threading.Thread(target=self._run, name="sources", daemon=True)
        # One HTTP client for every sync (thread-safe; keeps connections and TLS context).
        self._client = new_client()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop scheduling; syncs under way end by their own timeout (not waited for
        beyond ``timeout``: their threads are daemons and their transactions atomic)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def reload(self, config: Config) -> None:
        """New ``[[sources]]``: new and changed sources are synced at once."""
        with self._lock:
            old = {s.name: s for s in self.config.sources}
            self.config = config
            self._due = {
                s.name: (self._due.get(s.name, 0.0) if old.get(s.name) == s else 0.0)
                for s in config.sources
            }
        self._wake.set()

    def fetch_now(self, name: str) -> None:
        with self._lock:
            if name in self._due:
                self._due[name] = 0.0
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            now = self._monotonic()
            with self._lock:
                sources = {s.name: s for s in self.config.sources}
                for name, due in list(self._due.items()):
                    source = sources.get(name)
                    if source is None or due > now or name in self._running:
                        continue
                    self._due[name] = now + source.interval.total_seconds()
                    future = self._pool.submit(self._sync, source)
                    self._running[name] = future
                    future.add_done_callback(self._done)
                waits = [d - now for n, d in self._due.items() if n not in self._running]
            self._wake.wait(max(0.05, min(waits, default=60.0)))
            self._wake.clear()

    def _sync(self, source: SourceConfig) -> SyncResult:
        try:
            result = sync(self.store, source, self.config, self.events, client=self._client)
        except Exception:  # sync records its own failures; this is a bug, and never fatal
            log.exception("source.sync_crashed", extra={"source": source.name})
            return SyncResult(source.name, error="crashed")
        if result.changed and self._on_change is not None:
            self._on_change()
        return result

    def _done(self, future: Future[SyncResult]) -> None:
        with self._lock:
            for name, running in list(self._running.items()):
                if running is future:
                    del self._running[name]
        self._wake.set()
