"""Issue 12, finding 5 and the PostgreSQL half of 7: several daemons on one database.

* A claim never takes more than its limit (``claim_due(limit=64)`` on 2,000 due
  rows), so three daemons share a burst, and when one is killed with ``kill -9``
  the others send its rows after the lease, each reminder once (a row the dead
  daemon had in flight may reach the receiver twice, with the same idempotency
  key: at-least-once is the promise, the key is what lets the receiver drop it).
* Several daemons (or CLI imports) bringing in the same new calendar at once
  log no error-level unique violation: the race is retried quietly.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from faults import (
    FULL,
    Daemon,
    Inbox,
    assert_no_traceback,
    assert_ok,
    cli,
    cli_process,
    daemons_killed,
    entry,
    in_seconds,
    until,
    webhook,
    write_calendar,
    write_config,
)

pytestmark = pytest.mark.postgres


def _due_rows(count: int, now: datetime) -> list[dict[str, Any]]:
    due = now - timedelta(seconds=1)
    return [
        {
            "dedupe_key": f"burst|e{i}|{due:%Y%m%dT%H%M%SZ}|0|hook",
            "idempotency_key": f"key-{i}",
            "calendar_slug": "burst",
            "entry_uid": f"e{i}",
            "occurrence_utc": due,
            "offset_seconds": 0,
            "channel": "hook",
            "due_at": due,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": due,
            "late": False,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]


def test_claim_due_never_takes_more_than_its_limit(pg_url: str) -> None:
    from calendar_svc.models import Delivery
    from calendar_svc.reminders import repository as repo
    from calendar_svc.store import Store

    store = Store(pg_url)
    store.migrate()
    try:
        now = datetime.now(UTC)
        with store.write() as session:
            session.execute(sa.insert(Delivery), _due_rows(2000, now))
        lease = timedelta(minutes=5)
        with store.write() as session:
            first = repo.claim_due(session, now=now, limit=64, claimer="daemon-a", lease=lease)
        with store.write() as session:
            second = repo.claim_due(session, now=now, limit=64, claimer="daemon-b", lease=lease)
        with store.read() as session:
            held: dict[str, int] = dict(
                session.execute(
                    sa.text(
                        "SELECT claimed_by, count(*) FROM deliveries WHERE status = 'sending' "
                        "GROUP BY claimed_by"
                    )
                ).all()
            )
        assert len(first) == 64, len(first)
        assert held.get("daemon-a") == 64, held
        assert len(second) == 64 and held.get("daemon-b") == 64, held
        assert not {c.id for c in first} & {c.id for c in second}
    finally:
        store.close()


# --- three daemons, one burst ---------------------------------------------------------------


class ClaimSampler:
    """Reads who holds how many ``sending`` rows, every 100 ms, in a thread."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        self.samples: list[dict[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.engine.connect() as conn:
                rows = conn.execute(
                    sa.text(
                        "SELECT claimed_by, count(*) FROM deliveries WHERE status = 'sending' "
                        "GROUP BY claimed_by"
                    )
                ).all()
            self.samples.append({str(by): int(n) for by, n in rows})
            self._stop.wait(0.1)

    def __enter__(self) -> ClaimSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.engine.dispose()

    def claimers(self) -> set[str]:
        return {by for sample in list(self.samples) for by in sample}

    def most_held(self) -> int:
        return max((n for sample in list(self.samples) for n in sample.values()), default=0)


def _pid(claimer: str) -> int:
    return int(claimer.split(":")[1])  # host:pid:random (dispatcher.default_claimer)


@pytest.mark.slow
def test_three_daemons_share_a_burst_and_send_a_killed_ones_rows(
    pg_url: str, tmp_path: Path
) -> None:
    count = 600 if FULL else 300
    with Inbox(delay=0.5) as inbox, daemons_killed() as started:
        config = write_config(
            tmp_path,
            database=pg_url,
            schedules=[],
            feed=False,
            notifiers={"hook": webhook(f"{inbox.url}/hook", timeout=10)},
            reminders={"lease": "PT5S"},
        )
        assert_ok(cli(config, "init"))
        daemons = [Daemon(config, name=f"d{i}") for i in range(3)]
        for daemon in daemons:
            started.append(daemon.start())
        for daemon in daemons:
            daemon.ready()
        # The burst, imported while the three run: all due in the same second.
        due = in_seconds(6)
        burst = write_calendar(
            tmp_path / "burst.toml", "burst", [entry(f"b{i:04d}", due) for i in range(count)]
        )
        assert_ok(cli(config, "import", str(burst)))
        by_pid = {d.pid: d for d in daemons}

        with ClaimSampler(pg_url) as sampler:

            def all_three_claimed() -> bool:
                # A claim over the limit (one daemon's capacity) fails at once.
                assert sampler.most_held() <= 64, sampler.samples[-3:]
                return len(sampler.claimers()) >= 3

            until(
                all_three_claimed,
                (due - datetime.now(UTC)).total_seconds() + 15,
                "all three daemons to claim part of the burst",
                daemons,
            )
            holding = next(by for by, n in sampler.samples[-1].items() if n)
            victim = by_pid[_pid(holding)]
            victim.signal(9)
            victim.proc.wait(10)  # type: ignore[union-attr]
            engine = sa.create_engine(pg_url)
            with engine.connect() as conn:
                stranded = {
                    str(uid)
                    for (uid,) in conn.execute(
                        sa.text(
                            "SELECT entry_uid FROM deliveries WHERE status = 'sending' "
                            "AND claimed_by = :by"
                        ),
                        {"by": holding},
                    )
                }
            assert stranded, "the killed daemon held no row: the scenario did not happen"
            survivors = [d for d in daemons if d is not victim]

            def all_delivered() -> bool:
                assert sampler.most_held() <= 64
                return len(set(inbox.uids())) >= count

            until(all_delivered, 60, f"{count} reminders at the receiver", survivors)
        for daemon in survivors:
            assert daemon.stop() == 0
        with engine.connect() as conn:
            statuses: dict[str, int] = dict(
                conn.execute(
                    sa.text("SELECT status, count(*) FROM deliveries GROUP BY status")
                ).all()
            )
        engine.dispose()
    assert statuses == {"sent": count}
    received = Counter(inbox.uids())
    assert set(received) == {f"b{i:04d}" for i in range(count)}
    twice = {uid for uid, n in received.items() if n > 1}
    assert twice <= stranded, (twice - stranded, len(stranded))
    keys: dict[str, set[str]] = {}
    for request, uid in zip(inbox.requests, inbox.uids(), strict=True):
        keys.setdefault(uid, set()).add(request.header("webhook-id") or "")
    assert all(len(k) == 1 for k in keys.values()), "a re-send changed its idempotency key"
    for daemon in survivors:
        assert not daemon.tracebacks(), daemon.stderr()[-4000:]


# --- the same new calendar, imported by several processes at once -----------------------------


def _big_calendar(path: Path, slug: str, count: int = 200) -> Path:
    start = in_seconds(3 * 24 * 3600)
    return write_calendar(
        path, slug, [entry(f"e{i:04d}", start + timedelta(minutes=i)) for i in range(count)]
    )


def _entries_in(url: str, slug: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM entries JOIN calendars ON calendars.id = "
                        "entries.calendar_id WHERE calendars.slug = :s"
                    ),
                    {"s": slug},
                ).scalar_one()
            )
    finally:
        engine.dispose()


@contextlib.contextmanager
def all_at_once(url: str, processes: int, what: str) -> Iterator[None]:
    """Hold ``calendars`` locked until ``processes`` backends wait for it, then let them all
    go: their imports run truly at once, every time (the race, made deterministic)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as holder, engine.connect() as watcher:
            holder.execute(sa.text("LOCK TABLE calendars IN ACCESS EXCLUSIVE MODE"))

            def waiting() -> bool:
                return (
                    int(
                        watcher.execute(
                            sa.text(
                                "SELECT count(*) FROM pg_locks WHERE relation = 'calendars'::regclass "
                                "AND NOT granted"
                            )
                        ).scalar_one()
                    )
                    >= processes
                )

            yield
            until(waiting, 60, f"{processes} {what} to wait for the calendars table")
            holder.rollback()  # releases the lock: all of them go
    finally:
        engine.dispose()


@pytest.fixture
def migrated(pg_url: str, tmp_path: Path) -> Path:
    """A config on the fresh schema, migrated first (the race is the import, not this)."""
    config = write_config(tmp_path, database=pg_url, schedules=["schedules/*.toml"], feed=False)
    assert_ok(cli(config, "init"))
    return config


@pytest.mark.slow
def test_daemons_importing_the_same_new_calendar_log_no_error(pg_url: str, migrated: Path) -> None:
    _big_calendar(migrated.parent / "schedules" / "shared.toml", "shared")
    with daemons_killed() as started:
        daemons = [Daemon(migrated, name=f"d{i}") for i in range(3)]
        with all_at_once(pg_url, len(daemons), "daemons"):
            for daemon in daemons:
                started.append(daemon.start())
        for daemon in daemons:
            daemon.ready()
        for daemon in daemons:
            assert daemon.stop() == 0
    errors = [r for d in daemons for r in d.events() if r.get("level") in ("error", "critical")]
    assert not errors, errors[:3]
    assert _entries_in(pg_url, "shared") == 200


@pytest.mark.slow
def test_concurrent_cli_imports_of_a_new_calendar_all_succeed(pg_url: str, migrated: Path) -> None:
    shared = _big_calendar(migrated.parent / "shared.toml", "shared")
    outcomes: list[Any] = [None] * 3
    threads = [
        threading.Thread(
            target=lambda i=i: outcomes.__setitem__(i, cli_process(migrated, "import", str(shared)))
        )
        for i in range(3)
    ]
    with all_at_once(pg_url, len(threads), "imports"):
        for thread in threads:
            thread.start()
    for thread in threads:
        thread.join(120)
    for outcome in outcomes:
        assert outcome is not None
        assert_no_traceback(outcome)
        assert outcome.exit_code == 0, outcome.describe()
    assert _entries_in(pg_url, "shared") == 200
