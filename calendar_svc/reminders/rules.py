"""Which reminders an entry has, when they are due, and where they go. Pure: no database, no clock.

One source for the daemon's reminders and the feed's alarms: ``alarm_offsets``
gives an entry's triggers (the feed writes one VALARM per trigger) and
``trigger_instant`` when a trigger rings for an occurrence (the planner's due
instant, and what RFC 5545 makes a subscriber's app compute), so the two cannot
drift apart; a property test compares them through a parser.

* Offsets: the entry's own list if it has one, else its calendar's, else the
  config's ``reminders.offsets``. An empty list means no reminders at all.
* Cancelled entries have no reminders, and so no alarms in the feed; nor has an
  entry whose zone the tz database in use lacks (kept after a tz database update
  dropped it: its instants cannot be derived; ``doctor`` and the logs name it).
* A timed entry is reminded ``offset`` before each occurrence's start: days and
  weeks in the wall time of its zone, hours and smaller as exact time (how RFC
  5545 reads a TRIGGER duration).
* An all-day entry gets ONE reminder, at ``reminders.all_day_time`` local time
  on the day before its first day, in its own zone ("tomorrow: …"): an
  "1 hour before midnight" reminder would wake people up for nothing. As a
  trigger (``all_day_trigger``) that is ``P1D`` less the time of day, counted
  in wall time back from the first day's midnight (an all-day DTSTART is a
  floating date: its alarm is read in local time).
* Occurrences: the entry itself, or every RRULE occurrence, expanded in wall
  time and then converted with the entry's zone, so a weekly 10:00 meeting
  stays at 10:00 local across a DST change.
* Channels: the first ``[[reminders.routes]]`` whose calendar (``*`` = any) and
  optional category match, else ``reminders.channels``.

A *slot* (calendar, uid, occurrence start UTC, channel) holds the reminders
of one occurrence on one channel, one per offset: after downtime only the
latest overdue one of a slot is worth sending. The dedupe key (the slot and
the offset) names one delivery; the idempotency key is a short digest of it
that notifiers pass on (webhook-id, Message-ID), the same on every attempt.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import NamedTuple, Protocol

from calendar_svc.config import RemindersConfig
from calendar_svc.durations import parse_duration
from calendar_svc.models import EntryStatus
from calendar_svc.recurrence import Recurring, expand_times
from calendar_svc.timezones import UTC, is_zone, to_local, to_utc

# An all-day reminder is at most about a day before the day starts; two days of
# look-ahead covers it together with any zone offset.
ALL_DAY_LEAD = timedelta(days=2)


class Remindable(Recurring, Protocol):
    """What the rules read of an entry besides its occurrences (``models.Entry`` has it
    all); read only."""

    @property
    def uid(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def status(self) -> EntryStatus: ...
    @property
    def all_day(self) -> bool: ...
    @property
    def reminders(self) -> list[str] | None: ...
    @property
    def categories(self) -> list[str]: ...


@dataclass(frozen=True)
class PlannedReminder:
    """One reminder instance on one channel: what the planner writes as a delivery row."""

    calendar_slug: str
    entry_uid: str
    occurrence_utc: datetime
    offset: timedelta
    channel: str
    due_at: datetime
    all_day: bool
    dedupe_key: str
    idempotency_key: str
    start_tz: str = field(compare=False)
    title: str = field(default="", compare=False)


class Slot(NamedTuple):
    """One occurrence of one entry on one channel: its reminders, one per offset."""

    calendar_slug: str
    entry_uid: str
    occurrence_utc: datetime
    channel: str


class InSlot(Protocol):
    """Anything that names its slot: a ``PlannedReminder``, a claimed delivery row."""

    @property
    def calendar_slug(self) -> str: ...
    @property
    def entry_uid(self) -> str: ...
    @property
    def occurrence_utc(self) -> datetime: ...
    @property
    def channel(self) -> str: ...


def slot_of(reminder: InSlot) -> Slot:
    return Slot(
        reminder.calendar_slug, reminder.entry_uid, reminder.occurrence_utc, reminder.channel
    )


_STAMP = "%Y%m%dT%H%M%SZ"


def dedupe_key(
    slug: str, uid: str, occurrence_utc: datetime, offset: timedelta, channel: str
) -> str:
    """``slug|uid|occurrence (UTC, to the second)|offset seconds|channel``: one delivery.

    Stored in every row (unique), so its form never changes: a new form would plan
    every reminder again.
    """
    stamp = occurrence_utc.astimezone(UTC).strftime(_STAMP)
    return f"{slug}|{uid}|{stamp}|{int(offset.total_seconds())}|{channel}"


def idempotency_key(dedupe: str) -> str:
    """``rem-`` + 28 hex digits: stable for the dedupe key, safe as a header or Message-ID token."""
    return "rem-" + hashlib.sha256(dedupe.encode("utf-8")).hexdigest()[:28]


def offsets_for(
    entry_reminders: Sequence[str] | None,
    calendar_reminders: Sequence[str] | None,
    defaults: Sequence[timedelta],
) -> tuple[timedelta, ...]:
    """The entry's offsets, else its calendar's, else ``defaults`` (``reminders.offsets``);
    duplicates removed, largest first."""
    if entry_reminders is not None:
        chosen: Sequence[timedelta] = [parse_duration(text) for text in entry_reminders]
    elif calendar_reminders is not None:
        chosen = [parse_duration(text) for text in calendar_reminders]
    else:
        chosen = defaults
    return tuple(sorted(set(chosen), reverse=True))


def all_day_trigger(at: time) -> timedelta:
    """How long before an all-day entry's first day begins its one reminder falls: ``P1D``
    less ``at`` (09:00 gives 15 hours, the feed's ``TRIGGER:-PT15H``)."""
    return timedelta(days=1) - timedelta(
        hours=at.hour, minutes=at.minute, seconds=at.second, microseconds=at.microsecond
    )


def reminder_offsets(
    entry: Remindable, calendar_reminders: Sequence[str] | None, defaults: Sequence[timedelta]
) -> tuple[timedelta, ...]:
    """The offsets ``entry`` is reminded by: none when it is cancelled or its zone is not in
    the tz database in use, else ``offsets_for``."""
    if entry.status == EntryStatus.CANCELLED or not is_zone(entry.start_tz):
        return ()
    return offsets_for(entry.reminders, calendar_reminders, defaults)


def alarm_offsets(
    entry: Remindable,
    calendar_reminders: Sequence[str] | None,
    defaults: Sequence[timedelta],
    *,
    all_day_time: time,
) -> tuple[timedelta, ...]:
    """The triggers of ``entry``, before each occurrence's start: the feed's VALARMs and the
    daemon's reminders alike. Its ``reminder_offsets`` (none when cancelled), or for an
    all-day entry with any, the one ``all_day_trigger``."""
    offsets = reminder_offsets(entry, calendar_reminders, defaults)
    if entry.all_day and offsets:
        return (all_day_trigger(all_day_time),)
    return offsets


def trigger_instant(
    occurrence: datetime,
    trigger: timedelta,
    zone: str,
    *,
    all_day: bool,
    wall: datetime | None = None,
) -> datetime:
    """When ``trigger`` (from ``alarm_offsets``) rings for the occurrence starting at
    ``occurrence`` (whose wall time is ``wall``, when known: see ``due_before``):
    ``due_before`` for a timed entry; for an all-day one, ``trigger`` back from the
    midnight starting its day, in wall time (``all_day_trigger(at)`` is ``at`` the day
    before)."""
    if all_day:
        day = wall.date() if wall is not None else to_local(occurrence, zone).date()
        # fold=0: a reminder time inside a DST gap or fold is read with the earlier offset.
        return to_utc(datetime.combine(day, time()) - trigger, zone, fold=0)
    return due_before(occurrence, trigger, zone, wall=wall)


def channels_for(slug: str, categories: Sequence[str], config: RemindersConfig) -> tuple[str, ...]:
    wanted = {c.casefold() for c in categories}
    for route in config.routes:
        if route.calendar not in ("*", slug):
            continue
        if route.category is not None and route.category.casefold() not in wanted:
            continue
        return route.channels
    return config.channels


def due_before(
    occurrence: datetime, offset: timedelta, zone: str, *, wall: datetime | None = None
) -> datetime:
    """The instant ``offset`` before ``occurrence``, as RFC 5545 reads a duration.

    Days and weeks are calendar days in the entry's zone (``P1D`` before a 10:00
    meeting is 10:00 the day before, even across a DST change), counted from the
    occurrence's wall time ``wall`` (default: the wall time of the instant; they differ
    for a wall time a DST gap swallowed, 00:30 read as 01:30); hours, minutes and
    seconds are exact time. (Offsets are parsed into ``timedelta``, which folds
    ``PT24H`` into one day, so ``PT24H`` is read as ``P1D``, as the feed's VALARM
    writes it.)
    """
    if not offset.days:
        return occurrence - offset
    if wall is None:
        wall = to_local(occurrence, zone).replace(tzinfo=None)
    wall = wall - timedelta(days=offset.days)
    return to_utc(wall, zone, fold=0) - timedelta(seconds=offset.seconds)


def lead_time(offsets: Sequence[timedelta], all_day: bool) -> timedelta:
    """How long before an occurrence's start its earliest reminder can be due."""
    if all_day:
        return ALL_DAY_LEAD
    return max(offsets, default=timedelta(0))


def reminder_lead(
    entry: Remindable, calendar_reminders: Sequence[str] | None, config: RemindersConfig
) -> timedelta:
    """How long before an occurrence's start the entry's earliest reminder can be due (zero
    without reminders): how far back a window of its reminders needs its occurrences."""
    triggers = alarm_offsets(
        entry, calendar_reminders, config.offsets, all_day_time=config.all_day_time
    )
    return lead_time(triggers, entry.all_day) if triggers else timedelta(0)


def reminders_between(
    entry: Remindable,
    calendar_slug: str,
    calendar_reminders: Sequence[str] | None,
    config: RemindersConfig,
    start: datetime,
    end: datetime,
) -> list[PlannedReminder]:
    """Every reminder of ``entry`` due within ``[start, end]``, sorted by due time."""
    triggers = alarm_offsets(
        entry, calendar_reminders, config.offsets, all_day_time=config.all_day_time
    )
    if not triggers:
        return []
    channels = channels_for(calendar_slug, entry.categories or [], config)
    found: list[PlannedReminder] = []
    until = end + lead_time(triggers, entry.all_day)
    for wall, occurrence in expand_times(entry, start, until):
        for trigger in triggers:
            due_at = trigger_instant(
                occurrence, trigger, entry.start_tz, all_day=entry.all_day, wall=wall
            )
            if not start <= due_at <= end:
                continue
            # The dedupe key's offset (a stored form): an all-day one's is the exact time
            # from the reminder to the day's start.
            offset = occurrence - due_at if entry.all_day else trigger
            for channel in channels:
                key = dedupe_key(calendar_slug, entry.uid, occurrence, offset, channel)
                found.append(
                    PlannedReminder(
                        calendar_slug=calendar_slug,
                        entry_uid=entry.uid,
                        occurrence_utc=occurrence,
                        offset=offset,
                        channel=channel,
                        due_at=due_at,
                        all_day=entry.all_day,
                        dedupe_key=key,
                        idempotency_key=idempotency_key(key),
                        start_tz=entry.start_tz,
                        title=entry.title,
                    )
                )
    found.sort(key=lambda r: (r.due_at, r.entry_uid, -r.offset, r.channel))
    return found
