"""The HTTP API: a row version on entries (its ETag), API keys, idempotent requests.

``entries.version`` starts at 1 for every existing row and is raised by every
ORM write of the row. ``api_keys`` holds each bearer key's SHA-256 digest,
name, scope, read-only flag, expiry and revocation (a name is unique among live
keys, as share links'). ``api_idempotency`` keeps the first answer to a POST
that carried an ``Idempotency-Key``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from calendar_svc.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_digest", sa.String(64), nullable=False, unique=True),
        sa.Column("calendars", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_index(
        "uq_api_keys_live_name",
        "api_keys",
        ["name"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )
    op.create_table(
        "api_idempotency",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "key_id",
            sa.Integer(),
            sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_digest", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("key_id", "idempotency_key", name="uq_api_idempotency"),
    )


def downgrade() -> None:
    op.drop_table("api_idempotency")
    op.drop_index("uq_api_keys_live_name", table_name="api_keys")
    op.drop_table("api_keys")
    with op.batch_alter_table("entries") as batch:
        batch.drop_column("version")
