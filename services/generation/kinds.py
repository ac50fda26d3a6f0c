"""The three kinds of generation row, and what the engine needs to know of each.

A generation runs on a shot image (`ShotImageRow.status`), on a storyboard
selection's animation (`StoryboardSelectionRow.animation_status`) or on a library
asset that `regenerateAsset` asked for (`AssetRow.generation_status`). All three
carry the same bookkeeping columns (prediction, claim, tries, attempt, copies), so
the engine claims, submits, follows and copies them alike; this module holds the
few things that differ: the status column, whose work a row counts as for fair
shares, where its output is stored, and what an asset's stored output records.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.generation.statuses import Row
from services.library.tables import AssetKind, AssetRow
from services.outbound import MediaKind
from services.tables import ProjectRow, ShotImageRow, ShotRow, StoryboardSelectionRow

logger = logging.getLogger("studio.generation")

GENERATION_TABLES: tuple[type[Row], ...] = (ShotImageRow, StoryboardSelectionRow, AssetRow)
"""Every table whose rows the engine generates, in the order a sweep takes them."""

MAX_ANCESTRY = 100
"""How many lineage steps `source_image` climbs at most (a guard against bad data)."""


def status_column(table: type[Row]) -> Any:
    """The column holding the table's GenerationStatus (see `statuses.status_of`)."""
    if table is ShotImageRow:
        return col(ShotImageRow.status)
    if table is AssetRow:
        return col(AssetRow.generation_status)
    return col(StoryboardSelectionRow.animation_status)


def work_owner(table: type[Row]) -> tuple[Any, list[Any]]:
    """Whose work a row is for fair shares: the column naming that user, and the join
    conditions that reach it. A shot image or an animation is its project owner's work,
    an asset its creator's."""
    if table is ShotImageRow:
        return col(ProjectRow.owner_id), [
            col(ShotRow.id) == col(ShotImageRow.shot_id),
            col(ProjectRow.id) == col(ShotRow.project_id),
        ]
    if table is StoryboardSelectionRow:
        return col(ProjectRow.owner_id), [
            col(ProjectRow.id) == col(StoryboardSelectionRow.project_id)
        ]
    return col(AssetRow.creator_id), []


def output_destination(row: Row, row_id: int) -> tuple[str, MediaKind]:
    """Where a row's output goes in storage (the key without its random tail and
    extension) and what kind of media it must be."""
    if isinstance(row, ShotImageRow):
        return f"images/{row.shot_id}/{row_id}", MediaKind.IMAGE
    if isinstance(row, AssetRow):
        kind = MediaKind.VIDEO if row.kind == AssetKind.VIDEO else MediaKind.IMAGE
        return f"assets/{row.team_id}/{row_id}", kind
    return f"videos/{row.project_id}/{row_id}", MediaKind.VIDEO


async def source_image(session: AsyncSession, asset: AssetRow) -> AssetRow | None:
    """The image a VIDEO asset is made from: its nearest lineage ancestor that is an
    IMAGE with a stored file (an animation's parent is its master image; a regenerated
    or remixed clip's is that clip). None if there is none within `MAX_ANCESTRY` steps.
    """
    seen = {asset.id}
    parent_id = asset.parent_id
    for _ in range(MAX_ANCESTRY):
        if parent_id is None or parent_id in seen:
            return None
        seen.add(parent_id)
        parent = await session.get(AssetRow, parent_id)
        if parent is None:
            return None
        if parent.kind == AssetKind.IMAGE and parent.storage_key:
            return parent
        parent_id = parent.parent_id
    return None
