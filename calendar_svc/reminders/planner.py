"""The planner: turns the entries into pending delivery rows for the near horizon.

Each pass, in ONE write transaction:

1. work out every reminder due in ``[now - grace, now + horizon]`` (plus, for
   entries that have not started, the latest one that came due while no daemon
   ran: it goes out late, once, instead of never);
2. insert the missing rows (insert-if-absent on the dedupe key; a cancelled row
   wanted again is revived);
3. record as ``missed`` the reminders that came due since the previous pass
   (of any daemon on this database), before this window, and never had a row:
   no daemon ran, the entry was added while none ran, or the last pass is
   older than the grace. Nothing is sent for them; they are there for
   ``calendar-svc status``, the logs and the metrics. At most ``MISSED_LOOKBACK``
   back; the very first pass on a database records none. A process's first
   pass counts a previous pass older than the grace as a gap; later passes of
   the same process, which was running all along, allow what a running daemon
   leaves between passes (``gap_after``);
4. cancel pending rows that no rule produces any more: the entry moved, was
   cancelled or deleted, or its offset or channel went away.

Reading the entries inside the write transaction is what keeps an edit and a
pass from crossing: on SQLite ``BEGIN IMMEDIATE`` excludes other writers, and
on PostgreSQL a transaction-scoped advisory lock serialises the planners of
several daemons, so a pass working from an old snapshot cannot resurrect a
reminder that a newer pass cancelled.

Entries whose stored values the engine cannot use are left out (the store's
``screen``, told once as ``EntryIsolated``): their pending rows are cancelled
as no rule produces them, and every other entry is planned as usual.

What a pass did is told once it committed, as events on the planner's bus
(``ReminderPlanned``, ``PlannerGap``, ``ReminderCancelled``, then
``PlannerPassed``): the log lines, metrics and health listen there. Clock
warnings, which only a person can act on, are logged here.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from calendar_svc.config import RemindersConfig
from calendar_svc.event_log import logging_bus
from calendar_svc.events import (
    EventBus,
    MissedReminder,
    PlannerGap,
    PlannerPassed,
    ReminderCancelled,
    ReminderPlanned,
)
from calendar_svc.logs import log_event
from calendar_svc.models import DeliveryStatus
from calendar_svc.reminders import passes
from calendar_svc.reminders import repository as repo
from calendar_svc.reminders.entries import entries_for_window, longest_offset
from calendar_svc.reminders.rules import (
    ALL_DAY_LEAD,
    PlannedReminder,
    Slot,
    reminder_lead,
    reminders_between,
    slot_of,
)
from calendar_svc.store import Store
from calendar_svc.timezones import iso_utc

log = logging.getLogger(__name__)

# How far ahead ``next_reminder`` looks for the first reminder beyond the horizon.
NEXT_LOOKAHEAD = timedelta(days=400)
# How far back a pass after a gap records never-planned reminders as missed.
MISSED_LOOKBACK = timedelta(days=31)


@dataclass
class PlanReport:
    start: datetime
    end: datetime
    wanted: int = 0
    planned: list[PlannedReminder] = field(default_factory=list)
    cancelled: list[repo.PendingRow] = field(default_factory=list)
    # Reminders that came due in [gap_start, start) with no row, now recorded missed.
    missed: list[PlannedReminder] = field(default_factory=list)
    gap_start: datetime | None = None
    last_pass: datetime | None = None
    last_pass_by: str | None = None
    # The previous pass, made by this planner, is recorded in this pass's future: the
    # clock stepped back. Made by another daemon: the two clocks disagree.
    clock_stepped_back: bool = False
    clock_skew: bool = False


def gap_after(config: RemindersConfig) -> timedelta:
    """How old the previous pass must be for this one to follow a gap.

    A running daemon plans at least every ``rescan_interval``, so anything shorter
    than two of those (or the grace, whichever is longer) is normal operation, not
    a time when no daemon ran.
    """
    return max(config.grace, 2 * config.rescan_interval)


class Planner:
    """Plans the near horizon's reminders as delivery rows (``plan``) and answers what is
    due when (``schedule``, ``next_reminder``).

    ``events``: the bus its passes are told on (default: one that only logs them).
    """

    def __init__(
        self,
        store: Store,
        config: RemindersConfig,
        *,
        name: str | None = None,
        events: EventBus | None = None,
    ):
        self.store = store
        self.config = config
        self.events = events if events is not None else logging_bus()
        # Recorded with each pass, for people reading the database.
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._previous: datetime | None = None  # this planner's own last pass
        self._skew_logged = False

    def plan(self, now: datetime | None = None) -> PlanReport:
        """One pass, in one write transaction; its events follow once it committed."""
        now = now or self.store.clock()
        start, end = now - self.config.grace, now + self.config.horizon
        report = PlanReport(start=start, end=end)
        with self.store.write() as session:
            passes.serialise_passes(session)
            oldest = repo.oldest_pending_due(session)
            report.last_pass, report.last_pass_by = passes.last_pass(session)
            tolerance = self._tolerance(now)
            if report.last_pass is not None and report.last_pass < now - tolerance:
                report.gap_start = max(report.last_pass, start - MISSED_LOOKBACK)
            elif report.last_pass is not None and report.last_pass > now + tolerance:
                if report.last_pass_by == self.name:
                    report.clock_stepped_back = True
                else:  # not ours to undo: the other daemon's clock may be the right one
                    report.clock_skew = True
            scan_from = min(t for t in (start, oldest, report.gap_start) if t is not None)
            known = self._reminders(session, scan_from, end)
            report.wanted = len(known)
            wanted = _to_plan(known, now=now, start=start)
            states = repo.existing_states(session, [r.dedupe_key for r in wanted])
            new = [r for r in wanted if r.dedupe_key not in states]
            revived = [r for r in wanted if states.get(r.dedupe_key) == DeliveryStatus.CANCELLED]
            repo.insert_planned(session, new, now)
            repo.revive(session, [r.dedupe_key for r in revived], now)
            report.planned = sorted(new + revived, key=lambda r: (r.due_at, r.dedupe_key))
            if report.gap_start is not None:
                report.missed = _never_planned(session, known, wanted, report.gap_start, start)
                repo.insert_missed(
                    session,
                    report.missed,
                    now,
                    f"came due while no daemon planned reminders "
                    f"(last pass {iso_utc(report.last_pass or report.gap_start)})",
                )
            # After a step back, this clock is trusted from now on: a gap that follows
            # is measured from here, not from a pass "in the future".
            passes.record_pass(session, now, self.name, reset=report.clock_stepped_back)
            keys = {r.dedupe_key for r in known}
            stale = [row for row in repo.pending_rows(session, end) if row.dedupe_key not in keys]
            repo.cancel(
                session,
                [row.id for row in stale],
                now,
                "the entry moved, was cancelled or deleted, or its offset or channel changed",
            )
            report.cancelled = stale
        self._previous = now  # committed: this process has planned up to now
        self._tell(report, now)
        self.store.recheck_isolated()  # isolated entries fixed or deleted since: restored
        return report

    def _tolerance(self, now: datetime) -> timedelta:
        """How far the last pass of any daemon may lie from ``now`` without a gap.

        While this process has been planning all along (its own previous pass is
        recent), passes up to ``gap_after`` apart are normal; on its first pass, or
        after it was itself away (suspended), anything older than the grace is a gap.
        """
        longest = gap_after(self.config)
        if self._previous is not None and timedelta(0) <= now - self._previous <= longest:
            return longest
        return self.config.grace

    def schedule(self, start: datetime, end: datetime) -> list[PlannedReminder]:
        """Every reminder due in ``[start, end]``; writes nothing (``calendar-svc reminders``)."""
        with self.store.read() as session:
            return [r for r in self._reminders(session, start, end) if r.due_at >= start]

    def next_reminder(self, after: datetime) -> PlannedReminder | None:
        """The first reminder due after ``after`` (within ``NEXT_LOOKAHEAD``), planned or not."""
        # Widening windows: a big calendar is not read whole to find tomorrow's reminder.
        with self.store.read() as session:
            for days in (1, 7, 31, NEXT_LOOKAHEAD.days):
                found = self._reminders(session, after, after + timedelta(days=days))
                upcoming = next((r for r in found if r.due_at > after), None)
                if upcoming is not None:
                    return upcoming
        return None

    def _reminders(self, session: Session, start: datetime, end: datetime) -> list[PlannedReminder]:
        """Reminders due up to ``end`` of entries starting from ``start`` on, sorted by due time.

        An entry's reminders are all due before it starts, so the entries that
        matter start in ``[start, end + longest lead]``; their reminders due
        before ``start`` (by up to the entry's own lead) are kept, because the
        planner needs them for late catch-up and for recognising old pending rows
        as still wanted. Each entry's occurrences are expanded from its own lead
        back, not the longest one: a window holds at most
        ``recurrence.MAX_OCCURRENCES`` of a series, and a dense series must not
        spend them a year back because another calendar reminds a year ahead.
        """
        lead = longest_offset(session, self.config.offsets)
        entries = entries_for_window(session, start, end, lead=lead, all_day_lead=ALL_DAY_LEAD)
        found: list[PlannedReminder] = []
        # An entry the engine cannot use costs its own reminders, not everyone's.
        for entry in self.store.screen.usable(entries):
            calendar = entry.calendar
            back = max(reminder_lead(entry, calendar.reminders, self.config), ALL_DAY_LEAD)
            found.extend(
                reminders_between(
                    entry, calendar.slug, calendar.reminders, self.config, start - back, end
                )
            )
        found.sort(key=lambda r: (r.due_at, r.dedupe_key))
        return found

    def _tell(self, report: PlanReport, now: datetime) -> None:
        """The pass's events (and clock warnings), in the order a reader of the log wants."""
        for r in report.planned:
            self.events.emit(
                ReminderPlanned(
                    calendar=r.calendar_slug,
                    uid=r.entry_uid,
                    channel=r.channel,
                    due_at=r.due_at,
                    offset=r.offset,
                    planned_at=now,
                )
            )
        if report.clock_stepped_back and report.last_pass is not None:
            log_event(
                log,
                "planner.clock_stepped_back",
                logging.WARNING,
                last_pass=iso_utc(report.last_pass),
                now=iso_utc(now),
                hint="the system clock went back; reminders are planned by this clock from now on",
            )
        if report.clock_skew and report.last_pass is not None and not self._skew_logged:
            self._skew_logged = True
            log_event(
                log,
                "planner.clock_skew",
                logging.WARNING,
                last_pass=iso_utc(report.last_pass),
                by=report.last_pass_by or "",
                now=iso_utc(now),
                hint="another daemon on this database records passes ahead of this "
                "machine's clock; keep the clocks in sync (NTP)",
            )
        if report.gap_start is not None and report.last_pass is not None:
            self.events.emit(
                PlannerGap(
                    last_pass=report.last_pass,
                    recorded_from=report.gap_start,
                    until=report.start,
                    missed=tuple(
                        MissedReminder(
                            calendar=r.calendar_slug,
                            uid=r.entry_uid,
                            channel=r.channel,
                            due_at=r.due_at,
                        )
                        for r in report.missed
                    ),
                )
            )
        for row in report.cancelled:
            self.events.emit(
                ReminderCancelled(
                    calendar=row.calendar_slug,
                    uid=row.entry_uid,
                    channel=row.channel,
                    delivery=row.id,
                )
            )
        self.events.emit(
            PlannerPassed(
                at=now,
                planned=len(report.planned),
                cancelled=len(report.cancelled),
                missed=len(report.missed),
            )
        )


def _never_planned(
    session: Session,
    known: list[PlannedReminder],
    wanted: list[PlannedReminder],
    gap_start: datetime,
    start: datetime,
) -> list[PlannedReminder]:
    """Reminders due in ``[gap_start, start)`` that this pass does not plan and no row holds."""
    chosen = {r.dedupe_key for r in wanted}
    candidates = [r for r in known if gap_start <= r.due_at < start and r.dedupe_key not in chosen]
    existing = repo.existing_states(session, [r.dedupe_key for r in candidates])
    return [r for r in candidates if r.dedupe_key not in existing]


def _to_plan(
    known: list[PlannedReminder], *, now: datetime, start: datetime
) -> list[PlannedReminder]:
    """The reminders to have as rows: due in the window, plus one late catch-up per occurrence.

    For an entry that has not started, only the *latest* of its reminders that
    came due before the window is kept: after downtime, "Late: in 15 minutes"
    alone is worth sending, "Late: in 1 hour" before it would be noise.
    """
    chosen: dict[str, PlannedReminder] = {}
    catch_up: dict[Slot, PlannedReminder] = {}
    for r in known:
        if r.due_at >= start:
            chosen[r.dedupe_key] = r
        elif r.occurrence_utc > now:
            slot = slot_of(r)
            if slot not in catch_up or catch_up[slot].due_at < r.due_at:
                catch_up[slot] = r
    # No catch-up when a reminder of the same occurrence is already due in the window.
    due_now = {slot_of(c) for c in chosen.values() if c.due_at <= now}
    for slot, r in catch_up.items():
        if slot not in due_now:
            chosen[r.dedupe_key] = r
    return list(chosen.values())
