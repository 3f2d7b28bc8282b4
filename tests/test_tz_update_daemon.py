"""A real rule change under ``calendar-svc run``: at start, and swapped in while it runs.

The tz database is a folder compiled by ``zic`` from tests/tz_releases.py and
named by ``[time] tzdir`` through a symlink, swapped the way
docs/operations.md says (a rename). Expected instants come from the standard
library's zoneinfo reading the same files.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from feed_zones import feed_zones
from icalendar import Calendar as ICalendar
from peers import HttpReceiver, HttpRequest, Response
from service_helpers import (
    LOOPBACK,
    Service,
    base_env,
    config_text,
    feed_token,
    healthz,
    http_get,
    sqlite,
)
from tz_releases import RELEASE_A, RELEASE_B, compile_release, instant, needs_zic
from waiting import wait_for

from calendar_svc.clock import now_utc
from calendar_svc.reminders.rules import dedupe_key, idempotency_key
from calendar_svc.timezones import UTC

pytestmark = [pytest.mark.slow, needs_zic]


def swap(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` atomically (a new symlink renamed over the old)."""
    new = link.with_name(link.name + ".new")
    new.symlink_to(target)
    new.replace(link)


def local(text: datetime) -> str:
    return text.strftime("%Y-%m-%dT%H:%M:%S")


def doctor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calendar_svc", "--config", str(config), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=base_env(),
        check=False,
    )


def entry_row(db: Path, uid: str) -> tuple[str, int, str]:
    with sqlite(db) as conn:
        row = conn.execute(
            "SELECT start_utc, sequence, tz_version FROM entries WHERE uid = ?", (uid,)
        ).fetchone()
    assert row is not None
    return str(row[0])[:19], int(row[1]), str(row[2])


def deliveries(db: Path, uid: str) -> list[tuple[str, str]]:
    """(due_at, status) of the entry's deliveries, by due time."""
    with sqlite(db) as conn:
        rows = conn.execute(
            "SELECT due_at, status FROM deliveries WHERE entry_uid = ? ORDER BY due_at", (uid,)
        ).fetchall()
    return [(str(due)[:19], str(status)) for due, status in rows]


def utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def feed_events(port: int, db: Path, slug: str) -> tuple[bytes, dict[str, Any]]:
    status, body = http_get(f"http://{LOOPBACK}:{port}/feeds/{feed_token(db, slug)}/{slug}.ics")
    assert status == 200
    events = {str(e["UID"]).split("@")[0]: e for e in ICalendar.from_ical(body).walk("VEVENT")}
    return body, events


def test_a_release_installed_while_stopped_moves_instants_sequence_feed_and_reminders(
    tmp_path: Path, services: list[Service]
) -> None:
    a = compile_release(tmp_path / "releases" / "a", RELEASE_A, "test-a")
    b = compile_release(tmp_path / "releases" / "b", RELEASE_B, "test-b")
    link = tmp_path / "tzdata"
    link.symlink_to(a)
    db = tmp_path / "calendar.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(
        config_text(db, reminders={"offsets": ["PT1H"]}) + f'\n[time]\ntzdir = "{link.name}"\n'
    )
    # Quito in three hours, under release A (-05); B puts Quito on -04 from 2024.
    soon = (now_utc() + timedelta(hours=3)).replace(second=0, microsecond=0)
    wall = (soon - timedelta(hours=5)).replace(tzinfo=None)
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "trip.toml").write_text(
        '[calendar]\nslug = "trip"\nname = "Trip"\ntimezone = "America/Guayaquil"\n\n'
        f'[[entries]]\nuid = "quito-soon"\ntitle = "Quito soon"\nstart = {local(wall)}\n'
        'duration = "PT1H"\n\n'
        '[[entries]]\nuid = "mexico-july"\ntitle = "Mexico City, July 2030"\n'
        'timezone = "America/Mexico_City"\nstart = 2030-07-01T10:00:00\n\n'
        '[[entries]]\nuid = "new-york"\ntitle = "New York, 2040"\n'
        'timezone = "America/New_York"\nstart = 2040-07-04T12:00:00\n'
    )
    old_start, new_start = (
        instant(a, "America/Guayaquil", wall),
        instant(b, "America/Guayaquil", wall),
    )
    assert new_start == old_start - timedelta(hours=1)

    first = Service(config, name="first")
    services.append(first)
    first.start().wait_ready()
    assert entry_row(db, "quito-soon") == (utc_text(old_start), 0, "test-a")
    assert deliveries(db, "quito-soon") == [(utc_text(old_start - timedelta(hours=1)), "pending")]
    _, events = feed_events(first.feed_port(), db, "trip")
    assert events["quito-soon"]["SEQUENCE"] == 0
    first.signal(signal.SIGTERM)
    assert first.wait_exit(30) == 0

    # Before switching: doctor says what would move, and writes nothing.
    preview = doctor(config, "--tzdir", str(b))
    assert preview.returncode == 1, preview.stdout + preview.stderr
    assert (
        f"trip/quito-soon (America/Guayaquil): start would move {old_start:%Y-%m-%dT%H:%M:%SZ}"
        f" -> {new_start:%Y-%m-%dT%H:%M:%SZ} under tz database test-b" in preview.stdout
    )
    assert "trip/mexico-july (America/Mexico_City): start would move 2030-07-01T16:00:00Z" in (
        preview.stdout
    )
    assert "new-york" not in preview.stdout
    assert entry_row(db, "quito-soon") == (utc_text(old_start), 0, "test-a")

    swap(link, b)
    second = Service(config, name="second")
    services.append(second)
    second.start().wait_ready()
    err = second.stderr()
    assert (
        f"msg=time.rules_changed uid=quito-soon calendar=trip "
        f"old={old_start:%Y-%m-%dT%H:%M:%SZ} new={new_start:%Y-%m-%dT%H:%M:%SZ} "
        "zone=America/Guayaquil from_tz=test-a tz=test-b" in err
    )
    assert "msg=time.rules_changed uid=mexico-july calendar=trip" in err
    assert "uid=new-york" not in err
    assert "msg=time.rederived tz=test-b why=start checked=3 moved=2 problems=0" in err
    assert "tz=test-b" in next(line for line in err.splitlines() if "daemon.ready" in line)

    assert entry_row(db, "quito-soon") == (utc_text(new_start), 1, "test-b")
    assert entry_row(db, "mexico-july") == ("2030-07-01 15:00:00", 1, "test-b")
    assert entry_row(db, "new-york")[1:] == (0, "test-b")
    # The old reminder is cancelled (its key holds the old instant); the new one planned once.
    assert deliveries(db, "quito-soon") == [
        (utc_text(new_start - timedelta(hours=1)), "pending"),
        (utc_text(old_start - timedelta(hours=1)), "cancelled"),
    ]
    port = second.feed_port()
    body, events = feed_events(port, db, "trip")
    event = events["quito-soon"]
    assert event["SEQUENCE"] == 1
    assert event["DTSTART"].params["TZID"] == "America/Guayaquil"
    assert event["DTSTART"].dt.replace(tzinfo=None) == wall  # the wall time is the truth
    # Read by the feed's own VTIMEZONE (a client without a tz database of its own).
    zone = feed_zones(body)["America/Guayaquil"]
    assert zone.to_utc(wall) == new_start
    assert [a["TRIGGER"].dt for a in event.walk("VALARM")] == [timedelta(hours=-1)]
    assert healthz(port)[1]["tz_database"] == "test-b"
    second.signal(signal.SIGTERM)
    assert second.wait_exit(30) == 0
    settled = doctor(config)
    assert settled.returncode == 0, settled.stdout


class Recorder:
    """The webhook receiver: each reminder with the wall-clock instant it arrived."""

    def __init__(self) -> None:
        self.got: list[tuple[datetime, dict[str, Any], str]] = []

    def respond(self, request: HttpRequest) -> Response:
        self.got.append((now_utc(), request.json(), request.header("webhook-id") or ""))
        return 200, {}, b""


def test_a_release_swapped_in_under_the_running_daemon_moves_the_reminder(
    tmp_path: Path, services: list[Service]
) -> None:
    """Test/Drift is +00 in release A and +00:01 in B: the entry's instant moves one minute
    earlier. Swapped in while the daemon runs, its reminder arrives once, at the new
    instant, a minute before the old one would have come."""
    a = compile_release(tmp_path / "releases" / "a", RELEASE_A, "test-a")
    b = compile_release(tmp_path / "releases" / "b", RELEASE_B, "test-b")
    link = tmp_path / "tzdata"
    link.symlink_to(a)
    db = tmp_path / "calendar.sqlite3"
    recorder = Recorder()
    with HttpReceiver(recorder.respond) as receiver:
        config = tmp_path / "config.toml"
        config.write_text(
            config_text(
                db,
                notifiers={
                    "hook": {
                        "type": "webhook",
                        "url": f"{receiver.url}/hook",
                        "allow_private": True,
                        "timeout": 5,
                    }
                },
                reminders={"rescan_interval": "PT1S", "offsets": ["PT0S"]},
            )
            + f'\n[time]\ntzdir = "{link}"\n'
        )
        # Under B the wall time is 25 s away; under A, a minute and 25 s.
        wall = (now_utc() + timedelta(seconds=85)).replace(microsecond=0, tzinfo=None)
        old_due = instant(a, "Test/Drift", wall)
        new_due = instant(b, "Test/Drift", wall)
        assert new_due == old_due - timedelta(minutes=1)
        (tmp_path / "schedules").mkdir()
        (tmp_path / "schedules" / "drift.toml").write_text(
            '[calendar]\nslug = "drift"\nname = "Drift"\ntimezone = "Test/Drift"\n\n'
            f'[[entries]]\nuid = "meeting"\ntitle = "Meeting"\nstart = {local(wall)}\n'
        )
        service = Service(config)
        services.append(service)
        service.start().wait_ready()
        port = service.feed_port()
        assert deliveries(db, "meeting") == [(utc_text(old_due), "pending")]
        assert healthz(port)[1]["tz_database"] == "test-a"

        swap(link, b)
        before_new = (new_due - now_utc()).total_seconds() - 2
        assert before_new > 3, "the daemon took too long to start for this test's timing"
        service.wait_stderr("msg=time.rules_changed uid=meeting", timeout=before_new)
        assert "msg=time.database_switched tz=test-b previous=test-a" in service.stderr()
        wait_for(
            lambda: (
                deliveries(db, "meeting")
                == [(utc_text(new_due), "pending"), (utc_text(old_due), "cancelled")]
            ),
            before_new,
            "the old reminder cancelled and the new one planned",
            [service],
        )
        assert now_utc() < new_due  # all of that before the new instant came

        wait_for(lambda: recorder.got, 60, "the reminder at its new instant", [service])
        arrived, payload, webhook_id = recorder.got[0]
        assert arrived >= new_due
        assert payload["data"]["start_utc"] == new_due.strftime("%Y-%m-%dT%H:%M:%SZ")
        assert webhook_id == idempotency_key(
            dedupe_key("drift", "meeting", new_due, timedelta(0), "hook")
        )
        wait_for(
            lambda: (
                deliveries(db, "meeting")
                == [(utc_text(new_due), "sent"), (utc_text(old_due), "cancelled")]
            ),
            20,
            "the new reminder recorded sent",
            [service],
        )
        assert len(recorder.got) == 1  # once; the old instant's row is cancelled, never sent
        assert healthz(port)[1]["tz_database"] == "test-b"
        _, events = feed_events(port, db, "drift")
        assert events["meeting"]["SEQUENCE"] == 1
        assert json.loads(json.dumps(payload))["data"]["entry"]["uid"] == "meeting"
        service.signal(signal.SIGTERM)
        assert service.wait_exit(30) == 0
