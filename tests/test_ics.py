"""ics.py (entries -> icalendar -> bytes) and the feed render cache built on it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import pytest
from icalendar import Calendar as ICalendar

from calendar_svc import ics
from calendar_svc.feed import cache as feed_cache
from calendar_svc.feed.cache import FeedCache, render_feed
from calendar_svc.filters import EntryFilter, parse_filter
from calendar_svc.importer import import_specs
from calendar_svc.models import Calendar, Entry
from calendar_svc.store import Store
from calendar_svc.timezones import UTC, to_utc

SLUG = "rubio-2025-09"
OPTIONS = ics.FeedOptions()
NOW = datetime(2025, 8, 20, 12, 0, tzinfo=UTC)


def render_pieces(calendar: Calendar, entries: Sequence[Entry], options: ics.FeedOptions) -> bytes:
    """A feed joined from ``ics``'s pieces, with nothing cached: what the feed cache must
    give, byte for byte."""
    return ics.assemble(
        ics.header_bytes(calendar, options),
        ics.timezone_blocks(ics.used_tzids(entries), ics.first_year(entries)),
        (ics.event_bytes(entry, calendar, options) for entry in entries),
    )


def test_feed_options_default_to_the_config_defaults() -> None:
    from calendar_svc.config import default_config

    assert ics.FeedOptions() == ics.FeedOptions.from_config(default_config("sqlite://"))


def make_calendar(**overrides: Any) -> Calendar:
    values: dict[str, Any] = dict(
        id=1,
        slug="cal",
        name="Cal",
        description="",
        timezone="America/Mexico_City",
        reminders=None,
        feed_token="t" * 43,
        version=1,
        created_at=NOW,
        updated_at=NOW,
    )
    values.update(overrides)
    return Calendar(**values)


def make_entry(**overrides: Any) -> Entry:
    """A transient (never stored) entry; wall times in ``start_tz``/``end_tz``."""
    start = overrides.pop("start", datetime(2025, 9, 2, 10, 0))
    end = overrides.pop("end", start + timedelta(hours=1))
    zone = overrides.pop("zone", "America/Mexico_City")
    end_zone = overrides.pop("end_zone", zone)
    values: dict[str, Any] = dict(
        id=1,
        uid="e1",
        title="Title",
        description="",
        location="",
        city="",
        geo_lat=None,
        geo_lon=None,
        url="",
        categories=[],
        status="confirmed",
        transparency="opaque",
        sequence=0,
        all_day=False,
        start_local=start,
        start_tz=zone,
        start_fold=None,
        end_local=end,
        end_tz=end_zone,
        end_fold=None,
        start_utc=to_utc(start, zone),
        end_utc=to_utc(end, end_zone),
        rrule=None,
        reminders=None,
        created_at=NOW,
        updated_at=NOW,
    )
    values.update(overrides)
    return Entry(**values)


def trip(store: Store) -> tuple[Calendar, list[Entry]]:
    return store.get_calendar(SLUG), store.entries(EntryFilter(calendar=SLUG))


def vevents(data: bytes) -> dict[str, Any]:
    parsed = ICalendar.from_ical(data)
    return {str(e["UID"]).split("@")[0]: e for e in parsed.walk("VEVENT")}


# --- the trip ------------------------------------------------------------------------


def test_trip_calendar_properties(trip_store: Store) -> None:
    data = ics.render(*trip(trip_store), OPTIONS)
    head = data.split(b"BEGIN:VTIMEZONE")[0].decode()
    for line in (
        "VERSION:2.0",
        f"PRODID:{ics.PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
        "X-WR-TIMEZONE:America/Mexico_City",
    ):
        assert f"\r\n{line}\r\n" in head
    for name in ("NAME", "X-WR-CALNAME"):
        assert f"\r\n{name}:Secretary Rubio: Mexico and Ecuador\\, 2-4 Sep 2025\r\n" in head
    parsed = ICalendar.from_ical(data)
    assert "Quito" in str(parsed["X-WR-CALDESC"])


def test_one_vtimezone_per_tzid_before_events(trip_store: Store) -> None:
    cal = ics.build_calendar(*trip(trip_store), OPTIONS)
    assert cal.get_missing_tzids() == set()
    names = [str(tz["TZID"]) for tz in cal.timezones]
    assert names == ["America/Guayaquil", "America/Mexico_City", "America/New_York"]
    kinds = [c.name for c in cal.subcomponents]
    assert kinds[:3] == ["VTIMEZONE"] * 3 and set(kinds[3:]) == {"VEVENT"}


def _offset_by_first_rdate_only(timezone: Any, when: datetime) -> timedelta:
    """The UTC offset at local time ``when`` as ical.js reads a VTIMEZONE: each RDATE
    property contributes its first value only (an RRULE repeats DTSTART)."""
    from dateutil.rrule import rrulestr

    onsets: list[tuple[datetime, timedelta]] = []
    for observance in timezone.subcomponents:
        offset = observance["TZOFFSETTO"].td
        start = observance["DTSTART"].dt
        onsets.append((start, offset))
        rdates = observance.get("RDATE", [])
        for rdate in rdates if isinstance(rdates, list) else [rdates]:
            onsets.append((rdate.dts[0].dt, offset))
        if "RRULE" in observance:
            rule = rrulestr(observance["RRULE"].to_ical().decode(), dtstart=start)
            onsets.extend((onset, offset) for onset in rule.between(start, when, inc=True))
    return max(o for o in onsets if o[0] <= when)[1]


@pytest.mark.parametrize(
    ("zone", "when", "hours"),
    [
        ("America/New_York", datetime(2025, 9, 2, 6, 30), -4),  # the flight out, EDT
        ("America/New_York", datetime(2025, 12, 2, 6, 30), -5),
        ("America/Mexico_City", datetime(2025, 9, 2, 10, 0), -6),  # no DST since 2022
        ("America/Mexico_City", datetime(2021, 7, 1, 10, 0), -5),
        ("America/Guayaquil", datetime(2025, 9, 4, 10, 0), -5),
    ],
)
def test_vtimezones_read_right_in_parsers_that_take_one_value_per_rdate(
    zone: str, when: datetime, hours: int
) -> None:
    """ical.js (Thunderbird's parser) reads one value per RDATE property: with the
    onsets in one comma-separated RDATE, New York stayed on EST after 1971."""
    tzid, data = ics.timezone_block(zone)  # type: ignore[misc]
    timezone = ICalendar.from_ical(data)
    assert tzid == zone
    assert all(b"," not in line for line in data.split(b"\r\n") if line.startswith(b"RDATE"))
    assert _offset_by_first_rdate_only(timezone, when) == timedelta(hours=hours)
    # And as icalendar reads it (every value), the same offset.
    assert timezone.to_tz().utcoffset(when) == timedelta(hours=hours)


def test_whitespace_only_location_and_description_are_left_out() -> None:
    """Nothing to show, and libical reports an empty value as an error."""
    calendar = make_calendar()
    blank = ics.event_bytes(
        make_entry(description=" \t\n ", location="\x01\u00a0"), calendar, OPTIONS
    )
    assert b"DESCRIPTION:" not in blank.split(b"BEGIN:VALARM")[0] and b"LOCATION" not in blank
    kept = ics.event_bytes(make_entry(description=" x ", location="  Quito"), calendar, OPTIONS)
    assert b"DESCRIPTION: x \r\n" in kept and b"LOCATION:  Quito\r\n" in kept


def test_wall_times_carry_their_zone(trip_store: Store) -> None:
    data = ics.render(*trip(trip_store), OPTIONS)
    text = data.decode()
    # The flight leaves in New York's zone and lands in Mexico City's.
    assert "DTSTART;TZID=America/New_York:20250902T063000" in text
    assert "DTEND;TZID=America/Mexico_City:20250902T084500" in text
    events = vevents(data)
    # Mexico City is UTC-06:00 in September 2025 (no DST since 2022), Quito -05:00.
    bilateral = events["sheinbaum-bilateral"]["DTSTART"].dt
    assert bilateral.utcoffset() == timedelta(hours=-6)
    assert bilateral.astimezone(UTC) == datetime(2025, 9, 2, 16, 0, tzinfo=UTC)
    noboa = events["noboa-meeting"]["DTSTART"].dt
    assert noboa.astimezone(UTC) == datetime(2025, 9, 4, 15, 0, tzinfo=UTC)
    for entry in trip(trip_store)[1]:
        if not entry.all_day:
            assert events[entry.uid]["DTSTART"].dt.astimezone(UTC) == entry.start_utc


def test_all_day_is_dates_with_exclusive_end(trip_store: Store) -> None:
    data = ics.render(*trip(trip_store), OPTIONS)
    text = data.decode()
    assert "DTSTART;VALUE=DATE:20250902\r\n" in text
    assert "DTEND;VALUE=DATE:20250905\r\n" in text  # last day 4 Sep, inclusive
    overview = vevents(data)["trip-overview"]
    assert overview["DTSTART"].dt == date(2025, 9, 2)
    assert not overview.walk("VALARM")  # reminders = [] in the file


def test_alarms_follow_entry_then_calendar_then_config(trip_store: Store) -> None:
    events = vevents(ics.render(*trip(trip_store), OPTIONS))

    def triggers(uid: str) -> list[timedelta]:
        return [a["TRIGGER"].dt for a in events[uid].walk("VALARM")]

    assert triggers("flight-was-mex") == [timedelta(hours=-2)]
    assert triggers("sheinbaum-bilateral") == [timedelta(hours=-1), timedelta(minutes=-15)]
    alarm = events["sheinbaum-bilateral"].walk("VALARM")[0]
    assert str(alarm["ACTION"]) == "DISPLAY" and "Sheinbaum" in str(alarm["DESCRIPTION"])

    calendar = make_calendar(reminders=None)
    options = ics.FeedOptions(default_offsets=(timedelta(minutes=30),))
    entry = make_entry()
    assert options.alarm_offsets(entry, calendar) == (timedelta(minutes=30),)
    assert options.alarm_offsets(make_entry(reminders=[]), calendar) == ()
    assert b"VALARM" not in ics.event_bytes(entry, calendar, ics.FeedOptions(include_alarms=False))


def test_uid_stamps_and_sequence_come_from_the_entry(trip_store: Store) -> None:
    calendar, entries = trip(trip_store)
    events = vevents(ics.render(calendar, entries, ics.FeedOptions(domain="example.org")))
    event = events["noboa-meeting"]
    assert str(event["UID"]) == "noboa-meeting@rubio-2025-09.example.org"
    entry = next(e for e in entries if e.uid == "noboa-meeting")
    assert event["DTSTAMP"].dt == entry.updated_at == event["LAST-MODIFIED"].dt
    assert event["CREATED"].dt == entry.created_at
    assert event["SEQUENCE"] == 0
    assert str(event["STATUS"]) == "CONFIRMED" and str(event["TRANSP"]) == "OPAQUE"
    assert event["GEO"].latitude == pytest.approx(-0.2202)
    assert event.categories == ["meeting"]


def test_cancel_gives_status_cancelled_and_a_higher_sequence(trip_store: Store) -> None:
    trip_store.set_status("press-mexico-city", "cancelled", SLUG)
    event = vevents(ics.render(*trip(trip_store), OPTIONS))["press-mexico-city"]
    assert str(event["STATUS"]) == "CANCELLED"
    assert event["SEQUENCE"] == 1


def test_cancelled_entries_carry_no_alarm(trip_store: Store) -> None:
    """A subscriber's app must not ring for a cancelled meeting: the daemon sends nothing
    for it either (one rule, ``reminders.rules.alarm_offsets``)."""
    assert vevents(ics.render(*trip(trip_store), OPTIONS))["press-mexico-city"].walk("VALARM")
    trip_store.set_status("press-mexico-city", "cancelled", SLUG)
    event = vevents(ics.render(*trip(trip_store), OPTIONS))["press-mexico-city"]
    assert not event.walk("VALARM")
    cancelled_all_day = make_entry(all_day=True, status="cancelled", reminders=["PT1H"])
    assert b"VALARM" not in ics.event_bytes(cancelled_all_day, make_calendar(), OPTIONS)


def test_a_wall_time_a_dst_change_skips_or_repeats_is_written_as_its_instant() -> None:
    """RFC 5545 reads a repeated wall time as the first and a skipped one with the offset
    before the change, but readers differ (libical takes the second of two), and an entry
    may be the second (fold = 1): a one-off entry at such a wall time is written in UTC, so
    every reader gets its instant. 01:30 on 2 Nov 2025 in New York happens twice; 02:30
    on 9 Mar 2025 never (kept with the offset before, as after a tz database update)."""
    zone = "America/New_York"
    repeated, skipped = datetime(2025, 11, 2, 1, 30), datetime(2025, 3, 9, 2, 30)

    def entry(uid: str, wall: datetime, fold: int | None, **extra: Any) -> Entry:
        # (make_entry would derive start_utc from a wall time that is not enough here.)
        later = wall + timedelta(hours=3)
        return make_entry(
            uid=uid,
            zone=zone,
            start=later,
            start_local=wall,
            start_fold=fold,
            start_utc=to_utc(wall, zone, fold=fold or 0),
            **extra,
        )

    entries = [
        entry("first", repeated, 0),
        entry("second", repeated, 1),
        entry("skipped", skipped, None),
        entry("series", skipped, None, rrule="FREQ=DAILY;COUNT=2"),
    ]
    events = vevents(ics.render(make_calendar(), entries, OPTIONS))
    assert events["first"]["DTSTART"].to_ical() == b"20251102T053000Z"
    assert events["second"]["DTSTART"].to_ical() == b"20251102T063000Z"
    assert events["skipped"]["DTSTART"].to_ical() == b"20250309T073000Z"
    # A series repeats its wall time: written with its zone, digits kept (not 03:30).
    assert events["series"]["DTSTART"].to_ical() == b"20250309T023000"
    assert events["series"]["DTSTART"].params["TZID"] == zone
    # Day offsets of a time written in UTC are said as exact time: what the daemon counts.
    daily = entry("daily", repeated, 1, reminders=["P1D"])
    event = vevents(ics.render(make_calendar(), [daily], OPTIONS))["daily"]
    assert [a["TRIGGER"].dt for a in event.walk("VALARM")] == [-timedelta(hours=25)]


def test_an_entry_whose_zone_is_gone_is_written_in_utc_without_alarms() -> None:
    """After a tz database update dropped its zone, an entry is kept at its last instants:
    the feed still shows it, in UTC, with no VTIMEZONE to build and no alarm (the daemon
    cannot remind it either: doctor and the logs name it)."""
    gone = make_entry(
        uid="gone",
        zone="America/New_York",
        start_tz="Test/Gone",
        end_tz="Test/Gone",
        reminders=["PT1H"],
    )
    data = ics.render(make_calendar(), [gone, make_entry()], OPTIONS)
    event = vevents(data)["gone"]
    assert event["DTSTART"].to_ical() == gone.start_utc.strftime("%Y%m%dT%H%M%SZ").encode()
    assert not event.walk("VALARM")
    assert b"TZID:Test/Gone" not in data and b"TZID:America/Mexico_City" in data
    assert render_pieces(make_calendar(), [gone, make_entry()], OPTIONS) == data


def test_output_is_deterministic_across_hash_seeds(sqlite_store: Store, trip_path: Any) -> None:
    """VTIMEZONE order must not follow set order (it changes with PYTHONHASHSEED)."""
    from calendar_svc.schedule_files import load_file

    with sqlite_store.write() as session:
        import_specs(session, [load_file(trip_path)], now=sqlite_store.clock())
    code = (
        "import sys; from calendar_svc.store import Store; from calendar_svc.ics import FeedOptions;"
        "from calendar_svc.feed.cache import render_feed;"
        f"sys.stdout.buffer.write(render_feed(Store({sqlite_store.url!r}), FeedOptions(), "
        f"{SLUG!r}).body)"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=True
        )
        outputs.add(result.stdout)
    assert len(outputs) == 1
    assert outputs.pop() == ics.render(*trip(sqlite_store), OPTIONS)


# --- single entries ------------------------------------------------------------------


def test_backslash_n_is_text_not_a_line_break() -> None:
    calendar = make_calendar()
    entry = make_entry(title="C:\\New folder\\notes; a,b", description="one\r\ntwo\rthree\x00")
    event = vevents(
        ics.event_bytes(entry, calendar, OPTIONS).join(
            (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n", b"END:VCALENDAR\r\n")
        )
    )["e1"]
    assert str(event["SUMMARY"]) == "C:\\New folder\\notes; a,b"
    assert str(event["DESCRIPTION"]) == "one\ntwo\nthree"


def test_instant_has_no_dtend_and_utc_zone_needs_no_vtimezone() -> None:
    calendar = make_calendar()
    moment = make_entry(end=datetime(2025, 9, 2, 10, 0))
    assert b"DTEND" not in ics.event_bytes(moment, calendar, OPTIONS)
    utc = make_entry(uid="u", zone="UTC")
    data = ics.render(calendar, [utc], OPTIONS)
    assert b"DTSTART:20250902T100000Z" in data and b"VTIMEZONE" not in data
    assert render_pieces(calendar, [utc], OPTIONS) == data


def test_rrule_url_and_transparency() -> None:
    entry = make_entry(
        rrule="FREQ=DAILY;COUNT=3",
        url="https://example.org/a?b=c",
        transparency="transparent",
        status="tentative",
    )
    data = ics.event_bytes(entry, make_calendar(), OPTIONS)
    assert b"RRULE:FREQ=DAILY;COUNT=3\r\n" in data
    assert b"URL:https://example.org/a?b=c\r\n" in data
    assert b"TRANSP:TRANSPARENT\r\n" in data and b"STATUS:TENTATIVE\r\n" in data


# --- pieces and the cache ------------------------------------------------------------


def test_joined_pieces_equal_icalendar_whole(trip_store: Store) -> None:
    calendar, entries = trip(trip_store)
    whole = ics.render(calendar, entries, OPTIONS)
    assert render_pieces(calendar, entries, OPTIONS) == whole
    assert render_feed(trip_store, OPTIONS, SLUG).body == whole


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"city": "quito"},
        {"city": "MEXICO CITY"},
        {"category": "Flight"},
        {"from_": "2025-09-03"},
        {"to": "2025-09-02"},
        {"from_": "2025-09-03", "to": "2025-09-03"},
        {"city": "Mexico City", "category": "meeting", "from_": "2025-09-03"},
        {"city": "nowhere"},
    ],
)
def test_filtered_feed_selects_what_the_store_selects(
    trip_store: Store, query: dict[str, str]
) -> None:
    flt = parse_filter(**query)
    feed = render_feed(trip_store, OPTIONS, SLUG, flt)
    flt.calendar = SLUG
    entries = trip_store.entries(flt)
    assert feed.entries == len(entries)
    assert feed.body == ics.render(trip_store.get_calendar(SLUG), entries, OPTIONS)


def test_rerender_after_one_edit_serialises_one_event(
    trip_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = ics.event_bytes

    def counting(entry: Entry, calendar: Calendar, options: ics.FeedOptions) -> bytes:
        calls.append(entry.uid)
        return original(entry, calendar, options)

    monkeypatch.setattr(feed_cache.ics, "event_bytes", counting)
    cache = FeedCache(trip_store, OPTIONS)
    calendar_id = trip_store.get_calendar(SLUG).id
    first = cache.render(calendar_id, EntryFilter())
    assert len(calls) == 11
    calls.clear()
    head = feed_cache.CalendarHead(calendar_id, SLUG, "", trip_store.get_calendar(SLUG).version)
    assert cache.get(head, feed_cache.filter_key(EntryFilter())) is first  # no change: a lookup
    trip_store.set_status("embassy-quito", "cancelled", SLUG)
    second = cache.render(calendar_id, EntryFilter())
    assert calls == ["embassy-quito"]
    assert second.etag != first.etag
    assert second.body == ics.render(*trip(trip_store), OPTIONS)
    trip_store.delete_entry("embassy-quito", SLUG)
    calls.clear()
    third = cache.render(calendar_id, EntryFilter())
    assert calls == [] and b"embassy-quito@" not in third.body
    assert third.body == ics.render(*trip(trip_store), OPTIONS)


def test_calendar_reminders_change_reaches_inheriting_events(
    trip_store: Store, trip_path: Any
) -> None:
    import dataclasses

    from calendar_svc.schedule_files import load_file

    cache = FeedCache(trip_store, OPTIONS)
    calendar_id = trip_store.get_calendar(SLUG).id
    cache.render(calendar_id, EntryFilter())
    spec = dataclasses.replace(load_file(trip_path), reminders=("PT30M",))
    with trip_store.write() as session:
        import_specs(session, [spec], now=trip_store.clock())
    feed = cache.render(calendar_id, EntryFilter())
    assert feed.body == ics.render(*trip(trip_store), OPTIONS)
    assert b"TRIGGER:-PT30M" in feed.body


def test_parse_filter_rejects_bad_values() -> None:
    from calendar_svc.errors import InputError

    with pytest.raises(InputError, match="from expects a date as YYYY-MM-DD"):
        parse_filter(from_="2025-9-1x")
    with pytest.raises(InputError, match="before"):
        parse_filter(from_="2025-09-04", to="2025-09-02")
    assert parse_filter(city=" ", from_="") == EntryFilter()


def test_all_day_alarm_matches_the_daemon_rule() -> None:
    """One VALARM at all_day_time the day before, as the daemon sends it (not 23:45)."""
    day = datetime(2025, 9, 4)
    entry = make_entry(
        all_day=True,
        start=day,
        end=day,
        zone="America/Guayaquil",
        reminders=["PT1H", "PT15M"],
        start_utc=to_utc(day, "America/Guayaquil"),
        end_utc=to_utc(day + timedelta(days=1), "America/Guayaquil"),
    )
    options = ics.FeedOptions(all_day_time=time(9, 0))
    event = vevents(ics.render(make_calendar(), [entry], options))["e1"]
    assert [a["TRIGGER"].dt for a in event.walk("VALARM")] == [timedelta(hours=-15)]
    # 2025-09-03 09:00 in Quito, the instant the daemon's reminder is due.
    assert to_utc(day, "America/Guayaquil") - timedelta(hours=15) == to_utc(
        datetime(2025, 9, 3, 9, 0), "America/Guayaquil"
    )
