"""The constellation map as GraphQL types: nodes, lineage edges and tag clusters of a team's
library, as one viewer sees them (`services.library.constellation`).

A cluster is not a Node: its ID is opaque like one (`schema.cluster_ids`) and is
accepted by `setConstellationPosition` only.
"""

from __future__ import annotations

import strawberry

from schema import ids
from schema.cluster_ids import encode_cluster
from schema.context import Info
from schema.errors import UserError
from schema.library import Asset, load_asset
from services.library.constellation import ConstellationMap, MapCluster, MapEdge, MapNode
from services.library.tables import AssetKind, EvolutionType, SceneType


@strawberry.type(
    description="An asset on the constellation map, where it sits and in which cluster."
)
class ConstellationNode:
    id: strawberry.ID = strawberry.field(description="The asset's ID.")
    name: str = strawberry.field(description="The asset's name.")
    kind: AssetKind = strawberry.field(description="What its file holds.")
    tags: list[str] = strawberry.field(description="Its tags, lower-case.")
    category: str | None = strawberry.field(description="Its category (its region of the map).")
    mood: str | None = strawberry.field(description="Its mood.")
    scene_type: SceneType | None = strawberry.field(description="The kind of shot it shows.")
    x: float | None = strawberry.field(
        description="Horizontal position in map units; null only for an asset added after "
        "the layout ran (ask again)."
    )
    y: float | None = strawberry.field(description="Vertical position in map units, like x.")
    cluster_id: strawberry.ID | None = strawberry.field(
        description="The ID of its cluster (see `clusters`); null like x."
    )
    has_lineage: bool = strawberry.field(
        description="Whether it has a lineage parent, or a child you may see."
    )
    pinned: bool = strawberry.field(
        description="Whether it was put where it is by hand (setConstellationPosition); a "
        "layout never moves a pinned node."
    )
    node: strawberry.Private[MapNode]

    @classmethod
    def from_node(cls, node: MapNode) -> ConstellationNode:
        """The GraphQL node of a visible map node."""
        return cls(
            id=ids.encode("Asset", node.id),
            name=node.name,
            kind=AssetKind(node.kind),
            tags=list(node.tags),
            category=node.category,
            mood=node.mood,
            scene_type=SceneType(node.scene_type) if node.scene_type else None,
            x=node.x,
            y=node.y,
            cluster_id=encode_cluster(node.team_id, node.cluster) if node.cluster else None,
            has_lineage=node.has_lineage,
            pinned=node.pinned,
            node=node,
        )

    @strawberry.field(
        description="Its thumbnail by a signed URL that expires, as `Asset.thumbnailUrl`; "
        "null until it is made."
    )
    def thumbnail_url(self, info: Info) -> str | None:
        key = self.node.thumbnail_key
        if key is None:
            return None
        if self.node.through_team:
            return info.context.media.url_for(key)
        return info.context.media.short_url_for(key)

    @strawberry.field(description="The asset itself, for everything else about it.")
    async def asset(self, info: Info) -> Asset | None:
        return await load_asset(info, self.node.id)


@strawberry.type(description="A lineage step on the map: from a parent asset to its child.")
class ConstellationEdge:
    source_id: strawberry.ID = strawberry.field(description="The parent asset's ID.")
    target_id: strawberry.ID = strawberry.field(description="The child asset's ID.")
    evolution_type: EvolutionType = strawberry.field(
        description="How the child came from the parent."
    )

    @classmethod
    def from_edge(cls, edge: MapEdge) -> ConstellationEdge:
        """The GraphQL edge of a lineage step between two visible nodes."""
        return cls(
            source_id=ids.encode("Asset", edge.parent_id),
            target_id=ids.encode("Asset", edge.child_id),
            evolution_type=EvolutionType(edge.evolution_type),
        )


@strawberry.type(
    description="A group of assets that share tags, within one category. Its label, tags, "
    "size and centre come from the nodes you may see."
)
class ConstellationCluster:
    id: strawberry.ID = strawberry.field(
        description="An opaque ID, stable across layouts (for setConstellationPosition)."
    )
    label: str = strawberry.field(
        description='Its dominant tags joined by " · " ("untagged" for assets without tags).'
    )
    tags: list[str] = strawberry.field(
        description="Its dominant tags, most frequent first (at most 3)."
    )
    size: int = strawberry.field(description="How many of its assets you may see.")
    x: float = strawberry.field(
        description="Centre, horizontal, in map units: the mean of its nodes you may see, or "
        "where it was pinned."
    )
    y: float = strawberry.field(description="Centre, vertical, like x.")
    pinned: bool = strawberry.field(
        description="Whether its centre was put there by hand; a layout never moves it."
    )
    category: str | None = strawberry.field(description="The category (region) it lies in.")

    @classmethod
    def from_cluster(cls, cluster: MapCluster) -> ConstellationCluster:
        """The GraphQL cluster of one seen by a viewer."""
        return cls(
            id=encode_cluster(cluster.team_id, cluster.key),
            label=cluster.label,
            tags=list(cluster.tags),
            size=cluster.size,
            x=cluster.x,
            y=cluster.y,
            pinned=cluster.pinned,
            category=cluster.category,
        )


@strawberry.type(
    description="A team's library as a map: assets placed by shared tags (clusters) in "
    "regions by category, joined by their lineage. Only what you may see is on it."
)
class Constellation:
    team_id: strawberry.ID = strawberry.field(description="The team.")
    nodes: list[ConstellationNode] = strawberry.field(description="Its assets, by ID.")
    edges: list[ConstellationEdge] = strawberry.field(
        description="Lineage steps between two of its nodes."
    )
    clusters: list[ConstellationCluster] = strawberry.field(
        description="Its clusters with at least one node."
    )

    @classmethod
    def from_map(cls, found: ConstellationMap) -> Constellation:
        """The GraphQL map of what a viewer sees of a team's."""
        return cls(
            team_id=ids.encode("Team", found.team_id),
            nodes=[ConstellationNode.from_node(n) for n in found.nodes],
            edges=[ConstellationEdge.from_edge(e) for e in found.edges],
            clusters=[ConstellationCluster.from_cluster(c) for c in found.clusters],
        )


@strawberry.input(
    description="Pin an asset, or a cluster's centre, at a position on the map. Give exactly "
    "one of assetId and clusterId."
)
class SetConstellationPositionInput:
    x: float = strawberry.field(
        description="Horizontal position in map units, finite, within +-1,000,000."
    )
    y: float = strawberry.field(description="Vertical position, like x.")
    asset_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The asset to pin there (needs EDIT on it); no layout moves it again.",
    )
    cluster_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="The cluster whose centre to move there and pin (needs an OWNER, ADMIN or "
        "EDITOR role in its team): its unpinned assets move with it, later ones gather there.",
    )


@strawberry.type(description="The result of setConstellationPosition.")
class SetConstellationPositionPayload:
    node: ConstellationNode | None = strawberry.field(
        default=None, description="The asset pinned, if an asset was."
    )
    cluster: ConstellationCluster | None = strawberry.field(
        default=None, description="The cluster pinned, if a cluster was."
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list,
        description="Why the mutation failed, if it did; when not empty, nothing was changed.",
    )
