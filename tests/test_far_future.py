"""Entries from 2038 to 2100, imported as a user would, checked against the standard library.

A schedule file of entries in a dozen zones (DST in both hemispheres, half-hour
and 45-minute offsets, zones without DST, wall times in DST folds with the
``fold`` they need) goes through ``calendar-svc import``. Then each stored
instant, each parser's reading of the served feed (icalendar with its own zones
and with the feed's VTIMEZONEs, vobject, ics, ical, libical where installed, and
a reader of the VTIMEZONEs alone) and each reminder's due instant is compared
with zoneinfo reading the same TZif files: nothing of calendar-svc's time code
computes the expectations.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from feed_zones import read_by_vtimezones, reference_zone
from icalendar import Calendar as ICalendar
from ics_lib import OLD_DATEUTIL, ics_calendar, reads_zones_past_2037

from calendar_svc.config import load_config
from calendar_svc.feed.cache import render_feed
from calendar_svc.ics import FeedOptions
from calendar_svc.reminders.planner import Planner
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

ZONES = (
    "America/New_York",
    "America/Mexico_City",
    "America/Guayaquil",
    "America/Santiago",
    "America/St_Johns",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Lord_Howe",
    "Australia/Sydney",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Asia/Kathmandu",
)
PER_ZONE = 6
SLUG = "far"


@dataclass(frozen=True)
class Planned:
    uid: str
    zone: str
    wall: datetime
    fold: int  # PEP 495: which of two repeated wall times (0 when not repeated)

    @property
    def instant(self) -> datetime:
        """What zoneinfo says, on the TZif file calendar-svc reads."""
        return self.wall.replace(tzinfo=reference_zone(self.zone), fold=self.fold).astimezone(UTC)


def _kind(zone: str, wall: datetime) -> str:
    reference = reference_zone(zone)
    first = wall.replace(tzinfo=reference, fold=0).utcoffset()
    second = wall.replace(tzinfo=reference, fold=1).utcoffset()
    if first == second:
        return "ok"
    assert first is not None and second is not None
    return "fold" if first > second else "gap"


def _changes(zone: str) -> list[datetime]:
    """Wall times of the zone's clock changes in 2038-2100, by zoneinfo alone."""
    reference = reference_zone(zone)
    found = []
    at = datetime(2038, 1, 1, tzinfo=UTC)
    while at.year < 2100:
        step = at + timedelta(hours=12)
        if at.astimezone(reference).utcoffset() != step.astimezone(reference).utcoffset():
            low, high = at, step
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if (
                    middle.astimezone(reference).utcoffset()
                    == low.astimezone(reference).utcoffset()
                ):
                    low = middle
                else:
                    high = middle
            found.append(high.astimezone(reference).replace(tzinfo=None))
        at = step
    return found


def planned_entries(seed: int = 2038) -> list[Planned]:
    """Random wall times 2038-2100, and in zones with DST some right at a change."""
    rng = random.Random(seed)
    out: list[Planned] = []
    for zone in ZONES:
        changes = _changes(zone)
        for index in range(PER_ZONE):
            if changes and index % 2:
                onset = rng.choice(changes)
                wall = onset + timedelta(minutes=rng.randrange(-90, 90, 5))
            else:
                wall = datetime(2038, 1, 1) + timedelta(
                    minutes=rng.randrange(0, 62 * 365 * 24 * 60, 5)
                )
            wall = wall.replace(second=0, microsecond=0)
            kind = _kind(zone, wall)
            if kind == "gap":  # refused at import; the next minute after the gap will do
                wall += timedelta(hours=1)
                kind = _kind(zone, wall)
            fold = rng.choice((0, 1)) if kind == "fold" else 0
            uid = f"{zone.split('/')[-1].lower()}-{index}"
            out.append(Planned(uid, zone, wall, fold))
    return out


def schedule_text(entries: list[Planned]) -> str:
    parts = [
        f'[calendar]\nslug = "{SLUG}"\nname = "Far"\ntimezone = "UTC"\n'
        'reminders = ["PT1H", "P1D"]\n'
    ]
    for entry in entries:
        fold = f"fold = {entry.fold}\n" if _kind(entry.zone, entry.wall) == "fold" else ""
        parts.append(
            f'[[entries]]\nuid = "{entry.uid}"\ntitle = "{entry.uid}"\n'
            f'timezone = "{entry.zone}"\nstart = {entry.wall:%Y-%m-%dT%H:%M:%S}\n'
            f'duration = "PT45M"\n{fold}'
        )
    return "\n".join(parts)


@pytest.fixture
def imported(run_cli: Callable[..., Result], workdir: Path) -> tuple[list[Planned], Store, bytes]:
    entries = planned_entries()
    assert sum(_kind(e.zone, e.wall) == "fold" for e in entries) >= 3  # folds are in it
    (workdir / "far.toml").write_text(schedule_text(entries))
    result = run_cli("import", "far.toml")
    assert result.exit_code == 0, result.output
    config = load_config(workdir / "config.toml")
    store = Store(config.database.url)
    feed = render_feed(store, FeedOptions.from_config(config), SLUG).body
    return entries, store, feed


def test_stored_instants_are_zoneinfo_s(
    imported: tuple[list[Planned], Store, bytes], run_cli: Callable[..., Result]
) -> None:
    entries, store, _ = imported
    listed = json.loads(run_cli("list", "--calendar", SLUG, "--json").output)
    stored = {row["uid"]: row["start_utc"] for row in listed}
    assert stored == {e.uid: f"{e.instant:%Y-%m-%dT%H:%M:%SZ}" for e in entries}
    store.close()


def _expected(entries: list[Planned]) -> dict[str, datetime]:
    return {e.uid: e.instant for e in entries}


def test_every_parser_reads_the_feed_as_zoneinfo_does(
    imported: tuple[list[Planned], Store, bytes],
) -> None:
    import vobject
    from ical.calendar_stream import IcsCalendarStream

    entries, store, feed = imported
    store.close()
    expected = _expected(entries)
    text = feed.decode()
    calendar = ICalendar.from_ical(feed)
    own = {str(z["TZID"]): z.to_tz(lookup_tzid=False) for z in calendar.walk("VTIMEZONE")}
    readings: dict[str, dict[str, datetime]] = {
        "icalendar": {},
        "icalendar+VTIMEZONE": {},
        "vobject": {},
        "ical": {},
    }
    for event in calendar.walk("VEVENT"):
        uid = str(event["UID"]).split("@")[0]
        start = event["DTSTART"].dt
        readings["icalendar"][uid] = start.astimezone(UTC)
        tzid = event["DTSTART"].params.get("TZID")
        if tzid is not None:  # (the second of two repeated times is written in UTC)
            start = start.replace(tzinfo=own[str(tzid)])
        readings["icalendar+VTIMEZONE"][uid] = start.astimezone(UTC)
    for event in vobject.readOne(text).vevent_list:
        readings["vobject"][event.uid.value.split("@")[0]] = event.dtstart.value.astimezone(UTC)
    for event in IcsCalendarStream.calendar_from_ics(text).events:
        readings["ical"][event.uid.split("@")[0]] = event.dtstart.astimezone(UTC)  # type: ignore[union-attr]
    readings["VTIMEZONE alone"] = {
        uid: instants[0] for uid, instants in read_by_vtimezones(feed).items()
    }
    from test_ics_libical import _PATH, Parsed

    if _PATH is not None:
        parsed = Parsed(feed)
        assert parsed.errors == 0
        readings["libical"] = {uid: start for uid, (_, start, _) in parsed.events.items()}  # type: ignore[misc]
    for parser, read in readings.items():
        wrong = {
            uid: (read.get(uid), when) for uid, when in expected.items() if read.get(uid) != when
        }
        assert not wrong, f"{parser} reads {len(wrong)} entries elsewhere: {wrong}"


def test_ics_reads_the_feed_as_zoneinfo_does(
    imported: tuple[list[Planned], Store, bytes],
) -> None:
    """The `ics` library too, where its dateutil reads the zones' footer rules (it looks a
    TZID up by name, not in the feed's VTIMEZONE)."""
    entries, store, feed = imported
    store.close()
    if not reads_zones_past_2037():
        pytest.skip(OLD_DATEUTIL)
    read = {
        event.uid.split("@")[0]: event.begin.datetime.astimezone(UTC)
        for event in ics_calendar(feed.decode()).events
    }
    assert read == _expected(entries)


def test_every_reminder_is_due_when_zoneinfo_says(
    imported: tuple[list[Planned], Store, bytes], workdir: Path
) -> None:
    """PT1H is an hour before the instant; P1D is the same wall time the day before (read
    with fold = 0 where that is repeated or skipped), in the entry's zone."""
    entries, store, _ = imported
    config = load_config(workdir / "config.toml")
    try:
        planned = Planner(store, config.reminders).schedule(
            datetime(2037, 12, 1, tzinfo=UTC), datetime(2101, 1, 1, tzinfo=UTC)
        )
    finally:
        store.close()
    got = {(r.entry_uid, int(r.offset.total_seconds())): r.due_at for r in planned}
    expected = {}
    for entry in entries:
        expected[(entry.uid, 3600)] = entry.instant - timedelta(hours=1)
        day_before = (entry.wall - timedelta(days=1)).replace(tzinfo=reference_zone(entry.zone))
        expected[(entry.uid, 86400)] = day_before.astimezone(UTC)
    assert got == expected
