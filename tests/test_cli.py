"""The itinerary commands as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from click.testing import Result


def test_init_is_idempotent(run_cli: Callable[..., Result], workdir: Path) -> None:
    first = run_cli("init")
    from calendar_svc.db import head_revision

    assert first.exit_code == 0 and f"database ready at schema {head_revision()}" in first.output
    assert (workdir / "var" / "calendar.sqlite3").exists()
    assert run_cli("init").exit_code == 0


def test_import_summary_and_reimport(run_cli: Callable[..., Result]) -> None:
    first = run_cli("import", "schedules/rubio-2025-09.toml")
    assert (
        "rubio-2025-09: calendar created; 11 created, 0 updated, 0 unchanged, 0 pruned"
        in first.output
    )
    second = run_cli("import", "schedules/rubio-2025-09.toml")
    assert "0 created, 0 updated, 11 unchanged, 0 pruned" in second.output


def test_dry_run_prints_changes_and_writes_nothing(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    path = workdir / "schedules" / "rubio-2025-09.toml"
    path.write_text(path.read_text().replace("2025-09-02T10:00:00", "2025-09-02T10:30:00"))
    dry = run_cli("import", "--dry-run", str(path))
    assert "1 would be updated" in dry.output and "~ sheinbaum-bilateral" in dry.output
    assert "dry run: nothing was written" in dry.output
    shown = json.loads(run_cli("show", "sheinbaum-bilateral", "--json").output)
    assert shown["start"] == "2025-09-02T10:00:00-06:00"


def test_list_table_shows_local_time_zone_and_offset(run_cli: Callable[..., Result]) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    out = run_cli("list").output
    assert "Tue 2025-09-02 10:00 CST (UTC-06:00) → 11:30" in out
    assert "Thu 2025-09-04 10:00 -05 (UTC-05:00)" in out
    assert "→ Wed 2025-09-03 18:45 -05 (UTC-05:00)" in out  # flight lands in another zone
    assert run_cli("list", "--city", "Atlantis").output.strip() == "no entries match"


def test_bad_filter_dates(run_cli: Callable[..., Result]) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    bad = run_cli("list", "--from", "2025-09-31")
    assert bad.exit_code == 2 and "--from expects a date as YYYY-MM-DD" in bad.output
    reversed_ = run_cli("list", "--from", "2025-09-04", "--to", "2025-09-02")
    assert reversed_.exit_code == 2 and "before --from" in reversed_.output


def test_show_cancel_delete(run_cli: Callable[..., Result]) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    shown = run_cli("show", "noboa-meeting").output
    assert "Meeting with President Daniel Noboa" in shown and "2025-09-04T15:00:00Z" in shown
    assert (
        "cancelled rubio-2025-09/noboa-meeting (sequence 1)"
        in run_cli("cancel", "noboa-meeting").output
    )
    assert "already cancelled" in run_cli("cancel", "noboa-meeting").output
    assert json.loads(run_cli("show", "noboa-meeting", "--json").output)["status"] == "cancelled"
    refused = run_cli("delete", "embassy-quito", input="n\n")
    assert refused.exit_code == 1
    assert run_cli("delete", "embassy-quito", "--yes").exit_code == 0
    missing = run_cli("show", "embassy-quito")
    assert missing.exit_code == 2 and "no entry with uid 'embassy-quito'" in missing.output


def test_calendars_json(run_cli: Callable[..., Result]) -> None:
    assert "no calendars yet" in run_cli("calendars").output
    run_cli("import", "schedules/rubio-2025-09.toml")
    rows = json.loads(run_cli("calendars", "--json").output)
    assert rows[0]["slug"] == "rubio-2025-09" and rows[0]["entries"] == 11
    assert rows[0]["first_start"] == "2025-09-02T06:00:00Z"
    assert "feed_token" not in rows[0]


def test_help_teaches(run_cli: Callable[..., Result]) -> None:
    top = run_cli("--help").output
    for command in ("init", "import", "list", "show", "cancel", "delete", "calendars"):
        assert command in top
    assert "calendar-svc import --dry-run --prune" in run_cli("import", "--help").output


def test_python_dash_m_works(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "calendar_svc", "--version"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and "calendar-svc" in result.stdout


def test_city_filter_finds_non_ascii_city_on_sqlite(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    """`list --city Łódź` must find an entry whose city is exactly "Łódź".

    SQLite's lower() only folds ASCII, while the filter lower-cases the argument in
    Python, so on the default backend a city starting with a non-ASCII capital is
    never found, not even spelt exactly as in the file (PostgreSQL finds it).
    """
    (workdir / "schedules" / "poland.toml").write_text(
        textwrap.dedent(
            """\
        [calendar]
        slug = "poland"
        name = "Poland"
        timezone = "Europe/Warsaw"

        [[entries]]
        uid = "lodz"
        title = "Meeting"
        start = 2025-09-02T10:00:00
        city = "Łódź"

        [[entries]]
        uid = "edes"
        title = "Visit"
        start = 2025-09-03T10:00:00
        city = "Édes"
        """
        ),
        encoding="utf-8",
    )
    assert run_cli("import", "schedules/poland.toml").exit_code == 0
    for city, uid in (("Łódź", "lodz"), ("łódź", "lodz"), ("Édes", "edes"), ("ÉDES", "edes")):
        result = run_cli("list", "--city", city, "--json")
        assert result.exit_code == 0
        assert [e["uid"] for e in json.loads(result.output)] == [uid], city


def test_unreachable_database_is_one_line(run_cli: Callable[..., Result]) -> None:
    """README: "Errors are one line on stderr". A refused PostgreSQL connection prints
    three lines (psycopg's hint and SQLAlchemy's "Background on this error" link)."""
    result = run_cli("--db", "postgresql+psycopg://nobody@127.0.0.1:1/x", "list")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("calendar-svc: error:")
    assert "sqlalche.me" not in result.stderr


def test_recurring_entry_shows_its_rule(run_cli: Callable[..., Result], workdir: Path) -> None:
    """`show --json` / `list --json` never mention `rrule`: a user cannot see that an
    entry repeats (and `show`, "one entry in full", does not print it either)."""
    (workdir / "schedules" / "standup.toml").write_text(
        textwrap.dedent(
            """\
        [calendar]
        slug = "standup"
        name = "Standup"
        timezone = "America/New_York"

        [[entries]]
        uid = "daily"
        title = "Daily standup"
        start = 2025-09-01T09:00:00
        duration = "PT15M"
        rrule = "FREQ=DAILY;COUNT=5"
        """
        ),
        encoding="utf-8",
    )
    assert run_cli("import", "schedules/standup.toml").exit_code == 0
    shown = json.loads(run_cli("show", "daily", "--json").output)
    assert shown.get("rrule") == "FREQ=DAILY;COUNT=5"
    assert "FREQ=DAILY;COUNT=5" in run_cli("show", "daily").output


def test_list_day_filter_finds_later_occurrence_of_recurring_entry(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    """A daily standup from 1 to 5 Sep happens on 3 Sep, but
    `list --from 2025-09-03 --to 2025-09-03` prints "no entries match"."""
    (workdir / "schedules" / "standup.toml").write_text(
        textwrap.dedent(
            """\
        [calendar]
        slug = "standup"
        name = "Standup"
        timezone = "America/New_York"

        [[entries]]
        uid = "daily"
        title = "Daily standup"
        start = 2025-09-01T09:00:00
        duration = "PT15M"
        rrule = "FREQ=DAILY;COUNT=5"
        """
        ),
        encoding="utf-8",
    )
    assert run_cli("import", "schedules/standup.toml").exit_code == 0
    result = run_cli("list", "--calendar", "standup", "--from", "2025-09-03", "--to", "2025-09-03")
    assert "daily" in result.output, result.output
