"""The HTTP API over real HTTP, against a real ``calendar-svc run`` process, on SQLite and
PostgreSQL: two editors racing, retried creates, scoped, read-only, revoked and expired
keys, a brute-force burst, oversized and mistyped bodies, ownership, and an edit that
moves a reminder the running daemon then sends once, at the new time.

One daemon per database serves the module (its webhook channel posts to a real HTTP
receiver); each test works in a calendar of its own. Requests that must count as
failed authentications come from loopback addresses of their own (127.0.0.x), so one
test's failures never lock another out.
"""

from __future__ import annotations

import json
import secrets
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from peers import HttpReceiver, HttpRequest, Response
from service_helpers import LOOPBACK, Service, feed_token, http_get, soon
from waiting import wait_for

from calendar_svc.api_keys import ApiKeys
from calendar_svc.clock import now_utc
from calendar_svc.errors import InputError
from calendar_svc.models import Delivery, Entry
from calendar_svc.schedule_files import parse_schedule
from calendar_svc.store import Store
from calendar_svc.timezones import UTC

pytestmark = pytest.mark.slow
AUTH_FAILURES = 5


class Hooks:
    """The daemon's webhook channel: every reminder it posted, in order."""

    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def respond(self, request: HttpRequest) -> Response:
        with self.lock:
            self.got.append(request.json()["data"])
        return 200, {}, b""

    def of(self, uid: str) -> list[dict[str, Any]]:
        with self.lock:
            return [data for data in self.got if data["entry"]["uid"] == uid]


@dataclass
class LiveApi:
    """A running daemon with the API on, and what a test needs to talk to it."""

    db_url: str
    folder: Path
    service: Service
    store: Store
    hooks: Hooks
    port: int = 0
    _sources: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/api/v1"

    def key(self, name: str | None = None, **options: Any) -> str:
        _, token = ApiKeys(self.store).create(name or f"key-{secrets.token_hex(4)}", **options)
        return token

    def client(self, token: str | None, *, source: str = LOOPBACK) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=30,
            transport=httpx.HTTPTransport(local_address=source),
        )

    def source(self, test: str) -> str:
        """A loopback address of the test's own, for requests that fail authentication."""
        return f"127.0.0.{self._sources.setdefault(test, 10 + len(self._sources))}"

    def calendar(self, client: httpx.Client, zone: str = "America/Mexico_City") -> str:
        slug = f"c-{secrets.token_hex(4)}"
        answer = client.post(
            "/calendars",
            json={"slug": slug, "name": f"Calendar {slug}", "timezone": zone, "reminders": []},
        )
        assert answer.status_code == 201, answer.text
        return slug


def _config(folder: Path, db_url: str, hook_url: str) -> Path:
    path = folder / "config.toml"
    path.write_text(
        textwrap.dedent(f"""\
        schedules = ["schedules/*.toml"]

        [database]
        url = "{db_url}"

        [feed]
        host = "{LOOPBACK}"
        port = 0
        public_url = "http://{LOOPBACK}:8080"

        [api]
        enabled = true
        auth_failures = {AUTH_FAILURES}
        auth_window = "PT4S"

        [reminders]
        channels = ["hook"]
        offsets = ["PT0S"]
        poll_interval = "PT1S"
        rescan_interval = "PT5S"
        retry_base = "PT1S"
        retry_max = "PT2S"
        lease = "PT30S"
        stop_timeout = "PT3S"

        [notifiers.hook]
        type = "webhook"
        url = "{hook_url}"
        allow_private = true
        timeout = 5
        """)
    )
    (folder / "schedules").mkdir(exist_ok=True)
    return path


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    folder = tmp_path_factory.mktemp(f"api-{request.param}")
    schema = None
    if request.param == "sqlite":
        db_url = f"sqlite:///{folder / 'calendar.sqlite3'}"
    else:
        database = str(request.getfixturevalue("pg_database"))
        schema = f"t_api_{secrets.token_hex(4)}"
        admin = sa.create_engine(database, poolclass=sa.NullPool)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        sep = "&" if "?" in database else "?"
        db_url = f"{database}{sep}options=-csearch_path%3D{schema}"
    hooks = Hooks()
    with HttpReceiver(hooks.respond) as receiver:
        service = Service(_config(folder, db_url, receiver.url), name=f"api-{request.param}")
        store = Store(db_url)
        try:
            service.start().wait_ready()
            live = LiveApi(db_url, folder, service, store, hooks)
            live.port = service.feed_port()
            yield live
        finally:
            service.kill()
            store.close()


@pytest.fixture
def admin(live: LiveApi) -> Iterator[httpx.Client]:
    with live.client(live.key()) as client:
        yield client


def _entry(title: str = "Meeting", **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "start": {"local": "2025-09-02T10:00:00", "zone": "America/Mexico_City"},
        "duration": "PT1H",
        **extra,
    }


# --- the answers a client sees ---------------------------------------------------------------


def test_an_entry_round_trips_with_wall_time_the_truth(live: LiveApi, admin: httpx.Client) -> None:
    slug = live.calendar(admin)
    body = {
        "uid": "flight-mex-uio",
        "title": "Flight Mexico City – Quito",
        "start": {"local": "2025-09-03T14:00:00", "zone": "America/Mexico_City"},
        "end": {"local": "2025-09-03T18:45:00", "zone": "America/Guayaquil"},
        "categories": ["flight"],
    }
    created = admin.post(f"/calendars/{slug}/entries", json=body)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/v1/calendars/{slug}/entries/flight-mex-uio"
    entry = created.json()
    assert entry["start"] == {
        "local": "2025-09-03T14:00:00",
        "zone": "America/Mexico_City",
        "fold": None,
    }
    assert entry["end"]["zone"] == "America/Guayaquil"
    # Mexico City is UTC-06:00 all year since 2022; Quito (Guayaquil) UTC-05:00.
    assert (entry["start_utc"], entry["end_utc"]) == (
        "2025-09-03T20:00:00Z",
        "2025-09-03T23:45:00Z",
    )
    assert entry["owner"]["kind"] == "api" and entry["sequence"] == 0
    got = admin.get(created.headers["location"].removeprefix("/api/v1"))
    assert got.json() == entry and got.headers["etag"] == created.headers["etag"]


def test_the_same_entry_is_refused_with_the_same_words_as_in_a_schedule_file(
    live: LiveApi, admin: httpx.Client
) -> None:
    slug = live.calendar(admin)
    answer = admin.post(
        f"/calendars/{slug}/entries",
        json=_entry(uid="q", start={"local": "2025-09-04T10:00:00", "zone": "America/Quito"}),
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    with pytest.raises(InputError) as toml:
        parse_schedule(
            {
                "calendar": {"slug": slug, "name": "x", "timezone": "America/Mexico_City"},
                "entries": [
                    {
                        "uid": "q",
                        "title": "Meeting",
                        "start": datetime(2025, 9, 4, 10),
                        "timezone": "America/Quito",
                    }
                ],
            },
            source="trip.toml",
        )
    assert problem["errors"] == [{"pointer": "/start/zone", "detail": toml.value.detail}]
    assert problem["detail"] == (
        "/start/zone: unknown timezone 'America/Quito' (it is not an IANA zone; use "
        "'America/Guayaquil')"
    )
    assert problem["status"] == 422 and problem["title"] == "Unprocessable Content"


def test_derived_instants_are_read_only(live: LiveApi, admin: httpx.Client) -> None:
    slug = live.calendar(admin)
    answer = admin.post(f"/calendars/{slug}/entries", json=_entry(start_utc="2025-09-02T16:00:00Z"))
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["pointer"] == "/start_utc"
    assert admin.get(f"/calendars/{slug}/entries").json() == []


def test_two_clients_editing_the_same_entry_one_gets_412(
    live: LiveApi, admin: httpx.Client
) -> None:
    slug = live.calendar(admin)
    created = admin.post(f"/calendars/{slug}/entries", json=_entry(uid="talks"))
    etag = created.headers["etag"]
    path = f"/calendars/{slug}/entries/talks"
    answers: dict[str, httpx.Response] = {}
    ready = threading.Barrier(2)

    def edit(title: str) -> None:
        with live.client(live.key()) as client:
            ready.wait(10)
            answers[title] = client.patch(path, json={"title": title}, headers={"If-Match": etag})

    threads = [threading.Thread(target=edit, args=(t,)) for t in ("Alice's", "Bob's")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    statuses = sorted(a.status_code for a in answers.values())
    assert statuses == [200, 412], {t: a.text for t, a in answers.items()}
    winner = next(t for t, a in answers.items() if a.status_code == 200)
    final = admin.get(path)
    assert final.json()["title"] == winner and final.json()["sequence"] == 1
    assert final.headers["etag"] != etag
    # Without If-Match nothing is written either.
    assert admin.put(path, json=_entry(title="Carol's")).status_code == 428
    assert admin.get(path).json()["title"] == winner


def test_a_retried_post_creates_one_entry(live: LiveApi, admin: httpx.Client) -> None:
    slug = live.calendar(admin)
    body = _entry("Press conference")  # no uid: the server makes one
    headers = {"Idempotency-Key": f"press-{secrets.token_hex(4)}"}
    answers: list[httpx.Response] = []
    ready = threading.Barrier(4)

    def post() -> None:
        with live.client(admin.headers["authorization"].split()[1]) as client:
            ready.wait(10)
            answers.append(client.post(f"/calendars/{slug}/entries", json=body, headers=headers))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["uid"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 3
    listed = admin.get(f"/calendars/{slug}/entries").json()
    assert [e["title"] for e in listed] == ["Press conference"]
    # The same key with another body is refused, and writes nothing.
    other = admin.post(f"/calendars/{slug}/entries", json=_entry("Other"), headers=headers)
    assert other.status_code == 422
    assert len(admin.get(f"/calendars/{slug}/entries").json()) == 1


def test_a_scoped_key_sees_and_changes_only_its_calendars(
    live: LiveApi, admin: httpx.Client
) -> None:
    mine, other = live.calendar(admin), live.calendar(admin)
    admin.post(f"/calendars/{other}/entries", json=_entry(uid="secret"))
    with live.client(live.key(calendars=[mine])) as scoped:
        assert [c["slug"] for c in scoped.get("/calendars").json()] == [mine]
        assert scoped.post(f"/calendars/{mine}/entries", json=_entry(uid="ok")).status_code == 201
        for method, path, body in (
            ("GET", f"/calendars/{other}", None),
            ("GET", f"/calendars/{other}/entries", None),
            ("GET", f"/calendars/{other}/entries/secret", None),
            ("POST", f"/calendars/{other}/entries", _entry()),
            ("DELETE", f"/calendars/{other}/entries/secret", None),
            ("GET", f"/calendars/{other}/reminders", None),
        ):
            answer = scoped.request(method, path, json=body, headers={"If-Match": '"1"'})
            assert answer.status_code == 404, (method, path, answer.text)
        # Exactly what a calendar that does not exist gets.
        gone = scoped.get("/calendars/no-such-calendar").json()
        hidden = scoped.get(f"/calendars/{other}").json()
        assert gone["detail"].replace("no-such-calendar", other) == hidden["detail"]
    assert admin.get(f"/calendars/{other}/entries/secret").status_code == 200
    with live.client(live.key(read_only=True)) as reader:
        assert reader.get(f"/calendars/{mine}/entries").status_code == 200
        refused = reader.post(f"/calendars/{mine}/entries", json=_entry(uid="nope"))
        assert refused.status_code == 403
    assert admin.get(f"/calendars/{mine}/entries/nope").status_code == 404


def test_revoked_and_expired_keys_are_refused(live: LiveApi, admin: httpx.Client) -> None:
    source = live.source("revoked")
    name = f"leaked-{secrets.token_hex(3)}"
    token = live.key(name)
    with live.client(token, source=source) as client:
        assert client.get("/calendars").status_code == 200
        ApiKeys(live.store).revoke(name)
        refused = client.get("/calendars")  # the very next request
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.json()["detail"] == "this key was revoked"
    # A key that expired a minute ago (created by a clock two minutes back).
    past = Store(live.db_url, clock=lambda: now_utc() - timedelta(minutes=2))
    try:
        _, expired = ApiKeys(past).create(
            f"old-{secrets.token_hex(3)}", expires_at=now_utc() - timedelta(minutes=1)
        )
    finally:
        past.close()
    with live.client(expired, source=source) as client:
        answer = client.get("/calendars")
        assert answer.status_code == 401 and answer.json()["detail"] == "this key has expired"
    with live.client(None) as anonymous:
        assert anonymous.get("/calendars").status_code == 401
    log = live.service.stderr()
    assert f"msg=api.auth_failed client={source} reason=revoked key={name}" in log
    assert token not in log and expired not in log


def test_a_brute_force_burst_is_answered_429_then_lets_go(
    live: LiveApi, admin: httpx.Client
) -> None:
    source = live.source("burst")
    good = admin.headers["authorization"].split()[1]
    guesses = [f"csk_{secrets.token_urlsafe(32)}" for _ in range(AUTH_FAILURES + 3)]
    statuses = []
    for guess in guesses:
        with live.client(guess, source=source) as client:
            statuses.append(client.get("/calendars"))
    assert [a.status_code for a in statuses] == [401] * AUTH_FAILURES + [429] * 3
    limited = statuses[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 4
    # A good key from that address waits too; from another address it is not slowed.
    with live.client(good, source=source) as client:
        assert client.get("/calendars").status_code == 429
    with live.client(good) as client:
        assert client.get("/calendars").status_code == 200
    log = live.service.stderr()
    assert f"msg=api.rate_limited client={source}" in log
    assert not any(guess in log for guess in guesses)

    def served() -> bool:
        with live.client(good, source=source) as client:
            return client.get("/calendars").status_code == 200

    wait_for(served, 15, "the window to pass", [live.service])


def test_a_10_mb_body_is_413_and_another_media_type_415(live: LiveApi, admin: httpx.Client) -> None:
    slug = live.calendar(admin)
    big = json.dumps(_entry(description="x" * 10_000_000)).encode()
    answer = admin.post(
        f"/calendars/{slug}/entries", content=big, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")

    # The same without Content-Length (chunked): refused while it streams.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    chunked = admin.post(
        f"/calendars/{slug}/entries", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    typed = admin.post(
        f"/calendars/{slug}/entries",
        content=json.dumps(_entry()).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert typed.status_code == 415 and "application/json" in typed.headers["accept-post"]
    broken = admin.post(
        f"/calendars/{slug}/entries",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert admin.get(f"/calendars/{slug}/entries").json() == []
    assert live.service.alive()


# --- owners ------------------------------------------------------------------------------------


def test_a_file_owned_entry_is_409_until_detached_then_its_file_leaves_it_alone(
    live: LiveApi, admin: httpx.Client
) -> None:
    slug = f"f-{secrets.token_hex(4)}"
    schedule = live.folder / "schedules" / f"{slug}.toml"

    def write(title: str) -> None:
        schedule.write_text(
            textwrap.dedent(f"""\
            [calendar]
            slug = "{slug}"
            name = "From a file"
            timezone = "America/Mexico_City"
            reminders = []

            [[entries]]
            uid = "talks"
            title = "{title}"
            start = 2025-09-02T10:00:00
            duration = "PT1H"
            """)
        )

    write("Talks")
    wait_for(
        lambda: admin.get(f"/calendars/{slug}/entries/talks").status_code == 200,
        20,
        "the daemon to import the file",
        [live.service],
    )
    got = admin.get(f"/calendars/{slug}/entries/talks")
    path = f"/calendars/{slug}/entries/talks"
    refused = admin.patch(
        path, json={"title": "Moved talks"}, headers={"If-Match": got.headers["etag"]}
    )
    assert refused.status_code == 409
    assert str(schedule.resolve()) in refused.json()["detail"]
    assert admin.delete(path, headers={"If-Match": got.headers["etag"]}).status_code == 409
    detached = admin.patch(
        path,
        json={"title": "Moved talks", "start": {"local": "2025-09-02T11:00:00"}, "detach": True},
        headers={"If-Match": got.headers["etag"]},
    )
    assert detached.status_code == 200, detached.text
    assert detached.json()["owner"]["kind"] == "api"
    assert detached.json()["start_utc"] == "2025-09-02T17:00:00Z"
    assert detached.json()["end_utc"] == "2025-09-02T18:00:00Z"  # its hour kept
    count = live.service.stderr().count(f"file={schedule.resolve()}")
    write("Talks (edited in the file)")
    live.service.wait_stderr(f"file={schedule.resolve()}", count=count + 1)
    line = [ln for ln in live.service.stderr().splitlines() if f"file={schedule.resolve()}" in ln][
        -1
    ]
    assert "kept=1" in line, line
    assert admin.get(path).json()["title"] == "Moved talks"


# --- subscribers and reminders follow ----------------------------------------------------------


def test_an_api_edit_moves_a_reminder_the_daemon_sends_once_at_the_new_time(
    live: LiveApi, admin: httpx.Client
) -> None:
    slug = live.calendar(admin, zone="UTC")
    first = soon(90)
    created = admin.post(
        f"/calendars/{slug}/entries",
        json={
            "uid": "moving",
            "title": "Meeting that moves",
            "start": {"local": first.replace(tzinfo=None).isoformat(), "zone": "UTC"},
            "duration": "PT30M",
            "reminders": ["PT0S"],
        },
    )
    assert created.status_code == 201, created.text

    def planned_for(start: datetime) -> bool:
        with live.store.read() as session:
            rows = session.execute(
                sa.select(Delivery.status).where(
                    Delivery.calendar_slug == slug, Delivery.occurrence_utc == start
                )
            ).all()
        return [r[0] for r in rows] == ["pending"]

    wait_for(lambda: planned_for(first), 20, "the first reminder to be planned", [live.service])
    moved_to = soon(6)
    answer = admin.patch(
        f"/calendars/{slug}/entries/moving",
        json={"start": {"local": moved_to.replace(tzinfo=None).isoformat()}, "duration": "PT30M"},
        headers={"If-Match": created.headers["etag"]},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["sequence"] == 1
    wait_for(lambda: live.hooks.of("moving"), 30, "the moved reminder", [live.service])
    sent = live.hooks.of("moving")
    assert [s["start_utc"] for s in sent] == [moved_to.strftime("%Y-%m-%dT%H:%M:%SZ")]
    received_at = now_utc()
    assert received_at >= moved_to

    def statuses() -> dict[datetime, str]:
        with live.store.read() as session:
            rows = session.execute(
                sa.select(Delivery.occurrence_utc, Delivery.status).where(
                    Delivery.calendar_slug == slug
                )
            ).all()
        return {k.astimezone(UTC): str(v) for k, v in rows}

    # The receiver has answered; the daemon records the send right after (in its next
    # write-back), so wait until the rows are final rather than read them once.
    final = {first: "cancelled", moved_to: "sent"}
    wait_for(lambda: statuses() == final, 10, lambda: f"rows {statuses()}", [live.service])
    # The feed shows the new time and the new SEQUENCE on the next poll.
    token = _feed_token(live, slug)
    status, body = http_get(f"{live.base}/feeds/{token}/{slug}.ics")
    assert status == 200
    text = body.decode()
    assert f"DTSTART:{moved_to:%Y%m%dT%H%M%S}Z" in text and "SEQUENCE:1" in text
    assert len(live.hooks.of("moving")) == 1  # once


def _feed_token(live: LiveApi, slug: str) -> str:
    if live.db_url.startswith("sqlite"):
        return feed_token(Path(live.db_url.removeprefix("sqlite:///")), slug)
    with live.store.read() as session:
        from calendar_svc.models import Calendar

        return str(session.scalar(sa.select(Calendar.feed_token).where(Calendar.slug == slug)))


def test_the_calendar_version_moves_with_every_api_change(
    live: LiveApi, admin: httpx.Client
) -> None:
    slug = live.calendar(admin)
    before = admin.get(f"/calendars/{slug}").json()["version"]
    created = admin.post(f"/calendars/{slug}/entries", json=_entry(uid="x"))
    after_create = admin.get(f"/calendars/{slug}").json()["version"]
    cancelled = admin.post(
        f"/calendars/{slug}/entries/x/cancel", headers={"If-Match": created.headers["etag"]}
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    after_cancel = admin.get(f"/calendars/{slug}")
    assert before < after_create < after_cancel.json()["version"]
    deleted = admin.delete(
        f"/calendars/{slug}/entries/x", headers={"If-Match": cancelled.headers["etag"]}
    )
    assert deleted.status_code == 204
    assert admin.get(f"/calendars/{slug}").json()["version"] > after_cancel.json()["version"]
    with live.store.read() as session:
        assert (
            session.scalar(sa.select(sa.func.count()).select_from(Entry).where(Entry.uid == "x"))
            == 0
        )


def test_reminder_preview(live: LiveApi, admin: httpx.Client) -> None:
    slug = live.calendar(admin)
    admin.post(
        f"/calendars/{slug}/entries",
        json=_entry(uid="talks", reminders=["PT1H", "PT15M"]),
    )
    answer = admin.get(
        f"/calendars/{slug}/reminders", params={"from": "2025-09-02", "to": "2025-09-02"}
    )
    assert answer.status_code == 200
    assert [(r["uid"], r["due_utc"], r["offset"]) for r in answer.json()] == [
        ("talks", "2025-09-02T15:00:00Z", "PT1H"),
        ("talks", "2025-09-02T15:45:00Z", "PT15M"),
    ]
    assert admin.get(f"/calendars/{slug}/reminders", params={"from": "soon"}).status_code == 400
