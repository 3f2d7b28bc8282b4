"""The log lines of events: one ``log_event`` line per event worth a line, as a listener.

Each line keeps the logger of the module whose work it reports
(``calendar_svc.reminders.planner``, ``...dispatcher``, ``calendar_svc.daemon``,
``calendar_svc.feed``), so a logging filter or a reader's ``grep logger=``
finds it where it always was. Events that only observers count (a loop tick,
a cache lookup, a feed request) write no line.
"""

from __future__ import annotations

import logging
from typing import Any

from calendar_svc.events import (
    ClockStepped,
    DaemonStartFailed,
    DaemonStopped,
    DaemonStopping,
    DeliveryFinished,
    EntryIsolated,
    EntryRestored,
    Event,
    EventBus,
    FeedRendered,
    OutcomeKind,
    PlannerGap,
    ReminderCancelled,
    ReminderPlanned,
    ScheduleImported,
    ScheduleImportFailed,
    SourceFailed,
    SourceFetched,
)
from calendar_svc.logs import log_event
from calendar_svc.timezones import iso_utc

KINDS: tuple[type[Event], ...] = (
    EntryIsolated,
    EntryRestored,
    ReminderPlanned,
    ReminderCancelled,
    PlannerGap,
    DeliveryFinished,
    DaemonStartFailed,
    DaemonStopping,
    DaemonStopped,
    ScheduleImported,
    ScheduleImportFailed,
    FeedRendered,
    SourceFetched,
    SourceFailed,
    ClockStepped,
)

# Per-reminder lines for one gap (the planner.gap line gives the full count).
MISSED_LOG_LINES = 50

_planner = logging.getLogger("calendar_svc.reminders.planner")
_dispatcher = logging.getLogger("calendar_svc.reminders.dispatcher")
_daemon = logging.getLogger("calendar_svc.daemon")
_feed = logging.getLogger("calendar_svc.feed")
_sources = logging.getLogger("calendar_svc.sources")
_store = logging.getLogger("calendar_svc.store")


class EventLog:
    """Writes the log line of each event it is given (a listener; stateless)."""

    def attach(self, bus: EventBus) -> None:
        bus.add_listener(self.on_event, KINDS)

    def on_event(self, event: Event) -> None:
        match event:
            case ReminderPlanned():
                log_event(
                    _planner,
                    "reminder.planned",
                    uid=event.uid,
                    calendar=event.calendar,
                    channel=event.channel,
                    due=iso_utc(event.due_at),
                    offset=int(event.offset.total_seconds()),
                    in_seconds=round((event.due_at - event.planned_at).total_seconds()),
                )
            case ReminderCancelled():
                log_event(
                    _planner,
                    "reminder.cancelled",
                    uid=event.uid,
                    calendar=event.calendar,
                    channel=event.channel,
                    delivery=event.delivery,
                )
            case EntryIsolated():
                log_event(
                    _store,
                    "entry.isolated",
                    logging.WARNING,
                    uid=event.uid,
                    calendar=event.calendar,
                    reason=event.reason,
                    hint="left out of reminders, feeds and the page until it is fixed "
                    "(import its file again, or edit it); every other entry goes on",
                )
            case EntryRestored():
                log_event(_store, "entry.restored", uid=event.uid, calendar=event.calendar)
            case PlannerGap():
                self._gap(event)
            case DeliveryFinished():
                self._delivery(event)
            case DaemonStartFailed():
                log_event(_daemon, "daemon.start_failed", logging.ERROR, error=event.error)
            case DaemonStopping():
                log_event(
                    _daemon, "daemon.stopping", reason=event.reason, in_flight=event.in_flight
                )
            case DaemonStopped():
                log_event(_daemon, "daemon.stopped", released=event.released)
            case ScheduleImported():
                # "created" is a LogRecord attribute; the fields get names of their own.
                log_event(
                    _daemon,
                    "schedules.imported",
                    file=event.file,
                    new=event.created,
                    updated=event.updated,
                    unchanged=event.unchanged,
                    **({"kept": event.kept} if event.kept else {}),
                )
            case ScheduleImportFailed():
                log_event(
                    _daemon,
                    "schedules.import_failed",
                    logging.ERROR,
                    file=event.file,
                    error=event.error,
                    hint="fix the file; it is imported again when it changes"
                    if event.bad_file
                    else "the database refused the import; retrying on the next tick",
                )
            case SourceFetched(changed=True):
                log_event(
                    _sources,
                    "source.imported",
                    source=event.name,
                    calendar=event.calendar,
                    new=event.created,
                    updated=event.updated,
                    pruned=event.pruned,
                    kept=event.kept,
                    seconds=round(event.seconds, 3),
                )
                for warning in event.warnings:
                    log_event(
                        _sources,
                        "source.warning",
                        logging.WARNING,
                        source=event.name,
                        warning=warning,
                    )
            case SourceFetched():
                log_event(
                    _sources,
                    "source.unchanged",
                    logging.DEBUG,
                    source=event.name,
                    seconds=round(event.seconds, 3),
                )
            case SourceFailed():
                log_event(
                    _sources,
                    "source.failed",
                    logging.WARNING,
                    source=event.name,
                    calendar=event.calendar,
                    error=event.error,
                    failures=event.failures,
                    last_success=iso_utc(event.last_success) if event.last_success else "never",
                    hint="its entries stay as last fetched; tried again at the next interval",
                )
            case ClockStepped():
                log_event(
                    _daemon,
                    "clock.step",
                    logging.WARNING,
                    seconds=event.seconds,
                    direction="forward" if event.seconds > 0 else "back",
                    at=iso_utc(event.at),
                    revived=event.revived,
                    hint="the wall clock stepped (NTP, a restored VM, a manual change); "
                    "re-planned at once",
                )
            case FeedRendered():
                log_event(
                    _feed,
                    "feed.rendered",
                    slug=event.slug,
                    version=event.version,
                    entries=event.entries,
                    bytes=event.bytes,
                )

    def _gap(self, event: PlannerGap) -> None:
        for missed in event.missed[:MISSED_LOG_LINES]:
            log_event(
                _planner,
                "reminder.missed",
                logging.WARNING,
                uid=missed.uid,
                calendar=missed.calendar,
                channel=missed.channel,
                due=iso_utc(missed.due_at),
                reason="came due while no daemon planned reminders",
            )
        log_event(
            _planner,
            "planner.gap",
            logging.WARNING if event.missed else logging.INFO,
            last_pass=iso_utc(event.last_pass),
            recorded_from=iso_utc(event.recorded_from),
            until=iso_utc(event.until),
            missed=len(event.missed),
        )

    def _delivery(self, event: DeliveryFinished) -> None:
        fields: dict[str, Any] = {
            "uid": event.uid,
            "calendar": event.calendar,
            "channel": event.channel,
            "due": iso_utc(event.due_at),
            "delay": round(event.lateness.total_seconds(), 3),
            "attempt": event.attempt,
            "delivery": event.delivery,
        }
        match event.outcome:
            case OutcomeKind.SENT:
                log_event(_dispatcher, "reminder.sent", **fields, late=event.late)
            case OutcomeKind.RETRY:
                next_attempt = event.next_attempt_at
                log_event(
                    _dispatcher,
                    "reminder.retry",
                    logging.WARNING,
                    **fields,
                    error=event.error,
                    next=iso_utc(next_attempt) if next_attempt is not None else None,
                )
            case OutcomeKind.RELEASE:
                log_event(
                    _dispatcher, "reminder.released", logging.WARNING, **fields, reason=event.error
                )
            case OutcomeKind.FAILED:
                log_event(
                    _dispatcher, "reminder.failed", logging.ERROR, **fields, error=event.error
                )
            case OutcomeKind.MISSED:
                log_event(
                    _dispatcher, "reminder.missed", logging.WARNING, **fields, reason=event.error
                )
            case OutcomeKind.CANCELLED:
                log_event(_dispatcher, "reminder.cancelled", **fields, reason=event.error)


def logging_bus() -> EventBus:
    """A bus whose events are only logged: for a planner or dispatcher used on its own."""
    bus = EventBus()
    EventLog().attach(bus)
    return bus
