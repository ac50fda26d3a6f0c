"""How library assets are used: in projects' storyboards, opened (views), starred.

- An asset can be put into a shot (`addShotImages` with `assetId`): the shot's new
  image shares the asset's stored file (never a copy) and remembers the asset in
  `ShotImageRow.source_asset_id` (`checked_library_image`, `shot_image_fields`).
- `projects_using` counts, per asset, the distinct projects whose storyboard
  selects its own shot image (`AssetRow.shot_image_id`) or an image added from it.
- `count_view` records that a user opened an asset, counting at most one view per
  user per `VIEW_WINDOW` (an hour), atomically on both engines: concurrent opens by
  one user count once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, distinct, func, union_all, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.database import Database
from services.errors import NotFound
from services.library.access import VIEW, require_asset, team_permission
from services.library.tables import AssetKind, AssetRow, AssetStatus, AssetViewRow
from services.tables import GenerationStatus, ShotImageRow, StoryboardSelectionRow, utcnow
from services.validation import Checks

logger = logging.getLogger(__name__)

VIEW_WINDOW = timedelta(hours=1)
"""A user's opens of one asset within this long of the last counted one count once."""


# --- an asset put into a shot ------------------------------------------------------


async def checked_library_image(
    session: AsyncSession,
    actor: Actor,
    checks: Checks,
    asset_id: int,
    *,
    team_id: int,
    field: Sequence[str],
) -> AssetRow | None:
    """The asset, if it can become a shot's image in a project of team `team_id`; else the
    problem is recorded on `checks`.

    It must be one the actor may see (else NotFound at `field`, exactly as if it did
    not exist), of the project's own team and seen through that team, not through a
    share or a PUBLIC level (ASSET_OF_ANOTHER_TEAM: a shot's image is the team's to
    keep, which a share that may expire or be revoked must not become), an IMAGE
    (ASSET_NOT_IMAGE), READY (ASSET_NOT_READY) and stored (ASSET_NOT_STORED). The row
    is locked (FOR UPDATE on PostgreSQL) until the transaction ends, so a concurrent
    `deleteAsset` either comes first (and this finds nothing) or sees the shot image
    that now shares the file, and keeps it. Returns None when anything is wrong;
    raises nothing itself.
    """
    try:
        asset, _ = await require_asset(
            session, actor, asset_id, VIEW, lock=True, field=tuple(field)
        )
    except NotFound as error:
        checks.add(error)
        return None
    if asset.team_id != team_id or team_permission(actor, asset) is None:
        checks.fail(
            "ASSET_OF_ANOTHER_TEAM",
            "A shot can take images from its own team's library only; this asset is "
            "another team's, or shared with you.",
            field,
        )
        return None
    problems = 0
    if asset.kind != AssetKind.IMAGE:
        checks.fail(
            "ASSET_NOT_IMAGE",
            f"Only an IMAGE asset can be a shot's image; this one is {asset.kind}.",
            field,
        )
        problems += 1
    if asset.status != AssetStatus.READY:
        checks.fail(
            "ASSET_NOT_READY",
            f"Only a READY asset can be a shot's image; this one is {asset.status}.",
            field,
        )
        problems += 1
    elif not asset.storage_key:
        checks.fail(
            "ASSET_NOT_STORED", "This asset has no stored file, so it cannot be used.", field
        )
        problems += 1
    return None if problems else asset


def shot_image_fields(asset: AssetRow, metadata: dict[str, Any] | None) -> dict[str, Any]:
    """The ShotImageRow values of an image taken from `asset` (checked by
    `checked_library_image`): COMPLETE, its stored file shared (no URL to copy
    from, so the background copier leaves it alone), its model, and the client's
    `metadata` with the asset's model and prompt over it (kept for clients only,
    never sent to a provider)."""
    assert asset.id is not None
    assert asset.storage_key is not None
    kept = dict(metadata or {})
    kept.update({k: v for k, v in (("model", asset.model), ("prompt", asset.prompt)) if v})
    return {
        "status": GenerationStatus.COMPLETE,
        "image_url": None,
        "storage_key": asset.storage_key,
        "model": asset.model,
        "generation_metadata": kept or None,
        "source_asset_id": asset.id,
    }


# --- reads for the DataLoaders (no access check: the caller's) ----------------------


async def projects_using(session: AsyncSession, asset_ids: Sequence[int]) -> dict[int, int]:
    """{asset id: how many distinct projects' storyboards select its image}, for each
    id that has any (the others: 0).

    An asset's image is its own shot image (`AssetRow.shot_image_id`) or any image
    added from it (`ShotImageRow.source_asset_id`). One statement for the batch.
    """
    if not asset_ids:
        return {}
    wanted = list(set(asset_ids))
    own: Select[Any, Any] = (
        sa_select(
            col(AssetRow.id).label("asset_id"),
            col(StoryboardSelectionRow.project_id).label("project_id"),
        )
        .join(
            StoryboardSelectionRow,
            col(StoryboardSelectionRow.selected_image_id) == col(AssetRow.shot_image_id),
        )
        .where(col(AssetRow.id).in_(wanted))
    )
    added: Select[Any, Any] = (
        sa_select(
            col(ShotImageRow.source_asset_id).label("asset_id"),
            col(StoryboardSelectionRow.project_id).label("project_id"),
        )
        .join(
            StoryboardSelectionRow,
            col(StoryboardSelectionRow.selected_image_id) == col(ShotImageRow.id),
        )
        .where(col(ShotImageRow.source_asset_id).in_(wanted))
    )
    both = union_all(own, added).subquery()
    counted = await session.exec(
        select(both.c.asset_id, func.count(distinct(both.c.project_id))).group_by(both.c.asset_id)
    )
    return {int(asset_id): int(count) for asset_id, count in counted}


# --- views --------------------------------------------------------------------------


async def count_view(
    db: Database, *, asset_id: int, user_id: int, now: datetime | None = None
) -> int | None:
    """Record that `user_id` opened `asset_id` at `now` (default: the clock), in a short
    write transaction of its own; the asset's new `views` if this open counted, else None.

    It counts when the user never opened the asset, or last counted more than
    VIEW_WINDOW before `now`: one upsert of `asset_views` keyed by (asset, user) whose
    update applies only to a row older than that, so of concurrent opens by one user
    exactly one inserts or updates the row (the others wait for it on PostgreSQL and
    then find it fresh; SQLite runs writers one at a time) and only that one adds to
    `AssetRow.views`. A repeat within the window is found by a read first and costs
    no write. The caller has checked that the user may see the asset; an
    asset deleted meanwhile counts nothing (None). Access is not checked here.
    """
    moment = now or utcnow()
    async with db.session() as reading:
        # Most opens are repeats within the hour: they cost a read, not a write lock.
        last = (
            await reading.exec(
                select(col(AssetViewRow.viewed_at)).where(
                    col(AssetViewRow.asset_id) == asset_id, col(AssetViewRow.user_id) == user_id
                )
            )
        ).first()
    if last is not None and last > moment - VIEW_WINDOW:
        return None
    insert = sqlite_insert if db.is_sqlite else postgresql_insert
    upsert = (
        insert(AssetViewRow)
        .values(asset_id=asset_id, user_id=user_id, viewed_at=moment)
        .on_conflict_do_update(
            index_elements=["asset_id", "user_id"],
            set_={"viewed_at": moment},
            where=col(AssetViewRow.viewed_at) <= moment - VIEW_WINDOW,
        )
        .returning(col(AssetViewRow.asset_id))
    )
    try:
        async with db.transaction() as session:
            if (await session.exec(upsert)).first() is None:
                return None
            await session.exec(
                update(AssetRow)
                .where(col(AssetRow.id) == asset_id)
                .values(views=col(AssetRow.views) + 1)
            )
            views = (
                await session.exec(select(col(AssetRow.views)).where(col(AssetRow.id) == asset_id))
            ).first()
    except IntegrityError:
        # Deleted between the caller's read and this write: there is nothing to count.
        logger.info("asset %d went before its view was counted", asset_id)
        return None
    return views
