"""Alembic environment: always run from :func:`rsir.active.migrate.upgrade` on the store's own connection."""

from __future__ import annotations

from alembic import context

from rsir.active.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():  # a no-op inside the caller's transaction (which holds the lock)
    context.run_migrations()
