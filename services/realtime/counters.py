"""Sequence numbers per stream (a project, a team's library, a team): one counter row
each, moved on inside the writer's transaction, so numbers are dense and in commit
order (the row stays locked until the commit).

The upsert that moves a counter is built once per table and dialect, with its
values bound at execution: a write records events in every transaction, and
building and compiling the statement anew each time cost more than running it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

_STATEMENTS: dict[tuple[str, str], Any] = {}


def _upsert(table: Table, key: str, dialect: str) -> Any:
    cached = _STATEMENTS.get((table.name, dialect))
    if cached is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # Bound with the columns' own types (BIGINT ids on PostgreSQL).
        count = bindparam("count", type_=table.c.last_sequence.type)
        cached = (
            insert(table)
            .values({key: bindparam("key", type_=table.c[key].type), "last_sequence": count})
            .on_conflict_do_update(
                index_elements=[key], set_={"last_sequence": table.c.last_sequence + count}
            )
            .returning(table.c.last_sequence)
        )
        _STATEMENTS[(table.name, dialect)] = cached
    return cached


async def take_numbers(
    session: AsyncSession, counter: type[SQLModel], key: str, value: int, count: int
) -> int:
    """Reserve `count` (at least 1) sequence numbers in the stream whose row of the
    `counter` table has `value` in its `key` column (made at 0 if there is none);
    the last one reserved. On PostgreSQL the row stays locked until the transaction
    ends."""
    table: Table = counter.__table__  # type: ignore[attr-defined]
    statement = _upsert(table, key, session.get_bind().dialect.name)
    result = await session.exec(statement, params={"key": value, "count": count})
    return int(result.scalar_one())
