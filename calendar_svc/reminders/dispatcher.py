"""The dispatcher: claims due deliveries, sends them through their notifier, records outcomes.

One *pump* thread does every write (claim, outcomes) so that a burst costs a
handful of transactions rather than two per reminder, and sends run on a
bounded pool of worker threads. The pump wakes when an APScheduler date job
of a delivery fires (``wake()``), when a send finishes, and at least every
``IDLE_WAIT`` anyway, so due work is found even without a job in memory (a
row planned by another daemon, a retry, a clock jump).

It claims no more rows than it can start sending soon (``capacity``): a
claimed row is leased, and one waiting in a long local queue would outlive its
lease and be sent again by another daemon.

Only rows this process claimed are sent, and each outcome is written with a
condition on ``claimed_by``: if the lease ran out and another daemon took the
row over, this one's late result is ignored.

Each attempt's end is told on the dispatcher's bus as a ``DeliveryFinished``
(and a failing channel as ``ChannelFailing``), when it happens: the log
lines, metrics and health listen there.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from calendar_svc.config import Config
from calendar_svc.errors import PermanentNotifierError, RetryableNotifierError
from calendar_svc.event_log import logging_bus
from calendar_svc.events import ChannelFailing, DeliveryFinished, EventBus, OutcomeKind
from calendar_svc.links import reminder_feed_url
from calendar_svc.logs import log_event
from calendar_svc.messages import build_reminder
from calendar_svc.models import Entry
from calendar_svc.notifiers import Notifier, Reminder
from calendar_svc.reminders import repository as repo
from calendar_svc.reminders.policy import Timing, retry_delay, timing
from calendar_svc.reminders.repository import ClaimedRow, Outcome
from calendar_svc.reminders.rules import Slot, reminders_between, slot_of
from calendar_svc.reminders.workers import WorkerPool
from calendar_svc.store import Store

log = logging.getLogger(__name__)

IDLE_WAIT = 1.0
WORKERS = 16
# Rows claimed per worker: enough to keep workers busy between pump rounds.
QUEUE_PER_WORKER = 4


def default_claimer() -> str:
    # host:pid names the process for people; the random part keeps two processes apart
    # where host and pid repeat (containers that all run as pid 1 on one hostname).
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Dispatcher:
    """Sends due deliveries through ``notifiers`` (a pump thread and ``workers`` senders).

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
        workers: int = WORKERS,
        on_retry: Callable[[int, datetime], None] | None = None,
    ):
        self.store = store
        self.config = config
        self.notifiers = dict(notifiers)
        self.events = events if events is not None else logging_bus()
        self.claimer = claimer or default_claimer()
        self.capacity = workers * QUEUE_PER_WORKER
        self.on_retry = on_retry
        self._pool = WorkerPool(workers)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        # The rows being sent (or queued to be) by this process, by id.
        self._inflight: dict[int, ClaimedRow] = {}
        # Rows stop() put back to pending while still in flight or queued.
        self._given_back: set[int] = set()
        # Which notifier each send in flight (or queued) uses: a reload closes the old
        # notifiers only once no send holds one of them.
        self._using: dict[int, Notifier] = {}
        # The notifiers each claiming round took before claiming: a reload during the
        # round must not close them before its sends are registered in ``_using``.
        self._rounds: list[Mapping[str, Notifier]] = []
        self._outcomes: list[tuple[Outcome, ClaimedRow]] = []
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
            released = [Outcome.release(row.id, now=now, reason=reason) for row in unfinished]
            with self.store.write() as session:
                repo.finish(session, released, claimer=self.claimer, now=now)
            with self._lock:
                self._given_back.update(row.id for row in unfinished)
            for row, outcome in zip(unfinished, released, strict=True):
                self.events.emit(_finished(row, outcome, now))
        self._pool.shutdown()
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

    def wait_released(self, notifiers: Iterable[Notifier], timeout: float) -> bool:
        """Wait until no send in flight or queued uses any of ``notifiers``; False on timeout.

        Sends that started with the new notifiers after a reload do not hold this up.
        """
        wanted = {id(n) for n in notifiers}

        def held() -> bool:
            in_rounds = (n for round_ in self._rounds for n in round_.values())
            return any(id(n) in wanted for n in (*self._using.values(), *in_rounds))

        deadline = time.monotonic() + timeout
        with self._idle:
            while held():
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
            self._wake.wait(IDLE_WAIT)
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
            room = self.capacity - len(self._inflight)
            config, notifiers = self.config, self.notifiers
            self._rounds.append(notifiers)
        try:
            return self._claim_and_start(room, config, notifiers)
        finally:
            with self._lock:
                index = next(i for i, r in enumerate(self._rounds) if r is notifiers)
                del self._rounds[index]
                self._idle.notify_all()

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
                entries = repo.entries_by_key(
                    session, {(c.calendar_slug, c.entry_uid) for c in claimed}
                )
            superseded = _superseded(claimed, now, config)
            for row in claimed:
                self._start(
                    row,
                    entries.get((row.calendar_slug, row.entry_uid)),
                    now,
                    config,
                    notifiers,
                    superseded,
                )
                started.add(row.id)
        except Exception as exc:
            # Claimed but not started: back to pending now rather than stuck in
            # `sending` until the lease runs out; counts as an attempt.
            for row in claimed:
                if row.id not in started:
                    self._done(row, self._retry(row, f"{type(exc).__name__}: {exc}", None, config))
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
        if ids:
            with self.store.write() as session:
                repo.renew_leases(
                    session, ids, claimer=self.claimer, now=self.store.clock(), lease=lease
                )
        self._renewed = time.monotonic()

    def _start(
        self,
        row: ClaimedRow,
        entry: Entry | None,
        now: datetime,
        config: Config,
        notifiers: Mapping[str, Notifier],
        superseded: set[int],
    ) -> None:
        """Decide what to do with one claimed row: skip it, or hand it to a worker."""
        rem = config.reminders
        if entry is None or not _still_wanted(row, entry, config):
            reason = "no longer wanted: the entry changed or is gone"
            self._done(row, Outcome.cancelled(row.id, now=now, reason=reason))
            return
        when = timing(now, row.due_at, row.occurrence_utc, rem.grace)
        if when is Timing.MISSED or row.id in superseded:
            reason = (
                "superseded by a later reminder of the same occurrence"
                if row.id in superseded
                else "too late: the entry started and grace ran out"
            )
            self._done(row, Outcome.missed(row.id, now=now, reason=reason))
            return
        notifier = notifiers.get(row.channel)
        if notifier is None:
            error = f"no notifier for channel {row.channel!r}"
            self._done(row, Outcome.failed(row.id, now=now, error=error))
            return
        late = when is Timing.LATE
        reminder = build_reminder(
            idempotency_key=row.idempotency_key,
            calendar_slug=row.calendar_slug,
            entry=entry,
            start_utc=row.occurrence_utc,
            offset=row.offset,
            due_at=row.due_at,
            late=late,
            display=config.display,
            feed_url=reminder_feed_url(config.feed.public_url, entry.calendar),
        )
        with self._lock:
            if row.id in self._inflight:  # already being sent by this process: never twice
                return
            self._inflight[row.id] = row
            self._using[row.id] = notifier
        self._pool.submit(lambda: self._send(row, reminder, notifier, late, config))

    def _send(
        self, row: ClaimedRow, reminder: Reminder, notifier: Notifier, late: bool, config: Config
    ) -> None:
        if self._stopping.is_set():
            # Queued behind busy workers when the stop came: not sent, so back to pending
            # without counting the attempt (the stop must not send what it releases).
            with self._lock:
                if row.id in self._given_back:  # stop() already did, and told it
                    self._inflight.pop(row.id, None)
                    self._using.pop(row.id, None)
                    self._idle.notify_all()
                    return
            reason = "the daemon stopped before sending; sent again later"
            self._done(row, Outcome.release(row.id, now=self.store.clock(), reason=reason))
            return
        started = time.monotonic()
        try:
            notifier.send(reminder)
        except PermanentNotifierError as exc:
            outcome = self._failed(row, str(exc), gone=exc.gone)
        except RetryableNotifierError as exc:
            outcome = self._retry(row, str(exc), exc.retry_after, config)
        except Exception as exc:  # a notifier bug: retried, as the Notifier contract says
            log.exception("notifier.bug", extra={"channel": row.channel, "delivery": row.id})
            outcome = self._retry(row, f"{type(exc).__name__}: {exc}", None, config)
        else:
            outcome = Outcome.sent(row.id, at=self.store.clock(), late=late)
        self._done(row, outcome, send_seconds=time.monotonic() - started)

    def _retry(
        self, row: ClaimedRow, error: str, retry_after: float | None, config: Config
    ) -> Outcome:
        rem = config.reminders
        if row.attempts >= rem.max_attempts:
            return self._failed(row, f"gave up after {row.attempts} attempts: {error}")
        # Failing until a send through it succeeds (/healthz).
        self.events.emit(ChannelFailing(channel=row.channel, reason=error))
        now = self.store.clock()
        delay = retry_delay(row.attempts, rem.retry_base, rem.retry_max, retry_after=retry_after)
        return Outcome.retry(row.id, at=now + delay, error=error)

    def _failed(self, row: ClaimedRow, error: str, *, gone: bool = False) -> Outcome:
        self.events.emit(ChannelFailing(channel=row.channel, reason="gone" if gone else error))
        return Outcome.failed(row.id, now=self.store.clock(), error=error)

    def _done(
        self, row: ClaimedRow, outcome: Outcome, *, send_seconds: float | None = None
    ) -> None:
        with self._lock:
            self._outcomes.append((outcome, row))
            self._inflight.pop(row.id, None)
            if self._using.pop(row.id, None) is not None or not self._inflight:
                self._idle.notify_all()
        self.events.emit(_finished(row, outcome, self.store.clock(), send_seconds))
        self._wake.set()

    def flush(self) -> None:
        """Write the outcomes gathered since the last flush, in one transaction."""
        with self._lock:
            batch, self._outcomes = self._outcomes, []
        if not batch:
            return
        now = self.store.clock()
        try:
            with self.store.write() as session:
                owned = repo.finish(session, [o for o, _ in batch], claimer=self.claimer, now=now)
        except Exception:
            with self._lock:  # keep them for the next round rather than lose them
                self._outcomes[:0] = batch
            raise
        with self._lock:
            self.finished += len(batch)
        if owned != len(batch):
            log_event(
                log,
                "dispatcher.lease_lost",
                logging.WARNING,
                lost=len(batch) - owned,
                hint="a send outlived reminders.lease and another daemon took the row over",
            )
        if self.on_retry is not None:
            for outcome, _ in batch:
                if outcome.kind is OutcomeKind.RETRY:
                    self.on_retry(outcome.id, outcome.next_attempt_at)


def _still_wanted(row: ClaimedRow, entry: Entry, config: Config) -> bool:
    """Whether the rules still produce this row's reminder (the planner may not have run yet)."""
    around = timedelta(seconds=1)
    found = reminders_between(
        entry,
        entry.calendar.slug,
        entry.calendar.reminders,
        config.reminders,
        row.due_at - around,
        row.due_at + around,
    )
    return any(r.dedupe_key == row.dedupe_key for r in found)


def _superseded(rows: list[ClaimedRow], now: datetime, config: Config) -> set[int]:
    """Late rows of one occurrence and channel claimed together: all but the latest-due one."""
    latest: dict[Slot, ClaimedRow] = {}
    late = [
        r
        for r in rows
        if timing(now, r.due_at, r.occurrence_utc, config.reminders.grace) is not Timing.ON_TIME
    ]
    for r in late:
        slot = slot_of(r)
        if slot not in latest or latest[slot].due_at < r.due_at:
            latest[slot] = r
    keep = {r.id for r in latest.values()}
    return {r.id for r in late if r.id not in keep}


def _finished(
    row: ClaimedRow, outcome: Outcome, now: datetime, send_seconds: float | None = None
) -> DeliveryFinished:
    return DeliveryFinished(
        delivery=row.id,
        calendar=row.calendar_slug,
        uid=row.entry_uid,
        channel=row.channel,
        due_at=row.due_at,
        attempt=row.attempts,
        outcome=outcome.kind,
        finished_at=now,
        late=outcome.late,
        error=outcome.last_error,
        next_attempt_at=outcome.next_attempt_at,
        send_seconds=send_seconds,
    )
