"""``calendar-svc add``, ``edit``, ``move`` and ``api-key``: one validator, ownership, keys."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from calendar_svc.errors import InputError
from calendar_svc.schedule_files import parse_schedule

CLI = Callable[..., Result]
TRIP = "rubio-2025-09"


@pytest.fixture
def cli(run_cli: CLI) -> CLI:
    result = run_cli("import", "schedules/rubio-2025-09.toml")
    assert result.exit_code == 0, result.output
    return run_cli


def test_add_prints_the_entry_as_show_does(cli: CLI) -> None:
    added = cli(
        "add", TRIP, "--title", "Press conference", "--start", "2025-09-03 16:00",
        "--zone", "America/Mexico_City", "--duration", "PT1H", "--location", "Palacio Nacional",
        "--city", "Mexico City", "--category", "press", "--reminder", "PT30M",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.output.startswith(f"added {TRIP}/press-conference\n")
    shown = cli("show", "press-conference", "--calendar", TRIP)
    assert added.output.split("\n", 1)[1] == shown.output
    assert "Wed 2025-09-03 16:00 CST (UTC-06:00) → 17:00" in shown.output
    data = json.loads(cli("show", "press-conference", "--json").output)
    assert (data["start_utc"], data["end_utc"]) == ("2025-09-03T22:00:00Z", "2025-09-03T23:00:00Z")
    assert data["reminders"] == ["PT30M"] and data["categories"] == ["press"]
    again = cli("add", TRIP, "--title", "Press conference", "--start", "2025-09-04")
    assert again.exit_code == 0 and f"added {TRIP}/press-conference-2" in again.output
    assert "(all day)" in again.output


def test_add_refuses_as_a_schedule_file_does_with_the_same_words(cli: CLI) -> None:
    refused = cli(
        "add", TRIP, "--title", "Meeting", "--start", "2025-09-04 10:00", "--zone", "America/Quito",
    )  # fmt: skip
    assert refused.exit_code == 2
    with pytest.raises(InputError) as toml:
        parse_schedule(
            tomllib.loads(
                '[calendar]\nslug = "x"\nname = "x"\ntimezone = "UTC"\n'
                '[[entries]]\nuid = "m"\ntitle = "Meeting"\nstart = 2025-09-04T10:00:00\n'
                'timezone = "America/Quito"\n'
            ),
            source="x.toml",
        )
    assert refused.output == f"calendar-svc: error: --zone: {toml.value.detail}\n"
    gap = cli(
        "add", TRIP, "--title", "x", "--start", "2025-03-09 02:30", "--zone", "America/New_York",
    )  # fmt: skip
    assert gap.exit_code == 2 and "--start: 2025-03-09 02:30 does not exist" in gap.output
    both = cli("add", TRIP, "--title", "x", "--start", "2025-09-04 10:00", "--end",
               "2025-09-04 11:00", "--duration", "PT1H")  # fmt: skip
    assert both.exit_code == 2 and "--duration: give either end or duration" in both.output
    assert cli("show", "x", "--calendar", TRIP).exit_code == 2  # nothing was added


def test_edit_and_move_refuse_a_file_owned_entry_unless_detached(cli: CLI, workdir: Path) -> None:
    refused = cli("move", TRIP, "noboa-meeting", "--by", "PT1H")
    assert refused.exit_code == 2
    assert "belongs to schedule file" in refused.output and "--detach" in refused.output
    assert str((workdir / "schedules" / "rubio-2025-09.toml").resolve()) in refused.output
    moved = cli("move", TRIP, "noboa-meeting", "--by", "PT1H", "--detach")
    assert moved.exit_code == 0, moved.output
    assert "Thu 2025-09-04 11:00 -05 (UTC-05:00) → 12:30" in moved.output
    assert "sequence:   1" in moved.output
    # The file's next import leaves it alone, and says so.
    path = workdir / "schedules" / "rubio-2025-09.toml"
    path.write_text(path.read_text().replace("Meeting with President Daniel Noboa", "Noboa"))
    imported = cli("import", str(path))
    assert "= noboa-meeting (owned by api)" in imported.output
    shown = cli("show", "noboa-meeting", "--json")
    data = json.loads(shown.output)
    assert data["title"] == "Meeting with President Daniel Noboa"
    assert data["start_utc"] == "2025-09-04T16:00:00Z"
    # Detached, it no longer needs --detach.
    assert cli("edit", TRIP, "noboa-meeting", "--title", "Noboa").exit_code == 0


def test_move_by_and_to_keep_the_length(cli: CLI) -> None:
    flight = cli("move", TRIP, "flight-mex-uio", "--to", "15:00", "--detach")
    assert flight.exit_code == 0, flight.output
    # It lands in Quito 4 h 45 later, in Quito's zone.
    assert "Wed 2025-09-03 15:00 CST (UTC-06:00) → Wed 2025-09-03 19:45 -05 (UTC-05:00)" in (
        flight.output
    )
    trip = cli("move", TRIP, "trip-overview", "--by", "P1D", "--detach")
    assert "Wed 2025-09-03 → Fri 2025-09-05 (all day)" in trip.output
    half = cli("move", TRIP, "trip-overview", "--by", "PT12H")
    assert half.exit_code == 2 and "whole days" in half.output
    earlier = cli("move", TRIP, "trip-overview", "--by=-P1D")
    assert "Tue 2025-09-02 → Thu 2025-09-04 (all day)" in earlier.output
    neither = cli("move", TRIP, "trip-overview")
    assert neither.exit_code == 2 and "--by DURATION or --to TIME" in neither.output
    bad = cli("move", TRIP, "trip-overview", "--to", "tomorrow")
    assert bad.exit_code == 2 and bad.output.startswith("calendar-svc: error: --to: ")


def test_edit_changes_only_what_is_given(cli: CLI) -> None:
    before = json.loads(cli("show", "sheinbaum-bilateral", "--json").output)
    edited = cli(
        "edit", TRIP, "sheinbaum-bilateral", "--start", "2025-09-02 12:00", "--detach",
        "--reminder", "PT2H",
    )  # fmt: skip
    assert edited.exit_code == 0, edited.output
    after = json.loads(cli("show", "sheinbaum-bilateral", "--json").output)
    assert (
        after["start_utc"] == "2025-09-02T18:00:00Z" and after["end_utc"] == "2025-09-02T19:30:00Z"
    )
    assert after["reminders"] == ["PT2H"] and after["sequence"] == before["sequence"] + 1
    unchanged = {k: v for k, v in before.items() if k not in ("start", "end", "start_utc",
                 "end_utc", "reminders", "sequence", "updated")}  # fmt: skip
    assert {k: after[k] for k in unchanged} == unchanged
    assert cli("edit", TRIP, "sheinbaum-bilateral").exit_code == 2  # nothing to change
    default = cli("edit", TRIP, "sheinbaum-bilateral", "--default-reminders")
    assert "reminders:  calendar default" in default.output


def test_api_keys_are_created_listed_and_revoked(cli: CLI) -> None:
    created = cli("api-key", "create", "--name", "booking", "--calendar", TRIP, "--expires", "P30D")
    assert created.exit_code == 0, created.output
    token = re.search(r"^(csk_\S+)$", created.output, re.M)
    assert token is not None
    listed = cli("api-key", "list")
    assert "booking" in listed.output and "active" in listed.output
    assert token.group(1) not in listed.output and token.group(1)[4:12] not in listed.output
    as_json = json.loads(cli("api-key", "list", "--json").output)
    assert as_json[0]["calendars"] == [TRIP] and as_json[0]["read_only"] is False
    twice = cli("api-key", "create", "--name", "booking")
    assert twice.exit_code == 2 and "already called 'booking'" in twice.output
    unknown = cli("api-key", "create", "--name", "x", "--calendar", "nope")
    assert unknown.exit_code == 2 and "no calendar 'nope'" in unknown.output
    assert cli("api-key", "revoke", "booking").exit_code == 0
    assert json.loads(cli("api-key", "list", "--json").output)[0]["state"] == "revoked"
    gone = cli("api-key", "revoke", "booking")
    assert gone.exit_code == 2 and "no live API key called 'booking'" in gone.output
