"""The embedded default's SQLite connections (services/sqlite_driver.py): one trip to
aiosqlite's thread per statement, and the same answers as aiosqlite's own cursors.

Each test runs the same statements through a `Database` (one-trip cursors) and
through a plain SQLAlchemy engine on stock aiosqlite, on the same file, and
compares what SQLAlchemy reports: rows, `rowcount`, inserted primary keys,
errors, streamed results.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services import sqlite_driver
from services.database import Database

SETUP = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER)",
    "INSERT INTO items (name, size) VALUES ('a', 1), ('b', 2), ('c', 3)",
)


@pytest.fixture
async def engines(tmp_path: Path) -> AsyncIterator[tuple[Database, AsyncEngine]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}"
    ours = Database(url)
    stock = create_async_engine(url, connect_args={"timeout": 30})
    async with ours.engine.begin() as connection:
        for statement in SETUP:
            await connection.execute(text(statement))
    try:
        yield ours, stock
    finally:
        await ours.dispose()
        await stock.dispose()


async def _both(engines: tuple[Database, AsyncEngine], work: Any) -> tuple[Any, Any]:
    """`work(connection)` in a transaction rolled back, on ours (its writers' engine,
    which sends BEGIN IMMEDIATE) and on stock aiosqlite."""
    ours, stock = engines
    answers = []
    for engine in (ours.write_engine, stock):
        async with engine.connect() as connection:
            transaction = await connection.begin()
            try:
                answers.append(await work(connection))
            finally:
                await transaction.rollback()
    return answers[0], answers[1]


def test_the_embedded_default_uses_one_trip_cursors() -> None:
    assert sqlite_driver.AVAILABLE
    assert sqlite_driver.connect_args() == {"async_creator_fn": sqlite_driver.connect}


async def test_its_connections_are_one_trip_ones(engines: tuple[Database, AsyncEngine]) -> None:
    ours, _ = engines
    async with ours.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert isinstance(raw.driver_connection, sqlite_driver.Connection)
        assert raw.driver_connection._thread.daemon


async def test_rows_rowcounts_and_keys_are_as_stock_aiosqlite(
    engines: tuple[Database, AsyncEngine],
) -> None:
    async def work(connection: AsyncConnection) -> dict[str, Any]:
        select = await connection.execute(text("SELECT name, size FROM items ORDER BY id"))
        rows = [tuple(row) for row in select]
        none = (await connection.execute(text("SELECT name FROM items WHERE size > 9"))).all()
        updated = await connection.execute(text("UPDATE items SET size = size + 1 WHERE size > 1"))
        inserted = await connection.execute(
            text("INSERT INTO items (name, size) VALUES (:name, :size)"), {"name": "d", "size": 4}
        )
        many = await connection.execute(
            text("INSERT INTO items (name, size) VALUES (:name, :size)"),
            [{"name": "e", "size": 5}, {"name": "f", "size": 6}],
        )
        returned = await connection.execute(
            text("UPDATE items SET size = 0 WHERE name IN ('e', 'f') RETURNING name")
        )
        one = (await connection.execute(text("SELECT count(*) FROM items"))).scalar_one()
        return {
            "rows": rows,
            "none": none,
            "updated": updated.rowcount,
            "inserted key": inserted.lastrowid,
            "many": many.rowcount,
            "returned": sorted(row[0] for row in returned),
            "count": one,
        }

    ours, stock = await _both(engines, work)
    assert ours == stock
    assert ours["rows"] == [("a", 1), ("b", 2), ("c", 3)]
    assert ours["updated"] == 2
    assert ours["many"] == 2
    assert ours["returned"] == ["e", "f"]


async def test_errors_are_raised_as_sqlalchemy_raises_them(
    engines: tuple[Database, AsyncEngine],
) -> None:
    async def work(connection: AsyncConnection) -> list[str]:
        raised = []
        for statement, error in (
            ("INSERT INTO items (name, size) VALUES ('a', 9)", IntegrityError),
            ("SELECT nothing FROM nowhere", OperationalError),
        ):
            with pytest.raises(error) as caught:
                await connection.execute(text(statement))
            raised.append(type(caught.value.orig).__name__)
        # The connection goes on after an error.
        raised.append(str((await connection.execute(text("SELECT 1"))).scalar_one()))
        return raised

    ours, stock = await _both(engines, work)
    assert ours == stock == ["IntegrityError", "OperationalError", "1"]


async def test_a_streamed_result_reads_as_stock(engines: tuple[Database, AsyncEngine]) -> None:
    async def work(connection: AsyncConnection) -> list[Any]:
        result = await connection.stream(text("SELECT name FROM items ORDER BY id"))
        first = await result.fetchone()
        rest = [tuple(row) async for row in result]
        return [tuple(first) if first else None, rest]

    ours, stock = await _both(engines, work)
    assert ours == stock == [("a",), [("b",), ("c",)]]


async def test_statements_run_in_the_connections_own_thread(
    engines: tuple[Database, AsyncEngine],
) -> None:
    """sqlite3 refuses a connection used from another thread: every statement of the
    one-trip cursors runs in aiosqlite's, never in the event loop's."""
    ours, _ = engines
    seen: set[int] = set()
    async with ours.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, sqlite_driver.Connection)
        sqlite_connection = driver._conn

        def note() -> int:
            seen.add(threading.get_ident())
            return 1

        await driver._execute(sqlite_connection.create_function, "note", 0, note)
        assert (await connection.execute(text("SELECT note()"))).scalar_one() == 1
    assert seen
    assert threading.get_ident() not in seen


async def test_a_rollback_undoes_an_open_transaction_and_skips_the_trip_without_one(
    engines: tuple[Database, AsyncEngine],
) -> None:
    """The pool resets each connection it gets back with a rollback: after a commit
    there is nothing to undo, and no trip to aiosqlite's thread is made; inside a
    transaction the rollback still undoes it."""
    ours, _ = engines
    async with ours.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, sqlite_driver.Connection)
        trips: list[object] = []
        execute: Any = driver._execute

        async def counted(function: Any, *args: Any, **kwargs: Any) -> Any:
            trips.append(function)
            return await execute(function, *args, **kwargs)

        driver._execute = counted  # type: ignore[method-assign,assignment]
        await driver.execute("BEGIN IMMEDIATE")
        await driver.execute("INSERT INTO items (name, size) VALUES ('rolled back', 9)")
        assert driver._conn.in_transaction
        before = len(trips)
        await driver.rollback()
        assert len(trips) == before + 1
        assert not driver._conn.in_transaction
        await driver.rollback()
        assert len(trips) == before + 1  # nothing open: no trip
        names = [row[0] for row in await driver.execute_fetchall("SELECT name FROM items")]
        assert "rolled back" not in names
        driver._execute = execute


async def test_a_rollback_after_a_cancelled_begin_still_undoes_it(
    engines: tuple[Database, AsyncEngine],
) -> None:
    """A call whose caller was cancelled still runs in the connection's thread, later:
    a BEGIN queued behind slow work and abandoned leaves no transaction open once
    the rollback that follows it returns (the rollback waits its turn in the thread,
    as stock aiosqlite's does)."""
    ours, _ = engines
    async with ours.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, sqlite_driver.Connection)
        slow = asyncio.ensure_future(driver._execute(time.sleep, 0.3))
        begin = asyncio.ensure_future(driver.execute("BEGIN IMMEDIATE"))
        await asyncio.sleep(0.05)
        begin.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await begin
        await driver.rollback()
        await slow
        await driver._execute(lambda: None)  # after everything queued before it
        assert not driver._conn.in_transaction


def _write_lock_free(path: Path) -> bool:
    """Whether another connection can take the write lock at once (within 0.5 s,
    where a lock left held would keep it waiting the full busy timeout)."""
    import sqlite3

    probe = sqlite3.connect(path, timeout=0.5, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        probe.close()


@pytest.mark.parametrize("slow", [False, True], ids=["quick", "slow-thread"])
async def test_a_write_transaction_cancelled_at_any_step_leaves_no_lock(
    engines: tuple[Database, AsyncEngine], tmp_path: Path, slow: bool
) -> None:
    """A writer cancelled at each of its steps in turn (BEGIN, each statement, the
    commit, the pool's rollback) gives its connection back with no transaction open:
    the next writer, and any other connection, takes the write lock at once."""
    ours, _ = engines
    path = tmp_path / "driver.db"

    async def write(n: int) -> None:
        async with ours.transaction() as session:
            connection = await session.connection()
            if slow:
                raw = await connection.get_raw_connection()
                driver = raw.driver_connection
                assert isinstance(driver, sqlite_driver.Connection)
                await driver._execute(time.sleep, 0.01)
            name = {"name": f"w{n}"}
            await connection.execute(text("INSERT INTO items (name, size) VALUES (:name, 1)"), name)
            await connection.execute(text("SELECT count(*) FROM items"))
            await connection.execute(
                text("UPDATE items SET size = size + 1 WHERE name = :name"), name
            )

    for turns in range(60):
        task = asyncio.ensure_future(write(turns))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The next writer: at once, not after the busy timeout.
        await asyncio.wait_for(write(1000 + turns), 5)
        assert await asyncio.to_thread(_write_lock_free, path), f"locked after {turns} turns"
