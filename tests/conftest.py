"""Fixtures shared by the whole suite.

PostgreSQL: plain ``pytest`` runs the PostgreSQL tests whenever a server
answers, at ``$CALENDAR_SVC_TEST_PG_URL`` if set (any SQLAlchemy URL naming a
server and a user allowed to create databases; its database part is not
used), else at ``postgresql+psycopg://postgres@127.0.0.1:5432``. The session
creates a database of its own (``cs_test_<pid>_<random>``, through the
server's ``postgres`` database) on first use and drops it at the end, so
runs in parallel and an aborted run leave each other alone. Each test gets a
fresh schema inside it (``pg_url``); daemons a test starts as subprocesses use
that same URL, hence the same database and schema.

Without a server on 127.0.0.1:5432 (and no ``$CALENDAR_SVC_TEST_PG_URL``) the
PostgreSQL tests skip, saying why. When ``$CALENDAR_SVC_TEST_PG_URL`` is set
and its server cannot be used, they fail instead: it was asked for.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest
from click.testing import CliRunner, Result

from calendar_svc.store import Store
from calendar_svc.timezones import UTC

if TYPE_CHECKING:
    from service_helpers import Service

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
def process_state() -> Iterator[None]:
    """A daemon's ``run()`` installs signal handlers and logging for the whole process: put
    them back after the test (modules that run daemons in-process use it for every test)."""
    handlers = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    root = logging.getLogger()
    root_handlers, level = list(root.handlers), root.level
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    root.handlers[:] = root_handlers
    root.setLevel(level)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 9, 1, 12, 0, tzinfo=UTC))


PG_DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _pg_unavailable(reason: str) -> NoReturn:
    """Skip when PostgreSQL was only looked for; fail when the environment asked for it."""
    if os.environ.get(PG_ENV):
        pytest.fail(f"{PG_ENV} is set, but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests: {reason}")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The URL of a database created for this test session; dropped when it ends."""
    import sqlalchemy as sa

    server = sa.make_url(os.environ.get(PG_ENV) or PG_DEFAULT_SERVER)
    if not os.environ.get(PG_ENV) and not _answers(server.host or "", server.port or 5432):
        _pg_unavailable(
            f"no server answers on {server.host}:{server.port} "
            f"(start PostgreSQL there, or set {PG_ENV} to a server's URL)"
        )
    # CREATE/DROP DATABASE go through the server's "postgres" database (the one
    # named in the URL if that one is refused), outside a transaction.
    admin = None
    errors: list[str] = []
    for maintenance in dict.fromkeys(("postgres", server.database or "postgres")):
        try:
            engine = sa.create_engine(
                server.set(database=maintenance),
                isolation_level="AUTOCOMMIT",
                poolclass=sa.NullPool,
            )
        except ModuleNotFoundError as exc:  # no driver: pip install -e '.[test]'
            _pg_unavailable(f"its driver is not installed ({exc})")
        try:
            with engine.connect():
                admin = engine
                break
        except sa.exc.OperationalError as exc:
            engine.dispose()
            errors.append(str(exc.orig).strip().splitlines()[0])
    if admin is None:
        where = server.render_as_string(hide_password=True)
        _pg_unavailable(f"cannot connect to {where}: {'; '.join(dict.fromkeys(errors))}")
    name = f"cs_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.DBAPIError as exc:
        admin.dispose()
        _pg_unavailable(f"cannot create a test database: {str(exc.orig).splitlines()[0]}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # Daemons a test killed may leave sessions the server has not reaped yet.
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A URL to a fresh, empty schema in the session's PostgreSQL database."""
    import sqlalchemy as sa

    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(pg_database, poolclass=sa.NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_database else "?"
    yield f"{pg_database}{sep}options=-csearch_path%3D{schema}"
    try:
        with admin.begin() as conn:
            # A daemon of the test may still hold a lock until its fixture kills it; the
            # database goes at the end of the session anyway.
            conn.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    except sa.exc.OperationalError:
        pass
    finally:
        admin.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses PostgreSQL, so ``-m "not postgres"`` leaves them out."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("db_url") == "postgres"
        if on_postgres or "pg_database" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


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
def add_to_config(workdir: Path) -> Callable[[str], None]:
    """Append TOML (dedented) to ``workdir``'s config.toml, e.g. a ``[notifiers.x]`` table."""

    def add(text: str) -> None:
        config = workdir / "config.toml"
        config.write_text(config.read_text() + textwrap.dedent(text))

    return add


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


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """The ``calendar-svc run`` processes a test starts: append each; all are killed after."""
    started: list[Service] = []
    yield started
    for service in started:
        service.kill()
