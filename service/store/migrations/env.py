"""Alembic environment for the ``tf_`` tables only.

Optuna owns the default ``alembic_version`` table for its own schema, so the service keeps its
revision in ``tf_alembic_version`` and never touches Optuna's tables.
"""

from alembic import context

from service.store.orm import Base

VERSION_TABLE = "tf_alembic_version"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    include_name=lambda name, type_, _parent: (
        type_ != "table" or bool(name and name.startswith("tf_"))
    ),
    render_as_batch=True,  # SQLite alters tables by copy
)
with context.begin_transaction():
    context.run_migrations()
