"""Queries and mutations of the media library's assets (`services.library`)."""

from typing import Annotated

import strawberry

from schema import nodes
from schema.context import Info
from schema.library import Asset, load_asset


async def asset(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="The asset's ID.")],
) -> Asset | None:
    """The asset, if it exists and you may see it."""
    info.context.require_actor()
    _, pk = nodes.parse_or_reject(id, "Asset")
    return await load_asset(info, pk)
