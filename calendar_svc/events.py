"""What happens inside calendar-svc, as events, and the bus that hands them to listeners.

The planner, the dispatcher, the daemon and the feed app say what they did by
emitting an event; whoever wants to know subscribes with ``add_listener``.
Health (``/healthz``), metrics (``/metrics``) and the log lines of these
events (``event_log``) are such listeners. The emitters know none of them,
so each daemon, feed server and test builds its own bus and observers: no
bus or observer lives in module-level state.

An event is what an observer may want to watch: a reminder planned or
finished, a channel failing, the scheduler loop ticking, a feed answered. A
message meant only for the person reading the log (the feed is listening, a
reload failed) is logged where it happens instead.

Emitting is synchronous, in the emitter's thread, in the order of the calls:
listeners see events in the order they happened and may rely on that. A
listener must therefore be quick and thread-safe (events come from the
dispatcher's workers, the scheduler's tick and the feed's event loop at once).
A listener that raises is logged and skipped; the emitter and the other
listeners never see its error. Pure: no database, no network, no clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of every event; listeners subscribe to a class and its subclasses."""


# --- the daemon ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStarted(Event):
    """The daemon is ready: its scheduler loop runs from ``at`` on."""

    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStartFailed(Event):
    """The daemon could not start (``error`` says why); what it had started is stopped, and
    no ``DaemonStopping`` / ``DaemonStopped`` follows: it never ran."""

    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStopping(Event):
    """The running daemon stops taking work; ``reason`` is the signal's name (``SIGTERM``,
    ``SIGINT``), what ``request_stop`` was given (``request``), or ``error`` when its loop
    failed."""

    reason: str
    in_flight: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStopped(Event):
    """The daemon stopped; ``released`` sends were unfinished and went back to pending."""

    released: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LoopTicked(Event):
    """The scheduler loop ran its tick (watchdog, schedule files, planning, leases)."""

    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ClockStepped(Event):
    """The loop saw the wall clock step ``seconds`` (signed: negative is back) against the
    monotonic clock; ``at`` is the wall time after it. The daemon re-planned at once and,
    on a step back, put ``revived`` rows marked missed while the clock ran ahead back to
    pending."""

    seconds: float
    at: datetime
    revived: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PendingChanged(Event):
    """The pending deliveries of the horizon, counted after a planner pass or sends."""

    pending: int
    next_due: datetime | None


# --- schedule files --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleImported(Event):
    """A schedule file was imported (entries created, updated, unchanged, and kept: held by
    another owner, so left alone)."""

    file: str
    created: int
    updated: int
    unchanged: int
    kept: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleImportFailed(Event):
    """A schedule file was not imported: the file is wrong (``bad_file``) or the database
    refused it."""

    file: str
    error: str
    bad_file: bool


# --- entries the engine cannot use -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryIsolated(Event):
    """An entry holds a value the engine cannot use (``reason`` names the field): it is
    left out of planning, feeds and the page while every other entry goes on. Told once
    per change of its reason (``isolation.Screen``)."""

    calendar: str
    uid: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryRestored(Event):
    """An entry told as isolated is usable again, or is gone."""

    calendar: str
    uid: str


# --- sources (followed ICS feeds) ------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFetched(Event):
    """A source was fetched at ``at``: ``changed`` (parsed and imported) or not (a 304, or
    the same bytes as the last good copy: nothing parsed)."""

    name: str
    calendar: str
    at: datetime
    changed: bool
    seconds: float
    created: int = 0
    updated: int = 0
    pruned: int = 0
    kept: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceFailed(Event):
    """A fetch or import of a source failed; its entries stay the last good copy."""

    name: str
    calendar: str
    at: datetime
    error: str
    failures: int  # in a row
    last_success: datetime | None


# --- the planner -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderPlanned(Event):
    """A pending delivery row was written (or a cancelled one revived) at ``planned_at``."""

    calendar: str
    uid: str
    channel: str
    due_at: datetime
    offset: timedelta
    planned_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ReminderCancelled(Event):
    """The planner cancelled a pending delivery that no rule produces any more."""

    calendar: str
    uid: str
    channel: str
    delivery: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MissedReminder:
    """One reminder that came due while no daemon planned (part of ``PlannerGap``)."""

    calendar: str
    uid: str
    channel: str
    due_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerGap(Event):
    """The previous pass is older than the gap threshold: ``missed`` came due in
    ``[recorded_from, until)`` without a row and were recorded missed."""

    last_pass: datetime
    recorded_from: datetime
    until: datetime
    missed: tuple[MissedReminder, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerPassed(Event):
    """A planner pass committed at ``at`` (always after the pass's other events)."""

    at: datetime
    planned: int
    cancelled: int
    missed: int


# --- the dispatcher --------------------------------------------------------------------------


class OutcomeKind(StrEnum):
    """How one attempt at a claimed delivery ended (``reminders.outcome.Outcome``)."""

    SENT = "sent"  # the notifier took it
    RETRY = "retry"  # failed for now: pending again, at a later attempt time
    RELEASE = "release"  # not finished (the daemon stopped): pending, attempt given back
    FAILED = "failed"  # failed for good
    MISSED = "missed"  # too late to be worth sending
    CANCELLED = "cancelled"  # no longer wanted (the entry changed or is gone)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFinished(Event):
    """A claimed delivery ended one attempt, as ``outcome`` says.

    ``send_seconds`` is how long the notifier took, when it was called;
    ``error`` the reason of anything but a send.
    """

    delivery: int
    calendar: str
    uid: str
    channel: str
    due_at: datetime
    attempt: int
    outcome: OutcomeKind
    finished_at: datetime
    late: bool = False
    error: str | None = None
    next_attempt_at: datetime | None = None
    send_seconds: float | None = None

    @property
    def lateness(self) -> timedelta:
        return self.finished_at - self.due_at


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFailing(Event):
    """A send through ``channel`` failed (``reason`` is ``gone`` when the peer said so);
    it counts as failing until a send through it succeeds."""

    channel: str
    reason: str


# --- the feed --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedAnswered(Event):
    """The feed route answered ``count`` requests with HTTP ``status``: one, or the polls of
    unchanged feeds answered from memory in one turn of the server's event loop, told at
    once when it ends."""

    status: int
    count: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedCacheLookup(Event):
    """A request looked for its rendered feed in the cache."""

    hit: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedRendered(Event):
    """A feed that was not cached was built in ``seconds``."""

    slug: str
    version: int
    entries: int
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreChanged(Event):
    """A commit changed calendars, entries or share links (``changes.ChangeWatcher``);
    ``source`` says how it was heard: "notify" (PostgreSQL), "data_version" (SQLite),
    "poll" (the fallback) or "reconnect" (maybe missed while not listening)."""

    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PageAnswered(Event):
    """The subscribers' page (or one entry's .ics from it) answered with HTTP ``status``."""

    status: int


# --- the bus ---------------------------------------------------------------------------------

Listener = Callable[[Event], object]


class EventBus:
    """Hands each emitted event to the listeners subscribed to its class (thread-safe).

    ``add_listener(callback, kinds=(ReminderPlanned, DeliveryFinished))``
    subscribes ``callback`` to those classes and their subclasses (no
    ``kinds``: to every event). Which listeners an event class reaches is
    worked out once per class and kept until the listeners change, so an
    ``emit`` on a hot path (every feed request) costs a dictionary lookup and
    the calls.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[tuple[Listener, tuple[type[Event], ...]]] = []
        # Replaced, never mutated, so that emit() may read it without the lock.
        self._routes: dict[type[Event], tuple[Listener, ...]] = {}

    def add_listener(self, callback: Listener, kinds: Iterable[type[Event]] | None = None) -> None:
        """Call ``callback(event)`` for every event of ``kinds`` (default: all) from now on."""
        wanted = (Event,) if kinds is None else tuple(kinds)
        for kind in wanted:
            if not (isinstance(kind, type) and issubclass(kind, Event)):
                raise TypeError(f"not an event class: {kind!r}")
        with self._lock:
            self._listeners.append((callback, wanted))
            self._routes = {}

    def remove_listener(self, callback: Listener) -> bool:
        """Stop calling ``callback`` (every subscription of it); False if it had none."""
        with self._lock:
            kept = [(cb, kinds) for cb, kinds in self._listeners if cb != callback]
            removed = len(kept) != len(self._listeners)
            self._listeners = kept
            self._routes = {}
        return removed

    def emit(self, event: Event) -> None:
        """Hand ``event`` to its listeners, in the order they subscribed."""
        kind = type(event)
        listeners = self._routes.get(kind)
        if listeners is None:
            listeners = self._route(kind)
        for callback in listeners:
            try:
                callback(event)
            except Exception:
                # An observer's bug must not stop a reminder or a feed answer.
                log.exception(
                    "events.listener_failed",
                    extra={"event": kind.__name__, "listener": _name(callback)},
                )

    def _route(self, kind: type[Event]) -> tuple[Listener, ...]:
        with self._lock:
            found = tuple(cb for cb, kinds in self._listeners if issubclass(kind, kinds))
            self._routes = {**self._routes, kind: found}
        return found


def _name(callback: Listener) -> str:
    return str(getattr(callback, "__qualname__", None) or type(callback).__qualname__)
