"""Issue 12, finding 7 (full disk): SQLite on a 2 MB tmpfs filled to the last byte.

* ``import`` on a full disk fails with one clear line (non-zero exit, no
  traceback) and the database is row for row what it was.
* The daemon's first start on a full disk prints one line and exits non-zero.
* A running daemon survives the disk filling up and recovers when space is
  freed: a schedule file that arrived meanwhile is imported and its reminder
  sent, and a reminder due after the recovery is sent.

Needs root (``mount -t tmpfs``); skipped with the reason otherwise. The tmpfs is
always unmounted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from faults import (
    TRIP,
    Daemon,
    Inbox,
    assert_ok,
    assert_refused,
    cli,
    cli_process,
    daemons_killed,
    entry,
    fill,
    in_seconds,
    sqlite_dump,
    tmpfs,
    until,
    webhook,
    write_calendar,
    write_config,
)

pytestmark = pytest.mark.slow

# "disk I/O error" is SQLite's word for many things; a clear line says the disk is full.
FULL_WORDS = ("full", "space")


def says_full(line: str) -> bool:
    """Whether the line says the disk is full (paths aside: this test's folder is
    named after it)."""
    words = " ".join(w for w in line.lower().split() if "/" not in w)
    return any(word in words for word in FULL_WORDS)


def _on(disk: Path) -> str:
    return f"sqlite:///{disk / 'var' / 'calendar.sqlite3'}"


@pytest.mark.parametrize(
    "state",
    [
        # A reader left -wal and -shm (as a running daemon does): SQLite says "disk is full".
        pytest.param("open", id="wal-open"),
        # Nothing open: SQLite cannot create -shm and says only "disk I/O error".
        pytest.param("cold", id="cold"),
    ],
)
def test_import_on_a_full_disk_is_one_clear_line_and_changes_nothing(
    tmp_path: Path, state: str
) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        config = write_config(tmp_path, database=_on(disk))
        db = disk / "var" / "calendar.sqlite3"
        assert_ok(cli(config, "import", str(TRIP)))
        snapshot = tmp_path / "before.sqlite3"  # dumped off the tmpfs: it leaves no -shm there
        shutil.copyfile(db, snapshot)
        before = sqlite_dump(snapshot)
        if state == "open":
            sqlite_dump(db)
        new = write_calendar(
            tmp_path / "new.toml",
            "new-cal",
            [
                entry(f"e{i}", in_seconds(86400 + 60 * i), description="x" * 2000)
                for i in range(200)
            ],
        )
        filler = fill(disk)
        line = assert_refused(cli_process(config, "import", str(new)), exit_code=None)
        assert says_full(line), line
        filler.unlink()
        assert sqlite_dump(db) == before


def test_first_start_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        fill(disk)
        config = write_config(tmp_path, database=_on(disk))
        line = assert_refused(cli_process(config, "run", timeout=60), exit_code=None)
        assert says_full(line), line


def test_running_daemon_survives_a_full_disk_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk, Inbox() as inbox, daemons_killed() as started:
        config = write_config(
            tmp_path, database=_on(disk), notifiers={"hook": webhook(f"{inbox.url}/hook")}
        )
        schedules = tmp_path / "schedules"
        write_calendar(schedules / "a.toml", "before", [entry("before-full", in_seconds(2))])
        daemon = Daemon(config)
        started.append(daemon.start())
        daemon.ready()
        inbox.wait_uid("before-full", 20, daemons=[daemon])

        filler = fill(disk)

        def complaints() -> int:
            return len([r for r in daemon.events() if r.get("level") in ("warning", "error")])

        before = complaints()
        write_calendar(schedules / "b.toml", "during", [entry("while-full", in_seconds(3))])
        # The daemon notices (it cannot write the new calendar) and says so; it keeps running.
        until(lambda: complaints() > before, 20, "the daemon to report the full disk", [daemon])
        filler.unlink()

        write_calendar(schedules / "c.toml", "after", [entry("after-recovery", in_seconds(3))])
        inbox.wait_uid("after-recovery", 30, daemons=[daemon])
        inbox.wait_uid("while-full", 30, daemons=[daemon])
        assert daemon.stop() == 0
    assert sorted(inbox.uids()) == ["after-recovery", "before-full", "while-full"]
