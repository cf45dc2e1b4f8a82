"""Alembic environment: migrate on the connection :meth:`RunStore.open` passes in
``config.attributes["connection"]``, inside the transaction the store began."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from wtrunner.runstore.schema import metadata


def run_migrations() -> None:
    """Upgrade (or downgrade) on the store's connection; offline SQL scripts are not made."""
    if context.is_offline_mode():
        raise RuntimeError("the run store's migrations run online, from RunStore.open")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("the run store's migrations need the connection RunStore.open passes")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
