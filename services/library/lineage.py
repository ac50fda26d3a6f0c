"""An asset's family tree: its ancestors up to the root, and its descendants.

Only what the viewer may see appears, by the one rule (`access.visible`): a
descendant they may not see is left out with its whole subtree (nothing below it is
even read), and the ancestors stop below the first one they may not see (what is
above a hidden asset is not shown either). The walk is one query per level, bounded
by `MAX_DEPTH` levels each way and `MAX_NODES` descendants; `truncated` says when a
bound cut the tree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.library.access import Access, permission, require_asset, shares_for, visible
from services.library.tables import AssetRow
from services.tables import utcnow

MAX_DEPTH = 50
"""The most lineage levels walked up (ancestors) and down (descendants)."""
MAX_NODES = 500
"""The most descendants returned."""


@dataclass
class LineageNode:
    """One asset of the tree, the viewer's access to it, and its visible children
    (oldest first)."""

    row: AssetRow
    access: Access
    children: list[LineageNode] = field(default_factory=list)


@dataclass
class Lineage:
    """`ancestors` root first down to the parent (only the visible stretch above the
    asset); `tree` the asset with its visible descendants; `truncated` when
    `MAX_DEPTH` or `MAX_NODES` cut something off."""

    ancestors: list[LineageNode]
    tree: LineageNode
    truncated: bool


async def lineage(session: AsyncSession, actor: Actor, asset_id: int) -> Lineage:
    """The lineage of an asset the actor may see, as described in the module.

    Raises NotFound (assetId) when there is no such asset or the actor may not see it.
    """
    row, granted = await require_asset(session, actor, asset_id)
    now = utcnow()
    condition = visible(actor, now=now)
    truncated = False

    ancestors: list[AssetRow] = []
    seen = {row.id}
    parent_id = row.parent_id
    for _ in range(MAX_DEPTH):
        if parent_id is None or parent_id in seen:
            break
        parent = (
            await session.exec(select(AssetRow).where(col(AssetRow.id) == parent_id, condition))
        ).first()
        if parent is None:
            break  # gone, or hidden: nothing above it is shown either
        seen.add(parent.id)
        ancestors.append(parent)
        parent_id = parent.parent_id
    else:
        truncated = parent_id is not None and parent_id not in seen

    tree = LineageNode(row, granted)
    by_id = {row.id: tree}
    level = [tree]
    depth = found = 0
    while level:
        left = MAX_NODES - found
        parents = [node.row.id for node in level]
        below = (
            select(AssetRow)
            .where(col(AssetRow.parent_id).in_(parents), col(AssetRow.id).not_in(by_id), condition)
            .order_by(col(AssetRow.created_at), col(AssetRow.id))
        )
        if depth == MAX_DEPTH or left == 0:
            # A bound is reached: say whether it cut anything off.
            truncated = truncated or (await session.exec(below.limit(1))).first() is not None
            break
        children = (await session.exec(below.limit(left + 1))).all()
        if len(children) > left:
            children, truncated = children[:left], True
        level = []
        for child in children:
            node = LineageNode(child, granted)  # the access is set below, with the shares
            by_id[child.id] = node
            assert child.parent_id is not None
            by_id[child.parent_id].children.append(node)
            level.append(node)
        found += len(children)
        depth += 1

    ancestor_nodes = [LineageNode(a, granted) for a in reversed(ancestors)]
    await _grant(session, actor, [*ancestor_nodes, *by_id.values()], now)
    return Lineage(ancestors=ancestor_nodes, tree=tree, truncated=truncated)


async def _grant(
    session: AsyncSession, actor: Actor, nodes: list[LineageNode], now: datetime
) -> None:
    """Each node's access, from the actor's shares read in one statement."""
    shares = await shares_for(session, [(n.row.id or 0, actor.user_id) for n in nodes])
    for node in nodes:
        node.access = permission(
            actor, node.row, shares.get((node.row.id or 0, actor.user_id)), now=now
        )
