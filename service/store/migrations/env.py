"""Alembic's entry point: run the migrations on the connection ``service.store.migrating`` hands over.

There is no alembic.ini: ``mfa-enforcer db upgrade`` builds the configuration in code, so the only setting is
``DATABASE_URL``, as everywhere else.
"""

from __future__ import annotations

from alembic import context

import service.store.sweeps  # noqa: F401 - its tables join the shared metadata on import
from service.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters tables by copying them; batch mode does that for us
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
