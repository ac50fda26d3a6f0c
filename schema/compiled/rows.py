"""Finished values made in one pass over rows a resolver has already loaded.

The library search reads its page of assets in one statement, their shares in one
more, and works out each asset's access (team, share or PUBLIC) in Python
(`services.library.access`): what is left to cost is graphql-core completing every
leaf of every asset one by one. For a selection of `Asset` leaves only
(`ASSET_LEAVES`), `finish_assets` makes each asset's response object in one pass
instead: the same values the fields' resolvers give (media links signed by the same
`Asset._link`, long or short by the access), serialized by the schema's own scalar
and enum types, under the response keys in the order graphql-core would give them.
Anything else asked of an asset (its team, creator, lineage, shares...) leaves the
page to field-by-field resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, cast

from graphql import (
    FieldNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    Undefined,
)

from schema.compiled import Finished, cached_plan, one_node_position
from schema.compiled.plan import TYPENAME, NotCompilable, Walk
from schema.context import Info
from schema.library import Asset
from schema.library_search import AssetConnection

Getter = Callable[[Asset, Info], Any]


def _attribute(name: str) -> Getter:
    get = attrgetter(name)
    return lambda asset, _info: get(asset)


def _permission(asset: Asset, _info: Info) -> Any:
    return asset.access.permission


# Asset's leaves that are plain values of `Asset.from_row` (by their Python names), and
# the three that its resolvers compute from the row and the access alone.
_PLAIN = (
    *("id", "kind", "name", "description", "status", "share_level", "can_duplicate"),
    *("can_remix", "mime_type", "file_size", "width", "height", "duration", "fps"),
    *("prompt", "model", "generation_params", "tags", "category", "mood", "scene_type"),
    *("version", "branch_name", "evolution_type", "evolution_note", "views"),
    *("duplicate_count", "remix_count", "error", "created_at", "updated_at"),
)
ASSET_LEAVES: dict[str, Getter] = {
    **{
        "".join([word if i == 0 else word.title() for i, word in enumerate(n.split("_"))]): (
            _attribute(n)
        )
        for n in _PLAIN
    },
    "fileUrl": lambda asset, info: asset._link(info, asset.row.storage_key),
    "thumbnailUrl": lambda asset, info: asset._link(info, asset.row.thumbnail_key),
    "viewerPermission": _permission,
}
_CATALOGUE = {"Asset": dict.fromkeys(ASSET_LEAVES)}

Serialize = Callable[[Any], Any]


class _Unserializable(Exception):
    """A value graphql-core would report as an error: left to it."""


def _serializer(type_: GraphQLOutputType) -> Serialize:
    """graphql-core's completion of a leaf value of `type_` (`complete_value`)."""
    if isinstance(type_, GraphQLNonNull):
        inner = _serializer(type_.of_type)

        def non_null(value: Any) -> Any:
            if value is None:
                raise _Unserializable
            return inner(value)

        return non_null
    if isinstance(type_, GraphQLList):
        item = _serializer(type_.of_type)
        return lambda value: None if value is None else [item(v) for v in value]
    leaf = cast(Any, type_)

    def serialize(value: Any) -> Any:
        if value is None:
            return None
        serialized = leaf.serialize(value)
        if serialized is Undefined or serialized is None:
            raise _Unserializable
        return serialized

    return serialize


@dataclass(frozen=True)
class _AssetPlan:
    # (response key, getter, serializer); a None getter is __typename.
    keys: tuple[tuple[str, Getter | None, Serialize | None], ...]

    def finish(self, asset: Asset, info: Info) -> dict[str, Any]:
        return {
            key: "Asset" if get is None else cast(Serialize, serialize)(get(asset, info))
            for key, get, serialize in self.keys
        }


def _plan_assets(
    schema: GraphQLSchema, walk: Walk, nodes: Sequence[FieldNode]
) -> _AssetPlan | None:
    walk.catalogue = _CATALOGUE
    try:
        selected = one_node_position("AssetConnection", "AssetEdge")(walk, nodes)
        picks = walk.collect("Asset", [n.selection_set for n in selected if n.selection_set])
    except NotCompilable:
        return None
    asset_type = cast(GraphQLObjectType, schema.get_type("Asset"))
    keys: list[tuple[str, Getter | None, Serialize | None]] = []
    for p in picks:
        if p.field == TYPENAME:
            keys.append((p.key, None, None))
        else:
            serialize = _serializer(asset_type.fields[p.field].type)
            keys.append((p.key, ASSET_LEAVES[p.field], serialize))
    return _AssetPlan(tuple(keys))


def finish_assets(info: Info, connection: AssetConnection) -> None:
    """Make the page's assets finished values (`Finished`, taken as they are by our
    executor) when the `library` field (`info`'s) asks only for leaves of
    `ASSET_LEAVES` in one place; else leave them to be resolved field by field. A
    value graphql-core would report as an error leaves the whole page to it."""
    if not info.context.resources.compiled_reads or not connection.edges:
        return
    schema = info._raw_info.schema
    plan = cached_plan(info, "Asset", lambda walk, nodes: _plan_assets(schema, walk, nodes))
    if plan is None:
        return
    try:
        values = [plan.finish(edge.node, info) for edge in connection.edges]
    except _Unserializable:
        return
    for edge, value in zip(connection.edges, values, strict=True):
        edge.node = cast(Asset, Finished(value))
