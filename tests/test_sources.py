"""Sources: ICS feeds followed over HTTP, against a real local server (loopback only).

The server changes, fails, trickles, bombs and loops; each fetch either imports
what changed, or keeps the last good copy and says why. A daemon with a hostile
source still sends the reminders of its other calendars.
"""

from __future__ import annotations

import gzip
import json
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from peers import HttpReceiver, HttpRequest
from service_helpers import Service, config_text, healthz, http_get, metric, schedule_text, soon

from calendar_svc.config import Config, parse_config
from calendar_svc.events import Event, EventBus, SourceFailed, SourceFetched
from calendar_svc.filters import EntryFilter
from calendar_svc.models import OriginKind
from calendar_svc.sources.sync import states, sync
from calendar_svc.store import Store

FIXTURES = Path(__file__).parent / "fixtures" / "ics"
GOOGLE = (FIXTURES / "google.ics").read_bytes()


class Feed:
    """What the test server serves: a body with an ETag, or a misbehaviour."""

    def __init__(self, body: bytes = GOOGLE) -> None:
        self.body = body
        self.status = 200
        self.headers: dict[str, str] = {}
        self.special: Callable[[HttpRequest], Any] | None = None

    def __call__(self, request: HttpRequest) -> Any:
        if self.special is not None:
            return self.special(request)
        if self.status != 200:
            return self.status, {}, b"failing"
        etag = f'"{zlib.crc32(self.body):08x}"'
        if request.headers.get("if-none-match") == etag:
            return 304, {"etag": etag}, b""
        return 200, {"etag": etag, "content-type": "text/calendar", **self.headers}, self.body


@pytest.fixture
def feed() -> Iterator[tuple[Feed, HttpReceiver]]:
    served = Feed()
    with HttpReceiver(served) as server:
        yield served, server


def make_config(url: str, **source: Any) -> Config:
    table = {"url": url, "calendar": "team", "allow_private": True, **source}
    return parse_config({"sources": [table], "database": {"url": "sqlite://"}}, path=None)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.bus = EventBus()
        self.bus.add_listener(self.events.append)


def run(store: Store, config: Config) -> tuple[Any, list[Event]]:
    recorder = Recorder()
    result = sync(store, config.sources[0], config, recorder.bus)
    return result, recorder.events


def titles(store: Store) -> set[str]:
    return {e.title for e in store.entries(EntryFilter(calendar="team"))}


def test_first_fetch_creates_the_calendar_and_the_entries_belong_to_the_source(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    _, server = feed
    config = make_config(server.url + "/team.ics")
    result, events = run(sqlite_store, config)
    assert result.error is None and result.changed and result.created == 6
    calendar = sqlite_store.get_calendar("team")
    assert (calendar.name, calendar.timezone) == ("Team Berlin", "Europe/Berlin")
    entries = sqlite_store.entries(EntryFilter(calendar="team"))
    assert {e.origin_kind for e in entries} == {OriginKind.SOURCE}
    assert {e.origin_name for e in entries} == {"team"}
    assert isinstance(events[-1], SourceFetched) and events[-1].changed


def test_an_unchanged_source_costs_a_304_and_no_parse(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server = feed
    config = make_config(server.url + "/team.ics")
    run(sqlite_store, config)
    import calendar_svc.sources.sync as sync_module

    def no_parse(*_: Any, **__: Any) -> Any:
        raise AssertionError("an unchanged source was parsed")

    monkeypatch.setattr(sync_module, "parse_ics", no_parse)
    version = sqlite_store.get_calendar("team").version
    result, events = run(sqlite_store, config)
    assert result.error is None and not result.changed
    assert server.requests[-1].headers["if-none-match"].startswith('"')
    assert isinstance(events[-1], SourceFetched) and not events[-1].changed
    assert sqlite_store.get_calendar("team").version == version


def test_same_bytes_without_validators_are_not_parsed_either(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, server = feed
    served.special = lambda _r: (200, {}, GOOGLE)  # no ETag, no Last-Modified
    config = make_config(server.url + "/team.ics")
    run(sqlite_store, config)
    import calendar_svc.sources.sync as sync_module

    monkeypatch.setattr(sync_module, "parse_ics", lambda *a, **k: pytest.fail("parsed"))
    result, _ = run(sqlite_store, config)
    assert result.error is None and not result.changed


def test_a_new_version_updates_and_prunes(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    served, server = feed
    config = make_config(server.url + "/team.ics")
    run(sqlite_store, config)
    served.body = GOOGLE.replace(b"SUMMARY:Team dinner", b"SUMMARY:Dinner").replace(
        b"UID:cancelled-review@google.com", b"UID:new-review@google.com"
    )
    result, _ = run(sqlite_store, config)
    assert (result.created, result.updated, result.pruned) == (1, 1, 1)
    assert "Dinner" in titles(sqlite_store) and "Team dinner" not in titles(sqlite_store)


@pytest.mark.parametrize(
    "fault",
    ["status 500", "not icalendar", "bad event", "gone server"],
)
def test_a_failed_fetch_keeps_the_last_good_copy_and_says_so(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver], fault: str
) -> None:
    served, server = feed
    config = make_config(server.url + "/team.ics")
    run(sqlite_store, config)
    before = titles(sqlite_store)
    if fault == "status 500":
        served.status = 500
    elif fault == "not icalendar":
        served.body = b"<html>maintenance</html>"
    elif fault == "bad event":
        served.body = GOOGLE.replace(b"DTSTART:20250320T180000", b"DTSTART:2025032")
    else:
        config = make_config("http://127.0.0.1:9/team.ics", timeout="PT2S")
    result, events = run(sqlite_store, config)
    assert result.error is not None
    assert titles(sqlite_store) == before
    failed = events[-1]
    assert isinstance(failed, SourceFailed) and failed.failures == 1
    assert failed.last_success is not None
    state = states(sqlite_store)["team"]
    assert state.failures == 1 and state.last_error == result.error
    assert state.last_success_at is not None
    expected = {
        "status 500": "answered 500",
        "not icalendar": "not an iCalendar",
        "bad event": "floating-dinner@google.com",
        "gone server": "cannot connect",
    }[fault]
    assert expected in result.error


def test_limits_a_large_body_is_refused(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    served, server = feed
    served.special = lambda _r: (200, {}, b"X" * 50_000_000)  # 50 MB, with its length
    result, _ = run(sqlite_store, make_config(server.url + "/big.ics"))
    assert result.error is not None and "limit 20,000,000" in result.error


def test_limits_a_large_body_without_a_length_stops_at_the_limit(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    served, server = feed
    served.special = lambda _r: (200, {}, (b"X" * 1_000_000 for _ in range(30)))
    result, _ = run(sqlite_store, make_config(server.url + "/big.ics", max_bytes=5_000_000))
    assert result.error is not None and "over the limit of 5,000,000 bytes" in result.error


def test_limits_a_gzip_bomb_stops_at_the_decompressed_limit(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    served, server = feed
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = b"\0" * 1_000_000
    bomb = b"".join(packer.compress(zeros) for _ in range(300)) + packer.flush()  # 300 MB
    assert len(bomb) < 1_000_000
    served.special = lambda _r: (200, {"content-encoding": "gzip"}, bomb)
    result, _ = run(sqlite_store, make_config(server.url + "/bomb.ics"))
    assert result.error is not None
    assert "decompressed body is over the limit of 20,000,000 bytes" in result.error


def test_a_gzipped_feed_is_read(sqlite_store: Store, feed: tuple[Feed, HttpReceiver]) -> None:
    served, server = feed
    served.special = lambda _r: (200, {"content-encoding": "gzip"}, gzip.compress(GOOGLE))
    result, _ = run(sqlite_store, make_config(server.url + "/team.ics"))
    assert result.error is None and result.created == 6


def test_limits_a_server_that_trickles_is_cut_at_the_timeout(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    served, server = feed
    stop = time.monotonic() + 30
    ended: list[bool] = []

    def trickle() -> Iterator[bytes]:
        yield b"BEGIN:VCALENDAR\r\n"
        while time.monotonic() < stop:
            time.sleep(0.1)  # the hostile server's own pace, not a wait of the test
            yield b"X"
        ended.append(True)

    served.special = lambda _r: (200, {}, trickle())
    result, _ = run(sqlite_store, make_config(server.url + "/slow.ics", timeout="PT1S"))
    assert result.error is not None and "did not arrive within 1 s" in result.error
    assert not ended  # cut by our deadline while the server still had bytes to trickle


def test_limits_a_redirect_loop_is_refused(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    served, server = feed
    served.special = lambda r: (302, {"location": r.path + "x"}, b"")
    result, _ = run(sqlite_store, make_config(server.url + "/loop.ics"))
    assert result.error is not None and "more than 5 redirects" in result.error
    assert len(server.requests) == 6


def test_redirects_are_followed_and_credentials_stay_on_their_host(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    served, server = feed
    monkeypatch.setenv("TEAM_TOKEN", "s3cret-token")

    def respond(request: HttpRequest) -> Any:
        if request.path == "/old.ics":
            return 301, {"location": "/new.ics"}, b""
        return 200, {}, GOOGLE

    served.special = respond
    result, _ = run(sqlite_store, make_config(server.url + "/old.ics", token_env="TEAM_TOKEN"))
    assert result.error is None and result.created == 6
    assert [r.path for r in server.requests] == ["/old.ics", "/new.ics"]
    assert all(r.headers["authorization"] == "Bearer s3cret-token" for r in server.requests)


def test_a_private_address_is_refused_unless_allowed(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    _, server = feed
    result, _ = run(sqlite_store, make_config(server.url + "/team.ics", allow_private=False))
    assert result.error is not None and "non-public address 127.0.0.1" in result.error
    assert server.requests == []
    redirect = make_config(f"http://localhost:{server.port}/x", allow_private=False)
    result, _ = run(sqlite_store, redirect)
    assert result.error is not None and "non-public address" in result.error


def test_basic_auth_and_headers_from_the_environment(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server = feed
    monkeypatch.setenv("TEAM_PASSWORD", "pw")
    monkeypatch.setenv("TEAM_HEADERS", "X-Api-Key: abc\nX-Team: ops\n")
    config = make_config(
        server.url + "/team.ics",
        username="cal",
        password_env="TEAM_PASSWORD",
        headers_env="TEAM_HEADERS",
    )
    result, _ = run(sqlite_store, config)
    assert result.error is None
    sent = server.requests[0].headers
    assert sent["authorization"] == "Basic Y2FsOnB3"
    assert (sent["x-api-key"], sent["x-team"]) == ("abc", "ops")


def test_a_missing_secret_is_a_failure_naming_the_variable(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, server = feed
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    result, _ = run(sqlite_store, make_config(server.url + "/t.ics", token_env="NOPE_TOKEN"))
    assert result.error is not None and "'NOPE_TOKEN' is not set" in result.error
    assert server.requests == []


def test_source_reminders_replace_the_feed_s_alarms(
    sqlite_store: Store, feed: tuple[Feed, HttpReceiver]
) -> None:
    _, server = feed
    run(sqlite_store, make_config(server.url + "/team.ics", reminders=["PT1H", "PT5M"]))
    reminders = {
        tuple(e.reminders or ()) for e in sqlite_store.entries(EntryFilter(calendar="team"))
    }
    assert reminders == {("PT1H", "PT5M")}


def test_webcal_urls_are_read_as_https() -> None:
    config = make_config("webcal://calendar.example.org/team.ics")
    assert config.sources[0].url == "https://calendar.example.org/team.ics"


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_sources_fetch_and_status(
    run_cli: Callable[..., Result],
    add_to_config: Callable[[str], None],
    feed: tuple[Feed, HttpReceiver],
) -> None:
    served, server = feed
    add_to_config(
        f"""
        [[sources]]
        name = "team-feed"
        url = "{server.url}/team.ics"
        calendar = "team"
        allow_private = true
        """
    )
    listed = run_cli("sources")
    assert "team-feed  -> team  0 entries  never fetched" in listed.output
    fetched = run_cli("fetch", "team-feed")
    assert fetched.exit_code == 0, fetched.output
    assert "team-feed -> team: 6 created, 0 updated, 0 pruned" in fetched.output
    assert "unchanged" in run_cli("fetch", "team-feed").output
    served.status = 503
    failed = run_cli("fetch", "team-feed")
    assert failed.exit_code == 1
    assert "answered 503" in failed.output and "its entries are kept" in failed.output
    rows = json.loads(run_cli("sources", "--json").output)
    assert rows[0]["failures"] == 1 and rows[0]["entries"] == 6
    assert rows[0]["last_success"] is not None and "503" in rows[0]["last_error"]
    status = run_cli("status").output
    assert "Sources:" in status and "FAILING (1 in a row" in status
    cancel = run_cli("cancel", "floating-dinner@google.com")
    assert cancel.exit_code == 2 and "read-only" in cancel.output
    unknown = run_cli("fetch", "nope")
    assert unknown.exit_code == 2 and "no source 'nope'" in unknown.output


# --- the daemon: a hostile source never holds up the reminders --------------------------------


@pytest.mark.slow
def test_a_hostile_source_does_not_hold_up_other_reminders(
    tmp_path: Path, services: list[Service]
) -> None:
    stop = time.monotonic() + 60

    def hostile(request: HttpRequest) -> Any:
        if request.path == "/good.ics":
            return 200, {}, GOOGLE
        if request.path == "/bomb.ics":
            packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            body = b"".join(packer.compress(b"\0" * 1_000_000) for _ in range(100))
            return 200, {"content-encoding": "gzip"}, body + packer.flush()

        def trickle() -> Iterator[bytes]:
            while time.monotonic() < stop:
                time.sleep(0.2)  # the hostile server's pace
                yield b"X"

        return 200, {}, trickle()

    with HttpReceiver(hostile) as server:
        (tmp_path / "schedules").mkdir()
        due = soon(12)
        (tmp_path / "schedules" / "mine.toml").write_text(schedule_text("mine", {"due": due}))
        text = config_text(tmp_path / "cal.sqlite3")
        for name, path, extra in (
            ("slow", "/slow.ics", 'timeout = "PT30S"\n'),
            ("bomb", "/bomb.ics", ""),
            ("good", "/good.ics", ""),
        ):
            text += (
                f'\n[[sources]]\nname = "{name}"\nurl = "{server.url}{path}"\n'
                f'calendar = "{name}"\nallow_private = true\ninterval = "PT5S"\n{extra}'
            )
        config = tmp_path / "config.toml"
        config.write_text(text)
        daemon = Service(config, name="daemon")
        services.append(daemon.start().wait_ready())
        daemon.wait_stderr("msg=source.imported source=good", 30)
        daemon.wait_stderr("msg=source.failed source=bomb", 30)
        # The reminder of the file's calendar goes out at its time while "slow" trickles.
        daemon.wait_stdout("Entry due", 40)
        port = daemon.feed_port()
        code, health = healthz(port)
        assert code == 200
        assert health["sources"]["good"]["failures"] == 0
        assert health["sources"]["bomb"]["failures"] >= 1
        assert "decompressed body" in health["sources"]["bomb"]["last_error"]
        _, body = http_get(f"http://127.0.0.1:{port}/metrics")
        text_metrics = body.decode()
        assert (
            metric(
                text_metrics, "calendar_svc_source_fetches_total", source="bomb", result="failed"
            )
            or 0
        ) >= 1
        assert (
            metric(
                text_metrics, "calendar_svc_source_fetches_total", source="good", result="changed"
            )
            or 0
        ) == 1
        assert datetime.now(UTC) < due + timedelta(seconds=30)
