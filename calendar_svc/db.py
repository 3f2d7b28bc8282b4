"""Engines, connections and migrations: SQLite tuned for one writer and many readers, or any
SQLAlchemy URL.

SQLite gets WAL (readers never block the writer), a busy timeout (a writer
waits for another instead of failing with "database is locked"), foreign keys,
and ``BEGIN IMMEDIATE`` for write transactions, so a read-then-write
transaction takes the write lock up front rather than failing to upgrade a
read lock half-way through.

The store opens its sessions and connections with what is here;
``dialect_name`` / ``is_sqlite`` are the one way to ask which database is in
use, and ``sqlite_file`` which file a SQLite URL names.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

from calendar_svc.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_TIMEOUT_MS = 30_000
# Arbitrary constant: the PostgreSQL advisory lock that serialises migrations
# when several daemons start at once.
_PG_MIGRATION_LOCK = 0x63616C_737663


def first_line(exc: BaseException) -> str:
    """The driver's own message, first line only (SQLAlchemy appends SQL and a link)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


# SQLite's result codes for "database or disk is full" and for an I/O error (the low byte of
# an extended code): without room for its -shm file SQLite says only "disk I/O error".
_SQLITE_FULL = 13
_SQLITE_IOERR = 10
# Less free space than this, with an I/O error, is a full disk.
_NEARLY_FULL = 1024 * 1024


def why(exc: BaseException, database: Path | None = None) -> str:
    """What went wrong, in one line: ``first_line``, or, when the disk holding the SQLite
    ``database`` is full (SQLite's "database or disk is full", an I/O error with no room
    left, ``ENOSPC``), a line that says so and names the database."""
    if database is None or not _disk_full(exc, database):
        return first_line(exc)
    free = _free_bytes(database)
    room = f" ({free:,} bytes free)" if free is not None else ""
    return (
        f"the disk holding the database {database} is full{room}: free some space "
        "there, then try again"
    )


def _disk_full(exc: BaseException, database: Path) -> bool:
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, OSError) and orig.errno == errno.ENOSPC:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return False
    if code & 0xFF == _SQLITE_FULL:
        return True
    free = _free_bytes(database)
    return code & 0xFF == _SQLITE_IOERR and free is not None and free < _NEARLY_FULL


def _free_bytes(database: Path) -> int | None:
    for folder in (database.parent, *database.parents):
        try:
            return shutil.disk_usage(folder).free
        except OSError:
            continue
    return None


def unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is a unique index refusing a row another transaction committed first
    (PostgreSQL's SQLSTATE 23505, SQLite's "UNIQUE constraint failed")."""
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(orig)


def private_folder(folder: Path) -> None:
    """Create ``folder`` (not its parents) readable by this user alone (0700), whatever the
    umask; an existing folder is left as it is."""
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        return
    folder.chmod(0o700)  # mkdir's mode is cut by the umask


def private_file(path: Path) -> None:
    """Create an empty ``path`` readable by this user alone (0600), whatever the umask, if
    it does not exist: SQLite then gives its -wal and -shm files the same mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def dialect_name(bind: Engine | Connection | Session | URL | str) -> str:
    """Which database ``bind`` talks to: ``"sqlite"``, ``"postgresql"``, …

    ``bind`` is an engine, a connection, a session (its bind) or a database URL.
    """
    if isinstance(bind, str | URL):
        return make_url(bind).get_backend_name()
    if isinstance(bind, Session):
        return bind.get_bind().dialect.name
    return bind.dialect.name


def is_sqlite(bind: Engine | Connection | Session | URL | str) -> bool:
    """Whether ``bind`` (see ``dialect_name``) is SQLite, whose locking differs (one writer)."""
    return dialect_name(bind) == "sqlite"


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL, or None (not SQLite, in memory, or a ``file:`` URI)."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).resolve()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the pragmas and transaction rules above."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"not a database URL: {url!r} (expected sqlite:///FILE or "
            "postgresql+psycopg://user@host/db)",
            key="database.url",
        ) from None
    if is_sqlite(parsed):
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            folder = path.parent
            # Create the database's own folder (./var), not a whole invented path.
            if not folder.parent.is_dir():
                raise ConfigError(
                    f"folder {str(folder.parent)!r} does not exist (database {url!r})",
                    key="database.url",
                )
            # The database holds feed tokens: folder 0700, files 0600, whatever the umask.
            try:
                private_folder(folder)
                private_file(path)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the database {path}: {why(exc, path.resolve())}"
                ) from None
    try:
        if is_sqlite(parsed):
            engine = create_engine(
                parsed, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, **kwargs
            )
            _tune_sqlite(engine)
            return engine
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    except NoSuchModuleError:
        raise ConfigError(
            f"unsupported database {parsed.drivername!r}: use sqlite:///FILE or "
            "postgresql+psycopg://user@host/db",
            key="database.url",
        ) from None
    except ModuleNotFoundError as exc:
        hint = (
            " (pip install 'calendar-svc[postgres]')"
            if dialect_name(parsed) == "postgresql"
            else ""
        )
        raise ConfigError(
            f"the driver for {parsed.drivername!r} is not installed ({exc.name}){hint}",
            key="database.url",
        ) from None


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own
        # implicit BEGIN is always DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


# --- reads below SQLAlchemy's result layer ------------------------------------------------


class DriverQuery:
    """One SELECT compiled once for a dialect and run on a DBAPI connection.

    For the reads on a feed's hot paths: SQLAlchemy's result machinery costs
    more than the query itself there (per request, and per row of a
    10,000-entry calendar). Rows come back as the driver's tuples, with no type
    processing: values are only compared or used as the driver gives them.
    """

    def __init__(self, stmt: ClauseElement, dialect: Dialect):
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        # qmark drivers (sqlite3) take a tuple in the compiled order, pyformat ones a dict.
        order: Sequence[str] = getattr(compiled, "positiontup", None) or ()
        self._bind: Callable[[Mapping[str, Any]], Any] | None = None
        if len(order) == 1:
            self._bind = _one_param(order[0])
        elif order:
            getter = itemgetter(*order)
            self._bind = lambda params: getter(params)

    def rows(self, dbapi_connection: Any, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows for ``params`` (by name), as the driver's tuples."""
        bound = self._bind(params) if self._bind is not None else params
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(self.sql, bound)
            return list(cursor.fetchall())
        finally:
            cursor.close()


def _one_param(name: str) -> Callable[[Mapping[str, Any]], tuple[Any]]:
    # The hot path binds one parameter: a 1-tuple without a generator costs a tenth.
    def bind(params: Mapping[str, Any]) -> tuple[Any]:
        return (params[name],)

    return bind


class HeldConnection:
    """One DBAPI connection of an engine, kept open for a read path that runs per request.

    A session costs ~0.5 ms, more than the whole budget of a feed's 304 at
    thousands per second; a ``DriverQuery`` on a held connection costs ~10 µs
    on SQLite. The connection is in autocommit mode, so every read sees the
    latest commit of any process. On an error it is dropped and the next read
    takes a new one. One read at a time (a lock), from any thread.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._lock = threading.Lock()
        self._conn: Any = None

    def rows(self, query: DriverQuery, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """``query``'s rows; StoreError (naming only the error's type) if the database fails."""
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                return query.rows(self._conn, params)
            except Exception as exc:
                self._drop()
                raise StoreError(f"database unavailable: {type(exc).__name__}") from exc

    def _connect(self) -> Any:
        conn = self._engine.raw_connection()
        driver = conn.driver_connection
        if dialect_name(self._engine) == "postgresql" and driver is not None:
            # Without autocommit the SELECT would leave a transaction open.
            driver.autocommit = True
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            # A connection that already broke has nothing more to release.
            with contextlib.suppress(Exception):
                self._conn.invalidate()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            # Invalidated rather than returned to the pool: its autocommit setting stays ours.
            self._drop()


# --- migrations ------------------------------------------------------------------------------


# Alembic is imported only where a migration runs or is inspected: every command checks the
# schema on start, and a database already at the newest revision (nearly always) is told
# by one SELECT, without loading Alembic and every migration script (a fifth of a second
# of each `calendar-svc reminders` or `list`).


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest revision: the highest-numbered script in ``migrations/versions``
    (``NNNN_name.py`` holds revision ``NNNN``; tests/test_migrations.py checks that this is
    Alembic's own head)."""
    numbers = [p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers)


def alembic_head() -> str:
    """The head as Alembic reads it from the scripts' revision chain."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _at_head(engine: Engine) -> bool:
    """The database says it is at the newest revision (one SELECT, no lock: a database at
    the head stays there; anything else, or any error, goes the full way)."""
    try:
        with engine.connect() as conn:
            recorded = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return False  # no table yet, or a database that cannot be read: migrate() says why
    return [row[0] for row in recorded] == [head_revision()]


def migrate(engine: Engine) -> bool:
    """Bring the schema to the newest revision. Returns True if anything was applied."""
    if _at_head(engine):
        return False
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    cfg = _alembic_config()
    try:
        with engine.begin() as conn:
            if dialect_name(conn) == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            before = MigrationContext.configure(conn).get_current_revision()
            if before == head_revision():
                return False
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            log.info("database.migrated", extra={"from_revision": before, "to": head_revision()})
            return True
    except OperationalError as exc:
        raise StoreError(
            f"cannot open the database {safe_url(str(engine.url))}: "
            f"{why(exc, sqlite_file(engine.url))}"
        ) from exc
    except Exception as exc:
        if isinstance(exc, StoreError | ConfigError):
            raise
        raise StoreError(f"cannot migrate the database: {first_line(exc)}") from exc
