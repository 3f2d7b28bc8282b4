""".ics in: producer-shaped files, compared with an independent reading of the same file.

The fixtures in ``tests/fixtures/ics`` are written from the formats Google Calendar,
Outlook/Exchange, Apple Calendar, an airline booking and TripIt emit (not copied
files). Every instant we store is checked against vobject's own expansion of the
same file (its VTIMEZONEs, RRULE, RDATE and EXDATE), with the overrides applied by
hand as RFC 5545 says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from click.testing import Result

from calendar_svc.config import RemindersConfig
from calendar_svc.errors import InputError
from calendar_svc.filters import EntryFilter
from calendar_svc.ics_in import IcsOptions, parse_ics
from calendar_svc.importer import import_specs
from calendar_svc.models import Entry, Origin, OriginKind
from calendar_svc.recurrence import expand
from calendar_svc.reminders.rules import reminders_between
from calendar_svc.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
WINDOW = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def load(store: Store, name: str, *, slug: str | None = None, zone: str | None = None, **kw):
    data = (FIXTURES / f"{name}.ics").read_bytes()
    result = parse_ics(data, IcsOptions(slug=slug or name, zone=zone, **kw), source=name)
    with store.write() as session:
        report = import_specs(session, [result.spec], now=store.clock(), prune=True)
    return result, report


def entries(store: Store, slug: str) -> dict[str, Entry]:
    return {e.uid: e for e in store.entries(EntryFilter(calendar=slug))}


def our_instants(
    store: Store, slug: str, *, cancelled: bool = False, timed: bool = False
) -> set[datetime]:
    out: set[datetime] = set()
    for entry in entries(store, slug).values():
        if (entry.cancelled and not cancelled) or (timed and entry.all_day):
            continue
        out.update(expand(entry, *WINDOW))
    return out


def vobject_instants(name: str, *, skip_cancelled: bool = True) -> set[datetime]:
    """Every zoned or UTC occurrence start of the file as vobject reads it (all-day dates
    and floating times, which it cannot place, left out), overrides applied."""
    import vobject

    calendar = vobject.readOne((FIXTURES / f"{name}.ics").read_text(encoding="utf-8"))
    starts: set[datetime] = set()
    replaced: set[datetime] = set()
    for event in calendar.vevent_list:
        if skip_cancelled and getattr(event, "status", None) and event.status.value == "CANCELLED":
            continue
        rid = getattr(event, "recurrence_id", None)
        if rid is not None:
            replaced.add(_utc(rid.value))
            starts.add(_utc(event.dtstart.value))
            continue
        start = event.dtstart.value
        if not isinstance(start, datetime) or start.tzinfo is None:
            continue
        for occurrence in event.getrruleset(addRDate=True) or [start]:
            starts.add(_utc(occurrence))
    return {s for s in starts if s not in replaced or s in _override_starts(name)}


def _override_starts(name: str) -> set[datetime]:
    import vobject

    calendar = vobject.readOne((FIXTURES / f"{name}.ics").read_text(encoding="utf-8"))
    return {
        _utc(e.dtstart.value)
        for e in calendar.vevent_list
        if getattr(e, "recurrence_id", None) is not None
    }


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


# --- Google Calendar --------------------------------------------------------------------


def test_google_export_every_instant_as_vobject_reads_it(store: Store) -> None:
    result, _ = load(store, "google")
    ours = our_instants(store, "google", timed=True)
    theirs = vobject_instants("google")
    # vobject cannot place the floating dinner: X-WR-TIMEZONE says Berlin (18:00 CET).
    theirs.add(datetime(2025, 3, 20, 17, 0, tzinfo=UTC))
    assert ours == theirs
    assert result.warnings == []


def test_google_utc_exdates_remove_the_zoned_occurrences_they_name(store: Store) -> None:
    load(store, "google")
    standup = entries(store, "google")["7kq2m3n4o5p6q7r8s9t0u1v2w3@google.com"]
    assert standup.start_tz == "Europe/Berlin" and standup.rrule
    # 09:30 CET = 08:30Z (17 Mar), 09:30 CEST = 07:30Z (7 Apr): gone; the override's slot too.
    assert standup.exdates == ["2025-03-17T09:30:00", "2025-03-24T09:30:00", "2025-04-07T09:30:00"]
    starts = list(expand(standup, *WINDOW))
    assert len(starts) == 7
    assert datetime(2025, 3, 31, 7, 30, tzinfo=UTC) in starts  # after the DST change: 09:30 CEST
    assert datetime(2025, 3, 17, 8, 30, tzinfo=UTC) not in starts


def test_google_override_is_its_own_entry_and_replaces_its_occurrence(store: Store) -> None:
    load(store, "google")
    found = entries(store, "google")
    moved = found["7kq2m3n4o5p6q7r8s9t0u1v2w3@google.com+20250324T093000"]
    assert moved.title == "Standup (moved to 11:00)"
    assert moved.start_utc == datetime(2025, 3, 24, 10, 0, tzinfo=UTC)
    assert moved.rrule is None
    # One reminder per occurrence: the override's (11:00 CET - 10 min), not the series'.
    config = RemindersConfig(channels=("console",))
    day = (datetime(2025, 3, 24, tzinfo=UTC), datetime(2025, 3, 25, tzinfo=UTC))
    dues = [
        r.due_at for e in found.values() for r in reminders_between(e, "google", None, config, *day)
    ]
    assert dues == [datetime(2025, 3, 24, 9, 50, tzinfo=UTC)]


def test_google_floating_times_follow_x_wr_timezone_and_dates_are_all_day(store: Store) -> None:
    load(store, "google")
    found = entries(store, "google")
    dinner = found["floating-dinner@google.com"]
    assert (dinner.start_local, dinner.start_tz) == (datetime(2025, 3, 20, 18), "Europe/Berlin")
    assert dinner.status == "tentative"
    offsite = found["allday-offsite-2025@google.com"]
    assert offsite.all_day and (offsite.start_day, offsite.last_day) == (
        date(2025, 3, 12),
        date(2025, 3, 13),
    )
    assert offsite.transparency == "transparent"
    assert found["cancelled-review@google.com"].cancelled
    standup = found["7kq2m3n4o5p6q7r8s9t0u1v2w3@google.com"]
    assert standup.reminders == ["PT10M"]
    assert standup.location == "Room 4.01, Friedrichstraße 10"
    assert standup.description == "Daily sync of the team, every Monday.\nBring your updates."


def test_a_utc_time_is_kept_as_an_instant_and_shown_in_the_given_zone(store: Store) -> None:
    load(store, "google", zone="America/Mexico_City")
    call = entries(store, "google")["0a1b2c3d4e5f6g7h8i9j@google.com"]
    assert call.start_utc == datetime(2025, 3, 10, 15, 0, tzinfo=UTC)
    assert (call.start_local, call.start_tz) == (datetime(2025, 3, 10, 9), "America/Mexico_City")


# --- Outlook / Exchange --------------------------------------------------------------------


def test_outlook_windows_zones_map_through_cldr(store: Store) -> None:
    load(store, "outlook", zone="Europe/Paris")
    found = {e.title: e for e in entries(store, "outlook").values()}
    assert found["Planning"].start_tz == "America/Los_Angeles"
    assert found["Planning"].start_utc == datetime(2025, 3, 4, 18, 0, tzinfo=UTC)
    assert found["Planning"].reminders == ["PT15M"]
    weekly = found["Point hebdomadaire"]
    assert weekly.start_tz == "Europe/Paris"
    assert weekly.exdates == ["2025-04-14T10:00:00"]
    assert [s.date() for s in expand(weekly, *WINDOW)] == [
        date(2025, 3, 17),
        date(2025, 3, 24),
        date(2025, 3, 31),
        date(2025, 4, 7),
        date(2025, 4, 21),
        date(2025, 4, 28),
    ]
    # 10:00 in Paris on both sides of the DST change (30 March).
    assert {s.hour for s in expand(weekly, *WINDOW)} == {9, 8}


def test_outlook_all_day_flag_free_busy_and_a_vtimezone_matched_to_its_city(
    store: Store,
) -> None:
    load(store, "outlook", zone="Europe/Paris")
    found = {e.title: e for e in entries(store, "outlook").values()}
    holiday = found["Public holiday"]
    assert holiday.all_day and holiday.transparency == "transparent"
    visit = found["Visit to the Berlin office"]
    assert visit.start_tz == "Europe/Berlin"
    assert visit.start_utc == datetime(2025, 6, 2, 7, 0, tzinfo=UTC)


def test_outlook_custom_vtimezone_is_honoured_from_its_rules_with_a_warning(
    store: Store,
) -> None:
    result, _ = load(store, "outlook", zone="Europe/Paris")
    custom = {e.title: e for e in entries(store, "outlook").values()}["Call on a custom zone"]
    # 12:00 at +03:30 (its DAYLIGHT from the 2nd Sunday of April) = 08:30Z, shown in Paris.
    assert custom.start_utc == datetime(2025, 7, 2, 8, 30, tzinfo=UTC)
    assert (custom.start_local, custom.start_tz) == (datetime(2025, 7, 2, 10, 30), "Europe/Paris")
    assert any("Customized Time Zone" in w and "no IANA zone" in w for w in result.warnings)


def test_outlook_every_instant_as_vobject_reads_it(store: Store) -> None:
    load(store, "outlook", zone="Europe/Paris")
    ours = our_instants(store, "outlook", timed=True)
    theirs = vobject_instants("outlook")
    # vobject does not find a VTIMEZONE whose TZID has escaped commas (Outlook's display
    # names): it reads that visit as floating. Its VTIMEZONE says 09:00 CEST.
    theirs.add(datetime(2025, 6, 2, 7, 0, tzinfo=UTC))
    assert ours == theirs


# --- Apple Calendar -------------------------------------------------------------------------


def test_apple_this_and_future_splits_the_series(store: Store) -> None:
    load(store, "apple")
    found = entries(store, "apple")
    first = found["5F3C1E2A-9B7D-4C8E-A1F2-3D4E5F6A7B8C"]
    rest = found["5F3C1E2A-9B7D-4C8E-A1F2-3D4E5F6A7B8C+20250407T090000"]
    assert [s.astimezone(UTC).hour for s in expand(first, *WINDOW)] == [13] * 4
    assert [s.day for s in expand(first, *WINDOW)] == [10, 17, 24, 31]
    # From 7 April at 10:00 EDT, through the original UNTIL (the last, 28 April).
    assert [(s.month, s.day, s.hour) for s in expand(rest, *WINDOW)] == [
        (4, 7, 14),
        (4, 14, 14),
        (4, 21, 14),
        (4, 28, 14),
    ]
    assert rest.title == "Weekly review (new time)"
    assert first.reminders == ["P1D", "PT30M"]


def test_apple_rdates_and_an_alarm_related_to_the_end(store: Store) -> None:
    load(store, "apple")
    lunch = entries(store, "apple")["A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D"]
    assert [s.day for s in expand(lunch, *WINDOW)] == [21, 4, 18]
    # 45 minutes before a 30-minute lunch's end: 15 minutes before its start.
    assert lunch.reminders == ["PT15M"]
    assert lunch.url == "https://example.org/lunch"


# --- an airline booking, TripIt ---------------------------------------------------------------


def test_airline_booking_in_utc_is_shown_in_the_trip_calendar_zone(store: Store) -> None:
    load(store, "airline", slug="trip", zone=None, calendar_zone="America/Mexico_City")
    flight = entries(store, "trip")["PNR-X7YZ12-AM2580-20250903@booking.example-air.com"]
    assert flight.start_utc == datetime(2025, 9, 3, 20, 0, tzinfo=UTC)
    assert flight.end_utc == datetime(2025, 9, 3, 23, 45, tzinfo=UTC)
    assert (flight.start_local, flight.start_tz) == (
        datetime(2025, 9, 3, 14),
        "America/Mexico_City",
    )
    assert flight.reminders == ["PT3H"]
    assert flight.categories == ["flight"]
    assert "Seat: 3A" in flight.description and "Baggage: 2 x 23 kg" in flight.description


def test_tripit_feed(store: Store) -> None:
    load(store, "tripit", zone="America/Mexico_City")
    found = entries(store, "tripit")
    trip = found["item-7f3a9c1e2b4d@tripit.com"]
    assert trip.all_day and (trip.start_day, trip.last_day) == (date(2025, 9, 2), date(2025, 9, 4))
    assert (trip.geo_lat, trip.geo_lon) == (19.4326, -99.1332)
    assert "organize your travel" in trip.description
    assert our_instants(store, "tripit") >= {
        datetime(2025, 9, 3, 20, 0, tzinfo=UTC),
        datetime(2025, 9, 4, 1, 0, tzinfo=UTC),
    }


# --- our own feed, and a Radicale (vobject) round trip -------------------------------------------


def _trip_feed(store: Store) -> bytes:
    from calendar_svc import ics
    from calendar_svc.schedule_files import load_file

    trip = load_file(Path(__file__).parents[1] / "schedules" / "rubio-2025-09.toml")
    with store.write() as session:
        import_specs(session, [trip], now=store.clock())
    calendar = store.get_calendar("rubio-2025-09")
    rows = store.entries(EntryFilter(calendar="rubio-2025-09"))
    return ics.render(calendar, rows, ics.FeedOptions())


FIELDS = (
    "title",
    "description",
    "location",
    "geo_lat",
    "geo_lon",
    "url",
    "categories",
    "status",
    "transparency",
    "all_day",
    "start_local",
    "start_tz",
    "end_local",
    "end_tz",
    "start_utc",
    "end_utc",
    "rrule",
)


def _same(store: Store, a: str, b: str) -> None:
    left, right = entries(store, a), entries(store, b)
    assert set(left) == set(right)
    for uid, entry in left.items():
        for name in FIELDS:
            assert getattr(right[uid], name) == getattr(entry, name), (uid, name)


def test_importing_our_own_feed_gives_the_same_entries(store: Store) -> None:
    feed = _trip_feed(store)
    parsed = parse_ics(feed, IcsOptions(slug="copy", own_domain="calendar-svc.local"), source="f")
    with store.write() as session:
        import_specs(session, [parsed.spec], now=store.clock())
    _same(store, "rubio-2025-09", "copy")
    assert store.get_calendar("copy").name == store.get_calendar("rubio-2025-09").name


def test_a_radicale_round_trip_keeps_every_entry(store: Store) -> None:
    """Radicale stores and serves what vobject serialises; read that back."""
    import vobject

    feed = _trip_feed(store)
    again = vobject.readOne(feed.decode("utf-8")).serialize().encode("utf-8")
    parsed = parse_ics(again, IcsOptions(slug="radicale"), source="radicale")
    with store.write() as session:
        import_specs(session, [parsed.spec], now=store.clock())
    ours = {e.uid.split("@")[0]: e for e in entries(store, "rubio-2025-09").values()}
    theirs = {e.uid.split("@")[0]: e for e in entries(store, "radicale").values()}
    assert set(ours) == set(theirs)
    for uid, entry in ours.items():
        assert (theirs[uid].start_utc, theirs[uid].end_utc) == (entry.start_utc, entry.end_utc)
        assert theirs[uid].start_tz == entry.start_tz
        assert theirs[uid].title == entry.title


def test_our_feed_keeps_rrule_rdate_exdate_and_imports_back(store: Store) -> None:
    from calendar_svc import ics

    load(store, "google")
    calendar = store.get_calendar("google")
    feed = ics.render(calendar, store.entries(EntryFilter(calendar="google")), ics.FeedOptions())
    text = feed.decode()
    assert "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO;WKST=MO" in text
    assert "EXDATE;TZID=Europe/Berlin:20250317T093000,20250324T093000,20250407T093000" in text
    parsed = parse_ics(feed, IcsOptions(slug="again", own_domain="calendar-svc.local"), source="f")
    with store.write() as session:
        import_specs(session, [parsed.spec], now=store.clock())
    assert our_instants(store, "again", cancelled=True) == our_instants(
        store, "google", cancelled=True
    )


# --- re-imports, errors, owners ---------------------------------------------------------------


def test_reimport_changes_nothing_and_a_newer_version_updates(store: Store) -> None:
    _, first = load(store, "google")
    assert len(first.calendars[0].created) == 6
    _, again = load(store, "google")
    assert again.calendars[0].unchanged and not again.calendars[0].updated
    assert not again.changed
    data = (FIXTURES / "google.ics").read_bytes().replace(b"SUMMARY:Team dinner", b"SUMMARY:Dinner")
    data = data.replace(b"UID:cancelled-review@google.com", b"UID:other@google.com")
    parsed = parse_ics(data, IcsOptions(slug="google"), source="google")
    with store.write() as session:
        report = import_specs(session, [parsed.spec], now=store.clock(), prune=True)
    cal = report.calendars[0]
    assert cal.updated == ["floating-dinner@google.com"]
    assert cal.created == ["other@google.com"] and cal.pruned == ["cancelled-review@google.com"]


def _broken(**replace: bytes) -> bytes:
    data = (FIXTURES / "google.ics").read_bytes()
    for old, new in replace.items():
        data = data.replace(old.encode(), new)
    return data


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            _broken(
                **{"DTSTART;TZID=Europe/Berlin:20250325T140000": b"DTSTART;TZID=Mars/Base:2025"}
            ),
            ["cancelled-review@google.com", "DTSTART", "line"],
        ),
        (
            _broken(
                **{
                    "DTSTART;TZID=Europe/Berlin:20250325T140000": b"DTSTART;TZID=Mars/Base:20250325T140000"
                }
            ),
            ["cancelled-review@google.com", "TZID", "unknown TZID 'Mars/Base'"],
        ),
        (
            _broken(
                **{
                    "DTEND;TZID=Europe/Berlin:20250325T150000": b"DTEND;TZID=Europe/Berlin:20250325T130000"
                }
            ),
            ["cancelled-review@google.com", "field 'DTEND'", "ends before it starts"],
        ),
        (
            _broken(**{"RRULE:FREQ=WEEKLY;WKST=MO;COUNT=10;BYDAY=MO": b"RRULE:FREQ=SOMETIMES"}),
            ["7kq2m3n4o5p6q7r8s9t0u1v2w3@google.com", "RRULE"],
        ),
        (
            _broken(**{"END:VEVENT\r\nEND:VCALENDAR": b"END:VCALENDAR"}),
            ["line 119: END:VCALENDAR but BEGIN:VEVENT on line 110 is open"],
        ),
    ],
)
def test_a_bad_file_names_file_component_and_property_and_writes_nothing(
    store: Store, data: bytes, words: list[str]
) -> None:
    with pytest.raises(InputError) as caught:
        parse_ics(data, IcsOptions(slug="google"), source="google.ics")
    message = str(caught.value)
    assert message.startswith("google.ics: ")
    for word in words:
        assert word in message, message


def test_floating_times_without_a_zone_hint_are_refused_unless_a_zone_is_given() -> None:
    data = (FIXTURES / "google.ics").read_bytes().replace(b"X-WR-TIMEZONE:Europe/Berlin\r\n", b"")
    with pytest.raises(InputError) as caught:
        parse_ics(data, IcsOptions(slug="g"), source="g.ics")
    assert "floating-dinner@google.com" in str(caught.value)
    assert "DTSTART" in str(caught.value) and "--zone" in str(caught.value)
    parsed = parse_ics(data, IcsOptions(slug="g", zone="Europe/Lisbon"), source="g.ics")
    dinner = next(e for e in parsed.spec.entries if e.uid == "floating-dinner@google.com")
    assert dinner.start_tz == "Europe/Lisbon"


def test_a_file_import_leaves_a_source_s_entries_alone_and_says_so(store: Store) -> None:
    data = (FIXTURES / "airline.ics").read_bytes()
    source = Origin(OriginKind.SOURCE, "airline-feed")
    parsed = parse_ics(data, IcsOptions(slug="trip", origin=source), source="feed")
    with store.write() as session:
        import_specs(session, [parsed.spec], now=store.clock())
    changed = data.replace(b"Seat: 3A", b"Seat: 9F")
    by_file = parse_ics(changed, IcsOptions(slug="trip"), source="/tmp/booking.ics")
    with store.write() as session:
        report = import_specs(session, [by_file.spec], now=store.clock(), prune=True)
    uid = "PNR-X7YZ12-AM2580-20250903@booking.example-air.com"
    assert report.calendars[0].kept == [(uid, "source 'airline-feed'")]
    entry = entries(store, "trip")[uid]
    assert "Seat: 3A" in entry.description and entry.origin == source


def test_cli_imports_ics_refuses_changes_to_a_source_s_entries(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    result = run_cli(
        "import",
        str(FIXTURES / "airline.ics"),
        "--calendar",
        "trip",
        "--zone",
        "America/Mexico_City",
    )
    assert result.exit_code == 0, result.output
    assert "trip: calendar created; 1 created" in result.output
    shown = json.loads(
        run_cli("show", "PNR-X7YZ12-AM2580-20250903@booking.example-air.com", "--json").output
    )
    assert shown["start"].startswith("2025-09-03T14:00:00")
    again = run_cli("import", str(FIXTURES / "airline.ics"), "--calendar", "trip")
    assert "0 created, 0 updated, 1 unchanged" in again.output
    from calendar_svc.config import load_config
    from calendar_svc.store import Store as RealStore

    store = RealStore(load_config(workdir / "config.toml").database.url)
    with store.write() as session:
        entry = session.query(Entry).one()
        entry.origin_kind, entry.origin_name = "source", "airline-feed"
    store.close()
    cancel = run_cli("cancel", "PNR-X7YZ12-AM2580-20250903@booking.example-air.com")
    assert cancel.exit_code == 2
    assert "comes from source 'airline-feed' and is read-only" in cancel.output
    delete = run_cli("delete", "PNR-X7YZ12-AM2580-20250903@booking.example-air.com", "--yes")
    assert delete.exit_code == 2 and "read-only" in delete.output
    kept = run_cli("import", str(FIXTURES / "airline.ics"), "--calendar", "trip")
    assert (
        "= PNR-X7YZ12-AM2580-20250903@booking.example-air.com (owned by source 'airline-feed')"
        in kept.output
    )


def test_cli_derives_the_calendar_from_the_file_name_and_prints_warnings(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    target = workdir / "Outlook Export.ics"
    target.write_bytes((FIXTURES / "outlook.ics").read_bytes())
    result = run_cli("import", str(target), "--zone", "Europe/Paris")
    assert result.exit_code == 0, result.output
    assert "outlook-export: calendar created; 5 created" in result.output
    assert "warning:" in result.output and "Customized Time Zone" in result.output


def test_cli_bad_ics_exits_2_with_one_line(run_cli: Callable[..., Result], workdir: Path) -> None:
    bad = workdir / "bad.ics"
    bad.write_bytes(
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:x\r\nSUMMARY:no start\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    result = run_cli("import", str(bad), "--calendar", "x")
    assert result.exit_code == 2
    assert (
        "bad.ics: entry x (VEVENT at line 2): field 'DTSTART': required, and missing"
        in result.output
    )
    assert "no calendars yet" in run_cli("calendars").output


def test_ics_files_in_the_schedules_globs_take_the_calendar_the_config_names(
    tmp_path: Path,
) -> None:
    from calendar_svc.config import parse_config
    from calendar_svc.schedule_loader import load_schedule

    (tmp_path / "trips").mkdir()
    (tmp_path / "trips" / "booking.ics").write_bytes((FIXTURES / "airline.ics").read_bytes())
    (tmp_path / "team.ics").write_bytes((FIXTURES / "google.ics").read_bytes())
    config = parse_config(
        {
            "schedules": [
                {"path": "trips/*.ics", "calendar": "rubio-2025-09", "zone": "America/Mexico_City"},
                "*.ics",
            ],
            "database": {"url": "sqlite://"},
        },
        path=tmp_path / "config.toml",
    )
    files = config.schedule_files()
    assert {f.name for f in files} == {"booking.ics", "team.ics"}
    booking = next(f for f in files if f.name == "booking.ics")
    glob = config.schedule_glob(booking)
    assert glob is not None and (glob.calendar, glob.zone) == (
        "rubio-2025-09",
        "America/Mexico_City",
    )
    loaded = load_schedule(booking, store=None, calendar=glob.calendar, zone=glob.zone)
    assert loaded.spec.slug == "rubio-2025-09"
    assert loaded.spec.entries[0].start_tz == "America/Mexico_City"
    team = next(f for f in files if f.name == "team.ics")
    assert config.schedule_glob(team) is None
    assert load_schedule(team, store=None).spec.slug == "team"
