"""Several processes writing one SQLite file at once: no "database is locked", no lost write."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from calendar_svc.store import Store

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from calendar_svc.importer import import_specs
    from calendar_svc.schedule_files import parse_schedule
    from calendar_svc.store import Store

    url, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = Store(url)
    for i in range(rounds):
        spec = parse_schedule({
            "calendar": {"slug": name, "name": name, "timezone": "America/Guayaquil"},
            "entries": [{"uid": f"e{j}", "title": f"{name} round {i}",
                         "start": datetime(2025, 9, 4, 10 + j % 8)} for j in range(20)],
        }, source=name)
        with store.write() as session:
            import_specs(session, [spec], now=store.clock())
        store.set_status("e0", "cancelled" if i % 2 == 0 else "confirmed", name)
    print("ok", flush=True)
    """
)


def test_three_writers_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    Store(url).migrate()
    rounds = 15
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"writer-{n}", str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err
        assert out.strip() == "ok"
    store = Store(url)
    for n in range(3):
        slug = f"writer-{n}"
        cal = store.get_calendar(slug)
        titles = {e.title for e in store.entries() if e.calendar.slug == slug}
        assert titles == {f"{slug} round {rounds - 1}"}
        # Version 1 at creation; every later import changes titles (+1 each); e0's status
        # flips to cancelled on even rounds (+1 each), the file puts it back to confirmed.
        cancels = len(range(0, rounds, 2))
        assert cal.version == 1 + (rounds - 1) + cancels
    store.close()
