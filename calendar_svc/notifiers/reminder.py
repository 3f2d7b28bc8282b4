"""What a notifier sends: one reminder of one entry occurrence, and the variables its texts use.

``messages.build_reminder`` makes a ``Reminder`` from an entry; every notifier
gets the same frozen value. ``TEMPLATE_VARIABLES`` lists what a channel's
``title_template`` / ``body_template`` may use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from calendar_svc.durations import format_duration
from calendar_svc.timezones import UTC, iso_utc

# Variables a title_template / body_template may use ($name or ${name}); values are text.
TEMPLATE_VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "default_title": "the built-in title: 'In 1 hour: Bilateral meeting with …'",
        "default_body": "the built-in body: 'Tue 2 Sep 2025, 10:00 CST (UTC-06:00) — …'",
        "late": "'Late: ' when the reminder is sent after its due time, else ''",
        "lead": "'In 1 hour' ('Now' at the start time)",
        "offset": "how long before the start, in words: '1 hour', '15 minutes'",
        "title": "the entry's title",
        "description": "the entry's description",
        "location": "the entry's location ('Palacio Nacional')",
        "city": "the entry's city ('Mexico City')",
        "where": "location and city joined without repeating the city",
        "url": "the entry's URL ('' when none)",
        "uid": "the entry's stable UID",
        "categories": "the entry's categories, comma separated",
        "calendar": "the calendar's slug",
        "when": "start in the entry's zone: 'Tue 2 Sep 2025, 10:00 CST (UTC-06:00)' "
        "(the date only for all-day entries)",
        "date": "start date: 'Tue 2 Sep 2025'",
        "time": "start wall time: '10:00' ('' for all-day entries)",
        "zone": "zone abbreviation: 'CST' ('' when the zone has none)",
        "utc_offset": "'UTC-06:00'",
        "timezone": "IANA zone of the entry: 'America/Mexico_City'",
        "display_time": "start in the [display] zone: '12:00 EDT in Washington' ('' when not "
        "configured, same as the entry's zone, or all-day)",
        "start_utc": "start as ISO 8601 UTC: '2025-09-02T16:00:00Z'",
        "due_utc": "when the reminder was due, ISO 8601 UTC",
        "feed_url": "the calendar's feed URL, from [feed] public_url and the calendar's own "
        "token ('' when public_url would have port 0)",
        "idempotency_key": "the delivery's idempotency key",
    }
)


@dataclass(frozen=True)
class ReminderEntry:
    """What a reminder says about its calendar entry."""

    uid: str
    title: str
    location: str = ""
    city: str = ""
    url: str = ""
    description: str = ""
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reminder:
    """One reminder of one entry occurrence, ready to send.

    ``idempotency_key`` is the same on every attempt of the same delivery,
    including a re-send after a crash: pass it to the peer (a message id, a
    header) so that the receiver can drop the rare duplicate.

    ``start`` is aware, in the entry's own zone (``start_tz``); for all-day
    entries it is the local midnight of the first day. ``due_at`` is UTC.
    ``title`` and ``body`` are the default texts; a notifier with its own
    templates renders ``variables`` (see ``TEMPLATE_VARIABLES``) instead, via
    :meth:`Notifier.render`. ``feed_url`` is the calendar's feed URL (it holds
    the calendar's feed token), or None when there is no address to give.
    """

    idempotency_key: str
    calendar_slug: str
    entry: ReminderEntry
    start: datetime
    start_tz: str
    all_day: bool
    due_at: datetime
    offset: timedelta
    late: bool
    title: str
    body: str
    feed_url: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.due_at.tzinfo is None:
            raise ValueError("Reminder.start and Reminder.due_at must be aware datetimes")
        # Frozen all the way down: a notifier must not change what the next one sends.
        object.__setattr__(self, "variables", MappingProxyType(dict(self.variables)))

    @property
    def start_utc(self) -> datetime:
        return self.start.astimezone(UTC)

    def to_json(self, *, title: str | None = None, body: str | None = None) -> dict[str, Any]:
        """The reminder as JSON-ready data (webhook and MQTT payloads)."""
        entry = self.entry
        return {
            "idempotency_key": self.idempotency_key,
            "calendar": self.calendar_slug,
            "entry": {
                "uid": entry.uid,
                "title": entry.title,
                "location": entry.location,
                "city": entry.city,
                "url": entry.url or None,
                "categories": list(entry.categories),
            },
            "start": self.start.date().isoformat() if self.all_day else self.start.isoformat(),
            "start_utc": iso_utc(self.start),
            "timezone": self.start_tz,
            "all_day": self.all_day,
            "due_at": iso_utc(self.due_at),
            "offset": format_duration(self.offset),
            "late": self.late,
            "title": self.title if title is None else title,
            "body": self.body if body is None else body,
            "feed_url": self.feed_url,
        }
