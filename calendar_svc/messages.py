"""The words of a reminder: turns an entry occurrence into a ``Reminder`` with its texts.

Default texts::

    In 1 hour: Bilateral meeting with President Claudia Sheinbaum
    Tue 2 Sep 2025, 10:00 CST (UTC-06:00) — 12:00 EDT (UTC-04:00) in Washington · Palacio …

Every time is shown as ``timezones.time_text`` shows it (wall time,
abbreviation, offset). A reminder sent after its due time (the daemon was
down) reads ``Late: Bilateral meeting with President Claudia Sheinbaum
(starts 10:00 CST (UTC-06:00))``, because "in 1 hour" is then no longer
true; all-day entries show their date only. Dates are spelled in English
whatever the process locale, so a message does not change with the host it is
sent from. The variables a channel's own templates may use are listed in
``notifiers.reminder.TEMPLATE_VARIABLES``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from calendar_svc.config import DisplayConfig
from calendar_svc.durations import humanize
from calendar_svc.notifiers.reminder import Reminder, ReminderEntry
from calendar_svc.timezones import abbreviation, iso_utc, time_text, to_local, utc_offset_text

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

LATE_MARKER = "Late: "


class MessageEntry(Protocol):
    """What ``build_reminder`` reads of an entry (``models.Entry`` has it all)."""

    uid: str
    title: str
    location: str
    city: str
    url: str
    start_tz: str
    all_day: bool
    description: str
    categories: list[str]


def day_text(local: datetime) -> str:
    """``Tue 2 Sep 2025``."""
    return f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year}"


def place_text(location: str, city: str) -> str:
    """``Palacio Nacional, Mexico City``, without saying the city twice."""
    location, city = location.strip(), city.strip()
    if city and city.casefold() not in location.casefold():
        return f"{location}, {city}" if location else city
    return location


def _label(display: DisplayConfig) -> str:
    if display.label:
        return display.label
    assert display.timezone is not None
    return display.timezone.rsplit("/", 1)[-1].replace("_", " ")


def display_text(start_utc: datetime, local: datetime, display: DisplayConfig) -> str:
    """``12:00 EDT (UTC-04:00) in Washington``, or '' when no display zone is set or it
    shows the same."""
    if not display.timezone:
        return ""
    there = to_local(start_utc, display.timezone)
    if there.utcoffset() == local.utcoffset():
        return ""
    text = time_text(there)
    if there.date() != local.date():
        # Across midnight the day matters more than the hour.
        text = f"{_DAYS[there.weekday()]} {there.day} {_MONTHS[there.month - 1]}, {text}"
    return f"{text} in {_label(display)}"


def build_reminder(
    *,
    idempotency_key: str,
    calendar_slug: str,
    entry: MessageEntry,
    start_utc: datetime,
    offset: timedelta,
    due_at: datetime,
    late: bool,
    display: DisplayConfig,
    feed_url: str | None,
) -> Reminder:
    """The reminder for the occurrence of ``entry`` starting at ``start_utc`` (aware).

    ``feed_url`` is the feed of the entry's calendar (``links.reminder_feed_url``), or
    None when there is none to give (a sample entry, a public URL subscribers cannot
    reach): required, so that no caller forgets it.
    """
    local = to_local(start_utc, entry.start_tz)
    all_day = bool(entry.all_day)
    date = day_text(local)
    offset_words = humanize(offset)
    if all_day:
        when, shown_elsewhere, clock, when_short = date, "", "", f"on {date}"
    else:
        clock = f"{local:%H:%M}"
        when_short = f"starts {time_text(local)}"
        when = f"{date}, {time_text(local)}"
        shown_elsewhere = display_text(start_utc, local, display)
    where = place_text(entry.location or "", entry.city or "")

    if late:
        # "In 1 hour" is no longer true once late: say what is still true, the start.
        title = f"{LATE_MARKER}{entry.title} ({when_short})"
    else:
        title = f"{'Now' if offset <= timedelta(0) else 'In ' + offset_words}: {entry.title}"
    body = when
    if shown_elsewhere:
        body += f" — {shown_elsewhere}"
    if where:
        body += f" · {where}"

    categories = tuple(entry.categories or ())
    variables = {
        "default_title": title,
        "default_body": body,
        "late": LATE_MARKER if late else "",
        "lead": "Now" if offset <= timedelta(0) else f"In {offset_words}",
        "offset": offset_words,
        "title": entry.title,
        "description": entry.description or "",
        "location": entry.location or "",
        "city": entry.city or "",
        "where": where,
        "url": entry.url or "",
        "uid": entry.uid,
        "categories": ", ".join(categories),
        "calendar": calendar_slug,
        "when": when,
        "date": date,
        "time": clock,
        "zone": "" if all_day else abbreviation(local),
        "utc_offset": utc_offset_text(local),
        "timezone": entry.start_tz,
        "display_time": shown_elsewhere,
        "start_utc": iso_utc(start_utc),
        "due_utc": iso_utc(due_at),
        "feed_url": feed_url or "",
        "idempotency_key": idempotency_key,
    }
    return Reminder(
        idempotency_key=idempotency_key,
        calendar_slug=calendar_slug,
        entry=ReminderEntry(
            uid=entry.uid,
            title=entry.title,
            location=entry.location or "",
            city=entry.city or "",
            url=entry.url or "",
            description=entry.description or "",
            categories=categories,
        ),
        start=local,
        start_tz=entry.start_tz,
        all_day=all_day,
        due_at=due_at,
        offset=offset,
        late=late,
        title=title,
        body=body,
        feed_url=feed_url,
        variables=variables,
    )
