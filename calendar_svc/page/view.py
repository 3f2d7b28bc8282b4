"""What the subscribers' page shows, as plain data for its template. Pure.

``build_view`` turns a calendar, the entries a token may see and the page's
filter into days of entries: each time in the entry's own zone, said the way
calendar-svc always says a time (``timezones.time_text``: ``10:00 CST
(UTC-06:00)``), with the UTC instant beside it for the viewer's-zone script;
a flight that lands in another zone shows both zones. Days whose entries have
all ended are "past" (folded away on the page while others are still to
come); ``stale_at`` is when the next day becomes past, so a cached page is
rendered again then, and ``changed_at`` the last time the page changed (an edit,
or a day that became past), its Last-Modified. Times are computed with the current tz database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from urllib.parse import quote, urlsplit

from calendar_svc.filters import EntryFilter, matches
from calendar_svc.links import feed_urls, filter_query
from calendar_svc.models import Calendar, Entry, EntryStatus
from calendar_svc.page.subscribe import SubscribeLinks, google_event_link, subscribe_links
from calendar_svc.presenters import duration_text
from calendar_svc.timezones import iso_utc, time_text, to_local

_MAP = "https://www.openstreetmap.org/?mlat={lat:.5f}&mlon={lon:.5f}#map=17/{lat:.5f}/{lon:.5f}"


@dataclass(frozen=True)
class TimeView:
    """One instant as the page writes it: in its zone, and as UTC for ``<time datetime>``."""

    utc: str  # 2025-09-02T16:00:00Z
    text: str  # 10:00 CST (UTC-06:00)
    zone: str  # America/Mexico_City
    day: str | None  # "Wed 3 Sep 2025" when not the day the entry is listed under


@dataclass(frozen=True)
class EntryView:
    uid: str
    title: str
    cancelled: bool
    tentative: bool
    all_day_text: str | None  # "All day" or "All day, Tue 2 Sep – Thu 4 Sep 2025"
    start: TimeView | None  # None for all-day entries
    end: TimeView | None  # None when it ends when it starts, or all day
    show_zones: bool  # zones named beside the times (another zone than the calendar's)
    duration: str | None
    location: str
    map_url: str | None
    city: str
    categories: tuple[str, ...]
    description: str
    url: str | None
    repeats: str | None
    ics_href: str
    google_href: str | None  # none for a cancelled entry


@dataclass(frozen=True)
class DayView:
    id: str  # day-2025-09-02, the heading's id
    heading: str  # Tuesday 2 September 2025
    entries: tuple[EntryView, ...]


@dataclass(frozen=True)
class FilterLink:
    label: str
    page_href: str
    feed_href: str
    current: bool


@dataclass(frozen=True)
class PageView:
    name: str
    description: str
    slug: str
    default_zone: str
    upcoming: tuple[DayView, ...]
    past: tuple[DayView, ...]
    subscribe: SubscribeLinks
    cities: tuple[FilterLink, ...]
    categories: tuple[FilterLink, ...]
    filter_text: str | None  # "city Quito, category meeting" while a filter is on
    clear_href: str
    share_name: str | None  # the share link's name, None for the owner's token
    expires_text: str | None
    shown: int  # entries on the page
    stale_at: datetime | None  # when a day becomes past and the page must be rendered again
    changed_at: datetime  # the calendar's last change, or the end of the last past day


@dataclass(frozen=True)
class PageAddress:
    """Where the page lives: the public base URL, the token in the URL, the calendar."""

    public_url: str
    token: str
    slug: str

    @property
    def base_path(self) -> str:
        """The public URL's path (``/cal`` behind a proxy), which the page's links start with."""
        return urlsplit(self.public_url).path.rstrip("/")

    def page_href(self, flt: EntryFilter | None = None) -> str:
        query = filter_query(flt)
        return f"{self.base_path}/c/{self.token}/{self.slug}" + (f"?{query}" if query else "")

    def entry_href(self, uid: str) -> str:
        # A uid from an imported file may hold any character: it is one path segment.
        return f"{self.base_path}/c/{self.token}/{self.slug}/{quote(uid, safe='@:+')}.ics"


def build_view(
    *,
    calendar: Calendar,
    entries: Sequence[Entry],
    flt: EntryFilter,
    address: PageAddress,
    now: datetime,
    share_name: str | None = None,
    expires_at: datetime | None = None,
) -> PageView:
    """The page of ``calendar`` for ``entries`` (those the token may see, in store order)
    narrowed by ``flt`` (the page's query), as of ``now``."""
    selected = [entry for entry in entries if matches(entry, flt)]
    days: dict[date, list[Entry]] = {}
    for entry in selected:
        days.setdefault(_listed_day(entry), []).append(entry)
    upcoming: list[DayView] = []
    past: list[DayView] = []
    stale_at: datetime | None = None
    changed_at = calendar.updated_at
    for day in sorted(days):
        day_entries = days[day]
        view = DayView(
            id=f"day-{day.isoformat()}",
            heading=f"{day:%A} {day.day} {day:%B %Y}",
            entries=tuple(_entry_view(e, day, calendar, address) for e in day_entries),
        )
        ends = max(entry.end_utc for entry in day_entries)
        if ends <= now:
            past.append(view)
            changed_at = max(changed_at, ends)
        else:
            upcoming.append(view)
            stale_at = ends if stale_at is None else min(stale_at, ends)
    expires_text = None
    if expires_at is not None:
        local = to_local(expires_at, calendar.timezone)
        expires_text = f"{_short_day(local.date())}, {time_text(local)}"
    return PageView(
        name=calendar.name,
        description=calendar.description or "",
        slug=calendar.slug,
        default_zone=calendar.timezone,
        upcoming=tuple(upcoming),
        past=tuple(past),
        subscribe=subscribe_links(
            address.public_url, address.token, calendar.slug, calendar.name, flt
        ),
        cities=_filter_links(
            address, flt, [e.city for e in entries], "city", lambda f, v: replace(f, city=v)
        ),
        categories=_filter_links(
            address,
            flt,
            [c for e in entries for c in e.categories or []],
            "category",
            lambda f, v: replace(f, category=v),
        ),
        filter_text=_filter_text(flt),
        clear_href=address.page_href(),
        share_name=share_name,
        expires_text=expires_text,
        shown=len(selected),
        stale_at=stale_at,
        changed_at=changed_at,
    )


def _listed_day(entry: Entry) -> date:
    """The day an entry is listed under: its first day, in its own zone."""
    if entry.all_day:
        return entry.start_day
    return to_local(entry.start_utc, entry.start_tz).date()


def _short_day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _entry_view(entry: Entry, day: date, calendar: Calendar, address: PageAddress) -> EntryView:
    start = end = None
    all_day_text = None
    if entry.all_day:
        all_day_text = "All day"
        if entry.last_day != entry.start_day:
            all_day_text = f"All day, {_short_day(entry.start_day)} – {_short_day(entry.last_day)}"
    else:
        start = _time(entry.start_utc, entry.start_tz, day)
        if entry.end_utc != entry.start_utc:
            end = _time(entry.end_utc, entry.end_tz, day)
    lat, lon = entry.geo_lat, entry.geo_lon
    cancelled = entry.status == EntryStatus.CANCELLED
    return EntryView(
        uid=entry.uid,
        title=entry.title,
        cancelled=cancelled,
        tentative=entry.status == EntryStatus.TENTATIVE,
        all_day_text=all_day_text,
        start=start,
        end=end,
        show_zones=not entry.all_day
        and (entry.start_tz != calendar.timezone or entry.end_tz != entry.start_tz),
        duration=duration_text(entry) if entry.end_utc != entry.start_utc else None,
        location=entry.location.strip(),
        map_url=_MAP.format(lat=lat, lon=lon) if lat is not None and lon is not None else None,
        city=entry.city.strip(),
        categories=tuple(entry.categories or ()),
        description=entry.description.strip(),
        url=entry.url if urlsplit(entry.url).scheme in ("http", "https") else None,
        repeats=entry.rrule,
        ics_href=address.entry_href(entry.uid),
        google_href=None if cancelled else google_event_link(entry),
    )


def _time(instant: datetime, zone: str, day: date) -> TimeView:
    local = to_local(instant, zone)
    return TimeView(
        utc=iso_utc(instant),
        text=time_text(local),
        zone=zone,
        day=None if local.date() == day else _short_day(local.date()),
    )


def _filter_links(
    address: PageAddress,
    flt: EntryFilter,
    values: Sequence[str],
    what: str,
    with_value: Callable[[EntryFilter, str], EntryFilter],
) -> tuple[FilterLink, ...]:
    spelt: dict[str, str] = {}
    for value in values:
        if value and value.strip():
            spelt.setdefault(value.strip().casefold(), value.strip())
    current = getattr(flt, what)
    links = []
    for folded, label in sorted(spelt.items()):
        chosen = with_value(flt, label)
        links.append(
            FilterLink(
                label=label,
                page_href=address.page_href(chosen),
                feed_href=feed_urls(address.public_url, address.token, address.slug, chosen)[0],
                current=current is not None and current.casefold() == folded,
            )
        )
    return tuple(links)


def _filter_text(flt: EntryFilter) -> str | None:
    parts = []
    if flt.city:
        parts.append(f"city {flt.city}")
    if flt.category:
        parts.append(f"category {flt.category}")
    if flt.start:
        parts.append(f"from {flt.start.isoformat()}")
    if flt.end:
        parts.append(f"to {flt.end.isoformat()}")
    return ", ".join(parts) or None
