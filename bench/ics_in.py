"""ICS-in benchmark (issue 15, item 6): prints its figures; record them in bench/RESULTS.md.

    python bench/ics_in.py            # 10,000 events, 500 of them recurring series
    python bench/ics_in.py --quick    # 1,000 events: a smoke run

Needs ``pip install 'calendar-svc[bench]'`` (recurring-ical-events for the peer).
Each measurement runs in a fresh process of its own, so that its peak RSS is its
own and no cache of one warms another:

* ``icalendar``: ``icalendar.Calendar.from_ical`` of the file alone (the reference:
  importing should take at most 1.5x this);
* ``recurring-ical-events``: the same parse, then every occurrence in the year
  expanded by ``recurring_ical_events`` (the peer's full reading of the file);
* ``import``: ``calendar-svc``'s import of the file into a new SQLite database
  (read, zones, series, validation, one transaction of 10,000 rows), and its
  parse alone (no database);
* ``re-poll``: a source already synced, fetched again from a local HTTP server
  that answers 304 to its ETag (median of 50), and from one that sends the same
  bytes without validators (digest equal: no parse either).

Everything runs on 127.0.0.1; every loop is bounded in count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ZONES = ("Europe/Berlin", "America/New_York", "Pacific Standard Time", "Asia/Tokyo")
BERLIN_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""
PACIFIC_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Pacific Standard Time
BEGIN:STANDARD
DTSTART:16010101T020000
TZOFFSETFROM:-0700
TZOFFSETTO:-0800
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=1SU;BYMONTH=11
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:-0800
TZOFFSETTO:-0700
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=2SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""
NEW_YORK_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:America/New_York
BEGIN:DAYLIGHT
TZOFFSETFROM:-0500
TZOFFSETTO:-0400
TZNAME:EDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0400
TZOFFSETTO:-0500
TZNAME:EST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE"""
TOKYO_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Asia/Tokyo
BEGIN:STANDARD
TZOFFSETFROM:+0900
TZOFFSETTO:+0900
TZNAME:JST
DTSTART:19700101T000000
END:STANDARD
END:VTIMEZONE"""


def make_feed(events: int, series: int) -> bytes:
    """A feed of ``events`` VEVENTs, ``series`` of them weekly series (with EXDATEs), in
    four zones (one a Windows name), some all-day, some in UTC, with VALARMs."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//bench//ics-in//EN",
        "X-WR-CALNAME:Bench",
        "X-WR-TIMEZONE:Europe/Berlin",
        BERLIN_VTIMEZONE,
        PACIFIC_VTIMEZONE,
        NEW_YORK_VTIMEZONE,
        TOKYO_VTIMEZONE,
    ]
    every = max(1, events // series)
    base = datetime(2026, 1, 5, 9, 0)
    for index in range(events):
        start = base + timedelta(hours=5 * index)
        end = start + timedelta(minutes=45)
        lines += [
            "BEGIN:VEVENT",
            f"UID:bench-{index:05d}-4f1c9e2a@calendar.example.org",
            "DTSTAMP:20260101T000000Z",
            f"SUMMARY:Meeting number {index} about the quarterly plan",
            "DESCRIPTION:Agenda: figures\\, plans and the rest.\\nSecond line of the notes.",
            f"LOCATION:Room {index % 40}\\, Building {index % 7}",
            "CATEGORIES:work,meeting",
            "STATUS:CONFIRMED",
        ]
        if index % 10 == 3:
            lines += [
                f"DTSTART;VALUE=DATE:{start:%Y%m%d}",
                f"DTEND;VALUE=DATE:{end.date() + timedelta(days=1):%Y%m%d}",
            ]
        elif index % 10 == 7:
            lines += [f"DTSTART:{start:%Y%m%dT%H%M%S}Z", f"DTEND:{end:%Y%m%dT%H%M%S}Z"]
        else:
            zone = ZONES[index % len(ZONES)]
            lines += [
                f"DTSTART;TZID={zone}:{start:%Y%m%dT%H%M%S}",
                f"DTEND;TZID={zone}:{end:%Y%m%dT%H%M%S}",
            ]
        if index % every == 0 and index // every < series and index % 10 not in (3, 7):
            lines.append("RRULE:FREQ=WEEKLY;COUNT=26")
            lines.append(f"EXDATE:{start + timedelta(weeks=2) - timedelta(hours=1):%Y%m%dT%H%M%S}Z")
        lines += [
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "DESCRIPTION:Reminder",
            "TRIGGER:-PT15M",
            "END:VALARM",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join("\r\n".join(part.splitlines()) for part in lines) + "\r\n").encode()


# --- the measurements, each in a process of its own ----------------------------------------


def part_icalendar(path: Path) -> dict[str, Any]:
    import icalendar

    data = path.read_bytes()
    started = time.perf_counter()
    calendar = icalendar.Calendar.from_ical(data)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "events": len(calendar.walk("VEVENT"))}


def part_recurring(path: Path) -> dict[str, Any]:
    import icalendar
    import recurring_ical_events

    data = path.read_bytes()
    started = time.perf_counter()
    calendar = icalendar.Calendar.from_ical(data)
    parsed = time.perf_counter()
    occurrences = recurring_ical_events.of(calendar).between((2026, 1, 1), (2028, 1, 1))
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "parse": parsed - started,
        "expand": done - parsed,
        "occurrences": len(occurrences),
    }


def part_parse(path: Path) -> dict[str, Any]:
    from calendar_svc.ics_in import IcsOptions, parse_ics

    data = path.read_bytes()
    started = time.perf_counter()
    result = parse_ics(data, IcsOptions(slug="bench"), source=str(path))
    return {"seconds": time.perf_counter() - started, "entries": len(result.spec.entries)}


def part_import(path: Path) -> dict[str, Any]:
    from calendar_svc.ics_in import IcsOptions, parse_ics
    from calendar_svc.importer import import_specs
    from calendar_svc.store import Store

    folder = Path(tempfile.mkdtemp(prefix="bench-ics-"))
    store = Store(f"sqlite:///{folder / 'bench.sqlite3'}")
    store.migrate()
    data = path.read_bytes()
    started = time.perf_counter()
    result = parse_ics(data, IcsOptions(slug="bench"), source=str(path))
    parsed = time.perf_counter()
    with store.write() as session:
        report = import_specs(session, [result.spec], now=store.clock())
    done = time.perf_counter()
    # A second import of the same file: nothing changes.
    with store.write() as session:
        again = import_specs(session, [result.spec], now=store.clock())
    unchanged = time.perf_counter() - done
    store.close()
    created = report.totals()["created"]
    return {
        "seconds": done - started,
        "parse": parsed - started,
        "write": done - parsed,
        "entries": created,
        "entries_per_s": created / (done - started),
        "reimport_unchanged": again.totals()["unchanged"],
        "reimport_write_seconds": unchanged,
    }


def part_repoll(path: Path) -> dict[str, Any]:
    from calendar_svc.config import parse_config
    from calendar_svc.events import EventBus
    from calendar_svc.sources.fetch import new_client
    from calendar_svc.sources.sync import sync
    from calendar_svc.store import Store

    body = path.read_bytes()
    etag = '"bench-1"'
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            validators = self.path == "/with-etag.ics"
            if validators and self.headers.get("if-none-match") == etag:
                seen.append("304")
                self.send_response(304)
                self.send_header("etag", etag)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            seen.append("200")
            self.send_response(200)
            if validators:
                self.send_header("etag", etag)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = Path(tempfile.mkdtemp(prefix="bench-ics-"))
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    out: dict[str, Any] = {}
    for name in ("with-etag", "same-bytes"):
        config = parse_config(
            {
                "database": {"url": url},
                "sources": [
                    {
                        "url": f"http://127.0.0.1:{server.server_port}/{name}.ics",
                        "calendar": name,
                        "allow_private": True,
                    }
                ],
            },
            path=None,
        )
        store = Store(url)
        store.migrate()
        bus = EventBus()
        client = new_client()  # as the daemon's source loop keeps one
        first = time.perf_counter()
        result = sync(store, config.sources[0], config, bus, client=client)
        first_seconds = time.perf_counter() - first
        assert result.error is None and result.changed, result
        times = []
        for _ in range(50):
            started = time.perf_counter()
            again = sync(store, config.sources[0], config, bus, client=client)
            times.append(time.perf_counter() - started)
            assert again.error is None and not again.changed, again
        store.close()
        client.close()
        out[name] = {
            "first_sync_seconds": first_seconds,
            "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000,
        }
    server.shutdown()
    out["answers"] = {"304": seen.count("304"), "200": seen.count("200")}
    return out


PARTS = {
    "icalendar": part_icalendar,
    "recurring": part_recurring,
    "parse": part_parse,
    "import": part_import,
    "repoll": part_repoll,
}


def run_part(name: str, path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--part", name, str(path)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def mb(result: dict[str, Any]) -> str:
    return f"peak RSS {result['peak_rss_mb']:.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 events, 50 series")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("file", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        result = PARTS[args.part](Path(args.file))
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    events, series = (1_000, 50) if args.quick else (10_000, 500)
    folder = Path(tempfile.mkdtemp(prefix="bench-ics-"))
    path = folder / "feed.ics"
    path.write_bytes(make_feed(events, series))
    print(f"feed: {events:,} VEVENTs, {series} weekly series, {path.stat().st_size / 1e6:.1f} MB")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    results = {name: run_part(name, path) for name in PARTS}
    ical = results["icalendar"]["seconds"]
    imp, rec, parse, poll = (results[k] for k in ("import", "recurring", "parse", "repoll"))

    def row(label: str, value: str, note: str = "") -> None:
        print(f"{label:<40} {value:>18}  {note}".rstrip())

    row("icalendar parse alone (reference)", f"{ical:.2f} s", mb(results["icalendar"]))
    row(
        "icalendar + recurring-ical-events",
        f"{rec['seconds']:.2f} s",
        f"{mb(rec)}; parse {rec['parse']:.2f} s, expand {rec['expand']:.2f} s: "
        f"{rec['occurrences']:,} occurrences in 2026-27",
    )
    row("calendar-svc parse + validate alone", f"{parse['seconds']:.2f} s", mb(parse))
    row(
        "calendar-svc import (parse + write)",
        f"{imp['seconds']:.2f} s",
        f"{mb(imp)}; {imp['entries_per_s']:,.0f} entries/s; parse {imp['parse']:.2f} s, "
        f"write {imp['write']:.2f} s; {imp['seconds'] / ical:.2f}x icalendar (target <= 1.5x)",
    )
    row(
        "re-import of the same file",
        f"{imp['reimport_write_seconds']:.2f} s",
        f"{imp['reimport_unchanged']:,} unchanged",
    )
    for name, label, note in (
        ("with-etag", "source re-poll, 304 (median of 50)", "target < 10 ms"),
        ("same-bytes", "source re-poll, same bytes, no ETag", "no parse"),
    ):
        row(
            label,
            f"{poll[name]['median_ms']:.2f} ms",
            f"max {poll[name]['max_ms']:.2f} ms; {note}",
        )
    row("first sync of the source", f"{poll['with-etag']['first_sync_seconds']:.2f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
