"""Entries in feed order, from the index alone.

A feed lists a calendar's entries by (start_utc, uid) and, before a render,
reads each one's (uid, updated_at, sequence) to find what changed since the
last. With every one of those columns in one index, that read is a walk of the
index in order, with no sort; on SQLite, where the rowid (id) is part of every
index, it never visits the (wide) entry rows either. At 10,000 entries it is
most of the cost of re-rendering a feed after one edit.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ["calendar_id", "start_utc", "uid", "updated_at", "sequence"]


def upgrade() -> None:
    op.create_index("ix_entries_feed_order", "entries", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_entries_feed_order", table_name="entries")
