"""One way to show a zoned time, everywhere a person reads one.

``list``, ``show``, ``reminders`` and reminder messages all write a time as
``timezones.time_text`` does: wall time, the tz database's abbreviation, the UTC
offset. Quito's zone has no letters, so it is ``-05``, never left out.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import peers
from click.testing import Result
from peers import sheinbaum_entry

from calendar_svc.config import DisplayConfig

QUITO = "10:00 -05 (UTC-05:00)"


def test_list_show_and_reminders_say_a_quito_time_the_same_way(
    run_cli: Callable[..., Result],
) -> None:
    run_cli("import", "schedules/rubio-2025-09.toml")
    assert f"Thu 2025-09-04 {QUITO} → 11:30" in run_cli("list").output
    assert f"when:       Thu 2025-09-04 {QUITO} → 11:30" in run_cli("show", "noboa-meeting").output
    lines = run_cli("reminders", "--from", "2025-09-04", "--to", "2025-09-04").output
    noboa = next(line for line in lines.splitlines() if "PT1H before" in line and "noboa" in line)
    # Due an hour before, shown in Quito and in the [display] zone alike.
    assert noboa.startswith("2025-09-04T14:00:00Z  Thu 2025-09-04 09:00 -05 (UTC-05:00)")
    assert "[10:00 EDT (UTC-04:00) Washington]" in noboa


def test_a_reminder_message_says_it_the_same_way() -> None:
    entry = sheinbaum_entry(
        start_tz="America/Guayaquil", location="Palacio de Carondelet", city="Quito"
    )
    reminder = peers.reminder(
        entry=entry,
        start=datetime(2025, 9, 4, 10, 0),
        late=True,
        display=DisplayConfig(timezone="America/New_York", label="Washington"),
    )
    assert reminder.title.endswith(f"(starts {QUITO})")
    assert reminder.body.startswith(
        f"Thu 4 Sep 2025, {QUITO} — 11:00 EDT (UTC-04:00) in Washington"
    )
    assert (reminder.variables["time"], reminder.variables["zone"]) == ("10:00", "-05")


def test_an_entry_in_2040_is_shown_and_reminded_in_summer_time(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    """Past pytz's 2037: 12:00 on 4 July 2040 in New York is 16:00Z (EDT), and its
    one-hour reminder is due at 15:00Z."""
    (workdir / "schedules" / "future.toml").write_text(
        textwrap.dedent("""\
        [calendar]
        slug = "future"
        name = "Future"
        timezone = "America/New_York"
        reminders = ["PT1H"]

        [[entries]]
        uid = "july-4-2040"
        title = "Independence Day lunch"
        start = 2040-07-04T12:00:00
        end = 2040-07-04T13:00:00
        """)
    )
    assert run_cli("import", "schedules/future.toml").exit_code == 0
    assert (
        "Wed 2040-07-04 12:00 EDT (UTC-04:00) → 13:00"
        in run_cli("list", "--calendar", "future").output
    )
    shown = json.loads(run_cli("show", "july-4-2040", "--json").output)
    assert (shown["start"], shown["start_utc"]) == (
        "2040-07-04T12:00:00-04:00",
        "2040-07-04T16:00:00Z",
    )
    due = json.loads(
        run_cli("reminders", "--from", "2040-07-04", "--to", "2040-07-04", "--json").output
    )
    assert [(r["uid"], r["due_utc"]) for r in due] == [("july-4-2040", "2040-07-04T15:00:00Z")]


def test_version_names_the_tz_database(run_cli: Callable[..., Result]) -> None:
    import pytz

    out = run_cli("--version").output.splitlines()
    assert out[0].startswith("calendar-svc, version ")
    assert out[1] == (
        f"tz database {vars(pytz)['OLSON_VERSION']} (pytz {pytz.VERSION}, pytz's own folder)"
    )
