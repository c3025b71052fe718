"""Alembic environment: runs migrations on the engine handed over by ``labdeck.db.migrate``."""

from alembic import context

import labdeck.auth.tables
import labdeck.compute.tables
import labdeck.deployments.tables
import labdeck.registry.tables
import labdeck.tracking.tables
import labdeck.workspaces.tables  # noqa: F401  (every area's tables, for autogenerate)
from labdeck.db.metadata import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
