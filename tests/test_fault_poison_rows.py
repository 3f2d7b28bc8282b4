"""Issue 12, "Defence in depth": a bad row already in the database is isolated.

An old version wrote it, or someone edited the database by hand: the entry is
written straight into SQLite here (``UPDATE entries SET rrule = ...``). The
planner, ``reminders``, ``export``, ``list`` and the feed skip that entry and
name it, every other entry keeps being planned and sent, ``/healthz`` says
``"degraded"`` and names the entry, and ``/metrics`` counts it.

Today one such row stops planning for every calendar (``daemon.tick_failed``
every tick) while ``/healthz`` answers ``ok``, and the CLI ends in a traceback.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from faults import (
    TRIP,
    TRIP_SLUG,
    Daemon,
    Inbox,
    assert_ok,
    cli,
    daemons_killed,
    entry,
    feed_token,
    full_only,
    healthz,
    http,
    in_seconds,
    prepared_database,
    sqlite_execute,
    until_changed,
    webhook,
    write_calendar,
    write_config,
)

# (kind, SQL setting the poison on the entry named by :uid)
POISONS = {
    "rrule": "UPDATE entries SET rrule = 'FREQ=DAILY;BYHOUR=99' WHERE uid = :uid",
    "offset": "UPDATE entries SET reminders = '[\"P1X\"]' WHERE uid = :uid",
    "huge-offset": "UPDATE entries SET reminders = '[\"P999999999D\"]' WHERE uid = :uid",
    "zone": "UPDATE entries SET start_tz = 'Mars/Olympus_Mons' WHERE uid = :uid",
}

BAD = "sheinbaum-bilateral"  # a trip entry on 2 Sep 2025
OTHERS = ("noboa-meeting", "embassy-mexico-city", "flight-mex-uio")


def poison(db: Path, kind: str, uid: str) -> None:
    assert sqlite_execute(db, POISONS[kind], {"uid": uid}) == 1


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("template")
    config = write_config(folder)
    assert_ok(cli(config, "import", str(TRIP)))
    return folder / "var" / "calendar.sqlite3"


def _cases() -> list[Any]:
    return [
        pytest.param(kind, command, id=f"{kind}-{command}")
        for kind in POISONS
        for command in ("reminders", "export", "list")
    ]


@pytest.mark.parametrize(("kind", "command"), _cases())
def test_cli_skips_a_poisoned_row_names_it_and_shows_the_rest(
    template: Path, tmp_path: Path, kind: str, command: str
) -> None:
    config, db = prepared_database(template, tmp_path)
    poison(db, kind, BAD)
    args = {
        "reminders": ("reminders", "--from", "2025-09-01", "--to", "2025-09-06", "--json"),
        "export": ("export", "--calendar", TRIP_SLUG),
        "list": ("list", "--json"),
    }[command]
    outcome = cli(config, *args)
    assert_ok(outcome)
    for uid in OTHERS:
        assert uid in outcome.stdout, outcome.describe()
    if command == "reminders":
        assert BAD not in {r["uid"] for r in json.loads(outcome.stdout)}, outcome.describe()
    if command == "export":
        assert f"UID:{BAD}@" not in outcome.stdout, outcome.describe()
    if command != "list":  # a listing may show the entry; what is planned or served may not
        assert BAD in outcome.stderr, f"the skipped entry is not named\n{outcome.describe()}"


# --- a running daemon ---------------------------------------------------------------------

_COUNTS = re.compile(r"invalid|bad|skip|poison|broken|isolat|quarantin|unusable", re.I)


def counted_in_metrics(text: str) -> list[str]:
    """Samples of calendar-svc metrics that count isolated entries (by name: the metric is
    new with the fix; any calendar_svc_* series named for bad/skipped/invalid entries)."""
    found = []
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith("calendar_svc_"):
            continue
        series, _, value = line.rpartition(" ")
        if _COUNTS.search(series.split("{")[0]) and float(value) >= 1:
            found.append(line)
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("rrule"),
        pytest.param("offset", marks=full_only),
        pytest.param("huge-offset", marks=full_only),
        pytest.param("zone", marks=full_only),
    ],
)
def test_daemon_isolates_a_poisoned_row_and_sends_the_others(tmp_path: Path, kind: str) -> None:
    with Inbox() as inbox, daemons_killed() as started:
        config = write_config(
            tmp_path,
            notifiers={"hook": webhook(f"{inbox.url}/hook")},
            reminders={"rescan_interval": "PT2S"},
        )
        db = tmp_path / "var" / "calendar.sqlite3"
        later = in_seconds(40 * 60)
        schedules = tmp_path / "schedules"
        write_calendar(
            schedules / "victim.toml",
            "victim",
            [entry("victim-bad", later), entry("victim-good", later)],
        )
        daemon = Daemon(config)
        started.append(daemon.start())
        daemon.ready()
        daemon.wait_event("reminder.planned", where=lambda r: r.get("uid") == "victim-good")

        poison(db, kind, "victim-bad")
        # Another calendar arrives after the poison: it must still be planned and sent.
        write_calendar(schedules / "other.toml", "other", [entry("other-soon", in_seconds(4))])
        daemon.wait_event(
            "reminder.planned",
            20,
            where=lambda r: r.get("uid") == "other-soon",
            fail_on=("daemon.tick_failed",),
        )
        inbox.wait_uid("other-soon", 30, daemons=[daemon])

        port = daemon.feed_port()
        status, body = healthz(port)
        assert body.get("status") == "degraded", body
        assert "victim-bad" in json.dumps(body), body
        assert counted_in_metrics(http(port, "/metrics")[1].decode()), "no metric counts it"

        # The feed skips the entry and serves the rest.
        status, ics = http(port, f"/feeds/{feed_token(db, 'victim')}/victim.ics")
        assert status == 200, ics[:300]
        assert b"UID:victim-good@" in ics and b"UID:victim-bad@" not in ics

        # The CLI, next to the running daemon, does the same.
        day = (later - timedelta(hours=1)).strftime("%Y-%m-%d")
        found = cli(
            config,
            "reminders",
            "--from",
            day,
            "--to",
            (later + timedelta(days=1)).strftime("%Y-%m-%d"),
            "--json",
        )
        assert_ok(found)
        uids = {r["uid"] for r in json.loads(found.stdout)}
        assert "victim-good" in uids and "victim-bad" not in uids, found.describe()

        # Named in the log with its reason, once per change: not again on every pass.
        def naming() -> list[dict[str, Any]]:
            return [
                r
                for r in daemon.events()
                if "victim-bad" in json.dumps(r) and r.get("level") in ("warning", "error")
            ]

        assert naming(), daemon.stderr()[-4000:]
        logged = len(naming())
        until_changed(
            lambda: healthz(port)[1].get("last_planner_run"),
            2,
            20,
            "two more planner passes",
            [daemon],
        )
        assert len(naming()) == logged, [json.dumps(r) for r in naming()]
        assert not daemon.tracebacks(), daemon.stderr()[-6000:]
        assert daemon.stop() == 0
