"""Schedule files: the trip reads as the article says, and every bad input is one clear error
that names the file, the entry and the field, and leaves the database exactly as it was."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from calendar_svc.errors import InputError
from calendar_svc.schedule_files import load_file, parse_schedule
from calendar_svc.timezones import UTC

HEADER = """\
[calendar]
slug = "test-cal"
name = "Test"
timezone = "America/Mexico_City"
"""


def test_trip_file_matches_the_article(trip_path: Path) -> None:
    spec = load_file(trip_path)
    assert spec.slug == "rubio-2025-09"
    by_uid = {e.uid: e for e in spec.entries}
    bilateral = by_uid["sheinbaum-bilateral"]
    assert bilateral.start_utc == datetime(2025, 9, 2, 16, 0, tzinfo=UTC)
    assert bilateral.start_tz == "America/Mexico_City"
    flight = by_uid["flight-mex-uio"]
    assert (flight.start_tz, flight.end_tz) == ("America/Mexico_City", "America/Guayaquil")
    assert flight.end_utc - flight.start_utc == timedelta(hours=3, minutes=45)
    home = by_uid["flight-uio-was"]
    assert home.end_tz == "America/New_York"
    assert home.end_utc == datetime(2025, 9, 5, 1, 30, tzinfo=UTC)
    noboa = by_uid["noboa-meeting"]
    assert noboa.start_tz == "America/Guayaquil" and noboa.city == "Quito"
    assert noboa.start_local == datetime(2025, 9, 4, 10, 0)
    overview = by_uid["trip-overview"]
    assert overview.all_day and overview.reminders == ()
    days = {e.start_local.date().isoformat() for e in spec.entries if not e.all_day}
    assert days == {"2025-09-02", "2025-09-03", "2025-09-04"}
    assert "illustrative" in trip_path.read_text(encoding="utf-8").lower()


def parse(body: str) -> object:
    import tomllib

    return parse_schedule(tomllib.loads(HEADER + textwrap.dedent(body)), source="f.toml")


def test_offset_datetime_is_kept_as_wall_time_in_the_entry_zone() -> None:
    spec = parse("""\
        [[entries]]
        uid = "a"
        title = "A"
        start = 2025-09-02T16:00:00Z
        """)
    entry = spec.entries[0]  # type: ignore[attr-defined]
    assert entry.start_local == datetime(2025, 9, 2, 10, 0)
    assert entry.start_utc == datetime(2025, 9, 2, 16, 0, tzinfo=UTC)


def test_all_day_entry_is_dates_with_exclusive_end_instant() -> None:
    spec = parse("""\
        [[entries]]
        uid = "a"
        title = "A"
        start = 2025-09-04
        timezone = "America/Guayaquil"
        """)
    entry = spec.entries[0]  # type: ignore[attr-defined]
    assert entry.all_day
    assert entry.start_utc == datetime(2025, 9, 4, 5, 0, tzinfo=UTC)
    assert entry.end_utc == datetime(2025, 9, 5, 5, 0, tzinfo=UTC)


def test_fold_in_file_picks_the_occurrence() -> None:
    spec = parse("""\
        [[entries]]
        uid = "late-call"
        title = "Call"
        timezone = "America/New_York"
        start = 2025-11-02T01:30:00
        fold = 1
        """)
    assert spec.entries[0].start_utc == datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # type: ignore[attr-defined]


# (name, file body, entry, field, message fragment)
BAD_INPUTS = [
    (
        "unknown zone",
        '[[entries]]\nuid = "q"\ntitle = "Q"\nstart = 2025-09-04T10:00:00\ntimezone = "America/Quito"\n',
        "q",
        "timezone",
        "use 'America/Guayaquil'",
    ),
    (
        "end before start",
        '[[entries]]\nuid = "e"\ntitle = "E"\nstart = 2025-09-02T10:00:00\nend = 2025-09-02T09:00:00\n',
        "e",
        "end",
        "ends before it starts",
    ),
    (
        "missing title",
        '[[entries]]\nuid = "t"\nstart = 2025-09-02T10:00:00\n',
        "t",
        "title",
        "required",
    ),
    (
        "blank title",
        '[[entries]]\nuid = "b"\ntitle = " \\u0001\\t"\nstart = 2025-09-02T10:00:00\n',
        "b",
        "title",
        "must not be empty",
    ),
    (
        "missing uid",
        '[[entries]]\ntitle = "No uid"\nstart = 2025-09-02T10:00:00\n',
        "#1",
        "uid",
        "required",
    ),
    (
        "duplicate uid",
        '[[entries]]\nuid = "d"\ntitle = "1"\nstart = 2025-09-02T10:00:00\n[[entries]]\nuid = "d"\ntitle = "2"\nstart = 2025-09-02T11:00:00\n',
        "d (#2)",
        "uid",
        "duplicate uid",
    ),
    (
        "bad duration",
        '[[entries]]\nuid = "r"\ntitle = "R"\nstart = 2025-09-02T10:00:00\nreminders = ["1 hour"]\n',
        "r",
        "reminders",
        "not an ISO 8601 duration",
    ),
    (
        "gap without fold",
        '[[entries]]\nuid = "g"\ntitle = "G"\nstart = 2025-03-09T02:30:00\ntimezone = "America/New_York"\n',
        "g",
        "start",
        "does not exist",
    ),
    (
        "fold without fold",
        '[[entries]]\nuid = "f"\ntitle = "F"\nstart = 2025-11-02T01:30:00\ntimezone = "America/New_York"\n',
        "f",
        "start",
        "happens twice",
    ),
    (
        "impossible date",
        '[[entries]]\nuid = "feb"\ntitle = "Feb"\nstart = 2025-02-30T10:00:00\n',
        "feb",
        "start",
        "TOML syntax error",
    ),
    (
        "bad status",
        '[[entries]]\nuid = "s"\ntitle = "S"\nstart = 2025-09-02T10:00:00\nstatus = "postponed"\n',
        "s",
        "status",
        "expected one of confirmed, tentative, cancelled",
    ),
    (
        "unknown key",
        '[[entries]]\nuid = "k"\ntitle = "K"\nstart = 2025-09-02T10:00:00\nlocaton = "typo"\n',
        "k",
        "locaton",
        "unknown key",
    ),
    (
        "date end for timed",
        '[[entries]]\nuid = "m"\ntitle = "M"\nstart = 2025-09-02T10:00:00\nend = 2025-09-03\n',
        "m",
        "end",
        "a date, but start is a date-time",
    ),
    (
        "bad geo",
        '[[entries]]\nuid = "geo"\ntitle = "G"\nstart = 2025-09-02T10:00:00\ngeo = [200, 0]\n',
        "geo",
        "geo",
        "latitude, longitude",
    ),
    (
        "uid with spaces",
        '[[entries]]\nuid = "a b"\ntitle = "A"\nstart = 2025-09-02T10:00:00\n',
        "#1",
        "uid",
        "no spaces",
    ),
    ("missing start", '[[entries]]\nuid = "ns"\ntitle = "A"\n', "ns", "start", "required"),
]


def snapshot(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


@pytest.mark.parametrize(
    ("name", "body", "entry", "field", "fragment"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_is_one_clear_error_and_changes_nothing(
    run_cli: Callable[..., Result],
    workdir: Path,
    name: str,
    body: str,
    entry: str,
    field: str,
    fragment: str,
) -> None:
    assert run_cli("import", "schedules/rubio-2025-09.toml").exit_code == 0
    db = workdir / "var" / "calendar.sqlite3"
    before = snapshot(db)
    good = workdir / "good.toml"
    good.write_text(
        HEADER.replace("test-cal", "other-cal")
        + '[[entries]]\nuid = "ok"\ntitle = "OK"\nstart = 2025-09-02T10:00:00\n'
    )
    bad = workdir / "bad.toml"
    bad.write_text(HEADER + body, encoding="utf-8")

    result = run_cli("import", str(good), str(bad))

    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert str(bad) in message
    assert f"entry {entry}" in message
    assert f"field {field!r}" in message
    assert fragment in message
    assert "Traceback" not in message
    assert snapshot(db) == before  # the good file in the same run was not written either


def test_non_utf8_file(run_cli: Callable[..., Result], workdir: Path) -> None:
    bad = workdir / "latin1.toml"
    bad.write_bytes(
        (
            HEADER + '[[entries]]\nuid = "x"\ntitle = "Reunión"\nstart = 2025-09-02T10:00:00\n'
        ).encode("latin-1")
    )
    result = run_cli("import", str(bad))
    assert result.exit_code == 2
    assert "not UTF-8" in result.output and "line 7" in result.output and str(bad) in result.output


def test_toml_syntax_error_names_line(run_cli: Callable[..., Result], workdir: Path) -> None:
    bad = workdir / "syntax.toml"
    bad.write_text(HEADER + '[[entries]]\nuid = "x"\ntitle = "unterminated\n')
    result = run_cli("import", str(bad))
    assert result.exit_code == 2
    assert "TOML syntax error" in result.output and "line 7" in result.output
    assert "entry x" in result.output


def test_same_calendar_in_two_files_is_refused(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    copy = workdir / "copy.toml"
    copy.write_text((workdir / "schedules" / "rubio-2025-09.toml").read_text())
    result = run_cli("import", "schedules/rubio-2025-09.toml", str(copy))
    assert result.exit_code == 2
    assert "also defined in" in result.output


def test_missing_file(run_cli: Callable[..., Result]) -> None:
    result = run_cli("import", "nope.toml")
    assert result.exit_code == 2
    assert "nope.toml" in result.output


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"entries": []}, "calendar", "required, and missing (the [calendar] table"),
        ({"calendar": "x"}, "calendar", "expected a table, got string 'x'"),
        (
            {"calendar": {}, "entry": []},
            "entry",
            "unknown key (known keys here: calendar, entries)",
        ),
        (
            {"calendar": {"slug": "a", "name": "A", "timezone": "UTC"}, "entries": {}},
            "entries",
            "expected an array of tables ([[entries]]), got table",
        ),
        ({"calendar": {"name": "A", "timezone": "UTC"}}, "calendar.slug", "required, and missing"),
        (
            {"calendar": {"slug": "a", "name": "A", "timezone": "UTC", "zone": "UTC"}},
            "calendar.zone",
            "unknown key",
        ),
    ],
)
def test_the_file_and_its_calendar_table_speak_like_every_table(
    data: dict[str, object], field: str, words: str
) -> None:
    """The top level and [calendar] are read by their schema, like config's sections."""
    with pytest.raises(InputError) as caught:
        parse_schedule(data, source="f.toml")
    assert (caught.value.file, caught.value.field) == ("f.toml", field)
    assert words in caught.value.detail


def test_input_error_message_shape() -> None:
    err = InputError("bad", file="a.toml", entry="x", field="start")
    assert str(err) == "a.toml: entry x: field 'start': bad"


def test_list_json_after_import(run_cli: Callable[..., Result]) -> None:
    assert run_cli("import", "schedules/rubio-2025-09.toml").exit_code == 0
    data = json.loads(run_cli("list", "--json").output)
    assert len(data) == 11
    by_uid = {row["uid"]: row for row in data}
    required = {
        "calendar",
        "uid",
        "title",
        "start",
        "end",
        "timezone",
        "end_timezone",
        "start_utc",
        "end_utc",
        "all_day",
        "location",
        "city",
        "status",
        "categories",
        "reminders",
    }
    assert all(required <= set(row) for row in data)
    assert by_uid["sheinbaum-bilateral"]["start"] == "2025-09-02T10:00:00-06:00"
    assert by_uid["sheinbaum-bilateral"]["start_utc"] == "2025-09-02T16:00:00Z"
    assert by_uid["noboa-meeting"]["start"] == "2025-09-04T10:00:00-05:00"
    assert by_uid["flight-mex-uio"]["end"] == "2025-09-03T18:45:00-05:00"
    assert by_uid["flight-mex-uio"]["end_timezone"] == "America/Guayaquil"
    assert by_uid["flight-uio-was"]["end"] == "2025-09-04T21:30:00-04:00"
    assert by_uid["trip-overview"]["all_day"] is True
    assert by_uid["trip-overview"]["start"] == "2025-09-02"
    mexico = [r for r in data if r["city"] == "Mexico City" and not r["all_day"]]
    assert mexico and all(r["start"].endswith("-06:00") for r in mexico)
    quito = [r for r in data if r["city"] == "Quito"]
    assert quito and all(r["start"].endswith("-05:00") for r in quito)


def test_schedule_file_with_utf8_bom_is_accepted(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    """Windows editors (Notepad, PowerShell's Out-File -Encoding utf8) write a BOM.
    The import then fails with "TOML syntax error: Invalid statement (at line 1, column 1)",
    which does not tell the user what is wrong. Either accept it, or say "BOM"."""
    path = workdir / "schedules" / "rubio-2025-09.toml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = run_cli("import", "schedules/rubio-2025-09.toml")
    assert result.exit_code == 0 or "BOM" in result.output, result.output


def test_offset_datetime_with_fractional_seconds_is_consistent(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    """`start = 2025-09-02T16:00:00.5Z` lists as start "...10:00:00.500000-06:00" but
    start_utc "...16:00:00Z", and a one-hour entry shows as "59m"; local wall times
    drop sub-seconds, instants given with an offset keep them."""
    (workdir / "schedules" / "frac.toml").write_text(
        textwrap.dedent(
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
        """
        ),
        encoding="utf-8",
    )
    assert run_cli("import", "schedules/frac.toml").exit_code == 0
    (entry,) = json.loads(run_cli("list", "--calendar", "frac", "--json").output)
    assert entry["start"] == "2025-09-02T10:00:00-06:00"
    assert entry["end"] == "2025-09-02T11:00:00-06:00"
    assert " 1h00 " in run_cli("list", "--calendar", "frac").output
