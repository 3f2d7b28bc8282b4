"""A million entries: start-up, memory, a week's feed and a day's reminders at that size.

    python bench/million.py                    # 1,000,000 entries x 2 reminders
    python bench/million.py --entries 200000   # smaller
    python bench/million.py --keep DIR         # build the database in DIR once, reuse it

1. ``fill``: one calendar of N entries spread evenly over ten years (one year back,
   nine ahead: about 1,900 a week, 270 a day), in three zones without DST
   (America/Guayaquil, Asia/Tokyo, UTC), each with the calendar's two reminders
   (PT1H, PT15M). Written by one ``INSERT ... SELECT`` over a generated series in
   SQLite itself (not through the importer): a million rows in seconds.
2. ``daemon``: a real ``calendar-svc run`` (feed on, reminders on, console channel)
   as a subprocess: seconds from exec to systemd's ``READY=1`` on a ``NOTIFY_SOCKET``
   of our own, then one GET of the feed filtered to one week (``?from=&to=``, a cold
   render), the same GET again (cached), and the daemon's peak RSS (``VmHWM`` in
   ``/proc``) after all that.
3. ``cli``: ``calendar-svc reminders --from D --to D+1`` (one day), wall time of the
   whole command.

Targets (issue 17): ready < 5 s, peak RSS < 250 MB, week feed < 1 s, one day's
reminders < 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

SPAN_DAYS = 3650
BACK_DAYS = 365
# (zone, minutes to add to UTC for the wall time): no DST, so the SQL can do it.
ZONES = (("America/Guayaquil", -300), ("Asia/Tokyo", 540), ("UTC", 0))
SQL_TIME = "%Y-%m-%d %H:%M:%S.000000"  # how SQLAlchemy stores a DATETIME in SQLite


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def fill(db: Path, entries: int) -> dict[str, Any]:
    from sqlalchemy import insert

    from calendar_svc import timezones
    from calendar_svc.models import Calendar
    from calendar_svc.store import Store, new_feed_token

    started = time.perf_counter()
    store = Store(f"sqlite:///{db}")
    store.migrate()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with store.write() as session:
        cal_id = session.execute(
            insert(Calendar)
            .values(
                slug="big",
                name="Big",
                description="",
                timezone="UTC",
                reminders=["PT1H", "PT15M"],
                feed_token=new_feed_token(),
                version=1,
                created_at=now,
                updated_at=now,
            )
            .returning(Calendar.id)
        ).scalar_one()
    version = timezones.version()
    store.close()
    base = (now - timedelta(days=BACK_DAYS)).strftime("%Y-%m-%d %H:%M:%S")
    stamp = now.strftime(SQL_TIME)
    span = SPAN_DAYS * 24 * 60
    zone = (
        "CASE i % 3 "
        + " ".join(f"WHEN {k} THEN '{name}'" for k, (name, _) in enumerate(ZONES))
        + " END"
    )
    shift = (
        "CASE i % 3 "
        + " ".join(f"WHEN {k} THEN {minutes}" for k, (_, minutes) in enumerate(ZONES))
        + " END"
    )
    # An even spread over the span, in a scrambled order (i * a prime, mod the span).
    minute = f"((i * 7919) % {span})"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    with con:
        con.execute(
            f"""
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ? - 1)
            INSERT INTO entries (
                calendar_id, uid, title, description, location, city, url, categories,
                status, transparency, sequence, all_day, start_local, start_tz, end_local,
                end_tz, start_utc, end_utc, tz_version, reminders, created_at, updated_at,
                version)
            SELECT ?, printf('e%07d', i), 'Entry ' || i, '', 'Somewhere', '', '', '[]',
                'confirmed', 'opaque', 0, 0,
                strftime('{SQL_TIME}', ?, printf('%+d minutes', {minute} + {shift})), {zone},
                strftime('{SQL_TIME}', ?, printf('%+d minutes', {minute} + {shift} + 60)),
                {zone},
                strftime('{SQL_TIME}', ?, printf('%+d minutes', {minute})),
                strftime('{SQL_TIME}', ?, printf('%+d minutes', {minute} + 60)),
                ?, NULL, ?, ?, 1
            FROM n
            """,
            (entries, cal_id, base, base, base, base, version, stamp, stamp),
        )
    con.execute("ANALYZE")
    con.close()
    return {"entries": entries, "fill_s": round(time.perf_counter() - started, 1)}


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used: what a figure costs whatever
    else the machine runs at the time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _notify_socket(folder: Path) -> tuple[socket.socket, str]:
    path = str(folder / "notify.sock")
    Path(path).unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    return sock, path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[float, int, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
        return time.perf_counter() - started, response.status, body


def config_file(folder: Path, db: Path, port: int) -> Path:
    config = folder / "config.toml"
    config.write_text(
        textwrap.dedent(f"""\
        schedules = []
        [database]
        url = "sqlite:///{db}"
        [feed]
        host = "127.0.0.1"
        port = {port}
        public_url = "http://127.0.0.1:{port}"
        [notifiers.console]
        type = "console"
        stream = "stderr"
        """)
    )
    return config


def daemon(folder: Path, db: Path, week: date) -> dict[str, Any]:
    port = _free_port()
    config = config_file(folder, db, port)
    con = sqlite3.connect(db)
    token, slug = con.execute("select feed_token, slug from calendars").fetchone()
    # The week's feed is a cold render: nothing kept by an earlier run (--keep).
    con.execute("delete from rendered_events")
    con.execute("delete from rendered_zones")
    con.commit()
    con.close()
    sock, path = _notify_socket(folder)
    log = folder / "daemon.log"
    started = time.perf_counter()
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "calendar_svc", "--config", str(config), "run"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "NOTIFY_SOCKET": path, "PYTHONUNBUFFERED": "1"},
        )
    ready_s = None
    sock.settimeout(0.2)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in message.split("\n"):
            ready_s = time.perf_counter() - started
            break
    if ready_s is None:
        proc.kill()
        raise SystemExit(f"the daemon never said READY=1:\n{log.read_text()[-3000:]}")
    rss_ready = peak_rss_mb(proc.pid)
    cpu_ready = cpu_s(proc.pid)
    week_end = week + timedelta(days=6)
    url = f"http://127.0.0.1:{port}/feeds/{token}/{slug}.ics?from={week}&to={week_end}"
    cold_s, status, body = _get(url)
    cold_cpu = cpu_s(proc.pid) - cpu_ready
    warm_s, _, _ = _get(url)
    time.sleep(2)  # the planner's first pass and alarms are done by now
    rss = peak_rss_mb(proc.pid)
    proc.terminate()
    proc.wait(60)
    sock.close()
    return {
        "ready_s": round(ready_s, 2),
        "ready_cpu_s": round(cpu_ready, 2),
        "rss_at_ready_mb": round(rss_ready, 1),
        "peak_rss_mb": round(rss, 1),
        "week": f"{week}..{week_end}",
        "week_feed_status": status,
        "week_feed_events": body.count(b"BEGIN:VEVENT"),
        "week_feed_bytes": len(body),
        "week_feed_cold_s": round(cold_s, 3),
        "week_feed_cold_cpu_s": round(cold_cpu, 2),
        "week_feed_cached_s": round(warm_s, 4),
        "exit": proc.returncode,
    }


def cli(folder: Path, db: Path, day: date) -> dict[str, Any]:
    config = config_file(folder, db, _free_port())
    command = [
        sys.executable,
        "-m",
        "calendar_svc",
        "--config",
        str(config),
        "reminders",
        "--from",
        str(day),
        "--to",
        str(day),  # --to is inclusive: one day
    ]
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(command, capture_output=True, text=True, timeout=300)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if out.returncode:
        raise SystemExit(f"reminders failed:\n{out.stderr[-3000:]}")
    return {
        "day": str(day),
        "reminders_listed": max(0, len(out.stdout.strip().splitlines()) - 1),
        "cli_s": round(took, 2),
        "cli_cpu_s": round(cpu, 2),
        "command": " ".join(["calendar-svc", *command[3:]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build (or reuse) the database in this folder")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cs-million-") as tmp:
        folder = opts.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / f"million-{opts.entries}.sqlite3"
        print(
            f"calendar-svc, {opts.entries:,} entries x 2 reminders, {os.cpu_count()} CPUs, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M}Z, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if not db.exists():
            filled = fill(db, opts.entries)
            print(f"  filled {filled['entries']:,} entries in {filled['fill_s']} s", flush=True)
        today = datetime.now(UTC).date()
        run = daemon(folder, db, today + timedelta(days=30))
        print(
            f"daemon: READY=1 in {run['ready_s']} s ({run['ready_cpu_s']} s CPU; < 5 s), "
            f"peak RSS {run['peak_rss_mb']} MB "
            f"(< 250 MB; {run['rss_at_ready_mb']} MB at ready); week feed {run['week']}: "
            f"{run['week_feed_events']:,} events, {run['week_feed_bytes']:,} bytes, cold "
            f"{run['week_feed_cold_s']} s ({run['week_feed_cold_cpu_s']} s CPU; < 1 s), cached "
            f"{run['week_feed_cached_s']} s",
            flush=True,
        )
        day = cli(folder, db, today + timedelta(days=10))
        print(
            f"cli: `{day['command']}` listed {day['reminders_listed']:,} reminders in "
            f"{day['cli_s']} s ({day['cli_cpu_s']} s CPU; < 1 s)",
            flush=True,
        )
        print(json.dumps({"entries": opts.entries, "daemon": run, "cli": day}))


if __name__ == "__main__":
    main()
