"""Pages of a list read newest first, by a keyset on an id (no OFFSET).

The projects, a team's collections and the assets shared with a user are paged the
same way: the rows whose key is below the last one the client saw, newest first,
one more than asked (to know whether more follow), and the whole list's count.

    page = await newest_first(
        session, select(ProjectRow).where(condition), ProjectRow.id,
        first=20, before=None,
        counted=select(func.count()).select_from(ProjectRow).where(condition),
    )
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar, TypeVarTuple, overload

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select, SelectOfScalar

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first."""

    rows: list[T]  # at most `first` of them
    has_next: bool  # more rows follow the last of `rows`
    total_count: int  # rows in the whole list, on every page


@overload
async def newest_first(
    session: AsyncSession,
    statement: SelectOfScalar[T],
    key: Any,
    *,
    first: int,
    before: int | None,
    counted: SelectOfScalar[int],
) -> Page[T]: ...


@overload
async def newest_first(
    session: AsyncSession,
    statement: Select[*Ts],
    key: Any,
    *,
    first: int,
    before: int | None,
    counted: SelectOfScalar[int],
) -> Page[tuple[*Ts]]: ...


async def newest_first(
    session: AsyncSession,
    statement: Any,
    key: Any,
    *,
    first: int,
    before: int | None,
    counted: SelectOfScalar[int],
) -> Page[Any]:
    """Up to `first` rows of `statement` whose `key` (an integer column, unique, such as
    an id) is below `before` (None: from the newest), in descending `key` order, with
    `counted`'s count (the same condition, every page). A statement of one entity gives
    its rows; one of several (`select(A, B)`) gives (a, b) tuples.

    `first` is not checked here: the API bounds it (0..MAX_PAGE) before it gets here.
    """
    if before is not None:
        statement = statement.where(col(key) < before)
    found = await session.exec(statement.order_by(col(key).desc()).limit(first + 1))
    rows = list(found.all())
    total = (await session.exec(counted)).one()
    return Page(rows=rows[:first], has_next=len(rows) > first, total_count=int(total))
