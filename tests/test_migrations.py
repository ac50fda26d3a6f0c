"""The migrations are the only source of tables, on both engines, and match the models."""

from __future__ import annotations

from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import migrations
from services.database import Database

TABLES = {
    "users",
    "teams",
    "team_members",
    "team_invitations",
    "access_tokens",
    "projects",
    "scenes",
    "shots",
    "shot_images",
    "storyboard_selections",
    "webhook_deliveries",
}


async def test_upgrade_downgrade_upgrade_and_models_match(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:
        await migrations.upgrade_to_head(db)
        assert await migrations.current_revision(db) == migrations.head_revision()

        def state(connection: Connection) -> tuple[set[str], list[Any]]:
            tables = set(inspect(connection).get_table_names())
            diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
            return tables, diff

        async with db.engine.connect() as connection:
            tables, diff = await connection.run_sync(state)
        assert tables >= TABLES
        assert diff == [], f"the models and the migrations disagree: {diff}"

        def downgrade(connection: Connection) -> None:
            command.downgrade(migrations.alembic_config(connection), "base")

        async with db.write_engine.begin() as connection:
            await connection.run_sync(downgrade)
        async with db.engine.connect() as connection:
            remaining = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert not remaining & TABLES

        await migrations.upgrade_to_head(db)
        assert await migrations.current_revision(db) == migrations.head_revision()
    finally:
        await db.dispose()
