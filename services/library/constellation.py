"""A team's constellation map: keeping its layout current, reading it as a viewer sees it,
and pinning nodes and clusters by hand.

The layout (`services.library.constellation_layout`) is cached in the rows: each
asset's `constellation_x/y/cluster` (with the `constellation_basis` it was computed
from) and each cluster's centre in `constellation_clusters`. `ensure_layout` runs it
lazily, when the map is read and some asset of the team has no current position:
one computation per team at a time in this process (a per-team lock; a reader that
waited finds the work done), its CPU work in a thread, its result stored in one
write. It only places assets that need it and never moves a pinned asset or cluster:
the write itself skips any asset pinned meanwhile.

Reading (`read_map`) shows only what the viewer may see (`services.library.access`):
nodes are the team's visible assets, edges join two visible nodes only, and each
cluster's size, label and centre come from its visible nodes alone (a pinned
cluster's centre is where it was pinned), so no hidden asset's tags or place leak.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from functools import cache
from typing import Any

from sqlalchemy import bindparam, delete, update
from sqlalchemy import select as sql_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.database import Database
from services.errors import NotFound
from services.library import constellation_layout as layouts
from services.library.access import (
    EDIT,
    require_asset,
    require_team_member,
    team_permission,
    visible,
)
from services.library.tables import AssetRow, ConstellationClusterRow
from services.tables import utcnow
from services.validation import Checks

# How far from the origin a pinned position may be, in map units (either axis).
COORDINATE_MAX = 1_000_000.0

_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class MapNode:
    """A visible asset on the map: what the map shows of it (the asset's columns of the
    same names; `x`/`y`/`cluster` its `constellation_*`, `pinned` its `position_pinned`).
    `through_team`: the viewer sees it through its team (long media links) rather than a
    share (short ones); `has_lineage`: it has a lineage parent, or a child the viewer
    may see."""

    id: int
    team_id: int
    name: str
    kind: str
    tags: list[str]
    category: str | None
    mood: str | None
    scene_type: str | None
    thumbnail_key: str | None
    parent_id: int | None
    evolution_type: str
    x: float | None
    y: float | None
    cluster: str | None
    pinned: bool
    through_team: bool = True
    has_lineage: bool = False


@dataclass(frozen=True)
class MapEdge:
    """A lineage step between two visible nodes: parent, child, the child's evolution type."""

    parent_id: int
    child_id: int
    evolution_type: str


@dataclass(frozen=True)
class MapCluster:
    """A cluster as a viewer sees it: `tags` its dominant tags among the visible nodes,
    `label` made from them, `size` the visible nodes in it, centre (x, y) their mean, or
    where it was pinned; `category` the visible nodes' most common category."""

    team_id: int
    key: str
    label: str
    tags: list[str]
    size: int
    x: float
    y: float
    pinned: bool
    category: str | None


@dataclass(frozen=True)
class ConstellationMap:
    """A team's map as one viewer sees it (nodes by id, edges and clusters by key)."""

    team_id: int
    nodes: list[MapNode]
    edges: list[MapEdge]
    clusters: list[MapCluster]


def _lock(team_id: int) -> asyncio.Lock:
    lock = _locks.get(team_id)
    if lock is None:
        lock = asyncio.Lock()
        _locks[team_id] = lock
    return lock


async def _layout_input(
    session: AsyncSession, team_id: int
) -> tuple[list[layouts.LayoutAsset], list[layouts.LayoutCluster]]:
    connection = await session.connection()
    found = await connection.execute(
        sql_select(
            col(AssetRow.id),
            col(AssetRow.tags),
            col(AssetRow.category),
            col(AssetRow.constellation_x),
            col(AssetRow.constellation_y),
            col(AssetRow.constellation_cluster),
            col(AssetRow.position_pinned),
            col(AssetRow.constellation_basis),
        )
        .where(col(AssetRow.team_id) == team_id)
        .order_by(col(AssetRow.id))
    )
    assets = [
        layouts.LayoutAsset(
            id=pk,
            tags=tuple(str(t) for t in tags or []),
            category=category,
            x=x,
            y=y,
            cluster=cluster,
            pinned=pinned,
            basis=basis,
        )
        for pk, tags, category, x, y, cluster, pinned, basis in found
        if pk is not None
    ]
    stored = await session.exec(
        select(ConstellationClusterRow).where(col(ConstellationClusterRow.team_id) == team_id)
    )
    clusters = [layouts.LayoutCluster(c.key, c.x, c.y, c.pinned) for c in stored]
    return assets, clusters


async def ensure_layout(db: Database, team_id: int) -> bool:
    """Place the team's assets that have no current position, and store the result.

    Returns whether a layout ran. Concurrent callers for one team wait for each other;
    the layout's CPU work runs in a worker thread. Pinned assets and clusters never
    move (see the module).
    """
    async with _lock(team_id):
        async with db.session() as session:
            assets, clusters = await _layout_input(session, team_id)
        if not any(a.needs_layout for a in assets):
            return False
        layout = await asyncio.to_thread(layouts.compute, assets, clusters)
        async with db.transaction() as session:
            await _store(session, team_id, layout)
        return True


async def _store(session: AsyncSession, team_id: int, layout: layouts.Layout) -> None:
    """Write a layout in this transaction: positions only of assets still not pinned."""
    connection = await session.connection()
    moved = [
        {"pk": pk, "px": p.x, "py": p.y, "pc": p.cluster, "pb": p.basis}
        for pk, p in layout.placements.items()
        if p.x is not None
    ]
    if moved:
        await connection.execute(
            update(AssetRow)
            .where(col(AssetRow.id) == bindparam("pk"), col(AssetRow.position_pinned).is_(False))
            .values(
                constellation_x=bindparam("px"),
                constellation_y=bindparam("py"),
                constellation_cluster=bindparam("pc"),
                constellation_basis=bindparam("pb"),
            ),
            moved,
        )
    kept = [
        {"pk": pk, "pc": p.cluster, "pb": p.basis}
        for pk, p in layout.placements.items()
        if p.x is None
    ]
    if kept:  # pinned: a new cluster, never a new position
        await connection.execute(
            update(AssetRow)
            .where(col(AssetRow.id) == bindparam("pk"))
            .values(constellation_cluster=bindparam("pc"), constellation_basis=bindparam("pb")),
            kept,
        )
    now = utcnow()
    if layout.new_clusters:
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        rows = [
            {
                "team_id": team_id,
                "key": key,
                "label": layout.labels.get(key, "")[:200],
                "x": x,
                "y": y,
                "pinned": False,
                "updated_at": now,
            }
            for key, (x, y) in sorted(layout.new_clusters.items())
        ]
        # Another process may have stored the same (deterministic) cluster meanwhile.
        await connection.execute(
            dialect.insert(ConstellationClusterRow).on_conflict_do_nothing(), rows
        )
    existing = {k: v for k, v in layout.labels.items() if k not in layout.new_clusters}
    if existing:
        await connection.execute(
            update(ConstellationClusterRow)
            .where(
                col(ConstellationClusterRow.team_id) == team_id,
                col(ConstellationClusterRow.key) == bindparam("pk"),
                col(ConstellationClusterRow.pinned).is_(False),
            )
            .values(label=bindparam("pl"), updated_at=now),
            [{"pk": key, "pl": label[:200]} for key, label in sorted(existing.items())],
        )
    if layout.empty:
        await connection.execute(
            delete(ConstellationClusterRow).where(
                col(ConstellationClusterRow.team_id) == team_id,
                col(ConstellationClusterRow.key).in_(sorted(layout.empty)),
                col(ConstellationClusterRow.pinned).is_(False),
            )
        )


# What the map reads of an asset, in MapNode's order (then creator and level, for access).
_MAP_COLUMNS = (
    AssetRow.id,
    AssetRow.team_id,
    AssetRow.name,
    AssetRow.kind,
    AssetRow.tags,
    AssetRow.category,
    AssetRow.mood,
    AssetRow.scene_type,
    AssetRow.thumbnail_key,
    AssetRow.parent_id,
    AssetRow.evolution_type,
    AssetRow.constellation_x,
    AssetRow.constellation_y,
    AssetRow.constellation_cluster,
    AssetRow.position_pinned,
    AssetRow.creator_id,
    AssetRow.share_level,
)


_NODE_FIELDS = [f.name for f in fields(MapNode)][: len(_MAP_COLUMNS) - 2]


def _through_team(actor: Actor, team_id: int) -> Callable[[int | None, str], bool]:
    """Whether the actor's access to an asset of the team with this creator and share
    level comes through the team: `access.team_permission` (the one rule), asked once
    per distinct (creator, level) rather than once per asset."""

    @cache
    def decide(creator_id: int | None, share_level: str) -> bool:
        probe = AssetRow(
            team_id=team_id, creator_id=creator_id, share_level=share_level, kind="", name=""
        )
        return team_permission(actor, probe) is not None

    return decide


async def _visible_nodes(
    session: AsyncSession, actor: Actor, team_id: int, cluster: str | None = None
) -> list[MapNode]:
    """The team's assets the actor may see (of one cluster, if given), by id: read as
    plain rows, since ORM objects would cost most of a 10,000-asset map's time."""
    query = sql_select(*(col(c) for c in _MAP_COLUMNS)).where(
        col(AssetRow.team_id) == team_id,
        visible(actor, teams=[team_id], public_of_other_teams=False),
    )
    if cluster is not None:
        query = query.where(col(AssetRow.constellation_cluster) == cluster)
    connection = await session.connection()
    found = await connection.execute(query.order_by(col(AssetRow.id)))
    through_team = _through_team(actor, team_id)
    nodes = []
    for row in found:
        facts: dict[str, Any] = dict(zip(_NODE_FIELDS, row, strict=False))
        facts["tags"] = [str(t) for t in facts["tags"] or []]
        seen_through_team = through_team(row.creator_id, row.share_level)
        nodes.append(MapNode(**facts, through_team=seen_through_team))
    return nodes


async def read_map(session: AsyncSession, actor: Actor, team_id: int) -> ConstellationMap:
    """The team's map as `actor` sees it (see the module). Raises NotFound unless the
    actor is a member of the team. Call `ensure_layout` first for current positions."""
    actor.require_read(team_id, "team")
    found = await _visible_nodes(session, actor, team_id)
    ids = {node.id for node in found}
    parents = {node.parent_id for node in found if node.parent_id in ids}
    nodes = [
        replace(node, has_lineage=node.parent_id is not None or node.id in parents)
        for node in found
    ]
    edges = [
        MapEdge(node.parent_id, node.id, node.evolution_type)
        for node in nodes
        if node.parent_id is not None and node.parent_id in ids
    ]
    stored = await session.exec(
        select(ConstellationClusterRow).where(col(ConstellationClusterRow.team_id) == team_id)
    )
    clusters = _clusters(team_id, nodes, {c.key: c for c in stored})
    return ConstellationMap(team_id, nodes, edges, clusters)


def _clusters(
    team_id: int, nodes: Sequence[MapNode], stored: dict[str, ConstellationClusterRow]
) -> list[MapCluster]:
    """Each cluster with a visible node, from the visible nodes alone, by key."""
    groups: dict[str, list[MapNode]] = defaultdict(list)
    for node in nodes:
        if node.cluster is not None:
            groups[node.cluster].append(node)
    return [_cluster(team_id, key, groups[key], stored.get(key)) for key in sorted(groups)]


def _cluster(
    team_id: int, key: str, nodes: Sequence[MapNode], stored: ConstellationClusterRow | None
) -> MapCluster:
    tags = layouts.dominant_tags(node.tags for node in nodes)
    placed = [(n.x, n.y) for n in nodes if n.x is not None and n.y is not None]
    pinned = stored is not None and stored.pinned
    if stored is not None and (pinned or not placed):
        x, y = stored.x, stored.y
    elif placed:
        x = round(sum(p[0] for p in placed) / len(placed), 3)
        y = round(sum(p[1] for p in placed) / len(placed), 3)
    else:
        x = y = 0.0
    categories = Counter(node.category for node in nodes)
    category = min(categories, key=lambda c: (-categories[c], c or "")) if categories else None
    return MapCluster(
        team_id=team_id,
        key=key,
        label=layouts.label_of(tags),
        tags=tags,
        size=len(nodes),
        x=x,
        y=y,
        pinned=pinned,
        category=category,
    )


def check_coordinates(checks: Checks, x: float, y: float) -> None:
    """Record OUT_OF_RANGE for a coordinate that is not a finite number within
    +-COORDINATE_MAX map units (NaN and infinities included)."""
    for name, value in (("x", x), ("y", y)):
        if not math.isfinite(value) or abs(value) > COORDINATE_MAX:
            checks.fail(
                "OUT_OF_RANGE",
                f"{name} must be a finite number between {-COORDINATE_MAX:,.0f} and "
                f"{COORDINATE_MAX:,.0f}.",
                (name,),
            )


async def pin_asset(
    session: AsyncSession, actor: Actor, *, asset_id: int, x: float, y: float
) -> MapNode:
    """Put an asset at (x, y) and pin it there: no layout moves it again.

    Needs EDIT on the asset and membership of its team. Raises InvalidInput
    (OUT_OF_RANGE) for a coordinate out of bounds, NotFound (`assetId`) for an asset the
    actor cannot see, PermissionDenied without EDIT or (TEAM_MEMBERS_ONLY) outside its
    team. Returns the node as the actor sees it.
    """
    checks = Checks()
    check_coordinates(checks, x, y)
    checks.raise_if_any()
    row, access = await require_asset(session, actor, asset_id, EDIT, lock=True)
    require_team_member(  # the map is its members'; a share is not one
        actor, row, "Only members of the asset's team can place it on their map."
    )
    row.constellation_x, row.constellation_y = round(x, 3), round(y, 3)
    row.position_pinned = True
    session.add(row)
    await session.flush()
    has_child = (
        await session.exec(
            select(AssetRow.id)
            .where(
                col(AssetRow.parent_id) == asset_id,
                visible(actor, teams=[row.team_id], public_of_other_teams=False),
            )
            .limit(1)
        )
    ).first()
    return MapNode(
        id=asset_id,
        team_id=row.team_id,
        name=row.name,
        kind=row.kind,
        tags=list(row.tags or []),
        category=row.category,
        mood=row.mood,
        scene_type=row.scene_type,
        thumbnail_key=row.thumbnail_key,
        parent_id=row.parent_id,
        evolution_type=row.evolution_type,
        x=row.constellation_x,
        y=row.constellation_y,
        cluster=row.constellation_cluster,
        pinned=True,
        through_team=access.through_team,
        has_lineage=row.parent_id is not None or has_child is not None,
    )


async def pin_cluster(
    session: AsyncSession, actor: Actor, *, team_id: int, key: str, x: float, y: float
) -> MapCluster:
    """Move a cluster's centre to (x, y) and pin it there, its unpinned assets moving with
    it (by the same offset); no layout moves it again, and new assets of it gather there.

    Needs a writer's role (OWNER, ADMIN, EDITOR) in the team. Raises InvalidInput
    (OUT_OF_RANGE), NotFound (`clusterId`) outside the team or for no such cluster,
    PermissionDenied for a VIEWER. Returns the cluster as the actor sees it.
    """
    checks = Checks()
    check_coordinates(checks, x, y)
    checks.raise_if_any()
    if not actor.can_read(team_id):
        raise NotFound("constellation cluster", field=("clusterId",))
    actor.require_write(team_id, "constellation map")
    stored = await session.get(ConstellationClusterRow, (team_id, key), with_for_update=True)
    if stored is None:
        raise NotFound("constellation cluster", field=("clusterId",))
    dx, dy = x - stored.x, y - stored.y
    connection = await session.connection()
    await connection.execute(
        update(AssetRow)
        .where(
            col(AssetRow.team_id) == team_id,
            col(AssetRow.constellation_cluster) == key,
            col(AssetRow.position_pinned).is_(False),
            col(AssetRow.constellation_x).is_not(None),
            col(AssetRow.constellation_y).is_not(None),
        )
        .values(
            constellation_x=col(AssetRow.constellation_x) + dx,
            constellation_y=col(AssetRow.constellation_y) + dy,
        )
    )
    stored.x, stored.y, stored.pinned = round(x, 3), round(y, 3), True
    stored.updated_at = utcnow()
    session.add(stored)
    await session.flush()
    nodes = await _visible_nodes(session, actor, team_id, cluster=key)
    return _cluster(team_id, key, nodes, stored)
