"""Engines and migrations: SQLite tuned for one writer and many readers, or any SQLAlchemy URL.

SQLite gets WAL (readers never block the writer), a busy timeout (a writer
waits for another instead of failing with "database is locked"), foreign keys,
and ``BEGIN IMMEDIATE`` for write transactions, so a read-then-write
transaction takes the write lock up front rather than failing to upgrade a
read lock half-way through.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from calendar_svc.errors import ConfigError, StoreError

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


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid URL>"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


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
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).parent
            # Create the database's own folder (./var), not a whole invented path.
            if not folder.parent.is_dir():
                raise ConfigError(
                    f"folder {str(folder.parent)!r} does not exist (database {url!r})",
                    key="database.url",
                )
            folder.mkdir(exist_ok=True)
    try:
        if parsed.get_backend_name() == "sqlite":
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
            if parsed.get_backend_name() == "postgresql"
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


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> bool:
    """Bring the schema to the newest revision. Returns True if anything was applied."""
    cfg = _alembic_config()
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
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
            f"cannot open the database {safe_url(str(engine.url))}: {first_line(exc)}"
        ) from exc
    except Exception as exc:
        if isinstance(exc, StoreError | ConfigError):
            raise
        raise StoreError(f"cannot migrate the database: {first_line(exc)}") from exc
