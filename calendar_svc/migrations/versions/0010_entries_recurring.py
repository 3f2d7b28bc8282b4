"""Recurring entries found by an index of their own.

The planner wants, for a window of time, the entries that start in it (the
``start_utc`` index) and every recurring entry, whenever it first started. Asked
as one ``OR``, SQLite scanned the whole table for the second half: at a million
entries that read was most of a daemon's start and of ``calendar-svc
reminders``. A partial index holds only the recurring entries (few, next to the
rest), so both halves are index reads.

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

WHERE = sa.text("rrule IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_entries_recurring",
        "entries",
        ["start_utc"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )


def downgrade() -> None:
    op.drop_index("ix_entries_recurring", table_name="entries")
