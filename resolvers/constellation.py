"""The constellation map's query and mutation (`services.library.constellation`)."""

from typing import Annotated

import strawberry

from resolvers.writing import returns_user_errors, write
from schema import ids, nodes
from schema.cluster_ids import decode_cluster
from schema.constellation import (
    Constellation,
    ConstellationCluster,
    ConstellationNode,
    SetConstellationPositionInput,
    SetConstellationPositionPayload,
)
from schema.context import Info
from services.errors import InvalidInput
from services.library import constellation


async def constellation_map(
    info: Info,
    team_id: Annotated[strawberry.ID, strawberry.argument(description="The team's ID.")],
) -> Constellation | None:
    """The team's map as you see it; null unless you are a member of the team. Assets
    without a current position are placed first (one layout per team at a time)."""
    actor = info.context.require_actor()
    _, pk = nodes.parse_or_reject(team_id, "Team")
    if not actor.can_read(pk):
        return None
    await constellation.ensure_layout(info.context.db, pk)
    async with info.context.db.session() as session:
        found = await constellation.read_map(session, actor, pk)
    return Constellation.from_map(found)


@returns_user_errors(SetConstellationPositionPayload)
async def set_constellation_position(
    info: Info,
    input: Annotated[
        SetConstellationPositionInput,
        strawberry.argument(description="What to pin (an asset or a cluster), and where."),
    ],
) -> SetConstellationPositionPayload:
    """Pin an asset, or a cluster's centre, at (x, y): one of `assetId` and `clusterId`,
    else INVALID_INPUT; every other failure is the service's (see `services.library.
    constellation.pin_asset` and `pin_cluster`), as `userErrors`, changing nothing."""
    if (input.asset_id is None) == (input.cluster_id is None):
        raise InvalidInput(
            "Give exactly one of assetId and clusterId.", code="INVALID_INPUT", field=()
        )
    if input.asset_id is not None:
        asset_id = ids.decode(input.asset_id, "Asset", field=("assetId",))
        async with write(info) as (session, actor):
            node = await constellation.pin_asset(
                session, actor, asset_id=asset_id, x=input.x, y=input.y
            )
        return SetConstellationPositionPayload(node=ConstellationNode.from_node(node))
    assert input.cluster_id is not None
    team_id, key = decode_cluster(input.cluster_id)
    async with write(info) as (session, actor):
        cluster = await constellation.pin_cluster(
            session, actor, team_id=team_id, key=key, x=input.x, y=input.y
        )
    return SetConstellationPositionPayload(cluster=ConstellationCluster.from_cluster(cluster))
