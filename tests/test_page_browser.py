"""The subscribers' page in a real browser: Debian's Chromium driven by Playwright.

The trip (with its joint press statement cancelled) is served by a FeedServer on
127.0.0.1; the page is opened at 360 px and 1280 px, from a browser set to Asia/Tokyo and
to America/New_York, and checked as a subscriber would see it: each entry's own-zone time
and the viewer's, the cancelled entry struck through, every subscribe link's address, the
QR code (decoded by zxing-cpp from a screenshot), no request to any other host, no
console error, and no serious or critical finding of axe-core (from the npm registry).

Chromium is ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it);
Playwright never downloads a browser here. Without it the tests skip, saying why; without
npm, only the accessibility scan skips. ``CALENDAR_SVC_SCREENSHOTS=docs`` writes the
README's screenshots (docs/page-1280.png, docs/page-360.png).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from calendar_svc.config import parse_config
from calendar_svc.feed import FeedServer
from calendar_svc.importer import import_specs
from calendar_svc.schedule_files import load_file
from calendar_svc.store import Store
from calendar_svc.timezones import UTC, time_text, to_local

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SLUG = "rubio-2025-09"
NAME = "Secretary Rubio: Mexico and Ecuador, 2-4 Sep 2025"
ZONES = ("Asia/Tokyo", "America/New_York")
WIDTHS = (360, 1280)
AXE_MAJOR = "4"

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)",
        allow_module_level=True,
    )


# --- the server and the browser --------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FeedServer, Store]]:
    """The trip on SQLite, served on 127.0.0.1 as of 1 September 2025 (nothing past yet)."""
    folder = tmp_path_factory.mktemp("page")
    now = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
    store = Store(f"sqlite:///{folder / 'calendar.sqlite3'}", clock=lambda: now)
    store.migrate()
    with store.write() as session:
        import_specs(session, [load_file(ROOT / "schedules" / f"{SLUG}.toml")], now=now)
    store.set_status("press-mexico-city", "cancelled", SLUG)
    # No public_url: the page's links use the address it is reached at (this server).
    config = parse_config(
        {"database": {"url": store.url}, "feed": {"port": 0}},
        path=None,
    )
    server = FeedServer(store, config, host="127.0.0.1")
    server.start()
    yield server, store
    server.stop(timeout=5)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """One page load in a fresh browser context, with what it requested and complained of."""

    def __init__(self, browser: Any, url: str, **context: Any):
        self.context = browser.new_context(locale="en-US", **context)
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        response = self.page.goto(url, wait_until="load")
        assert response is not None and response.status == 200

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(browser: Any, served: tuple[FeedServer, Store]) -> Iterator[Any]:
    visits: list[Visit] = []

    def open_page(path: str | None = None, **context: Any) -> Visit:
        server, store = served
        token = store.get_calendar(SLUG).feed_token
        opened = Visit(browser, server.url + (path or f"/c/{token}/{SLUG}"), **context)
        visits.append(opened)
        return opened

    yield open_page
    for opened in visits:
        opened.close()


# --- what a viewer in another zone should read ------------------------------------------------


def viewer_time(instant: datetime, zone: str) -> tuple[str, str]:
    """("Wed 3 Sep", "01:00 (UTC+09:00)") as the page's script writes an instant for a
    browser in ``zone`` (Chromium has letters for New York's zone, none for Tokyo's)."""
    local = instant.astimezone(ZoneInfo(zone))
    offset = local.utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    abbreviation = f" {local.tzname()}" if zone == "America/New_York" else ""
    day = f"{local:%a} {local.day} {local:%b}"
    return day, f"{local:%H:%M}{abbreviation} (UTC{sign}{hours:02d}:{mins:02d})"


def expected_viewer_line(start: datetime, end: datetime, zone: str) -> str:
    start_day, start_text = viewer_time(start, zone)
    end_day, end_text = viewer_time(end, zone)
    line = f"Your time: {start_day}, {start_text}"
    if end != start:
        line += f" – {end_text}" if end_day == start_day else f" – {end_day}, {end_text}"
    return line


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("zone", ZONES)
def test_the_trip_in_a_browser(
    visit: Any, served: tuple[FeedServer, Store], zone: str, width: int, tmp_path: Path
) -> None:
    server, store = served
    opened = visit(timezone_id=zone, viewport={"width": width, "height": 900})
    page = opened.page
    assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") == zone
    assert page.title() == NAME

    # Every entry: its own zone's wall time, abbreviation and offset, and the viewer's.
    entries = store.entries()
    assert page.locator("article.entry").count() == len(entries) == 11
    for entry in entries:
        article = page.locator(f'article[id="entry-{entry.uid}"]')
        assert article.is_visible(), entry.uid
        if entry.all_day:
            assert "All day, Tue 2 Sep 2025 – Thu 4 Sep 2025" in article.inner_text()
            assert article.locator(".viewer").count() == 0
            continue
        own_start = article.locator("time.own.start")
        assert own_start.inner_text() == time_text(to_local(entry.start_utc, entry.start_tz))
        assert own_start.get_attribute("datetime") == entry.start_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        own_end = article.locator("time.own.end")
        assert own_end.inner_text() == time_text(to_local(entry.end_utc, entry.end_tz))
        viewer = article.locator(".viewer")
        assert viewer.is_visible(), entry.uid
        assert viewer.inner_text() == expected_viewer_line(entry.start_utc, entry.end_utc, zone)
    assert zone in page.locator(".viewer-note").inner_text()
    # Known points, written out: the bilateral meeting, 10:00 in Mexico City.
    bilateral = page.locator('article[id="entry-sheinbaum-bilateral"] .viewer').inner_text()
    assert (
        bilateral
        == {
            "Asia/Tokyo": "Your time: Wed 3 Sep, 01:00 (UTC+09:00) – 02:30 (UTC+09:00)",
            "America/New_York": "Your time: Tue 2 Sep, 12:00 EDT (UTC-04:00) – 13:30 EDT (UTC-04:00)",
        }[zone]
    )
    flight = page.locator('article[id="entry-flight-mex-uio"] .when').inner_text()
    assert "14:00 CST (UTC-06:00) America/Mexico_City" in flight
    assert "18:45 -05 (UTC-05:00) America/Guayaquil" in flight

    # The cancelled entry is struck through and says so.
    cancelled = page.locator('article[id="entry-press-mexico-city"]')
    title = cancelled.locator(".title")
    decoration = title.evaluate(
        "e => getComputedStyle(e.querySelector('s') || e).textDecorationLine"
    )
    assert "line-through" in decoration
    assert cancelled.locator(".badge-cancelled").inner_text().lower() == "cancelled"
    assert cancelled.locator(".badge-cancelled").is_visible()

    # Each subscribe link, exactly.
    token = store.get_calendar(SLUG).feed_token
    host = server.url.removeprefix("http://")
    https = f"{server.url}/feeds/{token}/{SLUG}.ics"
    webcal = f"webcal://{host}/feeds/{token}/{SLUG}.ics"
    name = quote(NAME, safe="")
    links = {
        ident: page.locator(f"#{ident}").get_attribute("href")
        for ident in (
            "subscribe-webcal",
            "subscribe-google",
            "subscribe-outlook",
            "subscribe-microsoft365",
        )
    }
    assert links == {
        "subscribe-webcal": webcal,
        "subscribe-google": f"https://calendar.google.com/calendar/render?cid={webcal}",
        "subscribe-outlook": "https://outlook.live.com/calendar/0/addfromweb"
        f"?url={quote(https, safe='')}&name={name}",
        "subscribe-microsoft365": "https://outlook.office.com/calendar/0/addfromweb"
        f"?url={quote(https, safe='')}&name={name}",
    }
    assert page.locator("#feed-url").input_value() == https
    # The server's address is http: Google would refuse it, and the page says so.
    assert page.locator("#google-https-note").is_visible()

    # The QR code, read from the screen by a real decoder, is the webcal URL.
    assert decode_qr(page.locator("svg.qr-code").screenshot()) == [webcal]

    # It fits the width: nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= width

    # Nothing was requested from anywhere but the server itself, and nothing complained.
    assert opened.requests and all(url.startswith(server.url + "/") for url in opened.requests)
    assert opened.errors == []

    shot = screenshot_path(tmp_path, zone, width)
    if shot is not None:
        # A phone's page is long: its first screens are enough to show it.
        clip = {"x": 0, "y": 0, "width": width, "height": 2400} if width < 600 else None
        page.screenshot(path=str(shot), full_page=True, clip=clip)


def test_without_scripts_the_page_reads_in_each_entrys_zone(visit: Any) -> None:
    opened = visit(java_script_enabled=False, viewport={"width": 360, "height": 800})
    page = opened.page
    own = page.locator('article[id="entry-noboa-meeting"] time.own.start')
    assert own.is_visible() and own.inner_text() == "10:00 -05 (UTC-05:00)"
    assert page.locator(".viewer").count() == 10
    assert not any(page.locator(".viewer").nth(i).is_visible() for i in range(10))
    assert not page.locator(".viewer-note").is_visible()
    assert "each entry's own time zone" in page.locator(".zones").inner_text()
    assert not page.locator("button[data-copy]").is_visible()  # it needs the script
    assert opened.errors == []


def test_keyboard_and_print(visit: Any) -> None:
    opened = visit(timezone_id="UTC", viewport={"width": 1280, "height": 900})
    page = opened.page
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => { const e = document.activeElement; const s = getComputedStyle(e);"
        " return [e.textContent.trim(), s.outlineStyle, s.outlineWidth,"
        " e.getBoundingClientRect().top]; }"
    )
    assert focused[0] == "Skip to the itinerary"
    assert focused[1] != "none" and focused[2] != "0px" and focused[3] >= 0  # visible focus
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "itinerary"

    page.emulate_media(media="print")
    hidden = page.evaluate(
        "() => ['.subscribe', '.filters', '.actions', '.skip'].map(sel =>"
        " getComputedStyle(document.querySelector(sel)).display)"
    )
    assert hidden == ["none"] * 4
    days = page.evaluate(
        "() => [...document.querySelectorAll('section.day')].map(d =>"
        " getComputedStyle(d).breakInside)"
    )
    assert days == ["avoid"] * 3
    assert opened.errors == []


@pytest.mark.parametrize("width", WIDTHS)
def test_axe_finds_no_serious_or_critical_violation(
    visit: Any, axe_source: str, width: int
) -> None:
    # The scan is injected, which this page's CSP forbids: bypassed for this context only
    # (the other tests load the page with its CSP and see no console error).
    opened = visit(
        timezone_id="America/New_York", viewport={"width": width, "height": 900}, bypass_csp=True
    )
    page = opened.page
    page.evaluate(axe_source)
    results = page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']});"
        " return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)})); }"
    )
    serious = [v for v in results if v["impact"] in ("serious", "critical")]
    assert serious == [], "\n".join(
        f"{v['impact']}: {v['id']} ({v['help']}): {v['nodes']}" for v in serious
    )
    assert opened.errors == []


# --- helpers ----------------------------------------------------------------------------------


def decode_qr(png: bytes) -> list[str]:
    """The texts of the QR codes in a PNG screenshot, by zxing-cpp."""
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    return [barcode.text for barcode in zxingcpp.read_barcodes(image)]


def screenshot_path(tmp_path: Path, zone: str, width: int) -> Path | None:
    """Where this run's screenshot goes: the README's under docs/ when asked
    (``CALENDAR_SVC_SCREENSHOTS=docs``: 1280 px from Tokyo, 360 px from New York)."""
    if os.environ.get("CALENDAR_SVC_SCREENSHOTS") == "docs":
        wanted = {1280: "Asia/Tokyo", 360: "America/New_York"}
        return ROOT / "docs" / f"page-{width}.png" if wanted[width] == zone else None
    return tmp_path / f"page-{width}-{zone.replace('/', '-')}.png"


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, installed from the npm registry into a cache folder outside the
    tree on first use (skips, saying why, when npm is missing or cannot install it)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the accessibility scan needs axe-core from npm")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "calendar-svc-tests" / f"axe-core-{AXE_MAJOR}"
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="axe-core-", dir=folder.parent))
        try:
            result = subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
                 "--no-save", "--loglevel=error", f"axe-core@{AXE_MAJOR}"],
                capture_output=True, text=True, timeout=300, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip("npm install axe-core did not finish within 300 s")
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
            pytest.skip(f"npm could not install axe-core: {reason}")
        try:
            staging.rename(folder)  # atomic: a parallel run may have won, which is as good
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    source = script.read_text(encoding="utf-8")
    assert re.search(r"axe v?4\.", source[:500]), "not axe-core 4"
    return source
