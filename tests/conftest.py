"""Fixtures: every test that takes `db` runs on SQLite and on a fresh PostgreSQL database.

PostgreSQL comes from TEST_POSTGRES_URL (default: the local server as `postgres`).
A database is created for the run and dropped after it. When the server cannot
be reached the PostgreSQL half fails under CI=true and is skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

import migrations
from services.database import Database, scratch_postgres_database

ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(what: str, error: BaseException) -> None:
    message = f"{what} is not reachable ({error!r}); start it as the README says."
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
async def postgresql_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    try:
        async with scratch_postgres_database(ADMIN_URL, prefix="studio_test") as url:
            yield url
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable("PostgreSQL", error)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "studio.db"
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated-on-demand database of each engine."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database, shared by the tests of one engine."""
    database = Database(database_url)
    await migrations.upgrade_to_head(database)
    yield database
    await database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A brand-new, empty database of each engine, for this test alone."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    try:
        async with scratch_postgres_database(ADMIN_URL, prefix="studio_empty") as url:
            yield url
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable("PostgreSQL", error)


# No generation engine outlives its test: one left sweeping the shared database would
# claim, copy or poll the next tests' rows with its own settings (its own allowed
# hosts, its own provider), and make them fail by chance.
ENGINE_TASK = "generation-engine"  # the name GenerationEngine.start gives its task


@pytest.fixture
async def no_generation_engine_left_running() -> AsyncIterator[None]:
    yield
    left = [
        task for task in asyncio.all_tasks() if task.get_name() == ENGINE_TASK and not task.done()
    ]
    for task in left:
        task.cancel()
    assert left == [], "a generation engine was left running: stop it in the test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            # First in, so torn down last: after the fixtures that stop their own engines.
            item.fixturenames.insert(0, "no_generation_engine_left_running")
