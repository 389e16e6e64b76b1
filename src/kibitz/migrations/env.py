"""Alembic environment: runs migrations on the engine kibitz hands over."""

from __future__ import annotations

from alembic import context

from kibitz.adapters.store_models import Base

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
