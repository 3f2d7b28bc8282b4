"""What a subscriber's app rings is what the daemon sends: one rule, proven through a parser.

Over generated calendars (timed and all-day entries, start and end in different
zones, recurring series across DST changes, cancelled entries, offsets from the
entry, its calendar or the config, wall times in DST folds, 2025 to 2100), the
feed is rendered as it is served, read back with icalendar, its recurrences
expanded with dateutil, and each VALARM's trigger turned into an instant as RFC
5545 says: a TRIGGER duration counts back from each occurrence's start, its
days and weeks in the wall time of DTSTART's zone, its hours, minutes and
seconds as exact time. An all-day DTSTART is a floating date: the app rings in
the subscriber's own local time, which the test takes to be the entry's zone,
where the daemon reminds. Those instants must be exactly the due instants
``Planner.schedule`` gives, no more, no fewer (a cancelled entry has neither).

A bounded number of examples runs in CI; ``CALENDAR_SVC_HYPOTHESIS_EXAMPLES=2000``
tries more.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from functools import cache
from typing import Any

import pytest
from budget import examples
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from icalendar import Calendar as ICalendar
from sqlalchemy import delete

from calendar_svc import ics
from calendar_svc import timezones as tz
from calendar_svc.config import Config, parse_config
from calendar_svc.feed.cache import render_feed
from calendar_svc.models import Calendar, Entry
from calendar_svc.reminders.planner import Planner
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

ZONES = (
    "America/New_York",
    "America/Mexico_City",
    "America/Guayaquil",
    "America/Santiago",
    "Europe/London",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "UTC",
)
OFFSETS = ("PT0S", "PT15M", "PT1H", "PT2H30M", "PT24H", "P1D", "P1DT2H", "PT36H", "P1W")
FIRST, LAST = datetime(2025, 1, 1), datetime(2100, 12, 1)
WINDOW = (datetime(2024, 12, 1, tzinfo=UTC), datetime(2102, 1, 1, tzinfo=UTC))  # past any series
SLUG = "cal"


@cache
def _changes(zone: str) -> tuple[datetime, ...]:
    """The zone's clock changes 2025-2100 (wall time before each): where the rules bite."""
    if zone == "UTC":
        return ()
    history = tz.current().history(zone)
    return tuple(
        change.local_onset
        for change in history.changes_through(2100)
        if FIRST <= change.local_onset <= LAST
    )


@st.composite
def wall_times(draw: st.DrawFn, zone: str) -> datetime:
    """A wall time anywhere in 2025-2100, or within days of one of the zone's changes."""
    changes = _changes(zone)
    if changes and draw(st.booleans()):
        onset = draw(st.sampled_from(changes))
        minutes = draw(st.integers(-4 * 24 * 60, 4 * 24 * 60))
        wall = onset + timedelta(minutes=minutes)
        # Often right at the change: a fold is the hour before the onset (on the clocks
        # before it), a gap the hour after.
        if draw(st.booleans()):
            wall = onset + timedelta(minutes=draw(st.integers(-75, 75)))
        return wall.replace(second=0, microsecond=0)
    return draw(st.datetimes(min_value=FIRST, max_value=LAST)).replace(second=0, microsecond=0)


OFFSET_LISTS = st.one_of(st.none(), st.lists(st.sampled_from(OFFSETS), max_size=3))
RULES = st.one_of(
    st.none(),
    st.none(),
    st.builds(
        "FREQ={};COUNT={}".format,
        st.sampled_from(("DAILY", "WEEKLY", "MONTHLY")),
        st.integers(1, 8),
    ),
    st.builds("FREQ=DAILY;INTERVAL={};COUNT=6".format, st.integers(2, 9)),
    st.just("UNTIL"),  # a weekly series until five weeks on, UNTIL in UTC
)


@st.composite
def entries(draw: st.DrawFn, index: int) -> dict[str, Any]:
    zone = draw(st.sampled_from(ZONES))
    wall = draw(wall_times(zone))
    all_day = draw(st.integers(0, 3)) == 0
    rrule = draw(RULES)
    status = draw(st.sampled_from(("confirmed", "confirmed", "tentative", "cancelled")))
    reminders = draw(OFFSET_LISTS)
    values: dict[str, Any] = {
        "uid": f"e{index}",
        "status": status,
        "reminders": reminders,
        "start_tz": zone,
    }
    if all_day:
        first = wall.date()
        last = first + timedelta(days=draw(st.integers(0, 3)))
        values |= {
            "all_day": True,
            "start_local": datetime.combine(first, time()),
            "end_local": datetime.combine(last, time()),
            "end_tz": zone,
            "start_fold": None,
            "end_fold": None,
            "start_utc": tz.day_start_utc(first, zone),
            "end_utc": tz.day_start_utc(last + timedelta(days=1), zone),
        }
    else:
        kind = tz.classify(wall, zone)
        assume(kind != "gap")  # refused at input: such an entry cannot exist
        # The second of two repeated times only for a one-off entry (a series repeats
        # its first wall time, which RFC 5545 reads as the first of the two).
        fold = draw(st.sampled_from((0, 1))) if kind == "fold" and rrule is None else None
        start_utc = tz.to_utc(wall, zone, fold=fold if fold is not None else 0)
        end_zone = draw(st.sampled_from(ZONES))
        end_utc = start_utc + timedelta(minutes=draw(st.sampled_from((0, 30, 90, 600))))
        end_local, end_fold = tz.wall_time(end_utc, end_zone)
        values |= {
            "all_day": False,
            "start_local": wall,
            "start_fold": fold,
            "start_utc": start_utc,
            "end_local": end_local,
            "end_tz": end_zone,
            "end_fold": end_fold,
            "end_utc": end_utc,
        }
    if rrule == "UNTIL":
        until = values["start_utc"] + timedelta(weeks=5)
        # RFC 5545: a date DTSTART takes a date UNTIL.
        form = "%Y%m%d" if all_day else "%Y%m%dT%H%M%SZ"
        rrule = f"FREQ=WEEKLY;UNTIL={until:{form}}"
    values["rrule"] = rrule
    return values


@st.composite
def calendars(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[str] | None, Config]:
    count = draw(st.integers(1, 4))
    drawn = [draw(entries(index)) for index in range(count)]
    calendar_reminders = draw(OFFSET_LISTS)
    defaults = draw(st.lists(st.sampled_from(OFFSETS), max_size=3))
    at = draw(st.times()).replace(second=0, microsecond=0)
    config = parse_config(
        {
            "database": {"url": "sqlite://"},
            "reminders": {"offsets": defaults, "all_day_time": at},
        },
        path=None,
    )
    return drawn, calendar_reminders, config


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('alarms') / 'alarms.sqlite3'}")
    store.migrate()
    yield store
    store.close()


def _store_calendar(
    store: Store, drawn: list[dict[str, Any]], calendar_reminders: list[str] | None
) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with store.write() as session:
        session.execute(delete(Entry))
        session.execute(delete(Calendar))
        calendar = Calendar(
            slug=SLUG,
            name="Cal",
            description="",
            timezone="America/Mexico_City",
            reminders=calendar_reminders,
            feed_token="t" * 43,
            version=1,
            created_at=now,
            updated_at=now,
        )
        session.add(calendar)
        session.flush()
        for values in drawn:
            session.add(
                Entry(
                    calendar_id=calendar.id,
                    title=f"Entry {values['uid']}",
                    description="",
                    location="",
                    city="",
                    url="",
                    categories=[],
                    transparency="opaque",
                    sequence=0,
                    tz_version=tz.version(),
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )


def feed_alarm_instants(data: bytes, zones: dict[str, str]) -> Counter[tuple[str, datetime]]:
    """Every (uid, instant) at which the feed's VALARMs ring, as read from the bytes."""
    rings: Counter[tuple[str, datetime]] = Counter()
    for event in ICalendar.from_ical(data).walk("VEVENT"):
        uid = str(event["UID"]).split("@")[0]
        triggers = [-alarm["TRIGGER"].dt for alarm in event.walk("VALARM")]
        assert all(alarm.get("RELATED", "START") == "START" for alarm in event.walk("VALARM"))
        start = event["DTSTART"].dt
        floating = not isinstance(start, datetime)
        first = datetime.combine(start, time()) if floating else start
        starts = [first]
        if "RRULE" in event:
            starts = list(rrulestr(event["RRULE"].to_ical().decode(), dtstart=first))
        for occurrence in starts:
            for before in triggers:
                if floating:
                    # A floating date: wall-time arithmetic, read in the subscriber's
                    # (here: the entry's) local time.
                    wall = occurrence - before
                    rings[(uid, tz.to_utc(wall, zones[uid], fold=0))] += 1
                    continue
                # Days and weeks in DTSTART's wall time (PEP 495 fold=0 is RFC 5545's
                # reading of a skipped or repeated wall time), the rest exact.
                local = occurrence - timedelta(days=before.days)
                at = local.replace(fold=0).astimezone(UTC)
                rings[(uid, at - timedelta(seconds=before.seconds))] += 1
    return rings


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(calendars())
def test_the_feed_s_alarms_ring_when_the_planner_reminds(
    store: Store, drawn: tuple[list[dict[str, Any]], list[str] | None, Config]
) -> None:
    entries_, calendar_reminders, config = drawn
    _store_calendar(store, entries_, calendar_reminders)
    feed = render_feed(store, ics.FeedOptions.from_config(config), SLUG).body
    zones = {values["uid"]: values["start_tz"] for values in entries_}
    rings = feed_alarm_instants(feed, zones)

    channel = config.reminders.channels[0]
    planned = Planner(store, config.reminders).schedule(*WINDOW)
    reminds = Counter((r.entry_uid, r.due_at) for r in planned if r.channel == channel)
    assert rings == reminds
    for values in entries_:
        if values["status"] == "cancelled":
            assert not any(uid == values["uid"] for uid, _ in rings)


def test_a_cancelled_entry_has_neither_alarm_nor_reminder(store: Store) -> None:
    values = {
        "uid": "gone",
        "status": "cancelled",
        "reminders": ["PT1H"],
        "start_tz": "America/Mexico_City",
        "all_day": False,
        "start_local": datetime(2030, 7, 1, 10),
        "start_fold": None,
        "start_utc": datetime(2030, 7, 1, 16, tzinfo=UTC),
        "end_local": datetime(2030, 7, 1, 11),
        "end_tz": "America/Mexico_City",
        "end_fold": None,
        "end_utc": datetime(2030, 7, 1, 17, tzinfo=UTC),
        "rrule": "FREQ=DAILY;COUNT=3",
    }
    _store_calendar(store, [values], None)
    config = parse_config({"database": {"url": "sqlite://"}}, path=None)
    feed = render_feed(store, ics.FeedOptions.from_config(config), SLUG).body
    assert b"BEGIN:VALARM" not in feed and b"STATUS:CANCELLED" in feed
    assert Planner(store, config.reminders).schedule(*WINDOW) == []
