"""Defects found by QA while using calendar-svc as a new user would.

Each test fails on the code as it was when the defect was found and asserts
what a user would notice. Only the shared fixtures of ``conftest.py`` are used.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from calendar_svc.errors import CalendarSvcError
from calendar_svc.importer import import_specs
from calendar_svc.schedule_files import load_file
from calendar_svc.store import Store

Cli = Callable[..., Result]


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _add_to_config(workdir: Path, text: str) -> None:
    config = workdir / "config.toml"
    config.write_text(config.read_text() + textwrap.dedent(text))


# --- foundation ------------------------------------------------------------------


def test_city_filter_finds_non_ascii_city_on_sqlite(run_cli: Cli, workdir: Path) -> None:
    """`list --city Łódź` must find an entry whose city is exactly "Łódź".

    SQLite's lower() only folds ASCII, while the filter lower-cases the argument in
    Python, so on the default backend a city starting with a non-ASCII capital is
    never found, not even spelt exactly as in the file (PostgreSQL finds it).
    """
    _write(
        workdir / "schedules" / "poland.toml",
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
        """,
    )
    assert run_cli("import", "schedules/poland.toml").exit_code == 0
    for city, uid in (("Łódź", "lodz"), ("łódź", "lodz"), ("Édes", "edes"), ("ÉDES", "edes")):
        result = run_cli("list", "--city", city, "--json")
        assert result.exit_code == 0
        assert [e["uid"] for e in json.loads(result.output)] == [uid], city


def test_long_calendar_name_and_city_import_or_fail_cleanly(store: Store, tmp_path: Path) -> None:
    """A 300-character calendar name or city is accepted by the schedule parser, then
    crashes the import on PostgreSQL with a DataError traceback (VARCHAR(255)).

    On every backend it must either be stored in full or refused as bad input.
    (The PostgreSQL variant runs when CALENDAR_SVC_TEST_PG_URL is set, as in .ci/run.)
    """
    path = _write(
        tmp_path / "long.toml",
        f"""\
        [calendar]
        slug = "long"
        name = "{"N" * 300}"
        timezone = "America/Mexico_City"

        [[entries]]
        uid = "a"
        title = "x"
        start = 2025-09-02T10:00:00
        city = "{"C" * 300}"
        """,
    )
    try:
        spec = load_file(path)
        with store.write() as session:
            import_specs(session, [spec], now=store.clock())
    except CalendarSvcError:
        return  # refused cleanly: fine
    (entry,) = store.entries()
    assert entry.city == "C" * 300
    assert store.get_calendar("long").name == "N" * 300


def test_unreachable_database_is_one_line(run_cli: Cli) -> None:
    """README: "Errors are one line on stderr". A refused PostgreSQL connection prints
    three lines (psycopg's hint and SQLAlchemy's "Background on this error" link)."""
    result = run_cli("--db", "postgresql+psycopg://nobody@127.0.0.1:1/x", "list")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("calendar-svc: error:")
    assert "sqlalche.me" not in result.stderr


def test_schedule_file_with_utf8_bom_is_accepted(run_cli: Cli, workdir: Path) -> None:
    """Windows editors (Notepad, PowerShell's Out-File -Encoding utf8) write a BOM.
    The import then fails with "TOML syntax error: Invalid statement (at line 1, column 1)",
    which does not tell the user what is wrong. Either accept it, or say "BOM"."""
    path = workdir / "schedules" / "rubio-2025-09.toml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = run_cli("import", "schedules/rubio-2025-09.toml")
    assert result.exit_code == 0 or "BOM" in result.output, result.output


def test_config_with_utf8_bom_is_accepted(run_cli: Cli, workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_bytes(b"\xef\xbb\xbf" + config.read_bytes())
    result = run_cli("calendars")
    assert result.exit_code == 0 or "BOM" in result.output, result.output


def test_recurring_entry_shows_its_rule(run_cli: Cli, workdir: Path) -> None:
    """`show --json` / `list --json` never mention `rrule`: a user cannot see that an
    entry repeats (and `show`, "one entry in full", does not print it either)."""
    _write(
        workdir / "schedules" / "standup.toml",
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
        """,
    )
    assert run_cli("import", "schedules/standup.toml").exit_code == 0
    shown = json.loads(run_cli("show", "daily", "--json").output)
    assert shown.get("rrule") == "FREQ=DAILY;COUNT=5"
    assert "FREQ=DAILY;COUNT=5" in run_cli("show", "daily").output


def test_list_day_filter_finds_later_occurrence_of_recurring_entry(
    run_cli: Cli, workdir: Path
) -> None:
    """A daily standup from 1 to 5 Sep happens on 3 Sep, but
    `list --from 2025-09-03 --to 2025-09-03` prints "no entries match"."""
    _write(
        workdir / "schedules" / "standup.toml",
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
        """,
    )
    assert run_cli("import", "schedules/standup.toml").exit_code == 0
    result = run_cli("list", "--calendar", "standup", "--from", "2025-09-03", "--to", "2025-09-03")
    assert "daily" in result.output, result.output


def test_offset_datetime_with_fractional_seconds_is_consistent(run_cli: Cli, workdir: Path) -> None:
    """`start = 2025-09-02T16:00:00.5Z` lists as start "...10:00:00.500000-06:00" but
    start_utc "...16:00:00Z", and a one-hour entry shows as "59m"; local wall times
    drop sub-seconds, instants given with an offset keep them."""
    _write(
        workdir / "schedules" / "frac.toml",
        """\
        [calendar]
        slug = "frac"
        name = "Frac"
        timezone = "America/Mexico_City"

        [[entries]]
        uid = "a"
        title = "x"
        start = 2025-09-02T16:00:00.5Z
        end = 2025-09-02T17:00:00.5Z
        """,
    )
    assert run_cli("import", "schedules/frac.toml").exit_code == 0
    (entry,) = json.loads(run_cli("list", "--calendar", "frac", "--json").output)
    assert entry["start"] == "2025-09-02T10:00:00-06:00"
    assert entry["end"] == "2025-09-02T11:00:00-06:00"
    assert " 1h00 " in run_cli("list", "--calendar", "frac").output


def test_config_env_var_error_names_the_env_var(
    run_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CALENDAR_SVC_CONFIG=/nonexistent the error says "(given with --config)",
    sending the user to look for a --config flag they never passed."""
    monkeypatch.setenv("CALENDAR_SVC_CONFIG", "/nonexistent/calendar-svc.toml")
    result = run_cli("calendars")
    assert result.exit_code == 2
    assert "CALENDAR_SVC_CONFIG" in result.output
    assert "given with --config" not in result.output


# --- notifiers --------------------------------------------------------------------


def test_webhook_non_ascii_header_value_is_a_config_error(run_cli: Cli, workdir: Path) -> None:
    """`headers = { "X-Team" = "Ñandú" }` makes notify-test (and the daemon at start)
    die with a UnicodeEncodeError traceback from httpx instead of a config error."""
    _add_to_config(
        workdir,
        """
        [notifiers.hook]
        type = "webhook"
        url = "http://127.0.0.1:1/hook"
        allow_private = true
        headers = { "X-Team" = "Ñandú" }
        """,
    )
    result = run_cli("notify-test", "hook", "--sample")
    assert result.exit_code == 2
    assert "notifiers.hook.headers" in result.output


@pytest.mark.parametrize(
    "headers",
    ['{ "bad header" = "x" }', '{ "X-Team" = "a\\nb" }'],
    ids=["space-in-name", "newline-in-value"],
)
def test_webhook_invalid_header_is_a_config_error(
    run_cli: Cli, workdir: Path, headers: str
) -> None:
    """An illegal header name or value is accepted at start and then fails every send
    as *retryable* (the daemon retries a config typo for an hour); it is a config error."""
    _add_to_config(
        workdir,
        f"""
        [notifiers.hook]
        type = "webhook"
        url = "http://127.0.0.1:1/hook"
        allow_private = true
        headers = {headers}
        """,
    )
    result = run_cli("notify-test", "hook", "--sample")
    assert result.exit_code == 2, result.output
    assert "notifiers.hook.headers" in result.output


@pytest.mark.parametrize("kind", ["smtp", "mqtt"])
def test_notifier_port_out_of_range_is_a_config_error(
    run_cli: Cli, workdir: Path, kind: str
) -> None:
    """`port = -1` (or 70000) is accepted and every send then fails as *retryable*
    ("gaierror" / "Invalid port number"); feed.port is range-checked, notifier ports not."""
    extra = (
        'security = "plain"\nfrom = "calendar@example.org"\nto = ["ops@example.org"]'
        if kind == "smtp"
        else 'topic = "calendar/reminders"'
    )
    _add_to_config(
        workdir,
        f'\n[notifiers.chan]\ntype = "{kind}"\nhost = "127.0.0.1"\nport = -1\n{extra}\n',
    )
    result = run_cli("notify-test", "chan", "--sample")
    assert result.exit_code == 2, result.output
    assert "notifiers.chan.port" in result.output


def test_notifier_type_is_required_as_documented(run_cli: Cli, workdir: Path) -> None:
    """README's config table says `notifiers.NAME.type` is required; a table without it
    is one error naming the key, and the README must not claim a default."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `notifiers.NAME.type`"))
    assert "required" in row
    config = workdir / "config.toml"
    config.write_text(
        config.read_text().replace(
            '[notifiers.console]\ntype = "console"\n', '[notifiers.console]\nstream = "stdout"\n'
        )
    )
    result = run_cli("notify-test", "console", "--sample")
    assert result.exit_code == 2, result.output
    assert "notifiers.console.type" in result.output and "missing" in result.output


def test_smtp_accepts_display_names(run_cli: Cli, workdir: Path) -> None:
    config = workdir / "config.toml"
    config.write_text(
        config.read_text()
        + '\n[notifiers.mail]\ntype = "smtp"\nhost = "127.0.0.1"\nport = 2525\nsecurity = "plain"\n'
        'from = "Calendar <cal@example.org>"\nto = ["Ops Team <ops@example.org>"]\n'
    )
    # Building the channel validates the addresses; the send itself then fails to connect.
    result = run_cli("notify-test", "mail", "--sample")
    assert "is not an e-mail address" not in result.output
    assert result.exit_code == 1, result.output
