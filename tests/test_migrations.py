"""The migrations are the only source of tables, on both engines, and match the models."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, inspect, select, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import migrations
import services.library.tables  # noqa: F401  (the metadata compared holds every table)
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
            context = MigrationContext.configure(
                connection, opts={"include_object": migrations.include_object}
            )
            diff = compare_metadata(context, SQLModel.metadata)
            return tables, diff

        async with db.engine.connect() as connection:
            tables, diff = await connection.run_sync(state)
        assert tables >= TABLES
        assert diff == [], f"the models and the migrations disagree: {diff}"

        def downgrade(connection: Connection) -> None:
            command.downgrade(migrations.alembic_config(connection), "base")

        async with db.schema_change() as connection:
            await connection.run_sync(downgrade)
        async with db.engine.connect() as connection:
            remaining = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert not remaining & TABLES

        await migrations.upgrade_to_head(db)
        assert await migrations.current_revision(db) == migrations.head_revision()
    finally:
        await db.dispose()


def _seed_images_numbered_from_one(connection: Connection) -> dict[int, tuple[int, int, int]]:
    """Two shots with images as the API numbered them before 0007 (variants 1..n).

    Returns each image's (shot, iteration, variant) by its ID.
    """
    tables = MetaData()
    tables.reflect(connection)
    now = datetime.now(UTC)
    stamps = {"created_at": now, "updated_at": now}

    def insert(table: str, **values: Any) -> int:
        result = connection.execute(tables.tables[table].insert().values(**values, **stamps))
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    user = insert("users", email="ann@example.com", name="Ann", password_hash="x")
    team = insert("teams", name="Ann", is_personal=True)
    project = insert(
        "projects",
        team_id=team,
        owner_id=user,
        title="Night Market",
        workflow_version="V2_REDESIGN",
        status="SHOT_ITERATION",
    )
    scene = insert("scenes", project_id=project, scene_number=1, title="Arrival")
    shots = [insert("shots", scene_id=scene, project_id=project, shot_number=n) for n in (1, 2)]
    batches = [(shots[0], 0, 6), (shots[0], 1, 2), (shots[1], 0, 3)]
    numbers: dict[int, tuple[int, int, int]] = {}
    for shot, iteration_number, count in batches:
        # Highest first, so the rows' physical order is not the order of their numbers.
        numbers.update(_add_images(connection, shot, iteration_number, list(range(count, 0, -1))))
    return numbers


def _add_images(
    connection: Connection, shot: int, iteration_number: int, variants: list[int]
) -> dict[int, tuple[int, int, int]]:
    """Images of one iteration with the given variant numbers, written as a direct
    database write would (no API check); returns them as `_seed_images_numbered_from_one`."""
    tables = MetaData()
    tables.reflect(connection, only=["shot_images"])
    now = datetime.now(UTC)
    numbers: dict[int, tuple[int, int, int]] = {}
    for variant in variants:
        result = connection.execute(
            tables.tables["shot_images"]
            .insert()
            .values(
                shot_id=shot,
                iteration_number=iteration_number,
                variant_number=variant,
                status="COMPLETE",
                iteration_prompt="p",
                is_favorite=False,
                created_at=now,
                updated_at=now,
            )
        )
        key = result.inserted_primary_key
        assert key is not None
        numbers[int(key[0])] = (shot, iteration_number, variant)
    return numbers


def _stored_numbers(connection: Connection) -> dict[int, tuple[int, int, int]]:
    rows = connection.execute(
        text("SELECT id, shot_id, iteration_number, variant_number FROM shot_images")
    )
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


async def test_0007_numbers_variants_from_zero_and_back(empty_database_url: str) -> None:
    db = Database(empty_database_url)
    try:

        def to(revision: str, direction: str = "upgrade") -> Callable[[Connection], None]:
            def run(connection: Connection) -> None:
                getattr(command, direction)(migrations.alembic_config(connection), revision)

            return run

        async with db.schema_change() as connection:
            await connection.run_sync(to("0006"))
            before = await connection.run_sync(_seed_images_numbered_from_one)

        async with db.schema_change() as connection:
            await connection.run_sync(to("0007"))
        async with db.engine.connect() as connection:
            after = await connection.run_sync(_stored_numbers)
        # Same rows, same shots and iterations (iteration 0 stays the first batch);
        # every variant one lower, so each iteration holds 0..n-1.
        assert after == {
            image: (shot, iteration_number, variant - 1)
            for image, (shot, iteration_number, variant) in before.items()
        }
        first_shot = min(shot for shot, _, _ in before.values())
        first_batch = [v for s, i, v in after.values() if (s, i) == (first_shot, 0)]
        assert sorted(first_batch) == [0, 1, 2, 3, 4, 5]

        async with db.schema_change() as connection:
            await connection.run_sync(to("0006", "downgrade"))
        async with db.engine.connect() as connection:
            assert await connection.run_sync(_stored_numbers) == before

        await migrations.upgrade_to_head(db)
        async with db.engine.connect() as connection:
            assert await connection.run_sync(_stored_numbers) == after
    finally:
        await db.dispose()


def _to(revision: str, direction: str = "upgrade") -> Callable[[Connection], None]:
    def run(connection: Connection) -> None:
        getattr(command, direction)(migrations.alembic_config(connection), revision)

    return run


async def test_0007_keeps_gaps_and_leaves_iterations_it_cannot_read_as_1_based(
    empty_database_url: str,
) -> None:
    """Rows outside 1..12 at 0006 (only a direct write could store them) never make
    the upgrade fail nor turn a 0 into -1: an iteration holding 0 keeps its numbers,
    an iteration of 1..13 with gaps moves down by one, gaps kept."""
    db = Database(empty_database_url)
    try:
        async with db.schema_change() as connection:
            await connection.run_sync(_to("0006"))
            before = await connection.run_sync(_seed_images_numbered_from_one)
            shot = min(shot for shot, _, _ in before.values())
            gaps = await connection.run_sync(lambda c: _add_images(c, shot, 7, [13, 1, 3, 4]))
            with_zero = await connection.run_sync(lambda c: _add_images(c, shot, 8, [0, 1, 2, 13]))

        async with db.schema_change() as connection:
            await connection.run_sync(_to("0007"))
        async with db.engine.connect() as connection:
            after = await connection.run_sync(_stored_numbers)
        assert sorted(v for s, i, v in after.values() if (s, i) == (shot, 7)) == [0, 2, 3, 12]
        assert {image: after[image] for image in gaps} == {
            image: (s, i, v - 1) for image, (s, i, v) in gaps.items()
        }
        assert {image: after[image] for image in with_zero} == with_zero
        assert {image: after[image] for image in before} == {
            image: (s, i, v - 1) for image, (s, i, v) in before.items()
        }

        # Back down: every iteration the API could have written is as it was.
        async with db.schema_change() as connection:
            await connection.run_sync(_to("0006", "downgrade"))
        async with db.engine.connect() as connection:
            restored = await connection.run_sync(_stored_numbers)
        assert {image: restored[image] for image in [*before, *gaps]} == before | gaps
    finally:
        await db.dispose()


async def test_0007_makes_concurrent_writers_wait_on_postgresql(empty_database_url: str) -> None:
    """A write to shot_images from another connection waits until the renumbering
    commits, so no row is written between its statements and comes out negative."""
    if empty_database_url.startswith("sqlite"):
        pytest.skip("SQLite: the migration's BEGIN IMMEDIATE holds the file's write lock")
    db = Database(empty_database_url)
    other = Database(empty_database_url)
    try:
        async with db.schema_change() as connection:
            await connection.run_sync(_to("0006"))
            before = await connection.run_sync(_seed_images_numbered_from_one)
        shot = min(shot for shot, _, _ in before.values())

        async def write_from_another_connection() -> dict[int, tuple[int, int, int]]:
            async with other.write_engine.begin() as connection:
                return await connection.run_sync(lambda c: _add_images(c, shot, 9, [1, 2]))

        async with db.schema_change() as connection:
            await connection.run_sync(_to("0007"))
            writer = asyncio.create_task(write_from_another_connection())
            await asyncio.sleep(1.0)
            assert not writer.done(), "an insert went through while the renumbering ran"
        written = await asyncio.wait_for(writer, timeout=10)

        async with db.engine.connect() as connection:
            after = await connection.run_sync(_stored_numbers)
        assert {image: after[image] for image in before} == {
            image: (s, i, v - 1) for image, (s, i, v) in before.items()
        }
        # Written after the migration committed: stored as given, never moved to -3, -2.
        assert {image: after[image] for image in written} == written
    finally:
        await other.dispose()
        await db.dispose()


ID_TABLES = (
    "users",
    "teams",
    "access_tokens",
    "team_invitations",
    "projects",
    "scenes",
    "shots",
    "shot_images",
    "storyboard_selections",
    "project_events",
)


def _every_row(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    tables = MetaData()
    tables.reflect(connection)
    return {
        name: [tuple(row) for row in connection.execute(select(table).order_by(*table.columns))]
        for name, table in sorted(tables.tables.items())
        if name not in ("alembic_version", "sqlite_sequence")
    }


def _autoincrement_tables(connection: Connection) -> set[str]:
    rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    return {name for name, sql in rows if "AUTOINCREMENT" in sql.upper()}


def _new_project_after_deleting_the_newest(connection: Connection) -> tuple[int, int]:
    """Delete the newest project, make another; return (deleted id, new id)."""
    newest = connection.execute(text("SELECT max(id) FROM projects")).scalar_one()
    project = connection.execute(
        text("SELECT team_id, owner_id FROM projects WHERE id = :id"), {"id": newest}
    ).one()
    connection.execute(text("DELETE FROM projects WHERE id = :id"), {"id": newest})
    now = datetime.now(UTC)
    connection.execute(
        text(
            "INSERT INTO projects (team_id, owner_id, title, workflow_version, status, "
            "created_at, updated_at) VALUES (:team, :owner, 'Next', 'V2_REDESIGN', "
            "'PROMPT_PLANNING', :now, :now)"
        ),
        {"team": project.team_id, "owner": project.owner_id, "now": now},
    )
    made = connection.execute(text("SELECT max(id) FROM projects")).scalar_one()
    return int(newest), int(made)


async def test_0008_gives_sqlite_tables_ids_never_reused_and_keeps_every_row(
    empty_database_url: str,
) -> None:
    db = Database(empty_database_url)
    try:
        async with db.schema_change() as connection:
            await connection.run_sync(_to("0007"))
            await connection.run_sync(_seed_images_numbered_from_one)
            # An event names a project deleted before the migration, above every id in use.
            highest = (await connection.execute(text("SELECT max(id) FROM projects"))).scalar_one()
            await connection.execute(
                text(
                    "INSERT INTO project_events (project_id, sequence, kind, node_type, "
                    "node_id, at) VALUES (:gone, 1, 'PROJECT_DELETED', 'Project', :gone, :at)"
                ),
                {"gone": highest + 5, "at": datetime.now(UTC)},
            )
            before = await connection.run_sync(_every_row)
        assert all(before[name] for name in ("users", "projects", "shot_images", "project_events"))

        async with db.schema_change() as connection:
            await connection.run_sync(_to("0008"))
        async with db.engine.connect() as connection:
            assert await connection.run_sync(_every_row) == before
            if db.is_sqlite:
                assert await connection.run_sync(_autoincrement_tables) >= set(ID_TABLES)

        async with db.write_engine.begin() as connection:
            deleted, made = await connection.run_sync(_new_project_after_deleting_the_newest)
        assert made > deleted
        # On SQLite the count starts above the ids recorded events name.
        assert made > highest + 5 if db.is_sqlite else made == deleted + 1

        async with db.schema_change() as connection:
            await connection.run_sync(_to("0007", "downgrade"))
            after_down = await connection.run_sync(_every_row)
            if db.is_sqlite:
                assert not await connection.run_sync(_autoincrement_tables) & set(ID_TABLES)
        async with db.schema_change() as connection:
            await connection.run_sync(_to("0008"))
            assert await connection.run_sync(_every_row) == after_down
    finally:
        await db.dispose()


async def test_0008_refuses_to_rebuild_sqlite_tables_with_foreign_keys_on(tmp_path: Any) -> None:
    """Dropping a table with SQLite's foreign keys on deletes its rows first, cascading:
    0008 run on a plain write transaction stops before touching anything."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'keys_on.db'}")
    try:
        await migrations.migrate(db, "0007")
        async with db.schema_change() as connection:
            await connection.run_sync(_seed_images_numbered_from_one)
            before = await connection.run_sync(_every_row)
        with pytest.raises(RuntimeError, match="foreign keys off"):
            async with db.write_engine.begin() as connection:
                await connection.run_sync(_to("0008"))
        assert await migrations.current_revision(db) == "0007"
        async with db.engine.connect() as connection:
            assert await connection.run_sync(_every_row) == before
    finally:
        await db.dispose()
