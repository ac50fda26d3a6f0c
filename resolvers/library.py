"""Queries and mutations of the media library's assets (`services.library`)."""

from typing import Annotated

import strawberry

from resolvers.writing import given, given_required, returns_user_errors, write
from schema import ids, nodes
from schema.context import Info
from schema.inputs import DeleteInput
from schema.library import Asset, load_asset
from schema.library_payloads import AssetPayload, UpdateAssetInput
from schema.payloads import DeletePayload
from services.library import edits, usage
from services.library.edits import AssetChanges
from services.validation import Checks


async def asset(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="The asset's ID.")],
) -> Asset | None:
    """The asset, if it exists and you may see it; opening it counts a view (at most one
    per viewer per hour, `services.library.usage.count_view`), shown in its `views`."""
    actor = info.context.require_actor()
    _, pk = nodes.parse_or_reject(id, "Asset")
    found = await load_asset(info, pk)
    if found is not None:
        views = await usage.count_view(info.context.db, asset_id=pk, user_id=actor.user_id)
        if views is not None:
            found.views = views
    return found


# --- edits ---


@returns_user_errors(AssetPayload)
async def update_asset(
    info: Info,
    input: Annotated[
        UpdateAssetInput,
        strawberry.argument(description="Changes to an asset; omitted fields stay as they are."),
    ],
) -> AssetPayload:
    checks = Checks()
    asset_id = ids.decode_into(checks, input.id, "Asset", field=("id",))
    changes = AssetChanges(
        name=given_required(input.name),
        description=given(input.description),
        tags=given(input.tags),
        category=given(input.category),
        mood=given(input.mood),
        scene_type=given(input.scene_type),
        can_duplicate=given_required(input.can_duplicate),
        can_remix=given_required(input.can_remix),
    )
    async with write(info) as (session, actor):
        await edits.update_asset(session, actor, asset_id=asset_id, changes=changes, checks=checks)
    return AssetPayload(asset=await load_asset(info, asset_id))


@returns_user_errors(DeletePayload)
async def delete_asset(
    info: Info,
    input: Annotated[DeleteInput, strawberry.argument(description="The asset to delete.")],
) -> DeletePayload:
    asset_id = ids.decode(input.id, "Asset")
    async with write(info) as (session, actor):
        await edits.delete_asset(
            session,
            actor,
            asset_id=asset_id,
            storage=info.context.resources.storage,
            generation_engine=info.context.resources.generation_engine,
        )
    return DeletePayload(deleted_id=input.id)
