"""The planner on SQLite and PostgreSQL, with an injected clock: rows in, stale rows cancelled."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, text

from calendar_svc.config import RemindersConfig
from calendar_svc.importer import import_specs
from calendar_svc.models import Delivery
from calendar_svc.reminders.planner import Planner
from calendar_svc.schedule_files import CalendarSpec, load_file
from calendar_svc.store import Store
from calendar_svc.timezones import UTC, to_utc


def Z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def rows(store: Store, uid: str | None = None) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.due_at, Delivery.channel)
    if uid:
        query = query.where(Delivery.entry_uid == uid)
    with store.read() as session:
        return list(session.scalars(query))


def summary(store: Store, uid: str) -> list[tuple[str, str, str]]:
    return [(r.due_at.strftime("%H:%M"), str(r.offset_seconds), r.status) for r in rows(store, uid)]


def moved(spec: CalendarSpec, uid: str, **changes: object) -> CalendarSpec:
    """``spec`` with entry ``uid`` changed (wall time changes re-derive the UTC start)."""
    entries = []
    for entry in spec.entries:
        if entry.uid == uid:
            entry = dataclasses.replace(entry, **changes)  # type: ignore[arg-type]
            if "start_local" in changes:
                length = entry.end_utc - entry.start_utc
                start = to_utc(entry.start_local, entry.start_tz)
                entry = dataclasses.replace(
                    entry,
                    start_utc=start,
                    end_utc=start + length,
                    end_local=entry.start_local + length,
                )
        entries.append(entry)
    return dataclasses.replace(spec, entries=tuple(entries))


def test_plans_the_horizon_once(trip_store: Store, clock) -> None:
    clock.set(Z("2025-09-02T12:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    report = planner.plan()
    # Window [11:50Z, 18:00Z]: only the bilateral's (16:00Z start); the embassy's start at 18:30Z.
    assert [(r.entry_uid, r.due_at) for r in report.planned] == [
        ("sheinbaum-bilateral", Z("2025-09-02T15:00:00Z")),
        ("sheinbaum-bilateral", Z("2025-09-02T15:45:00Z")),
    ]
    again = planner.plan()
    assert again.planned == [] and again.cancelled == []
    assert len(rows(trip_store)) == 2
    row = rows(trip_store)[0]
    assert row.status == "pending" and row.attempts == 0 and row.next_attempt_at == row.due_at
    assert row.idempotency_key.startswith("rem-")


def test_time_moving_on_plans_more(trip_store: Store, clock) -> None:
    clock.set(Z("2025-09-02T12:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    planner.plan()
    clock.advance(timedelta(hours=3))
    report = planner.plan()
    # Now [14:50Z, 21:00Z]: the window's end is inclusive (security's 1-hour reminder is 21:00Z).
    assert [r.entry_uid for r in report.planned] == ["embassy-mexico-city"] * 2 + [
        "security-working-session"
    ]


def test_moving_an_entry_cancels_the_old_rows_and_back_revives_them(
    trip_store: Store, clock, trip_path
) -> None:
    clock.set(Z("2025-09-02T12:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    planner.plan()
    first_ids = [r.id for r in rows(trip_store, "sheinbaum-bilateral")]
    spec = load_file(trip_path)

    with trip_store.write() as session:
        import_specs(
            session,
            [moved(spec, "sheinbaum-bilateral", start_local=datetime(2025, 9, 2, 11, 0))],
            now=trip_store.clock(),
        )
    report = planner.plan()
    assert len(report.cancelled) == 2 and len(report.planned) == 2
    assert summary(trip_store, "sheinbaum-bilateral") == [
        ("15:00", "3600", "cancelled"),
        ("15:45", "900", "cancelled"),
        ("16:00", "3600", "pending"),
        ("16:45", "900", "pending"),
    ]

    with trip_store.write() as session:
        import_specs(session, [spec], now=trip_store.clock())  # back to 10:00
    planner.plan()
    assert summary(trip_store, "sheinbaum-bilateral") == [
        ("15:00", "3600", "pending"),
        ("15:45", "900", "pending"),
        ("16:00", "3600", "cancelled"),
        ("16:45", "900", "cancelled"),
    ]
    assert [r.id for r in rows(trip_store, "sheinbaum-bilateral")][:2] == first_ids


def test_cancel_and_delete_cancel_pending_rows(trip_store: Store, clock) -> None:
    clock.set(Z("2025-09-02T12:00:00Z"))
    planner = Planner(trip_store, RemindersConfig(horizon=timedelta(hours=12)))
    planner.plan()
    trip_store.set_status("sheinbaum-bilateral", "cancelled")
    trip_store.delete_entry("embassy-mexico-city")
    planner.plan()
    assert {r.status for r in rows(trip_store, "sheinbaum-bilateral")} == {"cancelled"}
    assert {r.status for r in rows(trip_store, "embassy-mexico-city")} == {"cancelled"}
    assert {r.status for r in rows(trip_store, "security-working-session")} == {"pending"}


def test_offset_or_channel_going_away_cancels_only_those_rows(
    trip_store: Store, clock, trip_path
) -> None:
    clock.set(Z("2025-09-02T12:00:00Z"))
    config = RemindersConfig(channels=("console", "phone"))
    Planner(trip_store, config).plan()
    assert len(rows(trip_store)) == 4
    spec = dataclasses.replace(load_file(trip_path), reminders=("PT15M",))
    with trip_store.write() as session:
        import_specs(session, [spec], now=trip_store.clock())
    Planner(trip_store, RemindersConfig(channels=("console",))).plan()
    live = [(r.offset_seconds, r.channel) for r in rows(trip_store) if r.status == "pending"]
    assert live == [(900, "console")]


def test_sent_rows_are_never_planned_again(trip_store: Store, clock) -> None:
    clock.set(Z("2025-09-02T12:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    planner.plan()
    with trip_store.write() as session:
        for row in session.scalars(select(Delivery)):
            row.status = "sent"
    assert planner.plan().planned == []
    assert {r.status for r in rows(trip_store)} == {"sent"}


def test_downtime_catch_up_plans_only_the_latest_passed_reminder(trip_store: Store, clock) -> None:
    # No daemon ran before 15:50Z: the 15:00Z reminder is 50 min old (grace is 10 min) and
    # the entry starts at 16:00Z. The 15:45Z one is in the window and due: it alone is planned.
    clock.set(Z("2025-09-02T15:50:00Z"))
    Planner(trip_store, RemindersConfig()).plan()
    assert summary(trip_store, "sheinbaum-bilateral") == [("15:45", "900", "pending")]


def test_downtime_catch_up_when_nothing_else_is_due(trip_store: Store, clock) -> None:
    # At 15:20Z the 1-hour reminder is 20 min late and the entry has not started:
    # it is planned (to go out late), and the 15-minute one as usual.
    clock.set(Z("2025-09-02T15:20:00Z"))
    Planner(trip_store, RemindersConfig()).plan()
    assert summary(trip_store, "sheinbaum-bilateral") == [
        ("15:00", "3600", "pending"),
        ("15:45", "900", "pending"),
    ]


def test_started_entries_get_no_catch_up(trip_store: Store, clock) -> None:
    clock.set(Z("2025-09-02T16:30:00Z"))
    Planner(trip_store, RemindersConfig()).plan()
    assert rows(trip_store, "sheinbaum-bilateral") == []


def missed_rows(store: Store) -> list[tuple[str, str]]:
    return [
        (r.entry_uid, r.due_at.strftime("%d %H:%M")) for r in rows(store) if r.status == "missed"
    ]


def test_reminders_that_came_due_unplanned_are_recorded_missed(trip_store: Store, clock) -> None:
    # A daemon planned on 1 September, then none ran until 2 September 20:00Z.
    clock.set(Z("2025-09-01T12:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    assert planner.plan().missed == []
    clock.set(Z("2025-09-02T20:00:00Z"))
    report = planner.plan()
    # Everything due from the last pass up to the window (19:50Z) that has no row:
    # the 08:30Z flight's, and both of the 16:00Z bilateral and of the 19:30Z embassy visit.
    expected = [
        (r.entry_uid, r.due_at.strftime("%d %H:%M"))
        for r in planner.schedule(Z("2025-09-01T12:00:00Z"), Z("2025-09-02T19:49:59Z"))
    ]
    assert ("sheinbaum-bilateral", "02 15:00") in expected
    assert ("embassy-mexico-city", "02 19:15") in expected
    assert missed_rows(trip_store) == expected
    assert [(r.entry_uid, r.due_at.strftime("%d %H:%M")) for r in report.missed] == expected
    row = next(r for r in rows(trip_store) if r.status == "missed")
    assert row.attempts == 0 and row.sent_at is None
    assert row.last_error == (
        "came due while no daemon planned reminders (last pass 2025-09-01T12:00:00Z)"
    )
    # Recorded once: the next pass finds no gap and changes nothing.
    again = planner.plan()
    assert again.missed == [] and again.gap_start is None
    assert missed_rows(trip_store) == expected


def test_a_gap_keeps_the_catch_up_and_records_the_earlier_reminder_missed(
    trip_store: Store, clock
) -> None:
    clock.set(Z("2025-09-01T00:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    planner.plan()
    # Back at 15:50Z: the bilateral (16:00Z) has not started; its 15:45 reminder goes out,
    # the 15:00 one came due unplanned and is recorded, not sent.
    clock.set(Z("2025-09-02T15:50:00Z"))
    planner.plan()
    assert summary(trip_store, "sheinbaum-bilateral") == [
        ("15:00", "3600", "missed"),
        ("15:45", "900", "pending"),
    ]


def test_rows_planned_before_the_gap_are_left_to_the_dispatcher(trip_store: Store, clock) -> None:
    clock.set(Z("2025-09-02T12:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    planner.plan()
    before = {r.id: r.status for r in rows(trip_store)}
    assert set(before.values()) == {"pending"}
    clock.set(Z("2025-09-02T20:00:00Z"))
    report = planner.plan()
    after = {r.id: r.status for r in rows(trip_store)}
    # The rows that existed keep their ids and stay pending (the dispatcher judges them
    # late or missed); only reminders that never had a row are recorded here.
    assert {i: after[i] for i in before} == before
    assert all(
        r.dedupe_key not in {x.dedupe_key for x in rows(trip_store) if x.id in before}
        for r in report.missed
    )


def test_the_first_pass_on_a_database_records_nothing_missed(trip_store: Store, clock) -> None:
    clock.set(Z("2025-09-05T12:00:00Z"))  # after the whole trip: nothing to record or send
    report = Planner(trip_store, RemindersConfig()).plan()
    assert report.missed == [] and report.gap_start is None and rows(trip_store) == []


def test_missed_lookback_bounds_what_a_long_gap_records(
    trip_store: Store, clock, monkeypatch
) -> None:
    from calendar_svc.reminders import planner as planner_module

    monkeypatch.setattr(planner_module, "MISSED_LOOKBACK", timedelta(hours=3))
    clock.set(Z("2025-08-01T00:00:00Z"))
    planner = Planner(trip_store, RemindersConfig())
    planner.plan()
    clock.set(Z("2025-09-02T20:00:00Z"))
    report = planner.plan()
    # Window starts 19:50Z; three hours back is 16:50Z: only the embassy's 18:30 and 19:15.
    assert report.gap_start == Z("2025-09-02T16:50:00Z")
    assert missed_rows(trip_store) == [
        ("embassy-mexico-city", "02 18:30"),
        ("embassy-mexico-city", "02 19:15"),
    ]


def test_passes_as_far_apart_as_the_rescan_interval_are_not_a_gap(
    trip_store: Store, clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon rescanning hourly with a 10-minute grace is running normally: no gap,
    nothing recorded missed, no gap warning in the log."""
    config = RemindersConfig(rescan_interval=timedelta(hours=1), grace=timedelta(minutes=10))
    planner = Planner(trip_store, config)
    clock.set(Z("2025-09-02T12:00:00Z"))
    planner.plan()
    with caplog.at_level(logging.INFO, logger="calendar_svc"):
        for hour in ("13", "14", "15"):
            clock.set(Z(f"2025-09-02T{hour}:00:00Z"))
            report = planner.plan()
            assert report.gap_start is None and report.missed == []
    assert "planner.gap" not in caplog.text
    assert missed_rows(trip_store) == []
    # Longer than two rescan intervals is a gap.
    clock.set(Z("2025-09-02T17:30:00Z"))
    assert planner.plan().gap_start == Z("2025-09-02T15:00:00Z")


def test_a_restart_after_downtime_longer_than_the_grace_is_a_gap(trip_store: Store, clock) -> None:
    """Hourly rescans are normal for a running daemon, but a daemon that starts after
    95 minutes away (less than two rescans) must record what came due unplanned in
    between: a new process judges the last pass by the grace."""
    config = RemindersConfig(
        rescan_interval=timedelta(hours=1),
        grace=timedelta(minutes=10),
        horizon=timedelta(minutes=30),
    )
    clock.set(Z("2025-09-02T14:45:00Z"))
    Planner(trip_store, config, name="before").plan()  # plans up to 15:15Z: the 15:00 one
    clock.set(Z("2025-09-02T16:20:00Z"))  # the bilateral began at 16:00Z
    report = Planner(trip_store, config, name="after").plan()
    assert report.gap_start == Z("2025-09-02T14:45:00Z")
    assert ("sheinbaum-bilateral", "02 15:45") in missed_rows(trip_store)


def test_another_daemon_s_clock_ahead_is_reported_not_undone(
    trip_store: Store, clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Two daemons whose clocks disagree: the one behind warns once and leaves the other's
    pass alone (resetting it would make the other see a gap on each of its passes)."""
    ahead, behind = (
        Planner(trip_store, RemindersConfig(), name="ahead"),
        Planner(trip_store, RemindersConfig(), name="behind"),
    )
    clock.set(Z("2025-09-02T13:00:00Z"))
    ahead.plan()
    with caplog.at_level(logging.WARNING, logger="calendar_svc"):
        for minute in ("00", "01", "02"):
            clock.set(Z(f"2025-09-02T12:{minute}:00Z"))
            report = behind.plan()
            assert report.clock_skew and not report.clock_stepped_back
    assert caplog.text.count("planner.clock_skew") == 1
    assert "planner.clock_stepped_back" not in caplog.text
    clock.set(Z("2025-09-02T13:00:30Z"))
    again = ahead.plan()
    assert again.gap_start is None and again.missed == []


def test_a_clock_that_stepped_back_is_trusted_from_then_on(
    trip_store: Store, clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A pass recorded "in the future" (the clock was ahead, then corrected) must not
    hide a later gap: the planner warns and measures from the corrected clock."""
    planner = Planner(trip_store, RemindersConfig())
    clock.set(Z("2025-09-10T00:00:00Z"))  # the clock was a week ahead
    planner.plan()
    clock.set(Z("2025-09-02T10:00:00Z"))  # corrected
    with caplog.at_level(logging.WARNING, logger="calendar_svc"):
        report = planner.plan()
    assert report.clock_stepped_back and report.gap_start is None
    assert "planner.clock_stepped_back" in caplog.text
    # No daemon from 10:00Z to 20:00Z: the gap is seen, from the corrected pass. The
    # 10:00Z pass planned up to 16:00Z (the horizon); what came due later is recorded.
    clock.set(Z("2025-09-02T20:00:00Z"))
    report = planner.plan()
    assert report.gap_start == Z("2025-09-02T10:00:00Z")
    assert missed_rows(trip_store) == [
        ("embassy-mexico-city", "02 18:30"),
        ("embassy-mexico-city", "02 19:15"),
    ]


def test_schedule_reads_without_writing(trip_store: Store) -> None:
    planner = Planner(trip_store, RemindersConfig())
    found = planner.schedule(Z("2025-09-02T00:00:00Z"), Z("2025-09-05T00:00:00Z"))
    assert len(found) == 17
    assert rows(trip_store) == []
    nxt = planner.next_reminder(Z("2025-09-03T17:00:00Z"))
    assert nxt is not None and (nxt.entry_uid, nxt.due_at) == (
        "flight-mex-uio",
        Z("2025-09-03T18:00:00Z"),
    )
    assert planner.next_reminder(Z("2025-09-05T00:00:00Z")) is None


def test_recurring_entries_are_planned_per_occurrence(store: Store, clock) -> None:
    from calendar_svc.schedule_files import parse_schedule

    spec = parse_schedule(
        {
            "calendar": {"slug": "standup", "name": "Standup", "timezone": "America/New_York"},
            "entries": [
                {
                    "uid": "daily",
                    "title": "Standup",
                    "start": datetime(2025, 11, 1, 9, 0),
                    "duration": "PT15M",
                    "rrule": "FREQ=DAILY",
                    "reminders": ["PT10M"],
                }
            ],
        },
        source="test",
    )
    with store.write() as session:
        import_specs(session, [spec], now=store.clock())
    clock.set(datetime(2025, 11, 1, 0, 0, tzinfo=UTC))
    report = Planner(store, RemindersConfig(horizon=timedelta(days=3))).plan()
    # 1 Nov EDT (13:00Z start), 2 and 3 Nov EST (14:00Z): wall time 09:00 every day.
    assert [r.due_at for r in report.planned] == [
        Z("2025-11-01T12:50:00Z"),
        Z("2025-11-02T13:50:00Z"),
        Z("2025-11-03T13:50:00Z"),
    ]


# --- the CLI: `reminders` and `status` -----------------------------------------------------


def test_cli_reminders_shows_the_trip_at_the_right_instants(run_cli) -> None:
    import json

    assert run_cli("import", "schedules/rubio-2025-09.toml").exit_code == 0
    result = run_cli("reminders", "--from", "2025-09-02", "--to", "2025-09-04", "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert len(found) == 17
    bilateral = [r for r in found if r["uid"] == "sheinbaum-bilateral"]
    assert [(r["due_utc"], r["due_local"], r["offset"]) for r in bilateral] == [
        ("2025-09-02T15:00:00Z", "2025-09-02T09:00:00-06:00", "PT1H"),
        ("2025-09-02T15:45:00Z", "2025-09-02T09:45:00-06:00", "PT15M"),
    ]
    assert bilateral[0]["due_display"] == "2025-09-02T11:00:00-04:00"  # Washington, EDT
    noboa = [r["due_local"] for r in found if r["uid"] == "noboa-meeting"]
    assert noboa == ["2025-09-04T09:00:00-05:00", "2025-09-04T09:45:00-05:00"]

    table = run_cli("reminders", "--from", "2025-09-02T15:00", "--to", "2025-09-02T16:00")
    assert table.exit_code == 0
    assert "2025-09-02T15:00:00Z  Tue 2025-09-02 09:00 CST (UTC-06:00)" in table.output
    assert "2 reminder(s)" in table.output


def test_cli_reminders_says_when_nothing_is_due(run_cli) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    result = run_cli("reminders", "--from", "2030-01-01", "--to", "2030-01-02")
    assert result.exit_code == 0
    assert "No reminders due" in result.output
    assert "rubio-2025-09: entries from 2025-09-02" in result.output
    bad = run_cli("reminders", "--from", "tomorrow")
    assert bad.exit_code == 2 and "--from expects" in bad.output


def test_cli_status(run_cli) -> None:
    import json

    run_cli("import", "schedules/rubio-2025-09.toml")
    result = run_cli("status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["daemon"]["running"] is False
    assert data["counts"]["pending"] == 0 and data["next"] == []
    text = run_cli("status")
    assert "Daemon: not running" in text.output and "Deliveries:" in text.output


def test_a_uid_with_a_bar_is_cancelled_by_its_columns(trip_store: Store, clock, trip_path) -> None:
    """ICS and API uids may hold ``|``, the dedupe key's separator: the planner reads a row's
    calendar, uid and channel from its columns, never by splitting the key."""
    from calendar_svc.events import EventBus, ReminderCancelled

    uid = "20250902T160000Z|bilateral@example.org"
    spec = load_file(trip_path)
    [bilateral] = [e for e in spec.entries if e.uid == "sheinbaum-bilateral"]
    spec = dataclasses.replace(spec, entries=(dataclasses.replace(bilateral, uid=uid),))
    with trip_store.write() as session:
        import_specs(session, [spec], now=trip_store.clock(), prune=True)
    clock.set(Z("2025-09-02T12:00:00Z"))
    bus, told = EventBus(), []
    bus.add_listener(told.append, [ReminderCancelled])
    planner = Planner(trip_store, RemindersConfig(), events=bus)
    planner.plan()
    assert {r.entry_uid for r in rows(trip_store)} == {uid}
    trip_store.delete_entry(uid)
    report = planner.plan()
    assert len(report.cancelled) == 2
    assert {(e.calendar, e.uid, e.channel) for e in told} == {(spec.slug, uid, "console")}
    assert {r.status for r in rows(trip_store)} == {"cancelled"}


def test_an_entry_with_only_rdates_is_planned_for_a_later_occurrence(store: Store, clock) -> None:
    """An entry whose first start is long past but which has an RDATE in the horizon (no
    RRULE) is recurring too: its reminder there is planned. The planner read only entries
    starting in the window or carrying an RRULE, so this one was never looked at."""
    from calendar_svc.schedule_files import parse_schedule

    schedule = {
        "calendar": {"slug": "extra", "name": "Extra", "timezone": "America/Guayaquil"},
        "entries": [
            {
                "uid": "briefing",
                "title": "Briefing",
                "start": datetime(2025, 6, 2, 9, 0),
                "rdate": [datetime(2025, 9, 2, 9, 0)],
                "reminders": ["PT1H"],
            }
        ],
    }
    with store.write() as session:
        import_specs(session, [parse_schedule(schedule, source="test")], now=store.clock())
    clock.set(Z("2025-09-02T12:00:00Z"))  # 07:00 in Quito; the RDATE is at 09:00 (14:00Z)
    Planner(store, RemindersConfig(channels=("console",))).plan()
    assert [(r.entry_uid, r.due_at) for r in rows(store)] == [
        ("briefing", Z("2025-09-02T13:00:00Z"))
    ]


def test_the_longest_offset_is_read_from_every_distinct_override_list(store: Store) -> None:
    """The planner looks ahead by the longest offset any entry can have: the config's, a
    calendar's, or an entry's own list (read as the distinct lists through an index, one
    seek each). A list the engine cannot use counts for nothing."""
    from calendar_svc.reminders.entries import longest_offset
    from calendar_svc.schedule_files import parse_schedule

    def entry(uid: str, **extra: object) -> dict[str, object]:
        return {"uid": uid, "title": uid, "start": datetime(2025, 9, 2, 9, 0), **extra}

    schedule = {
        "calendar": {
            "slug": "lists",
            "name": "Lists",
            "timezone": "America/Guayaquil",
            "reminders": ["PT3H"],
        },
        "entries": [
            entry("inherits"),
            entry("none", reminders=[]),
            entry("day", reminders=["P1D", "PT15M"]),
            entry("also-day", reminders=["P1D", "PT15M"]),
            entry("two-days", reminders=["P2D"]),
            entry("hour", reminders=["PT1H"]),
        ],
    }
    with store.write() as session:
        import_specs(session, [parse_schedule(schedule, source="test")], now=store.clock())
    with store.read() as session:
        assert longest_offset(session, [timedelta(minutes=30)]) == timedelta(days=2)
        assert longest_offset(session, [timedelta(days=5)]) == timedelta(days=5)
    with store.write() as session:  # a hand edit the engine cannot use
        session.execute(
            text("UPDATE entries SET reminders = CAST(:bad AS JSON) WHERE uid = 'two-days'"),
            {"bad": '["P99999999999D"]'},
        )
    with store.read() as session:
        assert longest_offset(session, [timedelta(minutes=30)]) == timedelta(days=1)
