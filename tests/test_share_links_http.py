"""Share links against a real server process: ``calendar-svc run`` (reminders off) serving the
trip, the CLI creating, listing and revoking links as an operator would, httpx fetching as
calendar apps do. Revocation is seen from the next request on, the other links keep
answering, fetch statistics move after fetches (written in batches, and at stop), an
expired link is a 404 like any other.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result
from conftest import TRIP
from service_helpers import Service
from waiting import wait_for

from calendar_svc.cli import cli

SLUG = "rubio-2025-09"
PUBLIC = "https://cal.example.org"
GOOGLE = "Google-Calendar-Importer"
IOS = "iOS/18.6 (22G86) dataaccessd/1.0"


def write_config(folder: Path, *, stats_interval: str) -> Path:
    (folder / "schedules").mkdir(exist_ok=True)
    shutil.copy(TRIP, folder / "schedules" / TRIP.name)
    config = folder / "config.toml"
    config.write_text(
        'schedules = ["schedules/*.toml"]\n'
        f'[database]\nurl = "sqlite:///{folder / "calendar.sqlite3"}"\n'
        f'[feed]\nhost = "127.0.0.1"\nport = 0\npublic_url = "{PUBLIC}"\n'
        f'stats_interval = "{stats_interval}"\nrefresh_interval = "PT1H"\n'
        "[reminders]\nenabled = false\n"
    )
    return config


Cli = Callable[..., Result]


@pytest.fixture
def served(
    tmp_path: Path, services: list[Service], request: pytest.FixtureRequest
) -> Iterator[tuple[Service, Cli, httpx.Client]]:
    """The trip served by a daemon process; the CLI on its config; a client on its port."""
    interval = getattr(request, "param", "PT1S")
    config = write_config(tmp_path, stats_interval=interval)
    service = Service(config, name="feed")
    services.append(service)
    service.start().wait_ready()
    port = service.feed_port()

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)

    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", timeout=10, headers={"accept-encoding": "identity"}
    ) as http:
        yield service, run, http


def create(run: Cli, name: str, *options: str) -> str:
    """Create a link with the CLI; its token, read from the printed URLs."""
    result = run("share", SLUG, "--name", name, *options)
    assert result.exit_code == 0, result.output
    urls = dict(re.findall(r"^(page|feed|webcal): +(\S+)$", result.stdout, re.M))
    token = urls["feed"].split("/")[-2]
    assert urls == {
        "page": f"{PUBLIC}/c/{token}/{SLUG}",
        "feed": f"{PUBLIC}/feeds/{token}/{SLUG}.ics",
        "webcal": f"webcal://cal.example.org/feeds/{token}/{SLUG}.ics",
    }
    return token


def listing(run: Cli) -> dict[str, dict[str, object]]:
    result = run("shares", SLUG, "--json")
    assert result.exit_code == 0, result.output
    return {link["name"]: link for link in json.loads(result.stdout)}


def feed(http: httpx.Client, token: str, agent: str = GOOGLE, **headers: str) -> httpx.Response:
    return http.get(f"/feeds/{token}/{SLUG}.ics", headers={"user-agent": agent, **headers})


def test_revoke_one_link_while_the_others_keep_answering(
    served: tuple[Service, Cli, httpx.Client],
) -> None:
    service, run, http = served
    press = create(run, "Press office")
    family = create(run, "Family")
    quito = create(run, "Embassy Quito", "--city", "Quito")
    for token in (press, family):
        response = feed(http, token)
        assert response.status_code == 200 and response.content.count(b"BEGIN:VEVENT") == 11
    assert feed(http, quito).content.count(b"BEGIN:VEVENT") == 3
    assert http.get(f"/c/{press}/{SLUG}").status_code == 200

    result = run("unshare", SLUG, "Press office")
    assert result.exit_code == 0 and "Revoked 'Press office'" in result.stdout

    # The server is another process: it hears of the commit within 100 ms (SQLite's
    # data_version, PostgreSQL's NOTIFY), with no database read per poll.
    def refused() -> httpx.Response | None:
        response = feed(http, press)
        return response if response.status_code == 404 else None

    gone = wait_for(refused, 1, "the revoked link to answer 404 within a second")
    wrong = feed(http, "x" * 43)
    assert gone.status_code == 404 == wrong.status_code
    assert (gone.content, _headers(gone)) == (wrong.content, _headers(wrong))
    assert http.get(f"/c/{press}/{SLUG}").status_code == 404
    assert http.get(f"/c/{press}/{SLUG}/noboa-meeting.ics").status_code == 404
    for token in (family, quito):
        assert feed(http, token).status_code == 200
    assert http.get(f"/c/{family}/{SLUG}").status_code == 200
    assert listing(run)["Press office"]["state"] == "revoked"
    again = run("unshare", SLUG, "Press office")
    assert again.exit_code == 2 and "no live link called 'Press office'" in again.stderr
    assert service.alive()


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((k, v) for k, v in response.headers.items() if k != "date")


def test_fetch_statistics_move_after_fetches(served: tuple[Service, Cli, httpx.Client]) -> None:
    _, run, http = served
    press = create(run, "Press office")
    family = create(run, "Family")
    assert listing(run)["Press office"]["fetches"] == 0
    first = feed(http, press)
    etag = first.headers["etag"]
    for _ in range(3):  # polls answered 304 count as fetches too
        assert feed(http, press, **{"if-none-match": etag}).status_code == 304
    feed(http, family, IOS)
    feed(http, family, IOS)
    http.get(f"/c/{family}/{SLUG}")  # a page view is no calendar app's poll

    def written() -> dict[str, dict[str, object]] | None:
        links = listing(run)
        counts = {name: link["fetches"] for name, link in links.items()}
        return links if counts == {"Press office": 4, "Family": 2} else None

    links = wait_for(written, 30, "the fetch counts in `shares --json`")
    assert links["Press office"]["last_user_agent"] == GOOGLE
    assert links["Family"]["last_user_agent"] == IOS
    assert links["Press office"]["current"] is True and links["Family"]["current"] is True
    assert links["Press office"]["last_fetch"] is not None
    table = run("shares", SLUG)
    assert table.exit_code == 0
    row = next(line for line in table.stdout.splitlines() if line.startswith("Press office"))
    assert re.search(r"\bactive\b.*\b4\b.*\byes\b.*Google-Calendar-Importer$", row), row

    feed(http, press, "Microsoft Outlook 16.0")
    moved = wait_for(
        lambda: (links := listing(run))["Press office"]["fetches"] == 5 and links,
        30,
        "the fifth fetch",
    )
    assert moved["Press office"]["last_user_agent"] == "Microsoft Outlook 16.0"


def test_a_link_past_its_expiry_is_404(served: tuple[Service, Cli, httpx.Client]) -> None:
    _, run, http = served
    lasting = create(run, "Press office")
    brief = create(run, "Visitor", "--expires", "PT5S")
    assert feed(http, brief).status_code == 200
    wait_for(lambda: feed(http, brief).status_code == 404, 30, "the link to expire")
    assert http.get(f"/c/{brief}/{SLUG}").status_code == 404
    assert feed(http, lasting).status_code == 200
    assert listing(run)["Visitor"]["state"] == "expired"


@pytest.mark.parametrize("served", ["PT1H"], indirect=True)
def test_counts_are_written_at_stop_and_no_token_is_stored(
    served: tuple[Service, Cli, httpx.Client], tmp_path: Path
) -> None:
    service, run, http = served
    press = create(run, "Press office")
    for _ in range(3):
        assert feed(http, press).status_code == 200
    # An hour between writes: nothing written yet.
    assert listing(run)["Press office"]["fetches"] == 0
    service.signal(signal.SIGTERM)
    assert service.wait_exit(30) == 0
    assert listing(run)["Press office"]["fetches"] == 3
    owner = run("feed-url", SLUG).stdout.split()[0].split("/")[-2]
    assert owner not in service.stderr() and press not in service.stderr()
    files = {path.name: path.read_bytes() for path in tmp_path.glob("calendar.sqlite3*")}
    # The calendar's own token is stored as it is (the owner's link): the scan would see one.
    assert any(owner.encode() in data for data in files.values())
    assert not [name for name, data in files.items() if press.encode() in data]
