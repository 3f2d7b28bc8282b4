"""Status checks: the database refuses an entry or delivery status the code does not know.

The values are the ``models.EntryStatus`` and ``models.DeliveryStatus`` of
this revision, written out here (a migration is a record of its time: a later
status gets a revision of its own). SQLite cannot add a constraint to a table,
so there the tables are rebuilt in batch mode, rows and indexes included.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ENTRY_STATUSES = ("confirmed", "tentative", "cancelled")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "cancelled", "missed")


def _one_of(values: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{value}'" for value in values))


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.create_check_constraint("ck_entries_status", _one_of(ENTRY_STATUSES))
    with op.batch_alter_table("deliveries") as batch:
        batch.create_check_constraint("ck_deliveries_status", _one_of(DELIVERY_STATUSES))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("ck_deliveries_status", type_="check")
    with op.batch_alter_table("entries") as batch:
        batch.drop_constraint("ck_entries_status", type_="check")
