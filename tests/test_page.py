"""The subscribers' page over real HTTP (FeedServer on 127.0.0.1, httpx): what it shows, its
headers, its links, its 404s, share links on it, and the per-entry .ics.

The browser's view of it (zones, layout, QR code, accessibility) is tests/test_page_browser.py.
Runs on SQLite and PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.utils import format_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import TRIP, FakeClock

from calendar_svc.config import Config, parse_config
from calendar_svc.feed import FeedServer
from calendar_svc.importer import import_specs
from calendar_svc.schedule_files import load_file
from calendar_svc.shares import ShareLinks
from calendar_svc.store import Store
from calendar_svc.timezones import UTC, time_text, to_local

SLUG = "rubio-2025-09"
NAME = "Secretary Rubio: Mexico and Ecuador, 2-4 Sep 2025"


def page_config(url: str, **feed: Any) -> Config:
    return parse_config({"database": {"url": url}, "feed": {"port": 0, **feed}}, path=None)


class Page(HTMLParser):
    """The elements of a page the tests look at: every tag with its attributes and text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, "attrs": {k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(element)
        if tag not in ("meta", "link", "input", "br", "img", "path"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index]["tag"] == tag:
                del self._open[index:]
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, Any]]:
        found = []
        for element in self.elements:
            if tag is not None and element["tag"] != tag:
                continue
            if all(
                (v in element["attrs"].get("class", "").split())
                if k == "class_"
                else element["attrs"].get(k) == v
                for k, v in attrs.items()
            ):
                found.append(element)
        return found

    def by_id(self, ident: str) -> dict[str, Any]:
        (element,) = self.find(id=ident)
        return element


def text(element: dict[str, Any]) -> str:
    return " ".join(element["text"].split())


@pytest.fixture
def serve(trip_store: Store) -> Iterator[Callable[..., FeedServer]]:
    """Start a FeedServer on the trip with ``[feed]`` settings given as keywords."""
    trip_store.set_status("press-mexico-city", "cancelled", SLUG)
    servers: list[FeedServer] = []

    def start(**feed: Any) -> FeedServer:
        server = FeedServer(trip_store, page_config(trip_store.url, **feed), host="127.0.0.1")
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(timeout=5)


def token_of(store: Store) -> str:
    return store.get_calendar(SLUG).feed_token


def get(server: FeedServer, path: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        return http.get(path, **kwargs)


def test_the_page_and_its_headers(serve: Callable[..., FeedServer], trip_store: Store) -> None:
    server = serve()
    url = f"/c/{token_of(trip_store)}/{SLUG}"
    response = get(server, url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "style-src 'self'" in csp and "frame-ancestors 'none'" in csp
    # The URL holds the token: no link on the page may send it on as a Referer.
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, no-cache"
    page = Page(response.text)
    assert page.find("html")[0]["attrs"]["lang"] == "en"
    assert text(page.find("h1")[0]) == NAME
    assert {e["tag"] for e in page.elements} >= {"header", "main", "nav", "footer"}
    assert not page.find("style") and not any("style" in e["attrs"] for e in page.elements)
    assert all(e["attrs"].get("src") for e in page.find("script"))  # no inline script

    etag = response.headers["etag"]
    again = get(server, url, headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    last_modified = response.headers["last-modified"]
    assert last_modified == format_datetime(trip_store.get_calendar(SLUG).updated_at, usegmt=True)
    assert get(server, url, headers={"if-modified-since": last_modified}).status_code == 304
    # If-None-Match decides when both are sent.
    stale = {"if-none-match": '"other"', "if-modified-since": last_modified}
    assert get(server, url, headers=stale).status_code == 200
    with httpx.Client(base_url=server.url, timeout=10) as http:
        head = http.head(url)
    assert head.status_code == 200 and head.headers["etag"] == etag
    metrics = get(server, "/metrics").text
    assert 'calendar_svc_page_requests_total{status="200"}' in metrics
    assert 'calendar_svc_page_requests_total{status="304"}' in metrics


def test_unknown_tokens_and_paths_get_the_one_404(
    serve: Callable[..., FeedServer], trip_store: Store
) -> None:
    server = serve()
    token = token_of(trip_store)
    probes = [
        f"/c/{token[:-1]}x/{SLUG}",
        f"/c/{'A' * 43}/{SLUG}",
        f"/c/{token}/unknown",
        f"/c/{token}/{SLUG}/no-such-entry.ics",
        f"/c/x/{SLUG}/noboa-meeting.ics",
        "/static/page.000000000000.css",
        "/static/",
        "/nothing-here",
        f"/feeds/x/{SLUG}.ics",
    ]
    answers = set()
    for probe in probes:
        response = get(server, probe)
        headers = tuple(sorted((k, v) for k, v in response.headers.items() if k != "date"))
        answers.add((response.status_code, headers, response.content))
    assert len(answers) == 1
    status, _, body = answers.pop()
    assert status == 404 and body == b"Not Found\n"


def test_every_entry_in_its_own_zone(serve: Callable[..., FeedServer], trip_store: Store) -> None:
    server = serve()
    page = Page(get(server, f"/c/{token_of(trip_store)}/{SLUG}").text)
    entries = trip_store.entries()
    assert len(page.find("article", class_="entry")) == len(entries) == 11
    for entry in entries:
        article = page.by_id(f"entry-{entry.uid}")
        assert entry.title in text(article)
        if entry.all_day:
            assert "All day, Tue 2 Sep 2025 – Thu 4 Sep 2025" in text(article)
            continue
        start = to_local(entry.start_utc, entry.start_tz)
        end = to_local(entry.end_utc, entry.end_tz)
        assert f"{time_text(start)}" in text(article), entry.uid
        assert f"{time_text(end)}" in text(article), entry.uid
        times = [e for e in page.find("time") if e["text"] in (time_text(start), time_text(end))]
        assert {t["attrs"]["datetime"] for t in times} >= {
            entry.start_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
            entry.end_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    flight = text(page.by_id("entry-flight-mex-uio"))
    assert re.search(
        r"14:00 CST \(UTC-06:00\) America/Mexico_City .*18:45 -05 \(UTC-05:00\) "
        r"America/Guayaquil \(3h45\)",
        flight,
    )
    cancelled = page.by_id("entry-press-mexico-city")
    assert "cancelled" in cancelled["attrs"]["class"].split() and "cancelled" in text(cancelled)
    assert any(e["tag"] == "s" and "Joint press statement" in e["text"] for e in page.elements)
    # Day headings, in order, each a section of its own.
    assert [text(h) for h in page.find("h2") if h["attrs"].get("id", "").startswith("day-")] == [
        "Tuesday 2 September 2025",
        "Wednesday 3 September 2025",
        "Thursday 4 September 2025",
    ]
    bilateral = text(page.by_id("entry-sheinbaum-bilateral"))
    assert "Palacio Nacional, Mexico City (map" in bilateral
    assert "City: Mexico City" in bilateral and "Categories: meeting" in bilateral
    (map_link,) = [
        a for a in page.find("a") if a["attrs"]["href"].startswith("https://www.openstreetmap.org/")
    ][:1]
    assert "mlat=19.43260&mlon=-99.13130" in map_link["attrs"]["href"]


def test_subscribe_links_have_each_apps_format(
    serve: Callable[..., FeedServer], trip_store: Store
) -> None:
    public = "https://cal.example.org"
    server = serve(public_url=public)
    token = token_of(trip_store)
    page = Page(get(server, f"/c/{token}/{SLUG}").text)
    feed = f"{public}/feeds/{token}/{SLUG}.ics"
    webcal = f"webcal://cal.example.org/feeds/{token}/{SLUG}.ics"
    hrefs = {
        ident: page.by_id(ident)["attrs"]["href"]
        for ident in (
            "subscribe-webcal",
            "subscribe-google",
            "subscribe-outlook",
            "subscribe-microsoft365",
        )
    }
    name = quote(NAME, safe="")
    assert hrefs == {
        "subscribe-webcal": webcal,
        "subscribe-google": f"https://calendar.google.com/calendar/render?cid={webcal}",
        "subscribe-outlook": "https://outlook.live.com/calendar/0/addfromweb"
        f"?url={quote(feed, safe='')}&name={name}",
        "subscribe-microsoft365": "https://outlook.office.com/calendar/0/addfromweb"
        f"?url={quote(feed, safe='')}&name={name}",
    }
    assert page.by_id("feed-url")["attrs"]["value"] == feed
    assert not page.find(id="google-https-note")  # https: Google can subscribe
    (svg,) = page.find("svg")
    assert svg["attrs"]["role"] == "img" and webcal in svg["attrs"]["aria-label"]
    # Every entry: its .ics and, unless cancelled, an "add to Google" link.
    bilateral = [a["attrs"]["href"] for a in page.elements if a["tag"] == "a"]
    assert f"/c/{token}/{SLUG}/sheinbaum-bilateral.ics" in bilateral
    google_event = next(h for h in bilateral if "action=TEMPLATE" in h and "Sheinbaum" in h)
    assert "dates=20250902T160000Z%2F20250902T173000Z" in google_event
    assert "ctz=America%2FMexico_City" in google_event
    html = get(server, f"/c/{token}/{SLUG}").text
    cancelled = html.split('id="entry-press-mexico-city"')[1].split("</article>")[0]
    assert f"/{SLUG}/press-mexico-city.ics" in cancelled and "action=TEMPLATE" not in cancelled


def test_google_needs_https_and_the_page_says_so(
    serve: Callable[..., FeedServer], trip_store: Store
) -> None:
    server = serve(public_url="http://cal.example.org:8080")
    page = Page(get(server, f"/c/{token_of(trip_store)}/{SLUG}").text)
    assert "only to https://" in text(page.by_id("google-https-note"))


def test_one_entry_as_ics_has_the_feeds_bytes(
    serve: Callable[..., FeedServer], trip_store: Store
) -> None:
    server = serve()
    token = token_of(trip_store)
    feed = get(server, f"/feeds/{token}/{SLUG}.ics").content
    response = get(server, f"/c/{token}/{SLUG}/flight-mex-uio.ics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="flight-mex-uio.ics"'
    single = response.content

    def blocks(data: bytes, name: bytes) -> dict[bytes, bytes]:
        found = re.findall(rb"BEGIN:" + name + rb"\r\n.*?END:" + name + rb"\r\n", data, re.S)
        return {re.search(rb"(?:UID|TZID):([^\r]+)", b).group(1): b for b in found}  # type: ignore[union-attr]

    events = blocks(single, b"VEVENT")
    assert list(events) == [f"flight-mex-uio@{SLUG}.calendar-svc.local".encode()]
    assert events == {k: v for k, v in blocks(feed, b"VEVENT").items() if k in events}
    zones = blocks(single, b"VTIMEZONE")
    assert set(zones) == {b"America/Mexico_City", b"America/Guayaquil"}
    assert zones == {k: v for k, v in blocks(feed, b"VTIMEZONE").items() if k in zones}
    assert single.split(b"BEGIN:VTIMEZONE")[0] == feed.split(b"BEGIN:VTIMEZONE")[0]
    assert single.endswith(b"END:VCALENDAR\r\n")
    etag = response.headers["etag"]
    assert (
        get(
            server, f"/c/{token}/{SLUG}/flight-mex-uio.ics", headers={"if-none-match": etag}
        ).status_code
        == 304
    )


def test_filters_link_to_the_filtered_page_and_feed(
    serve: Callable[..., FeedServer], trip_store: Store
) -> None:
    public = "https://cal.example.org"
    server = serve(public_url=public)
    token = token_of(trip_store)
    page = Page(get(server, f"/c/{token}/{SLUG}").text)
    filters = page.find("nav")[0]
    start = page.elements.index(filters)
    links = [e for e in page.elements[start:] if e["tag"] == "a"]
    quito = [a["attrs"]["href"] for a in links if "city=Quito" in a["attrs"]["href"]]
    assert quito == [
        f"/c/{token}/{SLUG}?city=Quito",
        f"{public}/feeds/{token}/{SLUG}.ics?city=Quito",
    ]
    assert any(a["attrs"]["href"].endswith("?category=flight") for a in links)

    filtered = get(server, f"/c/{token}/{SLUG}", params={"city": "quito"})
    assert filtered.status_code == 200
    fpage = Page(filtered.text)
    assert {a["attrs"]["id"] for a in fpage.find("article")} == {
        "entry-noboa-meeting",
        "entry-embassy-quito",
        "entry-flight-uio-was",
    }
    assert "Showing only city quito" in text(fpage.find(class_="current-filter")[0])
    # Subscribing from a filtered page subscribes to the filtered feed.
    assert (
        fpage.by_id("feed-url")["attrs"]["value"] == f"{public}/feeds/{token}/{SLUG}.ics?city=quito"
    )
    assert fpage.by_id("subscribe-google")["attrs"]["href"].endswith(f"/{SLUG}.ics%3Fcity%3Dquito")
    current = [a for a in fpage.find("a") if a["attrs"].get("aria-current") == "page"]
    assert [text(a) for a in current] == ["Quito"]
    bad = get(server, f"/c/{token}/{SLUG}", params={"from": "4 Sep"})
    assert bad.status_code == 400 and b"from expects a date as YYYY-MM-DD" in bad.content
    # A bad filter with a wrong token is still just a 404.
    assert get(server, f"/c/x/{SLUG}", params={"from": "4 Sep"}).status_code == 404


def test_static_files_are_ours_hashed_and_immutable(
    serve: Callable[..., FeedServer], trip_store: Store
) -> None:
    server = serve()
    page = Page(get(server, f"/c/{token_of(trip_store)}/{SLUG}").text)
    references = [e["attrs"].get("src") or e["attrs"].get("href") for e in page.find("script")]
    references += [e["attrs"]["href"] for e in page.find("link")]
    assert len(references) == 3
    for reference in references:
        assert reference is not None
        assert re.fullmatch(r"/static/(page|icon)\.[0-9a-f]{12}\.(css|js|svg)", reference)
        response = get(server, reference)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["content-type"].split(";")[0] in (
            "text/css",
            "text/javascript",
            "image/svg+xml",
        )
        # No URL of another host in them (an SVG's namespace is a name, not a fetch).
        content = response.content.replace(b'xmlns="http://www.w3.org/2000/svg"', b"")
        assert b"http://" not in content and b"https://" not in content and b"url(" not in content
        again = get(server, reference, headers={"if-none-match": response.headers["etag"]})
        assert again.status_code == 304
    # Nothing on the page loads from another host (links to apps and maps are navigation).
    for element in page.elements:
        for name in ("src", "srcset", "data", "poster", "background"):
            assert not element["attrs"].get(name, "").startswith(("http", "//"))


def test_values_are_escaped(serve: Callable[..., FeedServer], trip_store: Store) -> None:
    spec = load_file(TRIP)
    hostile = '<script>alert("x")</script> & "quotes" <b>'
    entries = tuple(
        dataclasses.replace(e, title=hostile, description=hostile, location=hostile)
        if e.uid == "noboa-meeting"
        else e
        for e in spec.entries
    )
    with trip_store.write() as session:
        import_specs(
            session,
            [dataclasses.replace(spec, name=hostile, entries=entries)],
            now=trip_store.clock(),
        )
    server = serve()
    html = get(server, f"/c/{token_of(trip_store)}/{SLUG}").text
    assert "<script>alert" not in html and "<b>" not in html
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;quotes&#34; &lt;b&gt;" in html
    )


def test_past_days_fold_away_while_others_are_to_come(
    serve: Callable[..., FeedServer], trip_store: Store, clock: FakeClock
) -> None:
    trip_store.delete_entry("trip-overview", SLUG)  # it spans the whole trip
    server = serve()
    url = f"/c/{token_of(trip_store)}/{SLUG}"
    before = get(server, url)
    assert not Page(before.text).find("details")

    clock.set(datetime(2025, 9, 3, 12, 0, tzinfo=UTC))  # day 2 is over
    during = get(server, url, headers={"if-none-match": before.headers["etag"]})
    assert during.status_code == 200  # same data, other day: another page
    assert during.headers["last-modified"] == "Tue, 02 Sep 2025 23:30:00 GMT"  # day 2 ended
    since = {"if-modified-since": before.headers["last-modified"]}
    assert get(server, url, headers=since).status_code == 200
    page = Page(during.text)
    (details,) = page.find("details")
    assert text(page.find("summary")[0]) == "1 past day"
    inside = page.elements[page.elements.index(details) :]
    assert text(inside[1]) == "1 past day"
    day_two = page.by_id("day-2025-09-02")
    assert page.elements.index(day_two) > page.elements.index(details)

    clock.set(datetime(2025, 9, 6, 12, 0, tzinfo=UTC))  # all over: everything shows again
    after = Page(get(server, url).text)
    assert not after.find("details")
    assert "Every entry here is in the past." in text(after.find(class_="all-past")[0])
    assert len(after.find("article")) == 10


def test_the_page_can_be_turned_off(serve: Callable[..., FeedServer], trip_store: Store) -> None:
    server = serve(page=False)
    token = token_of(trip_store)
    assert get(server, f"/c/{token}/{SLUG}").status_code == 404
    assert get(server, f"/c/{token}/{SLUG}/noboa-meeting.ics").status_code == 404
    assert get(server, "/static/page.css").status_code == 404
    assert get(server, f"/feeds/{token}/{SLUG}.ics").status_code == 200


def test_links_behind_a_proxy_path(serve: Callable[..., FeedServer], trip_store: Store) -> None:
    server = serve(public_url="https://cal.example.org/base/")
    token = token_of(trip_store)
    page = Page(get(server, f"/c/{token}/{SLUG}").text)
    assert all(e["attrs"]["src"].startswith("/base/static/") for e in page.find("script"))
    assert f"/base/c/{token}/{SLUG}/noboa-meeting.ics" in [
        a["attrs"]["href"] for a in page.find("a")
    ]
    assert page.by_id("feed-url")["attrs"]["value"].startswith(
        f"https://cal.example.org/base/feeds/{token}/"
    )


def test_a_share_links_page(
    serve: Callable[..., FeedServer], trip_store: Store, clock: FakeClock
) -> None:
    links = ShareLinks(trip_store)
    _, quito = links.create(
        SLUG, "Embassy Quito", cities=["Quito"], expires_at=clock.now + timedelta(days=10)
    )
    _, press = links.create(SLUG, "Press office")
    public = "https://cal.example.org"
    server = serve(public_url=public)
    response = get(server, f"/c/{quito}/{SLUG}")
    assert response.status_code == 200
    page = Page(response.text)
    assert {a["attrs"]["id"] for a in page.find("article")} == {
        "entry-noboa-meeting",
        "entry-embassy-quito",
        "entry-flight-uio-was",
    }
    share = text(page.find(class_="share")[0])
    assert share.startswith("Shared with Embassy Quito; this link works until Thu 11 Sep 2025")
    # The subscriber subscribes with the link's own token, never the owner's.
    owner = token_of(trip_store)
    assert owner not in response.text
    assert page.by_id("feed-url")["attrs"]["value"] == f"{public}/feeds/{quito}/{SLUG}.ics"
    assert [text(a) for a in page.find("a") if "city=" in a["attrs"]["href"]][:1] == ["Quito"]
    assert get(server, f"/c/{quito}/{SLUG}/embassy-quito.ics").status_code == 200
    assert get(server, f"/c/{quito}/{SLUG}/sheinbaum-bilateral.ics").status_code == 404
    feed = get(server, f"/feeds/{quito}/{SLUG}.ics")
    assert feed.status_code == 200 and feed.content.count(b"BEGIN:VEVENT") == 3
    # Even asking for another city gives nothing outside the link's own.
    assert (
        get(server, f"/feeds/{quito}/{SLUG}.ics", params={"city": "Mexico City"}).content.count(
            b"BEGIN:VEVENT"
        )
        == 0
    )

    links.revoke(SLUG, "Embassy Quito")
    assert get(server, f"/c/{quito}/{SLUG}").status_code == 404
    assert get(server, f"/feeds/{quito}/{SLUG}.ics").status_code == 404
    assert get(server, f"/c/{press}/{SLUG}").status_code == 200
    _, brief = links.create(SLUG, "Brief", expires_at=clock.now + timedelta(hours=1))
    assert get(server, f"/c/{brief}/{SLUG}").status_code == 200
    clock.advance(timedelta(hours=1))
    assert get(server, f"/c/{brief}/{SLUG}").status_code == 404
    assert get(server, f"/feeds/{brief}/{SLUG}.ics").status_code == 404
    assert get(server, f"/c/{press}/{SLUG}").status_code == 200


def test_an_entry_with_an_odd_uid_downloads(
    serve: Callable[..., FeedServer], trip_store: Store
) -> None:
    """A uid from an imported calendar may hold any character: its link still works."""
    spec = load_file(TRIP)
    odd = 'odd uid/"with"?#chars'
    entries = (*spec.entries, dataclasses.replace(spec.entries[-1], uid=odd))
    with trip_store.write() as session:
        import_specs(session, [dataclasses.replace(spec, entries=entries)], now=trip_store.clock())
    server = serve()
    token = token_of(trip_store)
    page = Page(get(server, f"/c/{token}/{SLUG}").text)
    href = next(a["attrs"]["href"] for a in page.find("a") if "odd" in a["attrs"]["href"])
    assert href == f"/c/{token}/{SLUG}/odd%20uid%2F%22with%22%3F%23chars.ics"
    response = get(server, href)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        'attachment; filename="odd_uid__with___chars.ics"'
    )
    assert b'UID:odd uid/"with"?#chars@' in response.content
