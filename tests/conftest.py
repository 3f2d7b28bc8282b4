"""Fixtures shared by the whole suite.

PostgreSQL tests run when ``CALENDAR_SVC_TEST_PG_URL`` points at a server
(``.ci/run`` sets it); each test gets a fresh schema, dropped afterwards.
Without it they skip with a reason.
"""

from __future__ import annotations

import os
import secrets
import shutil
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from calendar_svc.store import Store
from calendar_svc.timezones import UTC

ROOT = Path(__file__).resolve().parents[1]
TRIP = ROOT / "schedules" / "rubio-2025-09.toml"
PG_ENV = "CALENDAR_SVC_TEST_PG_URL"


class FakeClock:
    """A clock tests move by hand: ``clock()`` returns the current fake instant."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now

    def set(self, value: datetime) -> None:
        self.now = value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 9, 1, 12, 0, tzinfo=UTC))


def _pg_base_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(
            f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"
        )
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL schema (dropped after the test)."""
    import sqlalchemy as sa

    base = _pg_base_url()
    schema = f"cs_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"{PG_ENV} is set but the server is not reachable: {exc}")
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calendar.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    store = Store(db_url, clock=clock)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'calendar.sqlite3'}", clock=clock)
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def trip_path() -> Path:
    return TRIP


@pytest.fixture
def trip_store(store: Store) -> Store:
    from calendar_svc.importer import import_specs
    from calendar_svc.schedule_files import load_file

    with store.write() as session:
        import_specs(session, [load_file(TRIP)], now=store.clock())
    return store


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with a working config.toml (SQLite inside it) and a copy of the trip."""
    (tmp_path / "schedules").mkdir()
    shutil.copy(TRIP, tmp_path / "schedules" / TRIP.name)
    (tmp_path / "config.toml").write_text(
        textwrap.dedent(
            """\
            schedules = ["schedules/*.toml"]

            [database]
            url = "sqlite:///var/calendar.sqlite3"

            [feed]
            port = 0

            [display]
            timezone = "America/New_York"
            label = "Washington"

            [notifiers.console]
            type = "console"
            """
        )
    )
    return tmp_path


@pytest.fixture
def run_cli(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Invoke the CLI in ``workdir`` (so ./config.toml is found) and return the result."""
    from calendar_svc.cli import cli

    monkeypatch.chdir(workdir)
    monkeypatch.delenv("CALENDAR_SVC_CONFIG", raising=False)
    monkeypatch.delenv("CALENDAR_SVC_DATABASE_URL", raising=False)

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke
