"""Our feeds in four independent parsers, on the trip, on 1,000 hostile entries and
on entries past 2037.

icalendar, ics, vobject and ical (the strict parser Home Assistant uses) must
all read every feed without an error; lines stay within 75 octets without
splitting a UTF-8 character; text survives a round trip; a title cannot
inject a component. Entries in 2040, 2100 and 2199, and a weekly series across
2038, read as the standard library's zoneinfo says in every parser, whether it
goes by the feed's VTIMEZONE (vobject, ics, icalendar's ``to_tz``, a reader of
the VTIMEZONE alone) or by its own copy of the zone (icalendar, ical).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import pytest
from feed_zones import expected_instants, future_entries, read_by_vtimezones
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from icalendar import Calendar as ICalendar
from ics_lib import OLD_DATEUTIL, ics_calendar, reads_zones_past_2037
from test_ics import make_calendar, make_entry, render_pieces

from calendar_svc import ics, timezones
from calendar_svc.feed.cache import render_feed
from calendar_svc.filters import EntryFilter
from calendar_svc.importer import import_specs
from calendar_svc.models import Entry
from calendar_svc.schedule_files import CalendarSpec, EntrySpec
from calendar_svc.store import Store
from calendar_svc.timezones import UTC, wall_time

OPTIONS = ics.FeedOptions()
ZONES = (
    "America/Mexico_City",
    "America/Guayaquil",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "UTC",
    "America/St_Johns",
    "Africa/Casablanca",
    "Europe/Dublin",
)
NASTY = [
    ",",
    ";",
    ":",
    "\\",
    "\\n",
    "\\N",
    "\\,",
    "\n",
    "\r\n",
    "\r",
    "\t",
    '"',
    "'",
    "=",
    "BEGIN:VEVENT",
    "\r\nEND:VCALENDAR\r\n",
    "é",
    "ß",
    "日本語",
    "مرحبا",
    "שלום",
    "🇲🇽",
    "👩‍👩‍👧‍👦",
    "🎉",
    "e\u0301",
    "\u200b",
    "\u00a0",
    " ",
    "x" * 80,
    "€" * 40,
    "😀" * 30,
    "Palacio Nacional, Mexico City",
    "tl;dr",
    "a:b;c,d\\e",
]


@pytest.fixture(autouse=True)
def _quiet_tatsu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ics parser's grammar (TatSu) calls colorama.init() on every parse.

    Each call wraps sys.stdout once more until writing to it overflows the
    stack; a third-party bug that has nothing to do with our output.
    """
    color = pytest.importorskip("tatsu.color")
    monkeypatch.setattr(color, "init", lambda: None)


def hostile_text(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(NASTY) for _ in range(parts))


def hostile_specs(count: int = 1000, seed: int = 3) -> CalendarSpec:
    rng = random.Random(seed)
    entries = []
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(count):
        title = hostile_text(rng, rng.randint(1, 8))
        if not ics.clean_text(title).strip():  # the importer refuses a blank title
            title += "t"
        zone, end_zone = rng.choice(ZONES), rng.choice(ZONES)
        start_utc = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 365, 15))
        kind = i % 10
        if kind == 0:  # all-day, one or more days
            start_local, _ = wall_time(start_utc, zone)
            start_local = start_local.replace(hour=0, minute=0)
            from calendar_svc.timezones import day_start_utc

            days = rng.randint(0, 3)
            end_local = start_local + timedelta(days=days)
            spec_times = dict(
                all_day=True,
                start_local=start_local,
                start_tz=zone,
                start_fold=None,
                end_local=end_local,
                end_tz=zone,
                end_fold=None,
                start_utc=day_start_utc(start_local.date(), zone),
                end_utc=day_start_utc(end_local.date() + timedelta(days=1), zone),
            )
        else:
            end_utc = start_utc + timedelta(minutes=rng.choice((0, 15, 90, 600, 3000)))
            start_local, fold = wall_time(start_utc, zone)
            end_local, end_fold = wall_time(end_utc, end_zone)
            spec_times = dict(
                all_day=False,
                start_local=start_local,
                start_tz=zone,
                start_fold=fold,
                end_local=end_local,
                end_tz=end_zone,
                end_fold=end_fold,
                start_utc=start_utc,
                end_utc=end_utc,
            )
        entries.append(
            EntrySpec(
                uid=f"hostile-{i:04d}",
                title=title,
                description=hostile_text(rng, rng.randint(0, 30)),
                location=hostile_text(rng, rng.randint(0, 6)),
                city=rng.choice(("Quito", "Mexico City", "", "Zürich")),
                geo_lat=rng.choice((None, -0.2202, 89.999999)),
                geo_lon=rng.choice((None, -78.5122, 179.5)),
                url=rng.choice(("", "https://example.org/a?b=c,d;e", "https://例え.jp/パス")),
                categories=tuple(
                    rng.sample(("meeting", "a,b", "x;y", "über", "🎉"), rng.randint(0, 3))
                ),
                status=rng.choice(("confirmed", "tentative", "cancelled")),
                transparency=rng.choice(("opaque", "transparent")),
                rrule=rng.choice((None, None, "FREQ=WEEKLY;COUNT=3")),
                reminders=rng.choice((None, (), ("PT1H", "PT15M"), ("P1D",))),
                **spec_times,  # type: ignore[arg-type]
            )
        )
    return CalendarSpec(
        source="<hostile>",
        slug="hostile",
        name="Hostile, ; \\ names 🎉",
        timezone="America/Mexico_City",
        description="Line one\nline two; three, four",
        reminders=("PT30M",),
        entries=tuple(entries),
    )


@pytest.fixture(scope="module")
def hostile_feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[bytes, Store]]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'h.sqlite3'}")
    store.migrate()
    with store.write() as session:
        import_specs(session, [hostile_specs()], now=store.clock())
    yield render_feed(store, OPTIONS, "hostile").body, store
    store.close()


@pytest.fixture
def trip_feed(trip_store: Store) -> bytes:
    return render_feed(trip_store, OPTIONS, "rubio-2025-09").body


def parse_everywhere(data: bytes) -> dict[str, int]:
    """Event counts as each parser sees them; any parser error fails the test."""
    import vobject
    from ical.calendar_stream import IcsCalendarStream

    text = data.decode("utf-8")
    return {
        "icalendar": len(ICalendar.from_ical(data).walk("VEVENT")),
        "ics": len(ics_calendar(text).events),
        "vobject": len(vobject.readOne(text).vevent_list),
        "ical": len(IcsCalendarStream.calendar_from_ics(text).events),
    }


def assert_lines_well_folded(data: bytes) -> None:
    assert data.endswith(b"\r\n")
    for number, line in enumerate(data[:-2].split(b"\r\n"), 1):
        assert len(line) <= 75, f"line {number} has {len(line)} octets"
        line.decode("utf-8")  # a fold inside a character would leave half of it here
        assert b"\r" not in line and b"\n" not in line


def test_trip_parses_everywhere(trip_feed: bytes) -> None:
    assert parse_everywhere(trip_feed) == dict.fromkeys(("icalendar", "ics", "vobject", "ical"), 11)
    assert_lines_well_folded(trip_feed)


def test_hostile_feed_parses_everywhere(hostile_feed: tuple[bytes, Store]) -> None:
    data, _ = hostile_feed
    assert parse_everywhere(data) == dict.fromkeys(("icalendar", "ics", "vobject", "ical"), 1000)
    assert_lines_well_folded(data)


def test_hostile_feed_is_what_icalendar_gives_whole(hostile_feed: tuple[bytes, Store]) -> None:
    data, store = hostile_feed
    entries = store.entries(EntryFilter(calendar="hostile"))
    whole = ics.build_calendar(store.get_calendar("hostile"), entries, OPTIONS)
    assert whole.get_missing_tzids() == set()
    assert ics.to_bytes(whole) == data


def test_hostile_text_comes_back(hostile_feed: tuple[bytes, Store]) -> None:
    import vobject

    data, store = hostile_feed
    entries = {e.uid: e for e in store.entries(EntryFilter(calendar="hostile"))}
    assert len(entries) == 1000
    seen = []
    for event in ICalendar.from_ical(data).walk("VEVENT"):
        entry = entries[str(event["UID"]).split("@")[0]]
        seen.append(entry.uid)
        assert str(event["SUMMARY"]) == ics.clean_text(entry.title)
        assert str(event.get("DESCRIPTION", "")) == ics.optional_text(entry.description)
        assert str(event.get("LOCATION", "")) == ics.optional_text(entry.location)
    assert sorted(seen) == sorted(entries)  # every entry came back, once
    seen = []
    for event in vobject.readOne(data.decode()).vevent_list:
        entry = entries[event.uid.value.split("@")[0]]
        seen.append(entry.uid)
        assert event.summary.value == ics.clean_text(entry.title)
    assert sorted(seen) == sorted(entries)


def _one_event_calendar(entry: Entry) -> bytes:
    return ics.render(make_calendar(), [entry], OPTIONS)


texts = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=120)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=texts,
    # Lengths around the fold (75 octets with the property name), in 1- to 4-octet characters.
    description=st.text(st.characters(blacklist_categories=("Cs",)), min_size=40, max_size=90),
    location=st.text(max_size=80),
)
def test_event_bytes_are_icalendar_s_own_serialisation(
    title: str, description: str, location: str
) -> None:
    """The cache's fast serialisation (short lines encoded directly) gives exactly the
    bytes of icalendar's ``to_ical``, whatever the text and wherever a fold falls."""
    entry = make_entry(title=title, description=description, location=location)
    event = ics.build_event(entry, make_calendar(), OPTIONS)
    assert ics.event_bytes(entry, make_calendar(), OPTIONS) == event.to_ical(sorted=True)


@pytest.mark.parametrize("tail", ["", "é", "€", "😀", "\\", ",", ";x", "\n"])
def test_event_bytes_match_icalendar_at_every_length_around_the_fold(tail: str) -> None:
    """ "DESCRIPTION:" and 50-70 more characters: lines just under, at and over the 75
    octets where icalendar folds, ending in multi-octet characters and escapes."""
    calendar = make_calendar()
    for length in range(50, 71):
        entry = make_entry(description="a" * (length - len(tail)) + tail)
        event = ics.build_event(entry, calendar, OPTIONS)
        assert ics.event_bytes(entry, calendar, OPTIONS) == event.to_ical(sorted=True), length


# Zones with DST in each hemisphere, half-hour steps, none at all, UTC by two names, and
# one the tz database does not have (an entry kept after its zone went away: UTC).
_ZONES = (
    "America/Mexico_City",
    "America/Guayaquil",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "UTC",
    "Etc/UTC",
    "Mars/Olympus_Mons",
)
_CHANGE_DAYS = tuple(
    date.fromisoformat(day)
    for day in (
        "2025-03-30",
        "2025-10-26",
        "2040-03-25",
        "2040-10-28",
        "2021-04-04",
        "2021-10-31",
        "2025-04-06",
        "2025-10-05",
    )
)


@st.composite
def any_entry(draw: st.DrawFn) -> Entry:
    """An entry of any shape ``build_event`` writes: all-day or timed, in a fold, in a gap,
    in a zone without a VTIMEZONE, a series with RDATEs and EXDATEs, with GEO, URL,
    categories, any status, sequence and reminders."""
    zone = draw(st.sampled_from(_ZONES))
    end_zone = draw(st.sampled_from((zone, *_ZONES)))
    # Days of DST changes (Berlin, Mexico City before 2022, Lord Howe) as often as any day.
    day = draw(
        st.sampled_from(_CHANGE_DAYS)
        | st.dates(min_value=date(1901, 1, 1), max_value=date(2199, 12, 30))
    )
    # Around 01:00-03:59, where DST changes fall, more often than not.
    clock = draw(st.times(max_value=time(3, 59)) | st.times()).replace(microsecond=0)
    start = datetime.combine(day, clock)
    end = start + draw(st.sampled_from((timedelta(0), timedelta(minutes=45), timedelta(days=1))))
    fold = draw(st.sampled_from((0, 1)))

    def instant(wall: datetime, where: str) -> datetime:
        known = where if timezones.is_zone(where) else "UTC"
        return timezones.to_utc(wall, known, fold=fold)

    rrule = draw(st.sampled_from((None, "FREQ=WEEKLY;COUNT=3", "FREQ=DAILY;BYHOUR=9,17")))
    all_day = draw(st.booleans())
    walls = st.lists(
        st.integers(1, 40).map(
            lambda n: (
                f"{(start + timedelta(days=n)).date()}"
                if all_day
                else f"{start + timedelta(days=n):%Y-%m-%dT%H:%M:%S}"
            )
        ),
        max_size=3,
        unique=True,
    )
    return make_entry(
        uid=draw(st.from_regex(r"[A-Za-z0-9._;,\\-]{1,30}", fullmatch=True)),
        title=draw(texts),
        description=draw(st.text(max_size=90)),
        location=draw(st.text(max_size=40)),
        geo_lat=draw(st.none() | st.floats(-90, 90)),
        geo_lon=draw(st.floats(-180, 180)),
        url=draw(st.sampled_from(("", "https://example.org/a?b=c,d;e", "https://ex.org/ü"))),
        categories=draw(st.lists(st.text(min_size=1, max_size=12), max_size=3)),
        status=draw(st.sampled_from(("confirmed", "tentative", "cancelled"))),
        transparency=draw(st.sampled_from(("opaque", "transparent"))),
        sequence=draw(st.integers(0, 10_000)),
        all_day=all_day,
        start=start,
        end=end,
        zone="UTC",  # (make_entry's own instants; the entry's zones and instants follow)
        start_tz=zone,
        end_tz=end_zone,
        start_fold=fold,
        end_fold=fold,
        start_utc=instant(start, zone),
        end_utc=instant(end, end_zone),
        rrule=rrule,
        # (A series in a zone the tz database lacks is isolated before any feed: see
        # calendar_svc.isolation.)
        rdates=draw(walls) or None if rrule and timezones.is_zone(zone) else None,
        exdates=draw(walls) or None if rrule and timezones.is_zone(zone) else None,
        reminders=draw(st.sampled_from((None, [], ["PT15M"], ["P1D", "PT1H"], ["P2DT3H"]))),
        updated_at=draw(st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC))),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry=any_entry(), include_alarms=st.booleans())
def test_event_bytes_of_any_entry_are_icalendar_s(entry: Entry, include_alarms: bool) -> None:
    """``event_bytes`` writes the lines itself (asking icalendar how each kind of value is
    written once): for every kind of entry they are icalendar's own ``to_ical`` bytes."""
    options = ics.FeedOptions(include_alarms=include_alarms)
    calendar = make_calendar(reminders=["PT1H", "P1D"])
    event = ics.build_event(entry, calendar, options)
    assert ics.event_bytes(entry, calendar, options) == event.to_ical(sorted=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=texts, description=st.text(max_size=200), location=st.text(max_size=80))
def test_any_text_round_trips(title: str, description: str, location: str) -> None:
    from ical.calendar_stream import IcsCalendarStream

    entry = make_entry(title=title, description=description, location=location)
    data = _one_event_calendar(entry)
    assert_lines_well_folded(data)
    event = ICalendar.from_ical(data).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == ics.clean_text(title)
    assert str(event.get("DESCRIPTION", "")) == ics.optional_text(description)
    assert str(event.get("LOCATION", "")) == ics.optional_text(location)
    strict = IcsCalendarStream.calendar_from_ics(data.decode()).events
    assert len(strict) == 1 and strict[0].summary == ics.clean_text(title)


@pytest.mark.parametrize(
    "title",
    [
        "x\r\nBEGIN:VEVENT\r\nUID:evil\r\nSUMMARY:injected\r\nEND:VEVENT",
        "x\nEND:VEVENT\nBEGIN:VEVENT\nUID:evil\nDTSTART:20250101T000000Z",
        "x\rEND:VCALENDAR\rBEGIN:VCALENDAR",
    ],
)
def test_title_cannot_inject_a_component(title: str) -> None:
    data = _one_event_calendar(make_entry(title=title))
    counts = parse_everywhere(data)
    assert counts == dict.fromkeys(("icalendar", "ics", "vobject", "ical"), 1)
    assert data.count(b"\r\nBEGIN:VEVENT\r\n") == 1  # the rest is escaped text
    assert str(ICalendar.from_ical(data).walk("VEVENT")[0]["SUMMARY"]) == ics.clean_text(title)


# --- past 2037 ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def future_feed() -> bytes:
    return ics.render(make_calendar(), future_entries(), OPTIONS)


def test_future_feed_is_the_same_joined_from_pieces(future_feed: bytes) -> None:
    entries = future_entries()
    assert render_pieces(make_calendar(), entries, OPTIONS) == future_feed
    assert ics.first_year(entries) == 1950  # Kolkata in 1950: the blocks start there
    assert_lines_well_folded(future_feed)


def test_future_instants_read_by_the_feed_s_own_vtimezones(future_feed: bytes) -> None:
    assert read_by_vtimezones(future_feed) == expected_instants()


def test_future_instants_in_icalendar(future_feed: bytes) -> None:
    expected = expected_instants()
    calendar = ICalendar.from_ical(future_feed)
    zones = {str(tz["TZID"]): tz.to_tz(lookup_tzid=False) for tz in calendar.walk("VTIMEZONE")}
    for event in calendar.walk("VEVENT"):
        uid = str(event["UID"]).split("@")[0]
        start = event["DTSTART"].dt
        assert start.astimezone(UTC) == expected[uid][0], uid
        # icalendar's own reading of our VTIMEZONE (dateutil rrules), not its zone copy.
        ours = zones[str(event["DTSTART"].params["TZID"])]
        assert start.replace(tzinfo=ours).astimezone(UTC) == expected[uid][0], uid


def test_future_instants_and_the_weekly_series_in_vobject(future_feed: bytes) -> None:
    import vobject

    expected = expected_instants()
    for event in vobject.readOne(future_feed.decode()).vevent_list:
        uid = event.uid.value.split("@")[0]
        assert event.dtstart.value.astimezone(UTC) == expected[uid][0], uid
        if uid == "ny-weekly":
            occurrences = [o.astimezone(UTC) for o in event.getrruleset(addRDate=True)]
            assert occurrences == expected[uid]


def test_future_instants_in_ics(future_feed: bytes) -> None:
    if not reads_zones_past_2037():
        pytest.skip(OLD_DATEUTIL)

    expected = expected_instants()
    for event in ics_calendar(future_feed.decode()).events:
        uid = event.uid.split("@")[0]
        assert event.begin.datetime.astimezone(UTC) == expected[uid][0], uid


def test_future_instants_and_the_weekly_series_in_ical(future_feed: bytes) -> None:
    from ical.calendar_stream import IcsCalendarStream

    calendar = IcsCalendarStream.calendar_from_ics(future_feed.decode())
    found: dict[str, list[datetime]] = {}
    for occurrence in calendar.timeline:
        found.setdefault(occurrence.uid.split("@")[0], []).append(
            occurrence.dtstart.astimezone(UTC)  # type: ignore[union-attr]
        )
    assert found == expected_instants()
