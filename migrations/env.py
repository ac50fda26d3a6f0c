"""Alembic environment: runs on the connection `migrations.upgrade_to_head` hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import services.library.tables
import services.tables  # noqa: F401  (registers every other table on the metadata)
from migrations import include_object

target_metadata = SQLModel.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through `studio migrate` or migrations.upgrade_to_head().")
run_migrations(connection)
