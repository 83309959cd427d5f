"""Alembic environment: runs on the connection the alert store hands over
(`config.attributes["connection"]`), never on a URL of its own, so the secret URL is never
read from an ini file or printed."""

from __future__ import annotations

from alembic import context

from ecocluster.alerts.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
