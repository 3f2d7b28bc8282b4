"""Issue 12, findings 3 and 4: the wall clock steps under a running daemon.

libfaketime moves only CLOCK_REALTIME of the daemon (``Faketime``), as an NTP
step or a VM restore does; the monotonic clock stays real. The test process
and the CLI keep the real clock.

* One hour back: the loop keeps ticking (an entry imported after the step is
  planned and sent, lease recovery still runs), ``/healthz`` reports the step,
  and ``clock.step`` is logged with its size.
* One hour ahead for a while (10 s here, a minute with ``CALENDAR_SVC_FAULTS=full``)
  and back: a reminder due after the clock is right again is sent exactly once.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from faults import (
    FULL,
    Daemon,
    Faketime,
    Inbox,
    assert_ok,
    cli,
    daemons_killed,
    entry,
    healthz,
    in_seconds,
    now,
    sqlite_execute,
    sqlite_rows,
    utc,
    webhook,
    write_calendar,
    write_config,
)

pytestmark = pytest.mark.slow

HOUR = 3600


def mentions_step(value: Any, seconds: int) -> bool:
    """Whether ``value`` (a log record, a /healthz field) gives a step of about ``seconds``
    (either sign; as a number of seconds, or an ISO duration such as PT1H)."""
    text = json.dumps(value) if not isinstance(value, str) else value
    if f"PT{seconds // 3600}H" in text and seconds % 3600 == 0:
        return True
    return any(abs(abs(float(n)) - seconds) <= 30 for n in re.findall(r"-?\d+(?:\.\d+)?", text))


def clock_fields(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if "clock" in k and v}


def step_logged(daemon: Daemon, seconds: int) -> list[dict[str, Any]]:
    return [
        r
        for r in daemon.events("clock.step")
        if mentions_step({k: v for k, v in r.items() if k != "ts"}, seconds)
    ]


def test_backward_step_keeps_the_loop_planning_sending_and_recovering(tmp_path: Path) -> None:
    faketime = Faketime(tmp_path)
    with Inbox() as inbox, daemons_killed() as started:
        config = write_config(tmp_path, notifiers={"hook": webhook(f"{inbox.url}/hook")})
        db = tmp_path / "var" / "calendar.sqlite3"
        write_calendar(
            tmp_path / "schedules" / "base.toml",
            "base",
            [entry("base-later", in_seconds(3 * HOUR))],
        )
        daemon = Daemon(config, env=faketime.env)
        started.append(daemon.start())
        daemon.ready()

        faketime.set(-HOUR)
        # Imported after the step, by the CLI on the real clock; due soon on the daemon's.
        fake = faketime.fake_now()
        late = write_calendar(
            tmp_path / "after.toml",
            "after-step",
            [
                entry("after-step", utc(fake + timedelta(seconds=8))),
                entry("hijacked", utc(fake + timedelta(seconds=12))),
            ],
        )
        assert_ok(cli(config, "import", str(late)))
        daemon.wait_event("reminder.planned", 15, where=lambda r: r.get("uid") == "hijacked")

        # A daemon that died holding "hijacked": its lease ran out long ago.
        taken = sqlite_execute(
            db,
            "UPDATE deliveries SET status = 'sending', claimed_by = 'ghost:1:dead', "
            "claimed_at = '2000-01-01 00:00:00.000000', lease_until = "
            "'2000-01-01 00:00:00.000000', attempts = 1 "
            "WHERE entry_uid = 'hijacked' AND status = 'pending'",
        )
        assert taken == 1
        inbox.wait_uid("after-step", 30, daemons=[daemon])
        inbox.wait_uid("hijacked", 30, daemons=[daemon])

        status, body = healthz(daemon.feed_port())
        assert status == 200, body
        assert body["scheduler_stuck"] is False, body
        assert any(mentions_step(v, HOUR) for v in clock_fields(body).values()), body
        assert step_logged(daemon, HOUR), daemon.stderr()[-4000:]

        faketime.set(0)  # and forward again
        daemon.wait_event("clock.step", 20, count=2)
        assert daemon.stop() == 0
    assert sorted(inbox.uids()) == ["after-step", "hijacked"]
    assert not daemon.tracebacks(), daemon.stderr()[-6000:]
    states = sqlite_rows(
        db,
        "SELECT entry_uid, status FROM deliveries "
        "WHERE entry_uid IN ('after-step', 'hijacked') ORDER BY 1",
    )
    assert states == [("after-step", "sent"), ("hijacked", "sent")]


def test_forward_jump_and_back_still_sends_a_later_reminder_once(tmp_path: Path) -> None:
    ahead_for = 60 if FULL else 8
    faketime = Faketime(tmp_path)
    with Inbox() as inbox, daemons_killed() as started:
        config = write_config(tmp_path, notifiers={"hook": webhook(f"{inbox.url}/hook")})
        db = tmp_path / "var" / "calendar.sqlite3"
        (tmp_path / "schedules").mkdir()
        daemon = Daemon(config, env=faketime.env)
        started.append(daemon.start())
        daemon.ready()
        # Due some seconds after the clock is right again (counted from now: the daemon runs).
        due = in_seconds(ahead_for + 6)
        write_calendar(tmp_path / "schedules" / "fwd.toml", "forward", [entry("after-jump", due)])
        daemon.wait_event("reminder.planned", where=lambda r: r.get("uid") == "after-jump")

        faketime.set(+HOUR)
        threading.Event().wait(ahead_for)  # the fault: the clock is an hour ahead this long
        faketime.set(0)

        inbox.wait_uid("after-jump", (due - now()).total_seconds() + 12, daemons=[daemon])
        assert step_logged(daemon, HOUR), daemon.stderr()[-4000:]
        assert daemon.stop() == 0
    assert inbox.uids() == ["after-jump"]
    assert sqlite_rows(db, "SELECT status FROM deliveries WHERE entry_uid = 'after-jump'") == [
        ("sent",)
    ]
    assert not daemon.tracebacks(), daemon.stderr()[-6000:]
