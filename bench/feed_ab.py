"""The feed's 304 path, another tree against this one, interleaved: prints both figures.

    python bench/feed_ab.py /tmp/before              # a checkout of the commit to compare
    python bench/feed_ab.py /tmp/before --rounds 9 --entries 10000

A change on the hot path must keep the conditional GET answered 304 within 10 % of
before. On a shared machine two runs of ``bench/feed.py`` minutes apart differ by more
than that, so this runs both servers at once, on the same generated calendar (each tree
builds its own database with its own code), and alternates short ``wrk`` runs (an httpx
loop without wrk) between them, reversing the order every round; medians are reported.
When this tree has share links, a third series polls through one. ``git worktree add`` or
``git archive COMMIT | tar -x -C DIR`` gives the other tree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx

# This folder's feed benchmark: its calendar, its processes and its load generator.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import feed as bench

HERE = Path(__file__).resolve().parents[1]
SETUP = r"""
import json, sys
sys.path.insert(0, "bench")
import feed
from calendar_svc.importer import import_specs
from calendar_svc.store import Store
store = Store(sys.argv[1])
store.migrate()
with store.write() as session:
    import_specs(session, [feed.make_spec(int(sys.argv[2]))], now=store.clock())
tokens = {"owner": store.get_calendar(feed.SLUG).feed_token}
try:
    from calendar_svc.shares import ShareLinks
except ImportError:
    pass
else:
    tokens["share link"] = ShareLinks(store).create(feed.SLUG, "bench")[1]
print(json.dumps(tokens))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="the other tree (a checkout to compare with)")
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": HERE}
    work = Path(tempfile.mkdtemp(prefix="calendar-svc-ab-"))
    urls: dict[str, tuple[str, str]] = {}
    with ExitStack() as stack:
        for name, tree in trees.items():
            folder = work / name
            folder.mkdir()
            db = f"sqlite:///{folder / 'bench.sqlite3'}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("CALENDAR_SVC_")}
            env["PYTHONPATH"] = str(tree)  # this tree's package, whatever pip installed
            tokens = json.loads(
                subprocess.run(
                    [sys.executable, "-c", SETUP, db, str(args.entries)],
                    cwd=tree,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=600,
                ).stdout
            )
            port = bench.free_port()
            (folder / "config.toml").write_text(
                f'[database]\nurl = "{db}"\n[feed]\nhost = "{bench.HOST}"\nport = {port}\n'
                '[logging]\nlevel = "warning"\n'
            )
            serve = [sys.executable, "-m", "calendar_svc", "--config", "config.toml", "serve"]
            stack.enter_context(bench.process(serve, cwd=folder, env=env))
            base = f"http://{bench.HOST}:{port}"
            bench.wait_http(f"{base}/healthz")
            for who, token in tokens.items():
                url = f"{base}/feeds/{token}/{bench.SLUG}.ics"
                first = httpx.get(url, headers={"accept-encoding": "identity"}, timeout=600)
                first.raise_for_status()
                label = name if who == "owner" else f"{name}, {who}"
                urls[label] = (url, first.headers["etag"])
        runs: dict[str, list[float]] = {label: [] for label in urls}
        load_before = os.getloadavg()[0]
        tool = ""
        for round_ in range(args.rounds):
            order = list(urls) if round_ % 2 == 0 else list(reversed(urls))
            for label in order:
                url, etag = urls[label]
                headers = {"accept-encoding": "identity", "if-none-match": etag}
                value, tool = bench.rate(url, headers, args.seconds, 8)
                runs[label].append(value)
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in runs.items()))
    reference = statistics.median(runs["before"])
    print(
        f"conditional GET -> 304, {args.entries} entries, {tool}, {args.rounds} interleaved "
        f"{args.seconds:.0f} s runs, medians; 1-min load average {load_before:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )
    for label, values in runs.items():
        median = statistics.median(values)
        print(
            f"  {label:24s} {median:9.0f} req/s  ({median / reference:.2f} x before)  "
            f"runs {' '.join(f'{v:.0f}' for v in values)}"
        )


if __name__ == "__main__":
    main()
