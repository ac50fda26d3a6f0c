"""Collections as GraphQL types, with their inputs and payloads.

A `Collection` is built only by `load_collection` / `Collection.from_row` once the
viewer's permission is decided (`services.library.collection_rules`). Its counts,
duration and items are read for that viewer: assets they may not see are neither
shown nor counted.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Self

import strawberry

from schema import ids
from schema.accounts import Team, User, member_team, visible_user
from schema.connections import (
    After,
    First,
    PageInfo,
    check_first,
    decode_after,
    page_info,
)
from schema.context import Info
from schema.errors import UserError
from schema.library import Asset, load_asset
from schema.node import Node
from services import cursors
from services.accounts.access import Actor
from services.library import collection_rules
from services.library.collection_pages import viewer_key
from services.library.tables import (
    CollectionItemRow,
    CollectionRow,
    CollectionType,
    ShareLevel,
    SharePermission,
)

_ITEM_CURSOR = "collection-item"


def item_cursor(position: int) -> str:
    """The cursor of the item at `position`."""
    return cursors.encode_numbers(_ITEM_CURSOR, position)


def item_after(cursor: str | None) -> int:
    """The position in an item cursor (-1 for None: from the start); BadRequest for a
    cursor this list did not give out."""
    position = decode_after(cursor, _ITEM_CURSOR, low=0, high=2**31 - 1)
    return -1 if position is None else position


@strawberry.type(
    description="An asset in a collection, at its place in the collection's order, with notes."
)
class CollectionItem(Node):
    position: int = strawberry.field(
        description="Its place in the collection, from 0; positions are dense over all the "
        "collection's items, so items you may not see leave gaps in what you are shown."
    )
    notes: str | None = strawberry.field(description="Notes on why it is there.")
    added_at: datetime = strawberry.field(description="When it was added.")
    row: strawberry.Private[CollectionItemRow]
    shown: strawberry.Private[Asset]

    @classmethod
    def from_row(cls, row: CollectionItemRow, asset: Asset) -> Self:
        """The item, holding an asset the viewer may see (the caller checked it)."""
        return cls(
            id=ids.encode("CollectionItem", row.id),
            row=row,
            shown=asset,
            position=row.position,
            notes=row.notes,
            added_at=row.added_at,
        )

    @strawberry.field(description="The asset.")
    def asset(self) -> Asset:
        return self.shown

    @strawberry.field(description="Who added it; null once their account is gone.")
    async def added_by(self, info: Info) -> User | None:
        return await visible_user(info, self.row.added_by_id)

    @strawberry.field(description="The collection it is in.")
    async def collection(self, info: Info) -> Collection | None:
        return await load_collection(info, self.row.collection_id)


@strawberry.type(description="An item and its place in the list.")
class CollectionItemEdge:
    cursor: str = strawberry.field(description="Pass as `after` for the items after this one.")
    node: CollectionItem = strawberry.field(description="The item.")


@strawberry.type(description="A page of a collection's items, in position order.")
class CollectionItemConnection:
    edges: list[CollectionItemEdge] = strawberry.field(description="The items of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(
        description="How many items you may see in the collection (its `itemCount`)."
    )

    @strawberry.field(description="The items of this page, without cursors.")
    def nodes(self) -> list[CollectionItem]:
        return [edge.node for edge in self.edges]


@strawberry.type(
    description="A team's ordered set of its own assets: a campaign, a series, a character "
    "arc, a brand kit or a universe."
)
class Collection(Node):
    name: str = strawberry.field(description="Its name.")
    description: str | None = strawberry.field(description="What it gathers, in words.")
    collection_type: CollectionType = strawberry.field(name="type", description="What it gathers.")
    tags: list[str] = strawberry.field(description="Its tags, lower-case.")
    category: str | None = strawberry.field(description="Its category.")
    share_level: ShareLevel = strawberry.field(
        description="Who sees it: PRIVATE its creator only, TEAM its team's members, PUBLIC "
        "every signed-in user."
    )
    viewer_permission: SharePermission = strawberry.field(
        description="What you may do: VIEW reads it, EDIT changes it and its items, ADMIN also "
        "deletes it and changes its share level."
    )
    created_at: datetime = strawberry.field(description="When it was made.")
    updated_at: datetime = strawberry.field(description="When it or its items last changed.")
    row: strawberry.Private[CollectionRow]

    @classmethod
    def from_row(cls, row: CollectionRow, held: SharePermission) -> Self:
        """The collection as a viewer holding `held` sees it (the caller checked it)."""
        return cls(
            id=ids.encode("Collection", row.id),
            row=row,
            name=row.name,
            description=row.description,
            collection_type=CollectionType(row.collection_type),
            tags=list(row.tags or []),
            category=row.category,
            share_level=ShareLevel(row.share_level),
            viewer_permission=held,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(description="Its cover image, if it has one you may see.")
    async def cover_image(self, info: Info) -> Asset | None:
        return await load_asset(info, self.row.cover_asset_id)

    @strawberry.field(description="Its team; null when you are not a member of it.")
    async def team(self, info: Info) -> Team | None:
        return await member_team(info, self.row.team_id)

    @strawberry.field(
        description="Who made it; null once their account is gone or when you share no team."
    )
    async def creator(self, info: Info) -> User | None:
        return await visible_user(info, self.row.creator_id)

    async def _stats_key(self, info: Info) -> tuple[int, tuple[int, tuple[tuple[int, str], ...]]]:
        return self.row.id or 0, viewer_key(info.context.require_actor())

    @strawberry.field(
        description="How many items it holds that you may see, counted when asked (never a "
        "stored counter)."
    )
    async def item_count(self, info: Info) -> int:
        stats = await info.context.loaders.collection_stats.load(await self._stats_key(info))
        return stats.item_count

    @strawberry.field(
        description="The total duration in seconds of the items you may see (those without a "
        "duration, such as images, count 0), summed when asked."
    )
    async def total_duration(self, info: Info) -> float:
        stats = await info.context.loaders.collection_stats.load(await self._stats_key(info))
        return stats.total_duration

    @strawberry.field(description="Its items in position order, holding only assets you may see.")
    async def items(
        self,
        info: Info,
        first: First = 20,
        after: After = None,
    ) -> CollectionItemConnection:
        check_first(first)
        position = item_after(after)
        viewer = viewer_key(info.context.require_actor())
        loaders = info.context.loaders
        rows = await loaders.collection_items.load((self.row.id or 0, viewer, position, first + 1))
        # Every asset of the page at once, so the loaders batch them into one statement.
        assets = await asyncio.gather(*(load_asset(info, row.asset_id) for row in rows[:first]))
        edges = [
            CollectionItemEdge(
                cursor=item_cursor(row.position), node=CollectionItem.from_row(row, asset)
            )
            for row, asset in zip(rows[:first], assets, strict=True)
            if asset is not None
        ]
        stats = await loaders.collection_stats.load((self.row.id or 0, viewer))
        return CollectionItemConnection(
            edges=edges,
            total_count=stats.item_count,
            page_info=page_info(edges, has_next=len(rows) > first, has_previous=after is not None),
        )


def seen_collection(actor: Actor, row: CollectionRow) -> Collection | None:
    """The collection as `actor` sees it, with their permission (`collection_rules`); None
    if they may not see it (after a write too: a new share level can hide it)."""
    held = collection_rules.permission(actor, row)
    return Collection.from_row(row, held) if held is not None else None


async def load_collection(info: Info, collection_id: int | None) -> Collection | None:
    """The collection as the viewer sees it, or None if there is none or they may not see it."""
    if collection_id is None:
        return None
    row = await info.context.loaders.collection.load(collection_id)
    if row is None:
        return None
    return seen_collection(info.context.require_actor(), row)


async def load_collection_item(info: Info, item_id: int) -> CollectionItem | None:
    """The item, if the viewer may see both its collection and its asset; else None."""
    row = await info.context.loaders.collection_item.load(item_id)
    if row is None or await load_collection(info, row.collection_id) is None:
        return None
    asset = await load_asset(info, row.asset_id)
    return CollectionItem.from_row(row, asset) if asset is not None else None


@strawberry.type(description="A collection and its place in the list.")
class CollectionEdge:
    cursor: str = strawberry.field(
        description="Pass as `after` for the collections after this one."
    )
    node: Collection = strawberry.field(description="The collection.")


@strawberry.type(description="A page of collections, newest first.")
class CollectionConnection:
    edges: list[CollectionEdge] = strawberry.field(description="The collections of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(
        description="How many collections of the team you may see, in all."
    )

    @strawberry.field(description="The collections of this page, without cursors.")
    def nodes(self) -> list[Collection]:
        return [edge.node for edge in self.edges]


# --- inputs -------------------------------------------------------------------------

_TAGS = (
    "At most 30 tags of 1 to 50 characters; stored lower-cased, each once "
    "(more than 30 is TOO_MANY_TAGS)."
)


@strawberry.input(description="A new collection.")
class CreateCollectionInput:
    team_id: strawberry.ID = strawberry.field(
        description="The team it belongs to (you must be an EDITOR or more there)."
    )
    name: str | None = strawberry.field(
        default=None, description='1 to 200 characters; "Untitled Collection" if omitted.'
    )
    description: str | None = strawberry.field(default=None, description="What it gathers.")
    type: CollectionType = strawberry.field(
        default=CollectionType.CAMPAIGN, description="What it gathers."
    )
    tags: list[str] = strawberry.field(default_factory=list, description=_TAGS)
    category: str | None = strawberry.field(default=None, description="Up to 100 characters.")
    share_level: ShareLevel = strawberry.field(
        default=ShareLevel.TEAM, description="Who sees it; TEAM if omitted."
    )
    cover_asset_id: strawberry.ID | None = strawberry.field(
        default=None, description="Its cover: an asset of the same team that you may see."
    )


@strawberry.input(description="Changes to a collection; omitted fields stay as they are.")
class UpdateCollectionInput:
    id: strawberry.ID = strawberry.field(description="The collection.")
    name: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new name (null leaves it unchanged)."
    )
    description: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new description; null clears it."
    )
    type: CollectionType | None = strawberry.field(
        default=strawberry.UNSET, description="A new type (null leaves it unchanged)."
    )
    tags: list[str] | None = strawberry.field(
        default=strawberry.UNSET, description=f"New tags, replacing the old; null clears. {_TAGS}"
    )
    category: str | None = strawberry.field(
        default=strawberry.UNSET, description="A new category; null clears it."
    )
    share_level: ShareLevel | None = strawberry.field(
        default=strawberry.UNSET,
        description="A new share level (only its creator and the team's owners and admins; "
        "null leaves it unchanged).",
    )
    cover_asset_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="A new cover asset; null removes the cover."
    )


@strawberry.input(description="An asset to put into a collection.")
class AddToCollectionInput:
    collection_id: strawberry.ID = strawberry.field(description="The collection.")
    asset_id: strawberry.ID = strawberry.field(
        description="An asset of the collection's own team that you may see."
    )
    position: int | None = strawberry.field(
        default=None,
        description="Where to insert it, 0..n (later items move down one); appended if omitted.",
    )
    notes: str | None = strawberry.field(default=None, description="Notes on why it is there.")


@strawberry.input(description="An asset to take out of a collection.")
class RemoveFromCollectionInput:
    collection_id: strawberry.ID = strawberry.field(description="The collection.")
    asset_id: strawberry.ID = strawberry.field(description="The asset; later items move up one.")


@strawberry.input(description="A new order for a collection's items.")
class ReorderCollectionInput:
    collection_id: strawberry.ID = strawberry.field(description="The collection.")
    item_ids: list[strawberry.ID] = strawberry.field(
        description="Every item you can see, each once, in the new order (at most 1000); items "
        "holding assets you may not see keep their places."
    )


# --- payloads -----------------------------------------------------------------------

_ERRORS = "Why the mutation failed, if it did; when not empty, nothing was changed."


@strawberry.type(description="The result of a collection mutation.")
class CollectionPayload:
    collection: Collection | None = strawberry.field(
        default=None, description="The collection acted on."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of adding an asset to a collection.")
class AddToCollectionPayload:
    item: CollectionItem | None = strawberry.field(default=None, description="The new item.")
    collection: Collection | None = strawberry.field(
        default=None, description="The collection it went into."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of taking an asset out of a collection.")
class RemoveFromCollectionPayload:
    removed_item_id: strawberry.ID | None = strawberry.field(
        default=None, description="The ID of the item that was removed."
    )
    collection: Collection | None = strawberry.field(
        default=None, description="The collection it left."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)
