"""The feeds read by libical, the C library behind Evolution and KDE's calendars.

libical is loaded from the system (Debian: ``apt-get install libical3``) through
ctypes; without it these tests are skipped. libical marks what it cannot read with
X-LIC-ERROR properties instead of failing, so the check is that there are none,
and that every DTSTART/DTEND resolves (through the feed's TZIDs) to the instant
the store holds. libical goes by the feed's own VTIMEZONEs: entries in 2040 and
2100 and a weekly series across 2038 must read as the standard library's zoneinfo
says (recurrences expanded by libical itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from feed_zones import expected_instants, future_entries
from test_ics import make_calendar
from test_ics_parsers import OPTIONS, hostile_feed  # noqa: F401  (a fixture)

from calendar_svc import ics
from calendar_svc.feed.cache import render_feed
from calendar_svc.filters import EntryFilter
from calendar_svc.models import Entry
from calendar_svc.store import Store

_PATH = ctypes.util.find_library("ical")
pytestmark = pytest.mark.skipif(_PATH is None, reason="libical is not installed (libical3)")

ICAL_VEVENT_COMPONENT = 4  # icalcomponent_kind in icalenums.h


class IcalTime(ctypes.Structure):
    _fields_ = [
        ("year", ctypes.c_int),
        ("month", ctypes.c_int),
        ("day", ctypes.c_int),
        ("hour", ctypes.c_int),
        ("minute", ctypes.c_int),
        ("second", ctypes.c_int),
        ("is_date", ctypes.c_int),
        ("is_daylight", ctypes.c_int),
        ("zone", ctypes.c_void_p),
    ]


class IcalTimeSpan(ctypes.Structure):
    _fields_ = [("start", ctypes.c_int64), ("end", ctypes.c_int64), ("is_busy", ctypes.c_int)]


RECURRENCE_CALLBACK = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.POINTER(IcalTimeSpan), ctypes.c_void_p
)


def _library() -> ctypes.CDLL:
    lib = ctypes.CDLL(_PATH)
    signatures = {
        "icalparser_parse_string": ([ctypes.c_char_p], ctypes.c_void_p),
        "icalcomponent_count_errors": ([ctypes.c_void_p], ctypes.c_int),
        "icalcomponent_get_first_component": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_void_p),
        "icalcomponent_get_next_component": ([ctypes.c_void_p, ctypes.c_int], ctypes.c_void_p),
        "icalcomponent_get_uid": ([ctypes.c_void_p], ctypes.c_char_p),
        "icalcomponent_get_summary": ([ctypes.c_void_p], ctypes.c_char_p),
        "icalcomponent_get_dtstart": ([ctypes.c_void_p], IcalTime),
        "icalcomponent_get_dtend": ([ctypes.c_void_p], IcalTime),
        "icaltimezone_get_utc_timezone": ([], ctypes.c_void_p),
        "icaltime_convert_to_zone": ([IcalTime, ctypes.c_void_p], IcalTime),
        "icalcomponent_free": ([ctypes.c_void_p], None),
        "icalcomponent_foreach_recurrence": (
            [ctypes.c_void_p, IcalTime, IcalTime, RECURRENCE_CALLBACK, ctypes.c_void_p],
            None,
        ),
    }
    for name, (args, result) in signatures.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib


class Parsed:
    """A feed as libical reads it: its error count and, per VEVENT, what it resolved."""

    def __init__(self, data: bytes) -> None:
        lib = _library()
        root = lib.icalparser_parse_string(data)
        assert root, "libical could not parse the feed at all"
        try:
            self.errors = lib.icalcomponent_count_errors(root)
            utc = lib.icaltimezone_get_utc_timezone()
            self.events: dict[str, tuple[str, datetime | date, datetime | date]] = {}
            self.occurrences: dict[str, list[datetime]] = {}
            for event in _components(lib, root):
                uid = lib.icalcomponent_get_uid(event).decode()
                summary = (lib.icalcomponent_get_summary(event) or b"").decode()
                start = _instant(lib, lib.icalcomponent_get_dtstart(event), utc)
                end = _instant(lib, lib.icalcomponent_get_dtend(event), utc)
                self.events[uid.split("@")[0]] = (summary, start, end)
                self.occurrences[uid.split("@")[0]] = _recurrences(lib, event, utc)
        finally:
            lib.icalcomponent_free(root)


def _components(lib: ctypes.CDLL, root: int) -> Iterator[int]:
    event = lib.icalcomponent_get_first_component(root, ICAL_VEVENT_COMPONENT)
    while event:
        yield event
        event = lib.icalcomponent_get_next_component(root, ICAL_VEVENT_COMPONENT)


def _recurrences(lib: ctypes.CDLL, event: int, utc: int) -> list[datetime]:
    """Every occurrence start of the event from 1900 to 2200, as libical expands it."""
    found: list[datetime] = []

    def collect(_component: int, span: ctypes._Pointer[IcalTimeSpan], _data: int) -> None:
        found.append(datetime.fromtimestamp(span.contents.start, UTC))

    callback = RECURRENCE_CALLBACK(collect)
    window = [IcalTime(year, 1, 1, 0, 0, 0, 0, 0, utc) for year in (1900, 2200)]
    lib.icalcomponent_foreach_recurrence(event, *window, callback, None)
    return found


def _instant(lib: ctypes.CDLL, value: IcalTime, utc: int) -> datetime | date:
    if value.is_date:
        return date(value.year, value.month, value.day)
    t = lib.icaltime_convert_to_zone(value, utc)
    return datetime(t.year, t.month, t.day, t.hour, t.minute, t.second, tzinfo=UTC)


def _assert_read_as_stored(parsed: Parsed, entries: list[Entry]) -> None:
    assert parsed.errors == 0
    assert set(parsed.events) == {e.uid for e in entries}
    for entry in entries:
        summary, start, end = parsed.events[entry.uid]
        # libical trims the spaces around a value; there is no way to escape them.
        assert summary == ics.clean_text(entry.title).strip(" \t"), entry.uid
        if entry.all_day:
            assert (start, end) == (entry.start_day, entry.last_day + timedelta(days=1)), entry.uid
            continue
        assert start == entry.start_utc, entry.uid
        if entry.end_utc > entry.start_utc:
            assert end == entry.end_utc, entry.uid


def test_trip_feed_reads_the_same_in_libical(trip_store: Store) -> None:
    data = render_feed(trip_store, OPTIONS, "rubio-2025-09").body
    parsed = Parsed(data)
    _assert_read_as_stored(parsed, trip_store.entries(EntryFilter(calendar="rubio-2025-09")))
    # The flight leaves Washington at 06:30 EDT: 10:30Z, not 11:30Z (EST).
    assert parsed.events["flight-was-mex"][1] == datetime(2025, 9, 2, 10, 30, tzinfo=UTC)


def test_hostile_feed_reads_the_same_in_libical(
    hostile_feed: tuple[bytes, Store],  # noqa: F811
) -> None:
    data, store = hostile_feed
    entries = store.entries(EntryFilter(calendar="hostile"))
    assert len(entries) == 1000  # an empty feed would read "the same" too
    _assert_read_as_stored(Parsed(data), entries)


def test_entries_past_2037_read_the_same_in_libical() -> None:
    """libical reads the feed's VTIMEZONE: with one that ended in 2037 it put
    12:00 on 4 July 2040 in New York at 17:00Z; the weekly series crosses 2038."""
    data = ics.render(make_calendar(), future_entries(), OPTIONS)
    parsed = Parsed(data)
    assert parsed.errors == 0
    expected = expected_instants()
    assert {uid: event[1] for uid, event in parsed.events.items()} == {
        uid: instants[0] for uid, instants in expected.items()
    }
    assert parsed.occurrences == expected
