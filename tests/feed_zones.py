"""Reading a feed's times the way a VTIMEZONE-only client does, and a feed that needs it.

``FeedZone`` computes offsets from nothing but a VTIMEZONE component: every
observance's DTSTART, RDATEs and RRULE (expanded with dateutil's rrule), each
onset read with its TZOFFSETFROM as RFC 5545 says. No tz database is consulted,
so it is the reader a client without one (or with an old one) is.

``future_entries`` are the entries past pytz's 2037 that the parser tests read:
their expected instants come from the standard library's zoneinfo, not from
calendar-svc.
"""

from __future__ import annotations

import bisect
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytz
from dateutil.rrule import rrulestr
from icalendar import Calendar as ICalendar
from test_ics import make_entry

from calendar_svc.models import Entry

READ_UNTIL = datetime(2200, 1, 1)


class FeedZone:
    """One VTIMEZONE, read by itself: UTC offset at any instant, wall time -> UTC."""

    def __init__(self, vtimezone: Any, until: datetime = READ_UNTIL) -> None:
        onsets: list[tuple[datetime, timedelta]] = []
        earliest: tuple[datetime, timedelta] | None = None
        for observance in vtimezone.subcomponents:
            before = observance["TZOFFSETFROM"].td
            after = observance["TZOFFSETTO"].td
            start = observance["DTSTART"].dt
            locals_ = [start]
            rdates = observance.get("RDATE", [])
            for rdate in rdates if isinstance(rdates, list) else [rdates]:
                locals_.extend(value.dt for value in rdate.dts)
            if "RRULE" in observance:
                rule = rrulestr(observance["RRULE"].to_ical().decode(), dtstart=start)
                locals_.extend(rule.between(start, until, inc=True))
            for local in locals_:
                onsets.append((local - before, after))
            if earliest is None or start - before < earliest[0]:
                earliest = (start - before, before)
        assert earliest is not None, "a VTIMEZONE without observances"
        onsets.sort()
        self.tzid = str(vtimezone["TZID"])
        self._instants = [instant for instant, _ in onsets]
        self._offsets = [offset for _, offset in onsets]
        self._first = earliest[1]  # before the first onset: its TZOFFSETFROM

    def offset_at(self, instant: datetime) -> timedelta:
        """The UTC offset at an aware instant."""
        naive = instant.astimezone(UTC).replace(tzinfo=None)
        index = bisect.bisect_right(self._instants, naive) - 1
        return self._first if index < 0 else self._offsets[index]

    def to_utc(self, wall: datetime) -> datetime:
        """The instant of a naive wall time (the first of two in a fold)."""
        for offset in sorted(set(self._offsets) | {self._first}, reverse=True):
            instant = (wall - offset).replace(tzinfo=UTC)
            if self.offset_at(instant) == offset:
                return instant
        raise ValueError(f"{wall} does not exist in {self.tzid}")


def feed_zones(data: bytes) -> dict[str, FeedZone]:
    """Every VTIMEZONE of a feed, by TZID."""
    return {str(tz["TZID"]): FeedZone(tz) for tz in ICalendar.from_ical(data).walk("VTIMEZONE")}


def read_by_vtimezones(data: bytes) -> dict[str, list[datetime]]:
    """Each event's instants (DTSTART and its RRULE's occurrences, as wall times in its
    TZID) as the feed's own VTIMEZONEs say, by UID before the ``@``."""
    zones = feed_zones(data)
    out: dict[str, list[datetime]] = {}
    for event in ICalendar.from_ical(data).walk("VEVENT"):
        prop = event["DTSTART"]
        uid = str(event["UID"]).split("@")[0]
        if "TZID" not in prop.params:  # an instant in UTC: no zone to read it with
            out[uid] = [prop.dt.astimezone(UTC)]
            continue
        wall = prop.dt.replace(tzinfo=None)
        walls = [wall]
        if "RRULE" in event:
            walls = list(rrulestr(event["RRULE"].to_ical().decode(), dtstart=wall))
        zone = zones[str(prop.params["TZID"])]
        out[uid] = [zone.to_utc(w) for w in walls]
    return out


# Wall times past 2037 (and the one a VTIMEZONE from 1970 would have to reach back for).
FUTURE = [
    ("ny-2040-summer", "America/New_York", datetime(2040, 7, 4, 12, 0), None),
    ("ny-2040-winter", "America/New_York", datetime(2040, 12, 24, 18, 0), None),
    ("ny-2100-summer", "America/New_York", datetime(2100, 7, 4, 12, 0), None),
    ("ny-2100-winter", "America/New_York", datetime(2100, 1, 15, 12, 0), None),
    # Every Wednesday from June 2037 for three years: across 2038 and its DST changes.
    ("ny-weekly", "America/New_York", datetime(2037, 6, 3, 12, 0), "FREQ=WEEKLY;COUNT=160"),
    ("santiago-2040", "America/Santiago", datetime(2040, 9, 2, 12, 0), None),
    ("lord-howe-2060", "Australia/Lord_Howe", datetime(2060, 1, 10, 9, 0), None),
    ("chatham-2077", "Pacific/Chatham", datetime(2077, 7, 1, 9, 0), None),
    ("cairo-2041", "Africa/Cairo", datetime(2041, 11, 1, 12, 0), None),
    ("berlin-2199", "Europe/Berlin", datetime(2199, 8, 1, 12, 0), None),
    ("mexico-2050", "America/Mexico_City", datetime(2050, 7, 1, 12, 0), None),
    ("quito-2050", "America/Guayaquil", datetime(2050, 7, 1, 12, 0), None),
    ("kolkata-1950", "Asia/Kolkata", datetime(1950, 7, 1, 12, 0), None),
]


def future_entries() -> list[Entry]:
    return [
        make_entry(uid=uid, start=wall, zone=zone, rrule=rrule, reminders=[])
        for uid, zone, wall, rrule in FUTURE
    ]


def reference_zone(name: str) -> zoneinfo.ZoneInfo:
    """The standard library's reading of the same TZif file calendar-svc reads (pytz's),
    so a test compares code, not two releases of the tz database."""
    with pytz.open_resource(name) as handle:
        return zoneinfo.ZoneInfo.from_file(handle, key=name)


def expected_instants() -> dict[str, list[datetime]]:
    """What each FUTURE entry's instants are, computed by the standard library alone."""
    out = {}
    for uid, zone, wall, rrule in FUTURE:
        walls = [wall] if rrule is None else list(rrulestr(rrule, dtstart=wall))
        tz = reference_zone(zone)
        out[uid] = [w.replace(tzinfo=tz).astimezone(UTC) for w in walls]
    return out
