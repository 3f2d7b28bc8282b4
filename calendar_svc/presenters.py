"""How entries look to people and to scripts (tables and JSON). Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from calendar_svc.models import Entry
from calendar_svc.timezones import is_zone, iso_utc, time_text, to_local


def _local(instant: datetime, zone: str) -> datetime:
    # A zone the tz database no longer has (``doctor`` names the entry): shown in UTC.
    return to_local(instant, zone if is_zone(zone) else "UTC")


def local_start(entry: Entry) -> datetime:
    return _local(entry.start_utc, entry.start_tz)


def local_end(entry: Entry) -> datetime:
    return _local(entry.end_utc, entry.end_tz)


def entry_json(entry: Entry) -> dict[str, Any]:
    """The ``list --json`` / ``show --json`` object of an entry."""
    if entry.all_day:
        start: str = entry.start_day.isoformat()
        end: str = entry.last_day.isoformat()
    else:
        start = local_start(entry).isoformat()
        end = local_end(entry).isoformat()
    return {
        "calendar": entry.calendar.slug,
        "uid": entry.uid,
        "title": entry.title,
        "start": start,
        "end": end,
        "timezone": entry.start_tz,
        "end_timezone": entry.end_tz,
        "start_utc": iso_utc(entry.start_utc),
        "end_utc": iso_utc(entry.end_utc),
        "all_day": entry.all_day,
        "location": entry.location,
        "city": entry.city,
        "geo": [entry.geo_lat, entry.geo_lon] if entry.geo_lat is not None else None,
        "url": entry.url,
        "status": entry.status,
        "categories": list(entry.categories or []),
        "description": entry.description,
        "reminders": list(entry.reminders) if entry.reminders is not None else None,
        "rrule": entry.rrule,
        "transparency": entry.transparency,
        "sequence": entry.sequence,
        "updated": iso_utc(entry.updated_at),
    }


def when_text(entry: Entry) -> str:
    """``Tue 2025-09-02 10:00 CST (UTC-06:00) → 11:30`` and the like."""
    if entry.all_day:
        if entry.last_day == entry.start_day:
            return f"{entry.start_day:%a %Y-%m-%d} (all day)"
        return f"{entry.start_day:%a %Y-%m-%d} → {entry.last_day:%a %Y-%m-%d} (all day)"
    start = local_start(entry)
    end = local_end(entry)
    text = f"{start:%a %Y-%m-%d} {time_text(start)}"
    if end == start:
        return text
    same_zone = entry.end_tz == entry.start_tz and end.utcoffset() == start.utcoffset()
    if same_zone and end.date() == start.date():
        return f"{text} → {end:%H:%M}"
    if same_zone:
        return f"{text} → {end:%a %Y-%m-%d %H:%M}"
    return f"{text} → {end:%a %Y-%m-%d} {time_text(end)}"


def duration_text(entry: Entry) -> str:
    length: timedelta = entry.end_utc - entry.start_utc
    minutes = int(length.total_seconds()) // 60
    if entry.all_day:
        days = (entry.last_day - entry.start_day).days + 1
        return f"{days}d"
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes}m"
