"""Share links: one token per subscriber, stored as a SHA-256 digest, revocable alone.

Each row is one link to a calendar (name, optional expiry and city/category
restriction) with the fetch statistics the feed servers write in batches. A
revoked link keeps its row; a name is unique among a calendar's live links
(a partial unique index, on SQLite and PostgreSQL alike).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from calendar_svc.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "calendar_id",
            sa.Integer(),
            sa.ForeignKey("calendars.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("cities", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("fetches", sa.Integer(), nullable=False),
        sa.Column("last_fetch_at", UTCDateTime(), nullable=True),
        sa.Column("last_user_agent", sa.Text(), nullable=True),
    )
    op.create_index(
        "uq_share_links_live_name",
        "share_links",
        ["calendar_id", "name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_share_links_live_name", table_name="share_links")
    op.drop_table("share_links")
