"""Evolving assets (duplicate, remix, regenerate) and their lineage, as GraphQL types."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from schema import ids
from schema.accounts import User
from schema.context import Info
from schema.errors import UserError
from schema.library import Asset, PromptDelta
from services.library.lineage import Lineage as LineageData
from services.library.lineage import LineageNode as LineageNodeData
from services.library.tables import EvolutionType

_ERRORS = "Why the mutation failed, if it did; when not empty, nothing was changed or started."


@strawberry.input(description="Copy an asset exactly: its file is shared, not uploaded again.")
class DuplicateAssetInput:
    asset_id: strawberry.ID = strawberry.field(
        description="The asset to copy: READY, `canDuplicate`, and you hold EDIT on it."
    )
    branch_name: str | None = strawberry.field(
        default=None,
        description="The copy's lineage branch (at most 100 characters); the original's if "
        "omitted.",
    )


@strawberry.input(description="Make a DRAFT variation of an asset with a new prompt.")
class RemixAssetInput:
    asset_id: strawberry.ID = strawberry.field(
        description="The asset to remix: `canRemix`, and you hold EDIT on it."
    )
    prompt: str = strawberry.field(description="The remix's prompt (at most 10,000 characters).")
    evolution_note: str | None = strawberry.field(
        default=None, description="A note on what the remix changes."
    )
    branch_name: str | None = strawberry.field(
        default=None,
        description="The remix's lineage branch (at most 100 characters); the original's if "
        "omitted.",
    )


@strawberry.input(
    description="Generate an asset on Replicate: a DRAFT or FAILED asset in place, a READY "
    "one as a new REGENERATE version."
)
class RegenerateAssetInput:
    asset_id: strawberry.ID = strawberry.field(
        description="An IMAGE (text-to-image from its prompt) or VIDEO (image-to-video from "
        "its source image) asset you hold EDIT on."
    )
    model: str | None = strawberry.field(
        default=None,
        description="A model key from generationModels for the asset's kind; the asset's own "
        "model if the catalog has it, else the kind's default.",
    )
    params: JSON | None = strawberry.field(
        default=None,
        description="Model parameters (see generationModels), over the asset's own stored "
        "ones; checked as generateShotImages checks them.",
    )


@strawberry.type(description="The result of duplicateAsset.")
class DuplicateAssetPayload:
    asset: Asset | None = strawberry.field(
        default=None, description="The copy: READY, evolution DUPLICATE."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of remixAsset.")
class RemixAssetPayload:
    asset: Asset | None = strawberry.field(
        default=None, description="The remix: a DRAFT, evolution REMIX, no file yet."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="The result of regenerateAsset.")
class RegenerateAssetPayload:
    asset: Asset | None = strawberry.field(
        default=None,
        description="The asset being generated (GENERATING): the one given, or its new "
        "REGENERATE version when it was READY.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list, description=_ERRORS)


@strawberry.type(description="One asset of a lineage tree, with its children that you may see.")
class LineageNode:
    asset: Asset = strawberry.field(description="The asset.")
    parent_id: strawberry.ID | None = strawberry.field(
        description="Its lineage parent's ID when that parent appears in this lineage too; "
        "null otherwise."
    )
    children: list[LineageNode] = strawberry.field(
        description="Its lineage children you may see, oldest first; one you may not see is "
        "left out with everything below it."
    )

    @classmethod
    def from_node(
        cls, node: LineageNodeData, shown: set[int | None], *, deep: bool = True
    ) -> LineageNode:
        """The node, and its subtree if `deep` (else no children); every access was decided
        by the service. `shown` holds the ids of every asset of the lineage, so no hidden
        parent's ID is given."""
        return cls(
            asset=Asset.from_row(node.row, node.access),
            parent_id=ids.encode("Asset", node.row.parent_id)
            if node.row.parent_id in shown
            else None,
            children=[cls.from_node(child, shown) for child in node.children] if deep else [],
        )

    @strawberry.field(description="How it came from its parent.")
    def evolution_type(self) -> EvolutionType:
        return self.asset.evolution_type

    @strawberry.field(description="Its lineage branch.")
    def branch_name(self) -> str:
        return self.asset.branch_name

    @strawberry.field(description="Its lineage version: 1 for a root, its parent's + 1 after.")
    def version(self) -> int:
        return self.asset.version

    @strawberry.field(description="How its prompt differs from its parent's; null for a root.")
    def prompt_delta(self) -> PromptDelta | None:
        delta: PromptDelta | None = self.asset.prompt_delta()
        return delta

    @strawberry.field(description="Who made it (as `Asset.creator` shows it).")
    async def creator(self, info: Info) -> User | None:
        creator: User | None = await self.asset.creator(info)
        return creator

    @strawberry.field(description="When it was made.")
    def created_at(self) -> datetime:
        return self.asset.created_at


@strawberry.type(
    description="An asset's family tree as you may see it: a hidden asset is left out with "
    "everything below it, and nothing above a hidden ancestor is shown."
)
class Lineage:
    asset: Asset = strawberry.field(description="The asset asked about.")
    ancestors: list[LineageNode] = strawberry.field(
        description="Its ancestors, the root first down to its parent (each without children); "
        "only the stretch above it up to the first one you may not see."
    )
    tree: LineageNode = strawberry.field(
        description="The asset with its descendants that you may see, as nested `children`."
    )
    descendants: list[LineageNode] = strawberry.field(
        description="The same descendants as a flat list, level by level (oldest first "
        "within a parent), each with its `parentId` and without `children`: for trees deeper "
        "than a query may nest."
    )
    truncated: bool = strawberry.field(
        description="Whether a bound (50 levels each way, 500 descendants) cut the tree short."
    )

    @classmethod
    def from_data(cls, data: LineageData) -> Lineage:
        """The lineage the service read (`services.library.lineage`)."""
        shown = {node.row.id for node in data.ancestors}
        level, flat = [data.tree], []
        while level:
            shown.update(node.row.id for node in level)
            level = [child for node in level for child in node.children]
            flat.extend(level)
        tree = LineageNode.from_node(data.tree, shown)
        return cls(
            asset=tree.asset,
            ancestors=[LineageNode.from_node(node, shown, deep=False) for node in data.ancestors],
            tree=tree,
            descendants=[LineageNode.from_node(node, shown, deep=False) for node in flat],
            truncated=data.truncated,
        )
