"""The dispatcher: claims due deliveries, sends them through their notifier, records outcomes.

One *pump* thread does every write (claim, outcomes) so that a burst costs a
handful of transactions rather than two per reminder, and sends run on worker
threads of their channel's own (``workers.Lanes``): as many per channel as its
notifier's ``concurrency``, so a slow receiver on one channel never holds up
another channel's reminders. The pump wakes when an APScheduler date job
of a delivery fires (``wake()``), when a send finishes, and at least every
``IDLE_WAIT`` anyway, so due work is found even without a job in memory (a
row planned by another daemon, a retry, a clock jump).

It claims no more rows than its channels can start sending soon (each
channel's ``concurrency`` times ``QUEUE_PER_WORKER``, less what it already
holds): a claimed row is leased, so a burst is shared with the other daemons
rather than queued in one. Rows waiting here keep their lease fresh (``_renew``).
The claim takes due rows in due order whatever their channel, so while one
channel is full the room of the others may bring in more of its rows; they
wait in its lane, leased, and never block another channel's sends.

Only rows this process claimed are sent, and each outcome is written with a
condition on ``claimed_by``: if the lease ran out and another daemon took the
row over, this one's late result is ignored.

Each attempt's end is told on the dispatcher's bus as a ``DeliveryFinished``
(after a failed send, a ``ChannelFailing`` first) once its outcome is
written, in the order the attempts ended: the log lines, metrics and health
listen there, and see what the table says. An attempt whose row another
daemon took over is not told: its outcome was not written, and the other
daemon's attempt is the one that counts. Only a send that failed blames its
channel; a database error around it does not.

What to do with each claimed row is ``decision``'s; which notifiers sends
hold, so a reload closes the old ones only when free, is ``retire``'s.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from calendar_svc.config import Config
from calendar_svc.errors import PermanentNotifierError, RetryableNotifierError
from calendar_svc.event_log import logging_bus
from calendar_svc.events import ChannelFailing, EventBus, OutcomeKind
from calendar_svc.logs import log_event
from calendar_svc.models import Entry
from calendar_svc.notifiers import Notifier
from calendar_svc.reminders import repository as repo
from calendar_svc.reminders.decision import Send, after_failure, decide, superseded
from calendar_svc.reminders.entries import entries_by_key
from calendar_svc.reminders.outcome import ClaimedRow, Outcome, finished_event
from calendar_svc.reminders.retire import NotifiersInUse
from calendar_svc.reminders.workers import Lanes
from calendar_svc.store import Store

log = logging.getLogger(__name__)

IDLE_WAIT = 1.0
# How long a woken pump waits for more sends to end before its round: nothing a person
# notices, and at a thousand sends a second it makes each round's writes cover twenty.
GATHER = 0.02
# Rows claimed per send a channel may have in flight: enough to keep its threads busy
# between pump rounds.
QUEUE_PER_WORKER = 4
# Leases renewed per statement (a channel's lane may hold many rows).
RENEW_CHUNK = 400


def default_claimer() -> str:
    # host:pid names the process for people; the random part keeps two processes apart
    # where host and pid repeat (containers that all run as pid 1 on one hostname).
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Sends due deliveries through ``notifiers`` (a pump thread, and per channel as many
    senders as its notifier's ``concurrency``, at most ``workers`` when given: tests).

    ``events``: the bus each attempt's end is told on (default: one that only logs).
    ``on_retry(id, when)`` is called once a retry's next attempt time is written.
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        notifiers: Mapping[str, Notifier],
        *,
        events: EventBus | None = None,
        claimer: str | None = None,
        workers: int | None = None,
        on_retry: Callable[[int, datetime], None] | None = None,
    ):
        self.store = store
        self.config = config
        self.notifiers = dict(notifiers)
        self.events = events if events is not None else logging_bus()
        self.claimer = claimer or default_claimer()
        self.max_workers = workers
        self.on_retry = on_retry
        self._lanes = Lanes()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # The rows being sent (or queued to be) by this process, by id.
        self._inflight: dict[int, ClaimedRow] = {}
        # Rows stop() put back to pending while still in flight or queued.
        self._given_back: set[int] = set()
        # Which notifiers sends and claiming rounds hold: a reload closes the old
        # notifiers only once none does (``retire.retire``).
        self.in_use = NotifiersInUse()
        self._ended: list[_Ended] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._pump: threading.Thread | None = None
        self._renewed = time.monotonic()
        # Outcomes written so far (sent, retried, failed, missed, ...): the daemon refreshes
        # its status line when this moves.
        self.finished = 0

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._pump = threading.Thread(target=self._run_pump, name="dispatch-pump", daemon=True)
        self._pump.start()

    def wake(self) -> None:
        """Due work may be waiting (a date job fired, a send finished, a rescan)."""
        self._wake.set()

    def replace(self, config: Config, notifiers: Mapping[str, Notifier]) -> dict[str, Notifier]:
        """Use a new config and notifiers from now on; returns the old notifiers (to close)."""
        with self._lock:
            old, self.notifiers, self.config = self.notifiers, dict(notifiers), config
        return old

    def stop(self, timeout: float) -> list[int]:
        """Stop claiming, let sends in flight finish within ``timeout`` seconds, and put the
        rows of unfinished ones back to pending. Returns their ids."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._pump is not None:
            self._pump.join(max(0.0, deadline - time.monotonic()))
        self.wait_idle(max(0.0, deadline - time.monotonic()))
        with self._lock:
            unfinished = sorted(self._inflight.values(), key=lambda r: r.id)
        # After the snapshot: outcomes of sends that ended up to this point are written.
        self.flush()
        if unfinished:
            now = self.store.clock()
            reason = "the daemon stopped while sending; sent again later"
            released = [
                _Ended(row, Outcome.release(row.id, at=now, reason=reason), now)
                for row in unfinished
            ]
            with self.store.write() as session:
                owned = repo.finish(
                    session, [e.outcome for e in released], claimer=self.claimer, now=now
                )
            with self._lock:
                self._given_back.update(row.id for row in unfinished)
            self._tell(released, owned)
        self._lanes.shutdown()
        return [row.id for row in unfinished]

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no send is in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    # --- the pump ---------------------------------------------------------------------

    def _run_pump(self) -> None:
        while not self._stopping.is_set():
            if self._wake.wait(IDLE_WAIT):
                # Woken (a send ended, an alarm): gather what else ends meanwhile, so that
                # a burst writes its outcomes and claims its rows in batches, not per send.
                self._stopping.wait(GATHER)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                while self.run_once():
                    pass
            except Exception:  # the database may be briefly away; try again next round
                log.exception("dispatcher.round_failed")
                time.sleep(IDLE_WAIT)

    def run_once(self) -> int:
        """Write finished outcomes, then claim and start what is due; returns rows claimed.

        Tests call it directly (with ``wait_idle`` and ``flush``) instead of the pump.
        """
        self.flush()
        if self._stopping.is_set():
            return 0
        with self._lock:
            config, notifiers = self.config, self.notifiers
            room = self._room(notifiers)
        with self.in_use.round(notifiers):
            return self._claim_and_start(room, config, notifiers)

    def concurrency(self, notifier: Notifier) -> int:
        """Sends of ``notifier``'s channel this process runs at once."""
        limit = notifier.concurrency
        return limit if self.max_workers is None else min(limit, self.max_workers)

    def _room(self, notifiers: Mapping[str, Notifier]) -> int:
        """Rows to claim now: what each channel's lane can start soon, less what it holds.
        A full channel gives nothing, and takes nothing from the others' room."""
        if not notifiers:  # nothing can be sent; rows are still ended (no notifier)
            return QUEUE_PER_WORKER
        held = Counter(row.channel for row in self._inflight.values())
        # Rows that ended since the last flush are still `sending` in the table until the
        # next flush: they count, or this process would hold more than its channels' room.
        held.update(ended.row.channel for ended in self._ended)
        room = 0
        for name, notifier in notifiers.items():
            threads = self.concurrency(notifier)
            free = threads * QUEUE_PER_WORKER - held[name]
            # In batches of at least a lane's worth: while three lanes' worth wait here,
            # its threads stay busy, and a burst costs a claim per `threads` rows rather
            # than a claim (and an entry read and a flush) for every send that ended.
            if free >= threads:
                room += free
        return room

    def _claim_and_start(self, room: int, config: Config, notifiers: Mapping[str, Notifier]) -> int:
        self._renew(config)
        now = self.store.clock()
        with self.store.write() as session:
            claimed = repo.claim_due(
                session, now=now, limit=room, claimer=self.claimer, lease=config.reminders.lease
            )
        if not claimed:
            return 0
        started: set[int] = set()
        try:
            with self.store.read() as session:
                entries = entries_by_key(session, {(c.calendar_slug, c.entry_uid) for c in claimed})
            late_twins = superseded(claimed, now, config)
            for row in claimed:
                entry = entries.get((row.calendar_slug, row.entry_uid))
                self._start(row, entry, now, config, notifiers, late_twins)
                started.add(row.id)
        except Exception as exc:
            # Claimed but not started: back to pending now rather than stuck in
            # `sending` until the lease runs out; counts as an attempt.
            for row in claimed:
                if row.id not in started:
                    # Not the channel's fault: no ChannelFailing for a database error.
                    error = f"{type(exc).__name__}: {exc}"
                    self._done(row, self._after_failure(row, error, config))
            self.flush()
            raise
        self.flush()
        return len(claimed)

    def _renew(self, config: Config) -> None:
        """Keep the leases of sends in flight fresh (every third of the lease)."""
        lease = config.reminders.lease
        if time.monotonic() - self._renewed < lease.total_seconds() / 3:
            return
        with self._lock:
            ids = sorted(self._inflight)
        for start in range(0, len(ids), RENEW_CHUNK):
            with self.store.write() as session:
                repo.renew_leases(
                    session,
                    ids[start : start + RENEW_CHUNK],
                    claimer=self.claimer,
                    now=self.store.clock(),
                    lease=lease,
                )
        self._renewed = time.monotonic()

    def _start(
        self,
        row: ClaimedRow,
        entry: Entry | None,
        now: datetime,
        config: Config,
        notifiers: Mapping[str, Notifier],
        late_twins: set[int],
    ) -> None:
        """End one claimed row at once, or hand it to a worker (``decision.decide``)."""
        what = decide(
            row, entry, now=now, config=config, notifiers=notifiers, superseded=late_twins
        )
        if isinstance(what, Outcome):
            self._done(row, what)
            return
        with self._lock:
            if row.id in self._inflight:  # already being sent by this process: never twice
                return
            self._inflight[row.id] = row
        self.in_use.hold(row.id, what.notifier)
        self._lanes.submit(
            row.channel, self.concurrency(what.notifier), lambda: self._send(row, what, config)
        )

    def _send(self, row: ClaimedRow, send: Send, config: Config) -> None:
        if self._stopping.is_set():
            # Queued behind busy workers when the stop came: not sent, so back to pending
            # without counting the attempt (the stop must not send what it releases).
            with self._lock:
                given_back = row.id in self._given_back  # stop() already did, and told it
                if given_back:
                    self._inflight.pop(row.id, None)
                    self._idle.notify_all()
            if given_back:
                self.in_use.release(row.id)
                return
            reason = "the daemon stopped before sending; sent again later"
            self._done(row, Outcome.release(row.id, at=self.store.clock(), reason=reason))
            return
        started = time.monotonic()
        failing: str | None = None
        try:
            send.notifier.send(send.reminder)
        except PermanentNotifierError as exc:
            outcome = Outcome.failed(row.id, at=self.store.clock(), error=str(exc))
            failing = "gone" if exc.gone else str(exc)
        except RetryableNotifierError as exc:
            outcome = self._after_failure(row, str(exc), config, retry_after=exc.retry_after)
            failing = outcome.last_error
        except Exception as exc:  # a notifier bug: retried, as the Notifier contract says
            log.exception("notifier.bug", extra={"channel": row.channel, "delivery": row.id})
            outcome = self._after_failure(row, f"{type(exc).__name__}: {exc}", config)
            failing = outcome.last_error
        else:
            outcome = Outcome.sent(row.id, at=self.store.clock(), late=send.late)
        self._done(row, outcome, send_seconds=time.monotonic() - started, failing=failing)

    def _after_failure(
        self, row: ClaimedRow, error: str, config: Config, *, retry_after: float | None = None
    ) -> Outcome:
        at = self.store.clock()
        return after_failure(row, error, at=at, config=config.reminders, retry_after=retry_after)

    def _done(
        self,
        row: ClaimedRow,
        outcome: Outcome,
        *,
        send_seconds: float | None = None,
        failing: str | None = None,
    ) -> None:
        """``row`` ended as ``outcome``: written (and told) by the next ``flush``."""
        ended = _Ended(row, outcome, self.store.clock(), send_seconds, failing)
        with self._lock:
            self._ended.append(ended)
            self._inflight.pop(row.id, None)
            self._idle.notify_all()
        self.in_use.release(row.id)
        self._wake.set()

    def flush(self) -> None:
        """Write the outcomes gathered since the last flush, in one transaction; then tell
        them, those of rows this process still owned."""
        with self._lock:
            batch, self._ended = self._ended, []
        if not batch:
            return
        now = self.store.clock()
        try:
            with self.store.write() as session:
                owned = repo.finish(
                    session, [e.outcome for e in batch], claimer=self.claimer, now=now
                )
        except Exception:
            with self._lock:  # keep them for the next round rather than lose them
                self._ended[:0] = batch
            raise
        with self._lock:
            self.finished += len(batch)
        if len(owned) != len(batch):
            log_event(
                log,
                "dispatcher.lease_lost",
                logging.WARNING,
                lost=len(batch) - len(owned),
                hint="a send outlived reminders.lease and another daemon took the row over",
            )
        self._tell(batch, owned)
        if self.on_retry is not None:
            for ended in batch:
                if ended.outcome.kind is OutcomeKind.RETRY and ended.row.id in owned:
                    self.on_retry(ended.row.id, ended.outcome.next_attempt_at)

    def _tell(self, batch: list[_Ended], owned: set[int]) -> None:
        """The events of written outcomes, in the order the attempts ended."""
        for ended in batch:
            if ended.failing is not None:
                # Failing until a send through it succeeds (/healthz): the send did fail,
                # whoever owns the row now.
                self.events.emit(ChannelFailing(channel=ended.row.channel, reason=ended.failing))
            if ended.row.id in owned:
                self.events.emit(
                    finished_event(ended.row, ended.outcome, ended.at, ended.send_seconds)
                )


@dataclass(frozen=True)
class _Ended:
    """One attempt's end, waiting to be written: when, how long the notifier took, and
    why its channel failed (when a send through it did)."""

    row: ClaimedRow
    outcome: Outcome
    at: datetime
    send_seconds: float | None = None
    failing: str | None = None
