"""Reminder texts: exact defaults, late, all-day, display zone, templates."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from peers import reminder, sheinbaum_entry

from calendar_svc.config import DisplayConfig
from calendar_svc.messages import build_reminder
from calendar_svc.notifiers import TEMPLATE_VARIABLES, Notifier, Reminder
from calendar_svc.timezones import UTC, to_utc

TITLE = "Bilateral meeting with President Claudia Sheinbaum"


def test_default_texts_read_exactly_so() -> None:
    r = reminder()
    assert r.title == f"In 1 hour: {TITLE}"
    assert r.body == (
        "Tue 2 Sep 2025, 10:00 CST (UTC-06:00) — 12:00 EDT (UTC-04:00) in Washington · "
        "Palacio Nacional, Mexico City"
    )


def test_reminder_carries_the_occurrence() -> None:
    r = reminder()
    assert r.idempotency_key == "rem-sample"
    assert r.start.isoformat() == "2025-09-02T10:00:00-06:00"  # not LMT -06:37
    assert r.start_utc == datetime(2025, 9, 2, 16, 0, tzinfo=UTC)
    assert r.due_at == datetime(2025, 9, 2, 15, 0, tzinfo=UTC)
    assert (r.entry.uid, r.entry.location, r.entry.city) == (
        "sheinbaum-bilateral",
        "Palacio Nacional",
        "Mexico City",
    )
    assert r.offset == timedelta(hours=1) and not r.late
    with pytest.raises(AttributeError):
        r.title = "changed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.variables["title"] = "changed"  # type: ignore[index]


def test_late_reminder_says_so_and_does_not_claim_in_1_hour() -> None:
    r = reminder(late=True)
    assert r.title == f"Late: {TITLE} (starts 10:00 CST (UTC-06:00))"


def test_offsets_in_words() -> None:
    assert reminder(offset=timedelta(minutes=15)).title.startswith("In 15 minutes: ")
    assert reminder(offset=timedelta(minutes=90)).title.startswith("In 1 hour 30 minutes: ")
    assert reminder(offset=timedelta(0)).title == f"Now: {TITLE}"


def test_all_day_shows_the_date_only() -> None:
    entry = sheinbaum_entry(
        all_day=True, title="Travel day", location="", city="Quito", start_tz="America/Guayaquil"
    )
    start = datetime(2025, 9, 4, 0, 0)
    r = reminder(entry=entry, start=start, offset=timedelta(days=1))
    assert r.title == "In 1 day: Travel day"
    assert r.body == "Thu 4 Sep 2025 · Quito"
    assert reminder(entry=entry, start=start, late=True).title == (
        "Late: Travel day (on Thu 4 Sep 2025)"
    )


def test_no_display_zone_or_the_same_one_is_not_repeated() -> None:
    assert reminder(display=DisplayConfig()).body == (
        "Tue 2 Sep 2025, 10:00 CST (UTC-06:00) · Palacio Nacional, Mexico City"
    )
    same = DisplayConfig(timezone="America/Mexico_City", label="CDMX")
    assert "CDMX" not in reminder(display=same).body


def test_display_label_defaults_to_the_zone_city_and_shows_a_different_day() -> None:
    entry = sheinbaum_entry(
        start_tz="America/Guayaquil", location="Palacio de Carondelet", city="Quito"
    )
    r = reminder(
        entry=entry, start=datetime(2025, 9, 3, 21, 0), display=DisplayConfig(timezone="Asia/Tokyo")
    )
    # Guayaquil has no letter abbreviation: the tz database's "-05" is shown as it is.
    assert r.body == (
        "Wed 3 Sep 2025, 21:00 -05 (UTC-05:00) — Thu 4 Sep, 11:00 JST (UTC+09:00) "
        "in Tokyo · Palacio de Carondelet, Quito"
    )
    assert r.variables["zone"] == "-05"


def test_city_is_not_repeated_when_the_location_names_it() -> None:
    entry = sheinbaum_entry(location="Palacio Nacional, Mexico City")
    assert reminder(entry=entry, display=DisplayConfig()).body.endswith(
        "· Palacio Nacional, Mexico City"
    )
    bare = sheinbaum_entry(location="", city="")
    assert "·" not in reminder(entry=bare, display=DisplayConfig()).body


def test_dst_zone_uses_its_abbreviation() -> None:
    entry = sheinbaum_entry(
        start_tz="America/New_York", location="State Department", city="Washington"
    )
    start = to_utc(datetime(2025, 11, 3, 9, 0), "America/New_York")
    r = build_reminder(
        idempotency_key="k",
        calendar_slug="c",
        entry=entry,
        start_utc=start,
        offset=timedelta(hours=1),
        due_at=start,
        late=False,
        display=DisplayConfig(timezone="America/Mexico_City", label="CDMX"),
        feed_url=None,
    )
    assert r.body == (
        "Mon 3 Nov 2025, 09:00 EST (UTC-05:00) — 08:00 CST (UTC-06:00) in CDMX · "
        "State Department, Washington"
    )


def test_every_documented_variable_is_provided() -> None:
    assert set(reminder().variables) == set(TEMPLATE_VARIABLES)


class Plain(Notifier):
    def send(self, reminder: Reminder) -> None:
        pass


def test_channel_templates_render_variables() -> None:
    n = Plain(
        "t",
        {
            "type": "plain",
            "title_template": "$late$title @ $time $zone",
            "body_template": "${when} [$timezone] $$5 ${display_time}",
        },
    )
    title, body = n.render(reminder())
    assert title == f"{TITLE} @ 10:00 CST"
    assert body == (
        "Tue 2 Sep 2025, 10:00 CST (UTC-06:00) [America/Mexico_City] $5 "
        "12:00 EDT (UTC-04:00) in Washington"
    )
    assert Plain("t", {"type": "plain"}).render(reminder()) == (
        reminder().title,
        reminder().body,
    )


def test_non_ascii_text_passes_through() -> None:
    entry = sheinbaum_entry(
        title="Reunión en Cancillería 🇪🇨", city="Quito", location="Palacio de Carondelet"
    )
    r = reminder(entry=entry)
    assert r.title == "In 1 hour: Reunión en Cancillería 🇪🇨"
    assert r.to_json()["entry"]["title"] == "Reunión en Cancillería 🇪🇨"


def test_the_feed_url_must_be_given() -> None:
    """A forgotten feed URL once left $feed_url empty in every reminder: no default hides it."""
    start = datetime(2025, 9, 2, 16, 0, tzinfo=UTC)
    with pytest.raises(TypeError, match="feed_url"):
        build_reminder(  # type: ignore[call-arg]
            idempotency_key="k",
            calendar_slug="c",
            entry=sheinbaum_entry(),
            start_utc=start,
            offset=timedelta(hours=1),
            due_at=start,
            late=False,
            display=DisplayConfig(),
        )
