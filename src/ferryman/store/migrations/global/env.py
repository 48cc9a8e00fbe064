"""Alembic environment of the global store: runs on the connection that store.migrate hands over."""

from alembic import context

from ferryman.store.tables import global_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=global_metadata,
    version_table="alembic_version_global",
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
