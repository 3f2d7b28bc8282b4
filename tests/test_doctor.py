"""``calendar-svc doctor``: one line per finding with what to do; exit 0 all well, 1 when
something needs action, 2 when the config cannot be read."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from tz_releases import RELEASE_A, RELEASE_B, compile_release, needs_zic

from calendar_svc import timezones as tz
from calendar_svc.db import head_revision
from calendar_svc.tzsource import ENV_TZDIR


@pytest.fixture(autouse=True)
def restore(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> Iterator[None]:
    monkeypatch.delenv(ENV_TZDIR, raising=False)
    # The workdir's feed takes any free port: give subscribers an address, as in production.
    config = workdir / "config.toml"
    config.write_text(
        config.read_text().replace(
            "port = 0\n", 'port = 0\npublic_url = "https://cal.example.org"\n'
        )
    )
    previous = tz.current()
    yield
    tz.use(previous)


def lines(result: Result, level: str | None = None) -> list[str]:
    found = result.output.splitlines()[:-1]  # the last line sums up
    return [line for line in found if level is None or line.startswith(level)]


def as_json(run_cli: Callable[..., Result], *args: str) -> dict[str, Any]:
    result = run_cli("doctor", "--json", *args)
    data: dict[str, Any] = json.loads(result.output)
    assert data["exit_code"] == result.exit_code
    return data


def test_a_fresh_install_is_told_to_create_its_database(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    result = run_cli("doctor")
    assert result.exit_code == 1
    assert lines(result, "warning") == [
        f"warning database   sqlite:///{workdir}/var/calendar.sqlite3: the SQLite file does not "
        "exist yet -> calendar-svc init (or doctor --fix, or any command) creates it"
    ]
    assert not (workdir / "var" / "calendar.sqlite3").exists()  # nothing written
    fixed = run_cli("doctor", "--fix")
    assert fixed.exit_code == 0, fixed.output
    assert f"schema migrated from none to {head_revision()}" in fixed.output
    assert fixed.output.splitlines()[-1] == "doctor: all well"


def test_the_trip_is_all_well(run_cli: Callable[..., Result], workdir: Path) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    result = run_cli("doctor")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "doctor: all well"
    text = result.output
    for expected in (
        f"ok      config     {workdir}/config.toml: valid",
        f"ok      tz         tz database {tz.version()}: ",
        f"ok      database   sqlite:///{workdir}/var/calendar.sqlite3: reachable, schema "
        f"{head_revision()} (the newest)",
        f"ok      time       11 entries: their instants are those tz database {tz.version()} gives",
        "ok      tokens     rubio-2025-09: feed token present",
        "ok      schedules  ",
        "ok      notifiers  console (console): built",
    ):
        assert expected in text, expected
    data = as_json(run_cli)
    assert data["status"] == "ok" and data["needs_action"] == 0
    assert data["tz_database"]["version"] == tz.version()
    assert {f["check"] for f in data["findings"]} >= {
        "config",
        "tz",
        "database",
        "time",
        "tokens",
        "reminders",
        "schedules",
        "notifiers",
        "feed",
    }


def test_a_config_that_does_not_load_exits_2(run_cli: Callable[..., Result], workdir: Path) -> None:
    (workdir / "config.toml").write_text("[feed]\nport = 'x'\n")
    result = run_cli("doctor")
    assert result.exit_code == 2
    assert lines(result) == [
        f"error   config     {workdir}/config.toml: feed.port: expected an integer, got string "
        "'x' -> correct the file and key named"
    ]
    assert as_json(run_cli)["status"] == "action_needed"


def test_each_broken_part_is_one_line_with_what_to_do(
    run_cli: Callable[..., Result], workdir: Path, add_to_config: Callable[[str], None]
) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    add_to_config(
        """
        [notifiers.hook]
        type = "webhook"
        url = "https://hooks.example.org/x"
        secret_env = "DOCTOR_TEST_UNSET_SECRET"
        """
    )
    (workdir / "schedules" / "bad.toml").write_text(
        '[calendar]\nslug = "bad"\nname = "Bad"\ntimezone = "America/Quito"\n'
    )
    with sqlite3.connect(workdir / "var" / "calendar.sqlite3") as conn:
        conn.execute("UPDATE calendars SET feed_token = 'short'")
        conn.execute(
            "INSERT INTO deliveries (dedupe_key, idempotency_key, calendar_slug, entry_uid,"
            " occurrence_utc, offset_seconds, channel, due_at, status, attempts,"
            " next_attempt_at, late, created_at, updated_at) VALUES ('k', 'rem-1',"
            " 'rubio-2025-09', 'noboa-meeting', '2025-09-04 15:00:00', 0, 'console',"
            " '2025-09-04 15:00:00', 'pending', 0, '2025-09-04 15:00:00', 0,"
            " '2025-09-01 00:00:00', '2025-09-01 00:00:00')"
        )
    result = run_cli("doctor")
    assert result.exit_code == 1
    problems = lines(result, "warning") + lines(result, "error")
    assert len(problems) == 4, result.output
    text = "\n".join(problems)
    assert (
        "tokens     rubio-2025-09: a feed token of 5 characters, which anyone could guess" in text
    )
    assert "-> calendar-svc rotate-token rubio-2025-09" in text
    assert "bad.toml: field 'calendar.timezone': unknown timezone 'America/Quito'" in text
    assert "notifiers.hook" in text and "DOCTOR_TEST_UNSET_SECRET" in text
    assert "reminders  1 pending reminder is more than 10 min overdue" in text
    assert result.output.splitlines()[-1] == "doctor: 4 finding(s) need action (exit 1)"


@needs_zic
def test_a_tz_database_update_names_the_entries_that_move_and_fix_moves_them(
    run_cli: Callable[..., Result],
    workdir: Path,
    add_to_config: Callable[[str], None],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    a = compile_release(tmp_path / "a", RELEASE_A, "test-a")
    b = compile_release(tmp_path / "b", RELEASE_B, "test-b")
    add_to_config(f'\n[time]\ntzdir = "{a}"\n')
    (workdir / "schedules" / "rubio-2025-09.toml").unlink()
    (workdir / "schedules" / "m.toml").write_text(
        '[calendar]\nslug = "m"\nname = "M"\ntimezone = "America/Mexico_City"\n\n'
        '[[entries]]\nuid = "july"\ntitle = "July"\nstart = 2030-07-01T10:00:00\n\n'
        '[[entries]]\nuid = "january"\ntitle = "January"\nstart = 2031-01-15T10:00:00\n\n'
        '[[entries]]\nuid = "gap"\ntitle = "Gap"\nstart = 2030-04-07T02:30:00\n\n'
        '[[entries]]\nuid = "berlin"\ntitle = "Berlin"\ntimezone = "Europe/Berlin"\n'
        "start = 2030-07-01T10:00:00\n"
    )
    assert run_cli("import", "schedules/m.toml").exit_code == 0
    assert run_cli("doctor").exit_code == 0

    preview = run_cli("doctor", "--tzdir", str(b))  # what a switch to b would do
    assert preview.exit_code == 1
    assert f"ok      tz         tz database test-b: {b} (from --tzdir)" in preview.output
    assert "m/july (America/Mexico_City): start would move" in preview.output
    refused = run_cli("doctor", "--tzdir", str(b), "--fix")
    assert refused.exit_code == 2 and "--tzdir only previews" in refused.output
    assert run_cli("doctor", "--tzdir", str(tmp_path / "nope")).exit_code == 2

    monkeypatch.setenv(ENV_TZDIR, str(b))  # the environment names it: in use
    result = run_cli("doctor")
    assert result.exit_code == 1
    assert f"ok      tz         tz database test-b: {b} (from $CALENDAR_SVC_TZDIR)" in result.output
    assert f"[time] tzdir = {a} is not used: $CALENDAR_SVC_TZDIR wins over it" in result.output
    warnings = lines(result, "warning")
    assert (
        "warning time       m/july (America/Mexico_City): start would move 2030-07-01T16:00:00Z"
        " -> 2030-07-01T15:00:00Z under tz database test-b (derived with test-a); its reminders"
        " and feed still say the old instant -> calendar-svc doctor --fix (or restart"
        " calendar-svc run, which does the same)"
    ) in warnings
    gap = [w for w in warnings if "m/gap" in w]
    assert gap == [
        "warning time       m/gap: start 2030-04-07 02:30 does not exist in America/Mexico_City"
        " (skipped by a clock change) (tz database test-b) -> read with the offset before the"
        " change (fold = 0), as RFC 5545 reads it; set fold = 0 or fold = 1 in the schedule"
        " file to confirm, or move the entry"
    ]
    assert not any("m/january" in line for line in lines(result))
    assert lines(result, "error") == [
        "error   time       m/berlin: zone Europe/Berlin is not in the tz database (tz database "
        "test-b) -> its last instants are kept; give the entry a zone the tz database has (or "
        "use a tz database that has this one)"
    ]
    data = as_json(run_cli)
    moved = {f["uid"]: f for f in data["findings"] if f["check"] == "time" and "new" in f}
    assert set(moved) == {"july"}  # the gap is read with the offset before it: no move
    assert (moved["july"]["old"], moved["july"]["new"]) == (
        "2030-07-01T16:00:00Z",
        "2030-07-01T15:00:00Z",
    )
    before = json.loads(run_cli("show", "july", "--json").output)

    fixed = run_cli("doctor", "--fix")
    assert "fixed   time       m/july (America/Mexico_City): moved 2030-07-01T16:00:00Z -> " in (
        fixed.output
    )
    assert fixed.exit_code == 1  # the gap and Berlin still need a person
    assert not any("would move" in line for line in lines(fixed))
    after = json.loads(run_cli("show", "july", "--json").output)
    assert after["start_utc"] == "2030-07-01T15:00:00Z"
    assert after["sequence"] == before["sequence"] + 1
    # The Berlin entry is kept, listed (in UTC: its zone is gone) and has no reminders.
    listed = run_cli("list", "--json")
    assert listed.exit_code == 0, listed.output
    berlin = next(row for row in json.loads(listed.output) if row["uid"] == "berlin")
    assert berlin["start"] == "2030-07-01T08:00:00+00:00"
    assert berlin["timezone"] == "Europe/Berlin"
    reminders = run_cli("reminders", "--from", "2030-06-01", "--to", "2030-08-01", "--json")
    # (stdout: stderr names the Berlin entry, left out of reminders)
    assert {r["uid"] for r in json.loads(reminders.stdout)} == {"july"}
    again = run_cli("doctor")
    assert [line.split()[0] for line in lines(again) if "time" in line.split()[1:2]] == [
        "warning",
        "error",
    ]
