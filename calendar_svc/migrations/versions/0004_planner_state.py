"""Planner state: when the last planner pass ran, shared by every daemon on the database.

The next pass after a gap (no daemon ran, or none could plan) records the
reminders that came due in the gap and never had a row as ``missed``, instead
of leaving no trace of them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from calendar_svc.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "planner_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_pass_at", UTCDateTime(), nullable=False),
        sa.Column("last_pass_by", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("planner_state")
