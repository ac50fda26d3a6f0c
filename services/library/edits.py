"""Changing and deleting library assets: `updateAsset` and `deleteAsset`.

Both run in the caller's write transaction and follow `services.validation`'s
order: the input's own problems are collected first; access to the asset fails
alone (NotFound when the actor cannot see it, PermissionDenied when they see it
but hold too little: EDIT to change metadata, ADMIN to delete); then everything
collected is raised at once, so nothing is written on any error.

A stored file can be shared: a duplicate keeps its parent's file, and a shot image
added from an asset (`addShotImages` with `assetId`) keeps the asset's. So
deleting an asset removes its file and thumbnail from storage only once no other
asset, shot image or storyboard selection refers to that key, and only after the
deleting transaction has committed (`services.database.after_commit`): a rolled-back
delete never loses a file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.database import after_commit
from services.errors import PermissionDenied
from services.generation.discards import RUNNING, stop_predictions
from services.library import collections
from services.library.access import ADMIN, DENIED, EDIT, may_delete, require_asset
from services.library.tables import AssetRow, AssetShareRow, SceneType
from services.library.tags import clean_tags
from services.media.storage import Storage
from services.tables import ShotImageRow, StoryboardSelectionRow, utcnow

if TYPE_CHECKING:
    from services.generation.engine import GenerationEngine

from services.validation import (
    DESCRIPTION_MAX,
    NAME_MAX,
    TITLE_MAX,
    UNCHANGED,
    Checks,
    Maybe,
)

logger = logging.getLogger(__name__)

ASSET_NAME_MAX = TITLE_MAX
"""Characters in an asset's name (200), as in a project's title."""
LABEL_MAX = NAME_MAX
"""Characters in an asset's category or mood (100)."""


@dataclass(frozen=True)
class AssetChanges:
    """What `update_asset` should change; UNCHANGED (the default) leaves a field as it is.

    name: the new name (never None); description, category, mood: new text, None or
    blank to clear; tags: the new list (None clears it); scene_type: a SceneType, or
    None to clear.
    """

    name: Maybe[str] = UNCHANGED
    description: Maybe[str | None] = UNCHANGED
    tags: Maybe[Sequence[str] | None] = UNCHANGED
    category: Maybe[str | None] = UNCHANGED
    mood: Maybe[str | None] = UNCHANGED
    scene_type: Maybe[SceneType | None] = UNCHANGED
    can_duplicate: Maybe[bool] = UNCHANGED
    can_remix: Maybe[bool] = UNCHANGED

    @property
    def needs_admin(self) -> bool:
        """Whether it changes what others may do with the asset (duplicate, remix): ADMIN's."""
        return self.can_duplicate is not UNCHANGED or self.can_remix is not UNCHANGED


def _changes_checked(checks: Checks, changes: AssetChanges) -> dict[str, Any]:
    """The row attributes to set, each value cleaned; problems recorded on `checks`."""
    values: dict[str, Any] = {}
    if changes.name is not UNCHANGED:
        values["name"] = checks.text(changes.name, field=("name",), max_length=ASSET_NAME_MAX)
    if changes.description is not UNCHANGED:
        values["description"] = checks.optional_text(
            changes.description, field=("description",), max_length=DESCRIPTION_MAX
        )
    if changes.tags is not UNCHANGED:
        values["tags"] = clean_tags(checks, changes.tags, field=("tags",))
    if changes.category is not UNCHANGED:
        values["category"] = checks.optional_text(
            changes.category, field=("category",), max_length=LABEL_MAX
        )
    if changes.mood is not UNCHANGED:
        values["mood"] = checks.optional_text(changes.mood, field=("mood",), max_length=LABEL_MAX)
    if changes.scene_type is not UNCHANGED:
        values["scene_type"] = None if changes.scene_type is None else changes.scene_type.value
    if changes.can_duplicate is not UNCHANGED:
        values["can_duplicate"] = bool(changes.can_duplicate)
    if changes.can_remix is not UNCHANGED:
        values["can_remix"] = bool(changes.can_remix)
    return values


async def update_asset(
    session: AsyncSession,
    actor: Actor,
    *,
    asset_id: int,
    changes: AssetChanges,
    checks: Checks | None = None,
) -> AssetRow:
    """Change an asset's name, description, tags, category, mood, scene type, or whether
    it may be duplicated and remixed; the row.

    Needs EDIT on the asset (`services.library.access`), ADMIN to change
    `can_duplicate` or `can_remix`. The name is 1..200
    characters after trimming (BLANK, TOO_LONG); the description at most 10,000
    (blank clears it); tags as `clean_tags`; category and mood at most 100 (blank
    clears them). Raises NotFound (field `id`) for an asset the actor cannot see,
    PermissionDenied below EDIT (field `canDuplicate` or `canRemix` when only those
    needed ADMIN), else every input problem at once (InvalidInput, or
    ValidationFailed for several); `checks` carries what the caller found already
    (a malformed ID). `updated_at` moves only when something was given.
    """
    checks = checks if checks is not None else Checks()
    values = _changes_checked(checks, changes)
    checks.raise_if_unresolvable()
    row, granted = await require_asset(session, actor, asset_id, EDIT, lock=True, field=("id",))
    if changes.needs_admin and not granted.allows(ADMIN):
        raise PermissionDenied(
            "Only its team's owners and admins, its creator (of a copy, remix or new version "
            "only if an owner or admin), or those it is shared with as ADMIN may allow or "
            "forbid duplicating and remixing it.",
            field=("canDuplicate",) if changes.can_duplicate is not UNCHANGED else ("canRemix",),
        )
    checks.raise_if_any()
    for name, value in values.items():
        setattr(row, name, value)
    if values:
        row.updated_at = utcnow()
    session.add(row)
    return row


async def delete_asset(
    session: AsyncSession,
    actor: Actor,
    *,
    asset_id: int,
    storage: Storage | None,
    generation_engine: GenerationEngine | None = None,
) -> list[str]:
    """Delete an asset; the storage keys whose files go once this transaction commits.

    Needs ADMIN on the asset, or to be its maker in its team (a copy or remix one
    made holds EDIT only: `access.authorship`); NotFound at `id` if the actor cannot see
    it, PermissionDenied if they can but may not delete it. Its shares, views and places in
    collections go with it (ON DELETE CASCADE); its lineage children, collections
    using it as a cover and assets made from it keep theirs, without the link (SET
    NULL); shot images added from it keep their image (the shared file) and lose
    `source_asset_id`; each lineage child becomes the root of the assets below it. The
    storyboard it came from is never touched.

    Its file and thumbnail are deleted from `storage` after commit, each only if no
    other asset, shot image or selection refers to the key (see the module); with no
    `storage` (a server without media) the keys are returned and nothing is deleted.
    A regeneration still running is canceled at the provider after commit. Its shares
    are deleted one by one (so each recipient's feed hears of it, which a cascade
    would not tell), and its collections close the gap it leaves.
    """
    row, granted = await require_asset(session, actor, asset_id, EDIT, lock=True, field=("id",))
    if not may_delete(actor, row, granted):
        raise PermissionDenied(DENIED[ADMIN])
    keys = {key for key in (row.storage_key, row.thumbnail_key) if key}
    if row.generation_status in RUNNING:
        stop_predictions(session, generation_engine, [row.prediction_id])
    await collections.forget_asset(session, asset_id)
    for share in await session.exec(
        select(AssetShareRow).where(col(AssetShareRow.asset_id) == asset_id)
    ):
        await session.delete(share)
    await session.exec(
        update(ShotImageRow)
        .where(col(ShotImageRow.source_asset_id) == asset_id)
        .values(source_asset_id=None)
    )
    await _reroot_below(session, row)
    await session.delete(row)
    await session.flush()
    orphans = sorted(keys - await keys_in_use(session, keys))
    if orphans and storage is not None:
        after_commit(session, lambda: _remove_later(storage, orphans))
    return orphans


async def _reroot_below(session: AsyncSession, row: AssetRow) -> None:
    """Make each lineage child of `row` (about to be deleted) the root of its own line:
    its parent link goes (SET NULL), so its `root_id` is cleared as a root's is, and
    every asset below it takes it as their root, instead of keeping a root that is no
    longer their ancestor (or none at all, when `row` was the root).

    The assets below are locked in id order (after `row`, and descendants are younger
    than their ancestors; FOR NO KEY UPDATE, as the foreign keys' SET NULL would, so
    inserts that refer to them are not held up) and read again under the lock, so a
    concurrent delete further down, which locks only what is below it, is waited for
    and seen, never undone.
    Twice: copies being made below `row` lock its root before their source, so the
    first pass waits for them without deadlock, and the second finds what they made.
    """
    family = row.root_id if row.root_id is not None else row.id
    for _ in range(2):
        members = await session.exec(
            select(AssetRow)
            .where(col(AssetRow.root_id) == family, col(AssetRow.id) != row.id)
            .execution_options(populate_existing=True)
        )
        below = [m.id for m in list(members) if (await _root_below(session, m, row.id))[0]]
        if not below:
            return
        locked = await session.exec(
            select(AssetRow)
            .where(col(AssetRow.id).in_(below))
            .order_by(col(AssetRow.id))
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE
            .execution_options(populate_existing=True)
        )
        for member in list(locked):
            descends, new_root = await _root_below(session, member, row.id)
            if descends and member.root_id != new_root:
                member.root_id = new_root
                session.add(member)
        await session.flush()


async def _root_below(
    session: AsyncSession, member: AssetRow, deleted_id: int | None
) -> tuple[bool, int | None]:
    """Whether `member` descends from the asset being deleted and, if so, its root once
    that is gone: the ancestor just below it (None when that is `member` itself)."""
    node = member
    for _ in range(_MAX_LINE):
        if node.parent_id is None:
            return False, None
        if node.parent_id == deleted_id:
            return True, None if node is member else node.id
        parent = await session.get(AssetRow, node.parent_id)
        if parent is None:
            return False, None
        node = parent
    return False, None


_MAX_LINE = 500
"""The most lineage steps walked up from an asset (lines are far shorter)."""


async def keys_in_use(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    """Those of `keys` that some asset (file or thumbnail), shot image or selection's
    video refers to, as this transaction sees it."""
    wanted = list(keys)
    if not wanted:
        return set()
    used: set[str] = set()
    for key_column in (
        col(AssetRow.storage_key),
        col(AssetRow.thumbnail_key),
        col(ShotImageRow.storage_key),
        col(StoryboardSelectionRow.video_storage_key),
    ):
        found = await session.exec(select(key_column).where(key_column.in_(wanted)).distinct())
        used.update(key for key in found if key is not None)
    return used


# Background removals still running, kept so that they are not garbage-collected.
_removals: set[asyncio.Task[None]] = set()


def _remove_later(storage: Storage, keys: Sequence[str]) -> None:
    task = asyncio.get_running_loop().create_task(remove_files(storage, keys))
    _removals.add(task)
    task.add_done_callback(_removals.discard)


async def remove_files(storage: Storage, keys: Sequence[str]) -> None:
    """Delete each key's object; a failure is logged and the others still go (a file
    left behind costs space, never correctness: nothing refers to it)."""
    for key in keys:
        try:
            await storage.delete(key)
        except Exception:
            logger.exception("could not delete stored file %r of a deleted asset", key)


async def removals_done() -> None:
    """Wait for the file removals started so far (for an orderly shutdown, and tests)."""
    while _removals:
        await asyncio.gather(*list(_removals), return_exceptions=True)
