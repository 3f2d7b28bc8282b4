"""Indexes for a million entries: recurring entries apart, and each entry's span.

The planner wants, for a window of time, the entries that start in it (the
``start_utc`` index) and every recurring entry (an RRULE or RDATEs), whenever it
first started. Asked as one ``OR``, SQLite scanned the whole table for the second
half: at a million entries that read was most of a daemon's start and of
``calendar-svc reminders``. A partial index holds only the recurring entries (few,
next to the rest), so both halves are index reads.

A feed filtered to a week wants the entries that end after its start and start
before its end. On ``start_utc`` alone that is a walk of every entry starting
before the week's end, each row visited for its ``end_utc``; on
``(start_utc, end_utc)`` the same walk stays in the index and visits only the
entries that overlap the week.

The longest reminder offset (how far ahead of a window the planner must look) is
read from the distinct override lists of the entries: an index on each list as
text lets that be one seek per distinct list, not a walk of every entry.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The very words of the queries' condition (reminders.entries, Store.select_entries):
# SQLite uses a partial index only for a query whose WHERE has its WHERE as a term.
WHERE = sa.text("rrule IS NOT NULL OR rdates IS NOT NULL")
# Each entry's override list: the longest offset is read from the distinct lists (few) by a
# loose index scan instead of a DISTINCT over every entry (reminders.entries). SQLite keeps
# JSON as text, so the column itself is indexed (an index on an expression would be lost by
# a later batch migration of the table, which cannot reflect it); PostgreSQL's json has no
# ordering, so there the index is on its text.
LISTS = sa.text("CAST(reminders AS TEXT)")


def upgrade() -> None:
    op.create_index(
        "ix_entries_recurring",
        "entries",
        ["start_utc"],
        sqlite_where=WHERE,
        postgresql_where=WHERE,
    )
    op.create_index("ix_entries_span", "entries", ["start_utc", "end_utc"])
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_index("ix_entries_reminder_lists", "entries", ["reminders" if sqlite else LISTS])


def downgrade() -> None:
    op.drop_index("ix_entries_reminder_lists", table_name="entries")
    op.drop_index("ix_entries_span", table_name="entries")
    op.drop_index("ix_entries_recurring", table_name="entries")
