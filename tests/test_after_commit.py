"""Work a write starts outside the database runs after its commit, and never after a rollback.

Services schedule it with `services.database.after_commit` (waking the generation
engine, canceling a prediction), so no resolver drives the engine itself.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from services.database import Database, after_commit
from services.tables import UserRow


async def test_callbacks_run_in_order_once_the_transaction_committed(db: Database) -> None:
    seen: list[str] = []
    async with db.transaction() as session:
        after_commit(session, lambda: seen.append("first"))
        after_commit(session, lambda: seen.append("second"))
        assert seen == []  # not while the transaction is open
    assert seen == ["first", "second"]


async def test_a_rolled_back_transaction_runs_none_and_leaves_none_for_later(db: Database) -> None:
    seen: list[str] = []

    async def failing_write() -> None:
        async with db.transaction() as session:
            after_commit(session, lambda: seen.append("rolled back"))
            raise RuntimeError("the write failed")

    with pytest.raises(RuntimeError, match="the write failed"):
        await failing_write()
    async with db.transaction() as session:
        await session.exec(select(UserRow).limit(1))
    assert seen == []
