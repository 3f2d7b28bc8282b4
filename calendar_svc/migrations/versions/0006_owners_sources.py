"""Owners, RDATE/EXDATE and sources: an entry's owner, its extra and excluded dates, and
the state of each followed ICS feed.

``entries.origin_kind`` / ``origin_name`` say who owns an entry (a schedule file by
path, a source by name, the API); rows written before this revision have none and
are adopted by the next import that holds them. ``rdates`` / ``exdates`` are JSON
lists of wall times in the entry's zone. ``source_states`` keeps one row per
``[[sources]]`` name: the conditional-GET validators and how fetches went.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from calendar_svc.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("rdates", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("exdates", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("origin_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("origin_name", sa.Text(), nullable=True))
    op.create_table(
        "source_states",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("calendar_slug", sa.String(64), nullable=False),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("body_digest", sa.String(64), nullable=True),
        sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_success_at", UTCDateTime(), nullable=True),
        sa.Column("last_change_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("entries", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("source_states")
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("origin_name")
        batch.drop_column("origin_kind")
        batch.drop_column("exdates")
        batch.drop_column("rdates")
