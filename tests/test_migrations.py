"""Schema upgrades of databases that hold data, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from calendar_svc.db import (
    MIGRATIONS,
    alembic_head,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from calendar_svc.models import DeliveryStatus, EntryStatus
from calendar_svc.store import Store
from calendar_svc.timezones import UTC


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def before(doc_start: str) -> str:
    """The revision just before the one whose docstring starts with ``doc_start`` (found by
    its words, not its number, which may change when branches are merged)."""
    for script in ScriptDirectory.from_config(alembic_config()).walk_revisions():
        if (script.doc or "").startswith(doc_start):
            assert isinstance(script.down_revision, str)
            return script.down_revision
    raise LookupError(doc_start)


def upgrade_to(engine: sa.Engine, revision: str) -> None:
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def index_names(engine: sa.Engine, table: str) -> set[str]:
    return {str(ix["name"]) for ix in sa.inspect(engine).get_indexes(table)}


WHEN = datetime(2025, 9, 2, 15, 0, tzinfo=UTC)


def fill(conn: sa.Connection) -> None:
    """One calendar, an entry of each status and a delivery of each status, as the schema
    before the status checks had them."""
    from calendar_svc.models import UTCDateTime

    stamp = sa.bindparam("t", WHEN, type_=UTCDateTime())
    conn.execute(
        sa.text(
            "INSERT INTO calendars (id, slug, name, description, timezone, feed_token, "
            "version, created_at, updated_at) VALUES (1, 'trip', 'Trip', '', "
            "'America/Mexico_City', 'tok', 1, :t, :t)"
        ).bindparams(stamp)
    )
    for i, status in enumerate(("confirmed", "tentative", "cancelled")):
        conn.execute(
            sa.text(
                "INSERT INTO entries (calendar_id, uid, title, description, location, city, "
                "url, categories, status, transparency, sequence, all_day, start_local, "
                "start_tz, end_local, end_tz, start_utc, end_utc, created_at, updated_at) "
                "VALUES (1, :uid, 'T', '', '', '', '', '[]', :status, 'opaque', 0, :f, "
                ":local, 'America/Mexico_City', :local, 'America/Mexico_City', :t, :t, :t, :t)"
            ).bindparams(stamp, sa.bindparam("f", False, type_=sa.Boolean())),
            {"uid": f"e{i}", "status": status, "local": datetime(2025, 9, 2, 9, 0)},
        )
    statuses = ("pending", "sending", "sent", "failed", "cancelled", "missed")
    for i, status in enumerate(statuses):
        conn.execute(
            sa.text(
                "INSERT INTO deliveries (dedupe_key, idempotency_key, calendar_slug, entry_uid, "
                "occurrence_utc, offset_seconds, channel, due_at, status, attempts, "
                "next_attempt_at, late, created_at, updated_at) VALUES (:key, 'rem-x', 'trip', "
                "'e0', :t, 3600, 'console', :t, :status, 1, :t, :f, :t, :t)"
            ).bindparams(stamp, sa.bindparam("f", False, type_=sa.Boolean())),
            {"key": f"k{i}", "status": status},
        )


def test_the_status_checks_upgrade_a_database_with_rows(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        upgrade_to(engine, before("Status checks"))
        with engine.begin() as conn:
            fill(conn)
        indexes = {t: index_names(engine, t) for t in ("entries", "deliveries")}

        assert migrate(engine) is True
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            entries = dict(conn.execute(sa.text("SELECT uid, status FROM entries")).all())
            deliveries = dict(
                conn.execute(sa.text("SELECT dedupe_key, status FROM deliveries")).all()
            )
        assert entries == {"e0": "confirmed", "e1": "tentative", "e2": "cancelled"}
        assert sorted(deliveries.values()) == sorted(DeliveryStatus)
        # SQLite rebuilt the tables: the indexes (and the unique dedupe key) came along
        # (later revisions add more).
        after = {t: index_names(engine, t) for t in indexes}
        assert all(indexes[t] <= after[t] for t in indexes), after
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text("UPDATE deliveries SET dedupe_key = 'k0' WHERE id = 2"))

        # The database itself refuses a status the code does not know.
        for sql in (
            "UPDATE entries SET status = 'postponed' WHERE uid = 'e0'",
            "UPDATE deliveries SET status = 'lost' WHERE dedupe_key = 'k0'",
        ):
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
                conn.execute(sa.text(sql))
    finally:
        engine.dispose()

    # And the rows read back as the enums, through the store.
    store = Store(db_url)
    try:
        entry = store.find_entry("e2")
        assert entry.status is EntryStatus.CANCELLED and entry.cancelled
    finally:
        store.close()


def test_the_models_refuse_an_unknown_status_before_the_database(trip_store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="postponed"):
        trip_store.set_status("noboa-meeting", "postponed")
    assert trip_store.find_entry("noboa-meeting").status is EntryStatus.CONFIRMED


def test_the_numbered_head_is_alembic_s_head() -> None:
    """Commands tell a database at the newest schema by the highest-numbered script, without
    loading Alembic: that number must be the end of the scripts' own revision chain (a
    script named out of turn, or a second head, would make every start migrate or not)."""
    assert head_revision() == alembic_head()
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert heads == [head_revision()]


def test_a_command_on_a_database_at_the_head_does_not_load_alembic(tmp_path: Path) -> None:
    """The schema check every command makes is one SELECT when nothing is to migrate; a
    database behind still migrates (and says so)."""
    db = tmp_path / "calendar.sqlite3"
    url = f"sqlite:///{db}"
    probe = (
        "import sys\n"
        "from calendar_svc.store import Store\n"
        f"store = Store({url!r})\n"
        "print(store.migrate(), 'alembic' in sys.modules)\n"
    )

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )
        return done.stdout.strip()

    assert run() == "True True"  # a new database: migrated
    assert run() == "False False"  # at the head: one SELECT
    engine = make_engine(url)
    try:
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
    finally:
        engine.dispose()
    assert current_revision(make_engine(url)) != head_revision()
    assert run() == "True True"  # one revision behind: migrated again
    assert current_revision(make_engine(url)) == head_revision()
