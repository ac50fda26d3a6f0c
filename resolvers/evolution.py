"""Duplicating, remixing and regenerating assets, and reading their lineage."""

from typing import Annotated

import strawberry

from resolvers.writing import model_params, returns_user_errors, write
from schema import ids, nodes
from schema.context import Info
from schema.evolution import (
    DuplicateAssetInput,
    DuplicateAssetPayload,
    Lineage,
    RegenerateAssetInput,
    RegenerateAssetPayload,
    RemixAssetInput,
    RemixAssetPayload,
)
from schema.library import load_asset
from services.errors import NotFound
from services.library import evolution
from services.library import lineage as lineages
from services.validation import Checks


@returns_user_errors(DuplicateAssetPayload)
async def duplicate_asset(
    info: Info,
    input: Annotated[
        DuplicateAssetInput, strawberry.argument(description="The asset to copy, and its branch.")
    ],
) -> DuplicateAssetPayload:
    checks = Checks()
    asset_id = ids.decode_into(checks, input.asset_id, "Asset", field=("assetId",))
    async with write(info) as (session, actor):
        row = await evolution.duplicate_asset(
            session, actor, asset_id=asset_id, branch_name=input.branch_name, checks=checks
        )
    return DuplicateAssetPayload(asset=await load_asset(info, row.id))


@returns_user_errors(RemixAssetPayload)
async def remix_asset(
    info: Info,
    input: Annotated[
        RemixAssetInput, strawberry.argument(description="The asset to remix, and the new prompt.")
    ],
) -> RemixAssetPayload:
    checks = Checks()
    asset_id = ids.decode_into(checks, input.asset_id, "Asset", field=("assetId",))
    async with write(info) as (session, actor):
        row = await evolution.remix_asset(
            session,
            actor,
            asset_id=asset_id,
            prompt=input.prompt,
            evolution_note=input.evolution_note,
            branch_name=input.branch_name,
            checks=checks,
        )
    return RemixAssetPayload(asset=await load_asset(info, row.id))


@returns_user_errors(RegenerateAssetPayload)
async def regenerate_asset(
    info: Info,
    input: Annotated[
        RegenerateAssetInput,
        strawberry.argument(description="The asset to generate, with a model and parameters."),
    ],
) -> RegenerateAssetPayload:
    generation_engine = info.context.require_generation_engine()
    checks = Checks()
    asset_id = ids.decode_into(checks, input.asset_id, "Asset", field=("assetId",))
    params = model_params(checks, input.params)
    async with write(info) as (session, actor):
        row = await evolution.regenerate_asset(
            session,
            actor,
            generation_engine,
            asset_id=asset_id,
            model=input.model,
            params=params,
            checks=checks,
        )
    return RegenerateAssetPayload(asset=await load_asset(info, row.id))


async def lineage(
    info: Info,
    asset_id: Annotated[strawberry.ID, strawberry.argument(description="The asset's ID.")],
) -> Lineage | None:
    """The asset's lineage as you may see it; null if it does not exist or you may not see it."""
    actor = info.context.require_actor()
    _, pk = nodes.parse_or_reject(asset_id, "Asset")
    async with info.context.db.session() as session:
        try:
            found = await lineages.lineage(session, actor, pk)
        except NotFound:
            return None
    return Lineage.from_data(found)
