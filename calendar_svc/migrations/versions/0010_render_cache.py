"""The feed's render cache, kept across restarts, and a change signal on PostgreSQL.

``rendered_events`` holds each entry's serialised VEVENT with a digest of everything
it was built from (``feed.stored``); ``rendered_zones`` each zone's VTIMEZONE per
first year. A row whose digest no longer matches is rendered again and replaced;
an entry's row goes with the entry (ON DELETE CASCADE).

On PostgreSQL, every statement that writes ``calendars``, ``entries`` or
``share_links`` sends ``NOTIFY calendar_svc_changes`` (delivered at commit, once per
table and transaction): feed servers and daemons (``changes.ChangeWatcher``) hear a
write by any process, whichever code path made it, without polling.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

CHANNEL = "calendar_svc_changes"
_TABLES = ("calendars", "entries", "share_links")


def upgrade() -> None:
    op.create_table(
        "rendered_events",
        sa.Column(
            "entry_id",
            sa.Integer(),
            sa.ForeignKey("entries.id", ondelete="CASCADE"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column(
            "calendar_id",
            sa.Integer(),
            sa.ForeignKey("calendars.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("zones", sa.String(300), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_rendered_events_calendar", "rendered_events", ["calendar_id"])
    op.create_table(
        "rendered_zones",
        sa.Column("zone", sa.String(64), primary_key=True),
        sa.Column("first_year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("tzid", sa.String(64), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION calendar_svc_notify_change() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            f"PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
        )
        for table in _TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_notify_change "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION calendar_svc_notify_change()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
        op.execute("DROP FUNCTION IF EXISTS calendar_svc_notify_change()")
    op.drop_table("rendered_zones")
    op.drop_index("ix_rendered_events_calendar", table_name="rendered_events")
    op.drop_table("rendered_events")
