"""Calendars and entries.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from calendar_svc.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("reminders", sa.JSON(), nullable=True),
        sa.Column("feed_token", sa.String(64), nullable=False, unique=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "calendar_id",
            sa.Integer(),
            sa.ForeignKey("calendars.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("uid", sa.String(255), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("geo_lat", sa.Float(), nullable=True),
        sa.Column("geo_lon", sa.Float(), nullable=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("transparency", sa.String(16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("start_local", sa.DateTime(timezone=False), nullable=False),
        sa.Column("start_tz", sa.String(64), nullable=False),
        sa.Column("start_fold", sa.Integer(), nullable=True),
        sa.Column("end_local", sa.DateTime(timezone=False), nullable=False),
        sa.Column("end_tz", sa.String(64), nullable=False),
        sa.Column("end_fold", sa.Integer(), nullable=True),
        sa.Column("start_utc", UTCDateTime(), nullable=False),
        sa.Column("end_utc", UTCDateTime(), nullable=False),
        sa.Column("rrule", sa.Text(), nullable=True),
        sa.Column("reminders", sa.JSON(), nullable=True),
        sa.Column("source_hash", sa.String(64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("calendar_id", "uid", name="uq_entries_calendar_uid"),
    )
    op.create_index("ix_entries_start_utc", "entries", ["start_utc"])


def downgrade() -> None:
    op.drop_index("ix_entries_start_utc", table_name="entries")
    op.drop_table("entries")
    op.drop_table("calendars")
