"""Noticing at once that the store changed, whichever process changed it.

A ``ChangeWatcher`` keeps a **generation** number that rises after every commit
that changes a calendar, an entry or a share link, and tells listeners
(``subscribe``) and the store's event bus (``StoreChanged``). The feed keeps what
it read per request (a calendar's head) for as long as the generation stays the
same; the daemon re-plans when it rises. How it hears of a commit:

* **PostgreSQL**: ``LISTEN calendar_svc_changes`` on a connection of its own.
  Triggers (migration 0010) send the notification from the database itself at
  every commit that wrote ``calendars``, ``entries`` or ``share_links``, so no
  writer (importer, CLI, API, another daemon, another release) can forget it.
  A lost notification is covered by a poll of ``Store.change_counter`` every
  ``fallback`` seconds; when the connection drops, the counter is polled every
  ``interval`` while it reconnects with backoff (logged: ``changes.listen_lost``,
  ``changes.listening``).
* **SQLite**: ``PRAGMA data_version`` on a connection of its own, which moves
  when any other connection commits, every ``interval`` (100 ms).
* **This process**: a commit through ``Store.write`` raises the generation
  before ``write`` returns (``Store.after_commit``), so an API write shows in
  the next request of the same server without waiting for either signal
  (listeners hear of it from the thread, as of any other commit).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from calendar_svc.db import dialect_name
from calendar_svc.events import EventBus, StoreChanged
from calendar_svc.logs import log_event
from calendar_svc.store import Store

log = logging.getLogger(__name__)

CHANNEL = "calendar_svc_changes"  # the migration's triggers NOTIFY it
_MAX_BACKOFF = 30.0


class ChangeWatcher:
    """The store's change generation, kept current by a thread (``start`` / ``stop``).

    ``interval``: seconds between polls (SQLite's data_version; PostgreSQL's change
    counter while not listening). ``fallback``: seconds between polls of the change
    counter while listening on PostgreSQL, for a notification that was lost.
    """

    def __init__(
        self,
        store: Store,
        events: EventBus | None = None,
        *,
        interval: float = 0.1,
        fallback: float = 2.0,
    ):
        self.store = store
        self.events = events if events is not None else store.events
        self.interval = interval
        self.fallback = fallback
        self.generation = 0
        self._postgres = dialect_name(store.engine) == "postgresql"
        self._listeners: list[Callable[[str], None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Listeners run in a thread of their own, so a slow one (the daemon's re-plan) never
        # delays the next change reaching the generation; changes heard while they run
        # are told once more after them (the planner reads everything anew anyway).
        self._teller: threading.Thread | None = None
        self._to_tell = threading.Event()
        self._told_source = ""
        self._conn: Any = None
        self._counter: int | None = None
        self.listening = False  # PostgreSQL: the LISTEN connection is up
        self._live = False

    @property
    def live(self) -> bool:
        """Whether the generation is kept current (between ``start`` and ``stop``; a plain
        attribute read: every feed request asks)."""
        return self._live

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(source)`` after changes it notices, in a thread of the watcher's
        (``source``, of the latest: "notify", "poll", "data_version" or "reconnect");
        changes that come while the callbacks run make one more call."""
        with self._lock:
            self._listeners = [*self._listeners, callback]

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.store.after_commit(self._local)
        # Live before the thread runs: a thread that fails at once must leave it false.
        self._live = True
        self._thread = threading.Thread(target=self._run, name="calendar-svc-changes", daemon=True)
        self._thread.start()
        self._teller = threading.Thread(
            target=self._tell, name="calendar-svc-changes-listeners", daemon=True
        )
        self._teller.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._end_live()
        thread, self._thread = self._thread, None
        teller, self._teller = self._teller, None
        self._stop.set()
        self._to_tell.set()
        for running in (thread, teller):
            if running is not None:
                running.join(timeout)
        self.store.remove_after_commit(self._local)

    # -- noticing ------------------------------------------------------------------------

    def _changed(self, source: str) -> None:
        with self._lock:
            self.generation += 1
            self._told_source = source
        self.events.emit(StoreChanged(source=source))
        self._to_tell.set()

    def _tell(self) -> None:
        while True:
            self._to_tell.wait()
            if self._stop.is_set():
                return
            self._to_tell.clear()
            with self._lock:
                listeners, source = self._listeners, self._told_source
            for callback in listeners:
                try:
                    callback(source)
                except Exception:
                    log.exception("changes.listener_failed")

    def _local(self) -> None:
        # Only the generation, in the committing thread (which may hold locks listeners
        # take: the daemon's tick commits too); listeners hear the same commit from the
        # thread, through data_version or the NOTIFY every listener gets.
        with self._lock:
            self.generation += 1

    def _run(self) -> None:
        try:
            if self._postgres:
                self._run_postgres()
            else:
                self._run_sqlite()
        except BaseException:
            log.exception("changes.watcher_failed")
        finally:
            # Nobody keeps the generation current any more: readers go to the database.
            self._end_live()
            self._close()

    def _end_live(self) -> None:
        self._live = False
        with self._lock:
            # What was read under the last generation is no longer known to be current.
            self.generation += 1

    def _run_sqlite(self) -> None:
        last: int | None = None
        while not self._stop.is_set():
            try:
                if self._conn is None:
                    self._conn = self._connect()
                cursor = self._conn.cursor()
                cursor.execute("PRAGMA data_version")
                version = int(cursor.fetchone()[0])
                cursor.close()
                if last is not None and version != last:
                    self._changed("data_version")
                last = version
            except Exception as exc:
                log_event(log, "changes.poll_failed", logging.WARNING, error=type(exc).__name__)
                self._close()
                last = None
                self._changed("reconnect")  # a change may have gone unseen
            self._stop.wait(self.interval)

    def _run_postgres(self) -> None:
        backoff = self.interval
        next_attempt = 0.0
        last_poll = time.monotonic()
        while not self._stop.is_set():
            if self._conn is None and time.monotonic() >= next_attempt:
                try:
                    self._conn = self._connect()
                    self._conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    backoff = self.interval
                    log_event(log, "changes.listening", channel=CHANNEL)
                    self._changed("reconnect")  # whatever happened while not listening
                except Exception as exc:
                    self._close()
                    log_event(
                        log,
                        "changes.listen_failed",
                        logging.WARNING,
                        error=type(exc).__name__,
                        retry_in=round(backoff, 2),
                    )
                    next_attempt = time.monotonic() + backoff
                    backoff = min(backoff * 2, _MAX_BACKOFF)
            if self._conn is not None:
                try:
                    heard = False
                    for _ in self._conn.notifies(timeout=min(0.25, self.fallback), stop_after=1):
                        heard = True
                    if heard:
                        # Several commits may be queued behind the first: one change for all.
                        for _ in self._conn.notifies(timeout=0.0):
                            pass
                        self._changed("notify")
                        last_poll = time.monotonic()
                        self._counter = None
                        continue
                except Exception as exc:
                    self._close()
                    log_event(
                        log,
                        "changes.listen_lost",
                        logging.WARNING,
                        error=type(exc).__name__,
                        fallback="polling the change counter",
                    )
                    next_attempt = time.monotonic() + backoff
                    continue
                if time.monotonic() - last_poll >= self.fallback:
                    last_poll = time.monotonic()
                    self._poll_counter()
            else:
                self._poll_counter()
                self._stop.wait(self.interval)

    def _poll_counter(self) -> None:
        """The fallback: compare the store's change counter with the last one seen."""
        try:
            counter = self.store.change_counter()
        except Exception:
            return  # the database is away; the next poll tries again
        if self._counter is not None and counter != self._counter:
            self._changed("poll")
        self._counter = counter

    def _connect(self) -> Any:
        """A DBAPI connection of our own, outside the engine's pool (it is held for good)."""
        engine = self.store.engine
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        conn = engine.dialect.connect(*cargs, **cparams)
        if self._postgres:
            conn.autocommit = True
        return conn

    def _close(self) -> None:
        self.listening = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
