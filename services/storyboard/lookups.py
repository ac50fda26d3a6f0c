"""Batched reads: every row a request needs, fetched in one statement per kind.

The API's DataLoaders call these, so a nested query costs the same number of
statements however many objects it returns. None checks access: the caller
loads only what the actor may see. Each returns a dict with every requested id
as a key, in the order given, so a loader can answer every key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.tables import (
    SceneRow,
    ShotRow,
    StoryboardSelectionRow,
    TeamMemberRow,
)

Row = TypeVar("Row", bound=SQLModel)


async def by_ids(session: AsyncSession, table: type[Row], ids: Sequence[Any]) -> dict[Any, Row]:
    """Rows of `table` by primary key (a single-column key): {key: row}. Unlike the
    others, ids with no row are simply absent."""
    key = table.__table__.primary_key.columns.values()[0]  # type: ignore[attr-defined]
    rows = await session.exec(select(table).where(key.in_(ids)))
    return {getattr(row, key.name): row for row in rows}


async def children(
    session: AsyncSession,
    table: type[Row],
    parent_column: Any,
    parent_ids: Sequence[int],
    order_by: Sequence[Any] = (),
) -> dict[int, list[Row]]:
    """Rows of `table` grouped by the parent they point to, in the given order:
    {parent id: [rows]}, an empty list for a parent without any.

    `parent_column` is the table's column (`SceneRow.project_id`); `order_by`
    column expressions.
    """
    statement = select(table).where(col(parent_column).in_(parent_ids)).order_by(*order_by)
    grouped: dict[int, list[Row]] = {parent: [] for parent in parent_ids}
    for row in await session.exec(statement):
        grouped[getattr(row, parent_column.key)].append(row)
    return grouped


async def scenes_for_projects(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, list[SceneRow]]:
    """Each project's scenes, by scene number."""
    return await children(session, SceneRow, SceneRow.project_id, ids, [col(SceneRow.scene_number)])


async def shots_for_scenes(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[ShotRow]]:
    """Each scene's shots, by shot number."""
    return await children(session, ShotRow, ShotRow.scene_id, ids, [col(ShotRow.shot_number)])


async def selections_for_shots(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, StoryboardSelectionRow | None]:
    """Each shot's master-image selection, or None (a shot has at most one)."""
    grouped = await children(session, StoryboardSelectionRow, StoryboardSelectionRow.shot_id, ids)
    return {shot_id: rows[0] if rows else None for shot_id, rows in grouped.items()}


async def selections_for_projects(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, list[StoryboardSelectionRow]]:
    """Each project's storyboard: its selections ordered by scene, then shot."""
    statement = (
        select(StoryboardSelectionRow)
        .join(ShotRow, col(ShotRow.id) == StoryboardSelectionRow.shot_id)
        .join(SceneRow, col(SceneRow.id) == ShotRow.scene_id)
        .where(col(StoryboardSelectionRow.project_id).in_(ids))
        .order_by(col(SceneRow.scene_number), col(ShotRow.shot_number))
    )
    grouped: dict[int, list[StoryboardSelectionRow]] = {project_id: [] for project_id in ids}
    for row in await session.exec(statement):
        grouped[row.project_id].append(row)
    return grouped


async def members_for_teams(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, list[TeamMemberRow]]:
    """Each team's members, in the order they joined."""
    return await children(
        session, TeamMemberRow, TeamMemberRow.team_id, ids, [col(TeamMemberRow.created_at)]
    )


async def memberships_for_users(
    session: AsyncSession, ids: Sequence[int]
) -> dict[int, list[TeamMemberRow]]:
    """Each user's memberships, by team id."""
    return await children(
        session, TeamMemberRow, TeamMemberRow.user_id, ids, [col(TeamMemberRow.team_id)]
    )
