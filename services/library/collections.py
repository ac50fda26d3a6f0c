"""Collections: a team's ordered sets of its own assets, created, edited, filled and reordered.

Items sit at dense positions 0..n-1 (unique per collection). Every write to a
collection's items locks the collection first (`collection_rules.require_collection`
with `lock`), reads the items under the lock and renumbers them in two flushes (first
negative, then final), so the unique (collection, position) constraint never sees
two items at one position, concurrent appends queue instead of racing, and any gap
left behind (an asset deleted by cascade) is closed by the next write. Who may do
what is `services.library.collection_rules`; which assets a viewer sees of it is
`services.library.access`. Counts and durations are never stored: see
`services.library.collection_pages`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.errors import Conflict, InvalidInput, PermissionDenied
from services.library import access
from services.library.collection_rules import (
    ADMIN,
    CATEGORY_MAX,
    DEFAULT_NAME,
    DENIED,
    EDIT,
    MAX_ITEMS,
    require_collection,
)
from services.library.tables import (
    AssetRow,
    CollectionItemRow,
    CollectionRow,
    CollectionType,
    ShareLevel,
)
from services.library.tags import clean_tags
from services.tables import utcnow
from services.validation import DESCRIPTION_MAX, TITLE_MAX, UNCHANGED, Checks, Maybe


def _check_fields(
    checks: Checks,
    *,
    name: Maybe[str | None],
    description: Maybe[str | None],
    tags: Maybe[Sequence[str] | None],
    category: Maybe[str | None],
) -> dict[str, Any]:
    """The given fields cleaned, as row attribute names (UNCHANGED ones left out)."""
    changes: dict[str, Any] = {}
    if name is not UNCHANGED and name is not None:
        changes["name"] = checks.text(name, field=("name",), max_length=TITLE_MAX)
    if description is not UNCHANGED:
        changes["description"] = checks.optional_text(
            description, field=("description",), max_length=DESCRIPTION_MAX
        )
    if tags is not UNCHANGED:
        changes["tags"] = clean_tags(checks, tags or ())
    if category is not UNCHANGED:
        changes["category"] = checks.optional_text(
            category, field=("category",), max_length=CATEGORY_MAX
        )
    return changes


async def _lock_asset(
    session: AsyncSession, actor: Actor, asset_id: int, field: tuple[str, ...]
) -> AssetRow:
    """The asset, locked, if the actor may see it (NotFound at `field` otherwise).

    Locked so that a concurrent delete either waits for this transaction or is seen
    (NotFound), never turning the reference written here into a foreign-key failure;
    always before the collection's lock, the order a delete takes them in too.
    """
    asset, _ = await access.require_asset(session, actor, asset_id, lock=True, field=field)
    return asset


def _same_team(checks: Checks, asset: AssetRow, team_id: int, field: tuple[str, ...]) -> None:
    """Record ASSET_OF_ANOTHER_TEAM unless the asset is of the collection's team."""
    if asset.team_id != team_id:
        checks.fail(
            "ASSET_OF_ANOTHER_TEAM",
            "A collection holds assets of its own team only (its cover too); this asset is "
            "another team's.",
            field,
        )


async def create_collection(
    session: AsyncSession,
    actor: Actor,
    *,
    team_id: int,
    name: str | None = None,
    description: str | None = None,
    collection_type: CollectionType = CollectionType.CAMPAIGN,
    tags: Sequence[str] = (),
    category: str | None = None,
    share_level: ShareLevel = ShareLevel.TEAM,
    cover_asset_id: int | None = None,
    checks: Checks | None = None,
) -> CollectionRow:
    """A new, empty collection of the team, created by the actor (flushed: it has its id).

    `name` None is "Untitled Collection". Raises InvalidInput or ValidationFailed
    (BLANK, TOO_LONG, INVALID_CHARACTERS, TOO_MANY_TAGS, ASSET_OF_ANOTHER_TEAM for a
    cover of another team); NotFound for a team the actor is not in or a cover asset
    they cannot see; PermissionDenied for a VIEWER. `checks` may carry problems found
    earlier (an ID that did not decode).
    """
    checks = checks if checks is not None else Checks()
    fields = _check_fields(checks, name=name, description=description, tags=tags, category=category)
    checks.raise_if_unresolvable()
    actor.require_write(team_id, "team")
    if cover_asset_id is not None:
        cover = await _lock_asset(session, actor, cover_asset_id, ("coverAssetId",))
        _same_team(checks, cover, team_id, ("coverAssetId",))
    checks.raise_if_any()
    row = CollectionRow(
        team_id=team_id,
        creator_id=actor.user_id,
        name=fields.get("name", DEFAULT_NAME),
        description=fields["description"],
        collection_type=collection_type.value,
        tags=fields["tags"],
        category=fields["category"],
        share_level=share_level.value,
        cover_asset_id=cover_asset_id,
    )
    session.add(row)
    await session.flush()
    return row


async def update_collection(
    session: AsyncSession,
    actor: Actor,
    *,
    collection_id: int,
    name: Maybe[str] = UNCHANGED,
    description: Maybe[str | None] = UNCHANGED,
    collection_type: Maybe[CollectionType] = UNCHANGED,
    tags: Maybe[Sequence[str]] = UNCHANGED,
    category: Maybe[str | None] = UNCHANGED,
    share_level: Maybe[ShareLevel] = UNCHANGED,
    cover_asset_id: Maybe[int | None] = UNCHANGED,
    checks: Checks | None = None,
) -> CollectionRow:
    """Change the given fields (UNCHANGED: left as is; a None cover or blank text clears it).

    Needs EDIT on the collection, and ADMIN (its creator, or a team OWNER or ADMIN)
    to change its share level (giving the level it has already needs only EDIT).
    Locks the cover asset, if one is given, then the collection; the caller's
    transaction commits. Raises as `create_collection`, plus NotFound for a collection
    the actor cannot see and PermissionDenied (FORBIDDEN) for too little permission.
    """
    checks = checks if checks is not None else Checks()
    changes = _check_fields(
        checks, name=name, description=description, tags=tags, category=category
    )
    checks.raise_if_unresolvable()
    cover = None
    if cover_asset_id is not UNCHANGED and cover_asset_id is not None:
        cover = await _lock_asset(session, actor, cover_asset_id, ("coverAssetId",))
    row, held = await require_collection(
        session, actor, collection_id, EDIT, lock=True, field=("id",)
    )
    if share_level is not UNCHANGED and share_level != row.share_level and held != ADMIN:
        raise PermissionDenied(DENIED[ADMIN])
    if cover_asset_id is not UNCHANGED:
        changes["cover_asset_id"] = cover_asset_id
    if cover is not None:
        _same_team(checks, cover, row.team_id, ("coverAssetId",))
    checks.raise_if_any()
    if collection_type is not UNCHANGED:
        changes["collection_type"] = collection_type.value
    if share_level is not UNCHANGED:
        changes["share_level"] = share_level.value
    for attribute, value in changes.items():
        setattr(row, attribute, value)
    if changes:
        row.updated_at = utcnow()
    await session.flush()
    return row


async def delete_collection(
    session: AsyncSession, actor: Actor, *, collection_id: int
) -> CollectionRow:
    """Delete the collection and its items (never their assets); the deleted row.

    Needs ADMIN on it (its creator, or a team OWNER or ADMIN). Raises NotFound for a
    collection the actor cannot see, PermissionDenied for too little permission.
    """
    row, _ = await require_collection(
        session, actor, collection_id, ADMIN, lock=True, field=("id",)
    )
    await session.delete(row)
    await session.flush()
    return row


async def items_of(session: AsyncSession, collection_id: int) -> list[CollectionItemRow]:
    """Every item of the collection in position order, read afresh; no access check
    (callers hold the collection's lock)."""
    found = await session.exec(
        select(CollectionItemRow)
        .where(col(CollectionItemRow.collection_id) == collection_id)
        .order_by(col(CollectionItemRow.position))
        .execution_options(populate_existing=True)
    )
    return list(found.all())


async def renumber(
    session: AsyncSession, items: Sequence[CollectionItemRow], *, skip: int | None = None
) -> None:
    """Give `items` positions 0..n-1 in the given order, leaving out `skip` (the slot of
    an item about to be inserted). Only items that move are written, in two flushes
    (negative first), so no two items ever share a position on the way. Call holding
    the collection's lock."""
    wanted: list[int] = []
    position = 0
    for _ in items:
        if position == skip:
            position += 1
        wanted.append(position)
        position += 1
    moving = [(item, p) for item, p in zip(items, wanted, strict=True) if item.position != p]
    if not moving:
        return
    for item, _ in moving:
        item.position = -1 - item.position
    await session.flush()
    for item, p in moving:
        item.position = p
    await session.flush()


async def add_to_collection(
    session: AsyncSession,
    actor: Actor,
    *,
    collection_id: int,
    asset_id: int,
    position: int | None = None,
    notes: str | None = None,
    checks: Checks | None = None,
) -> CollectionItemRow:
    """Put an asset of the collection's team into it: at `position` (0..n; later items
    move down one) or, when None, appended. The new item (flushed).

    Locks the collection. Raises InvalidInput or ValidationFailed (OUT_OF_RANGE,
    TOO_LONG notes, ASSET_OF_ANOTHER_TEAM for an asset of another team, even one
    shared with the actor or PUBLIC, LIMIT_REACHED at MAX_ITEMS); Conflict
    ALREADY_IN_COLLECTION if it is in already; NotFound for a collection or asset the
    actor cannot see; PermissionDenied without EDIT on the collection.
    """
    checks = checks if checks is not None else Checks()
    notes = checks.optional_text(notes, field=("notes",), max_length=DESCRIPTION_MAX)
    if position is not None and position < 0:
        checks.fail(
            "OUT_OF_RANGE", f"The position must be 0 or more; got {position}.", ("position",)
        )
    checks.raise_if_unresolvable()
    asset = await _lock_asset(session, actor, asset_id, ("assetId",))
    collection, _ = await require_collection(session, actor, collection_id, EDIT, lock=True)
    items = await items_of(session, collection_id)
    _same_team(checks, asset, collection.team_id, ("assetId",))
    if len(items) >= MAX_ITEMS:
        checks.fail(
            "LIMIT_REACHED", f"A collection holds at most {MAX_ITEMS} assets.", ("collectionId",)
        )
    if position is not None and position > len(items):
        checks.number(position, field=("position",), low=0, high=len(items))
    checks.raise_if_any()
    if any(item.asset_id == asset_id for item in items):
        raise Conflict(
            "That asset is in this collection already.",
            code="ALREADY_IN_COLLECTION",
            field=("assetId",),
        )
    slot = len(items) if position is None else position
    await renumber(session, items, skip=slot)
    item = CollectionItemRow(
        collection_id=collection_id,
        asset_id=asset_id,
        position=slot,
        notes=notes,
        added_by_id=actor.user_id,
    )
    session.add(item)
    collection.updated_at = utcnow()
    await session.flush()
    return item


async def remove_from_collection(
    session: AsyncSession, actor: Actor, *, collection_id: int, asset_id: int
) -> tuple[CollectionRow, CollectionItemRow]:
    """Take an asset out of the collection; later items move up one. The collection and
    the removed item.

    Locks the collection. Raises NotFound for a collection or asset the actor cannot
    see, or an asset that is not in it (NOT_IN_COLLECTION); PermissionDenied without
    EDIT on the collection.
    """
    collection, _ = await require_collection(session, actor, collection_id, EDIT, lock=True)
    await access.require_asset(session, actor, asset_id)
    items = await items_of(session, collection_id)
    removed = next((item for item in items if item.asset_id == asset_id), None)
    if removed is None:
        raise InvalidInput(
            "That asset is not in this collection.", code="NOT_IN_COLLECTION", field=("assetId",)
        )
    await session.delete(removed)
    await session.flush()
    await renumber(session, [item for item in items if item is not removed])
    collection.updated_at = utcnow()
    await session.flush()
    return collection, removed


async def visible_item_ids(
    session: AsyncSession, actor: Actor, items: Sequence[CollectionItemRow]
) -> set[int]:
    """The ids of those items whose asset the actor may see (the asset rule, in SQL)."""
    if not items:
        return set()
    found = await session.exec(
        select(CollectionItemRow.id)
        .join(AssetRow, col(AssetRow.id) == col(CollectionItemRow.asset_id))
        .where(
            col(CollectionItemRow.id).in_([item.id for item in items]),
            access.visible(actor),
        )
    )
    return {item_id for item_id in found.all() if item_id is not None}


async def reorder_collection(
    session: AsyncSession, actor: Actor, *, collection_id: int, item_ids: Sequence[int]
) -> CollectionRow:
    """Put the collection's items in the order of `item_ids`; the collection.

    `item_ids` must list every item the actor can see exactly once: items holding an
    asset they may not see keep their positions, and the listed ones fill the other
    positions in the order given. Locks the collection. Raises InvalidInput
    (INVALID_ORDER) for any other list; NotFound for a collection the actor cannot
    see; PermissionDenied without EDIT on it.
    """
    collection, _ = await require_collection(session, actor, collection_id, EDIT, lock=True)
    items = await items_of(session, collection_id)
    shown = await visible_item_ids(session, actor, items)
    if len(item_ids) != len(set(item_ids)) or set(item_ids) != shown:
        raise InvalidInput(
            f"The new order must list every item of the collection exactly once "
            f"({len(shown)} in all).",
            code="INVALID_ORDER",
            field=("itemIds",),
        )
    by_id = {item.id: item for item in items}
    listed = iter(item_ids)
    order = [by_id[next(listed)] if item.id in shown else item for item in items]
    await renumber(session, order)
    collection.updated_at = utcnow()
    await session.flush()
    return collection


async def forget_asset(session: AsyncSession, asset_id: int) -> None:
    """Take an asset out of every collection holding it, closing the gaps it leaves.

    For whoever deletes an asset, after locking it and before the delete: the foreign
    key would remove its items by cascade but leave holes in the positions (the next
    write to each collection closes those anyway). Locks each collection concerned,
    in id order, after the asset as every write here does, so writers never deadlock.
    No access check.
    """
    holding = await session.exec(
        select(CollectionItemRow.collection_id)
        .where(col(CollectionItemRow.asset_id) == asset_id)
        .order_by(col(CollectionItemRow.collection_id))
    )
    for collection_id in list(holding.all()):
        locked = await session.exec(
            select(CollectionRow.id).where(col(CollectionRow.id) == collection_id).with_for_update()
        )
        if locked.first() is None:
            continue
        items = await items_of(session, collection_id)
        for item in items:
            if item.asset_id == asset_id:
                await session.delete(item)
        await session.flush()
        await renumber(session, [item for item in items if item.asset_id != asset_id])
