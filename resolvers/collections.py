"""Queries and mutations of collections (`services.library.collections`)."""

from typing import Annotated

import strawberry

from resolvers.writing import given, given_required, returns_user_errors, write
from schema import ids, nodes
from schema.collections import (
    AddToCollectionInput,
    AddToCollectionPayload,
    Collection,
    CollectionConnection,
    CollectionEdge,
    CollectionPayload,
    CreateCollectionInput,
    RemoveFromCollectionInput,
    RemoveFromCollectionPayload,
    ReorderCollectionInput,
    UpdateCollectionInput,
    load_collection,
    load_collection_item,
    seen_collection,
)
from schema.connections import After, First, check_first, decode_after, page_info
from schema.context import Info
from schema.inputs import DeleteInput
from schema.payloads import DeletePayload
from services import cursors
from services.library import collection_pages, collections
from services.library.collection_rules import MAX_ITEMS
from services.validation import Checks, within

_CURSOR = "collection"


# --- queries ------------------------------------------------------------------------


async def collection(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="The collection's ID.")],
) -> Collection | None:
    """The collection, if it exists and you may see it."""
    info.context.require_actor()
    _, pk = nodes.parse_or_reject(id, "Collection")
    return await load_collection(info, pk)


async def collections_of_team(
    info: Info,
    team_id: Annotated[strawberry.ID, strawberry.argument(description="The team.")],
    first: First = 20,
    after: After = None,
) -> CollectionConnection:
    """The team's collections you may see, newest first."""
    actor = info.context.require_actor()
    check_first(first)
    before_id = decode_after(after, _CURSOR)
    _, team_pk = nodes.parse_or_reject(team_id, "Team")
    async with info.context.db.session() as session:
        page = await collection_pages.page_of_collections(
            session, actor, team_id=team_pk, first=first, before_id=before_id
        )
    edges = []
    for row in page.rows:
        shown = seen_collection(actor, row)
        if shown is not None:
            edges.append(
                CollectionEdge(cursor=cursors.encode_numbers(_CURSOR, row.id or 0), node=shown)
            )
    return CollectionConnection(
        edges=edges,
        total_count=page.total_count,
        page_info=page_info(edges, has_next=page.has_next, has_previous=before_id is not None),
    )


# --- mutations ----------------------------------------------------------------------


@returns_user_errors(CollectionPayload)
async def create_collection(
    info: Info,
    input: Annotated[CreateCollectionInput, strawberry.argument(description="A new collection.")],
) -> CollectionPayload:
    """createCollection: a new collection in a team where the actor is an EDITOR or more."""
    checks = Checks()
    team_id = ids.decode_into(checks, input.team_id, "Team", field=("teamId",))
    cover = ids.decode_optional_into(checks, input.cover_asset_id, "Asset", field=("coverAssetId",))
    async with write(info) as (session, actor):
        row = await collections.create_collection(
            session,
            actor,
            checks=checks,
            team_id=team_id,
            name=input.name,
            description=input.description,
            collection_type=input.type,
            tags=input.tags,
            category=input.category,
            share_level=input.share_level,
            cover_asset_id=cover,
        )
    return CollectionPayload(collection=seen_collection(actor, row))


@returns_user_errors(CollectionPayload)
async def update_collection(
    info: Info,
    input: Annotated[
        UpdateCollectionInput,
        strawberry.argument(
            description="Changes to a collection; omitted fields stay as they are."
        ),
    ],
) -> CollectionPayload:
    """updateCollection: change the given fields; omitted ones stay."""
    checks = Checks()
    collection_id = ids.decode_into(checks, input.id, "Collection", field=("id",))
    cover = given(input.cover_asset_id)
    if isinstance(cover, str):
        cover = ids.decode_into(checks, cover, "Asset", field=("coverAssetId",))
    async with write(info) as (session, actor):
        row = await collections.update_collection(
            session,
            actor,
            checks=checks,
            collection_id=collection_id,
            name=given_required(input.name),
            description=given(input.description),
            collection_type=given_required(input.type),
            tags=given(input.tags),
            category=given(input.category),
            share_level=given_required(input.share_level),
            cover_asset_id=cover,
        )
    return CollectionPayload(collection=seen_collection(actor, row))


@returns_user_errors(DeletePayload)
async def delete_collection(
    info: Info,
    input: Annotated[DeleteInput, strawberry.argument(description="The collection to delete.")],
) -> DeletePayload:
    """deleteCollection: the collection and its items go; the assets stay."""
    collection_id = ids.decode(input.id, "Collection")
    async with write(info) as (session, actor):
        await collections.delete_collection(session, actor, collection_id=collection_id)
    return DeletePayload(deleted_id=input.id)


@returns_user_errors(AddToCollectionPayload)
async def add_to_collection(
    info: Info,
    input: Annotated[
        AddToCollectionInput, strawberry.argument(description="An asset to put into a collection.")
    ],
) -> AddToCollectionPayload:
    """addToCollection: an asset of the collection's team, inserted or appended."""
    checks = Checks()
    collection_id = ids.decode_into(
        checks, input.collection_id, "Collection", field=("collectionId",)
    )
    asset_id = ids.decode_into(checks, input.asset_id, "Asset", field=("assetId",))
    async with write(info) as (session, actor):
        item = await collections.add_to_collection(
            session,
            actor,
            checks=checks,
            collection_id=collection_id,
            asset_id=asset_id,
            position=input.position,
            notes=input.notes,
        )
    return AddToCollectionPayload(
        item=await load_collection_item(info, item.id or 0),
        collection=await load_collection(info, collection_id),
    )


@returns_user_errors(RemoveFromCollectionPayload)
async def remove_from_collection(
    info: Info,
    input: Annotated[
        RemoveFromCollectionInput,
        strawberry.argument(description="An asset to take out of a collection."),
    ],
) -> RemoveFromCollectionPayload:
    """removeFromCollection: an asset out; later items move up one."""
    checks = Checks()
    collection_id = ids.decode_into(
        checks, input.collection_id, "Collection", field=("collectionId",)
    )
    asset_id = ids.decode_into(checks, input.asset_id, "Asset", field=("assetId",))
    checks.raise_if_any()
    async with write(info) as (session, actor):
        row, removed = await collections.remove_from_collection(
            session, actor, collection_id=collection_id, asset_id=asset_id
        )
    return RemoveFromCollectionPayload(
        removed_item_id=ids.encode("CollectionItem", removed.id),
        collection=seen_collection(actor, row),
    )


@returns_user_errors(CollectionPayload)
async def reorder_collection(
    info: Info,
    input: Annotated[
        ReorderCollectionInput,
        strawberry.argument(description="A new order for a collection's items."),
    ],
) -> CollectionPayload:
    """reorderCollection: every item the actor sees, in a new order."""
    within(input.item_ids, field=("itemIds",), most=MAX_ITEMS, label="item IDs")
    checks = Checks()
    collection_id = ids.decode_into(
        checks, input.collection_id, "Collection", field=("collectionId",)
    )
    item_ids = [
        ids.decode_into(checks, item_id, "CollectionItem", field=("itemIds", str(index)))
        for index, item_id in enumerate(input.item_ids)
    ]
    checks.raise_if_any()
    async with write(info) as (session, actor):
        row = await collections.reorder_collection(
            session, actor, collection_id=collection_id, item_ids=item_ids
        )
    return CollectionPayload(collection=seen_collection(actor, row))
