"""Each entry records the tz database version its UTC instants were derived with.

Rows from before this revision get NULL ("not known"): the first start of
``calendar-svc run`` (or ``calendar-svc doctor --fix``) derives their instants
again from the wall times with the tz database in use and records its version.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("tz_version", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("tz_version")
