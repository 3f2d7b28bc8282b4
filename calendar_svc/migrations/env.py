"""Alembic environment: migrations run on the connection calendar-svc hands over."""

from alembic import context

from calendar_svc.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only calendar_svc.db runs migrations
    raise RuntimeError("run migrations through `calendar-svc init`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
