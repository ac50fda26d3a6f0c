"""Alembic migrations, the only thing that creates or changes tables.

Run them with `studio migrate`, or from async code:

    await upgrade_to_head(db)
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from services.database import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent


# Objects the database maintains for library search (0012) that the models cannot
# describe: a generated tsvector column, GIN and btree indexes, an FTS5 table and its
# shadow tables. Left out of autogenerate's comparison by `include_object`.
SEARCH_COLUMNS = frozenset({"search_vector"})
SEARCH_INDEX_PREFIX = "ix_assets_library_"
SEARCH_TABLE_PREFIX = "asset_search"


def include_object(
    object: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's `include_object` hook: False for the library-search objects above."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(SEARCH_TABLE_PREFIX)
    if type_ == "column":
        return name not in SEARCH_COLUMNS
    if type_ == "index":
        return not name.startswith(SEARCH_INDEX_PREFIX)
    return True


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade_to_head(db: Database) -> None:
    """Apply every migration not yet applied, in one transaction (`Database.schema_change`)."""
    await migrate(db, "head")


async def migrate(db: Database, revision: str, *, down: bool = False) -> None:
    """Upgrade (or with `down`, downgrade) to `revision`, in one transaction.

    Always through `Database.schema_change`: on SQLite a migration that rebuilds a
    table needs foreign keys off (0008 refuses to run otherwise).
    """

    def run(connection: Connection) -> None:
        (command.downgrade if down else command.upgrade)(alembic_config(connection), revision)

    async with db.schema_change() as connection:
        await connection.run_sync(run)


async def current_revision(db: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)
