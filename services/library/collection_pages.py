"""Reading collections: pages of a team's collections, pages of a collection's items,
and each collection's item count and total duration, derived at read time.

Nothing here is stored: a count is the items whose asset the viewer may see now
(`services.library.access.visible`), so it is always true and never shows what the
viewer may not see. The batch functions take keys that carry the viewer (a
`ViewerKey`, hashable where an `Actor` is not) so DataLoaders can batch them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Float, cast
from sqlalchemy.orm import aliased
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.keyset_pages import Page, newest_first
from services.library import access, collection_rules
from services.library.tables import AssetRow, CollectionItemRow, CollectionRow
from services.tables import TeamRole

# (user id, ((team id, role name), ...)): an Actor as a hashable key.
ViewerKey = tuple[int, tuple[tuple[int, str], ...]]


def viewer_key(actor: Actor) -> ViewerKey:
    """The actor's id and roles, as a hashable value (`actor_of` gives the actor back)."""
    return actor.user_id, tuple(sorted((team, role.value) for team, role in actor.roles.items()))


def actor_of(key: ViewerKey) -> Actor:
    """The actor a `viewer_key` was made of."""
    user_id, roles = key
    return Actor(user_id=user_id, roles={team: TeamRole(role) for team, role in roles})


@dataclass(frozen=True)
class CollectionStats:
    """What a viewer sees of a collection's items: how many, and their total duration in
    seconds (items without a duration, such as images, count 0)."""

    item_count: int = 0
    total_duration: float = 0.0


async def page_of_collections(
    session: AsyncSession, actor: Actor, *, team_id: int, first: int, before_id: int | None
) -> Page[CollectionRow]:
    """Up to `first` of the team's collections the actor may see, older than `before_id`
    (a collection id; None: from the newest), newest first, with the total count.

    A team the actor is not in shows its PUBLIC collections only; `first` is bounded
    by the API before it gets here.
    """
    condition = (col(CollectionRow.team_id) == team_id) & collection_rules.visible(actor)
    return await newest_first(
        session,
        select(CollectionRow).where(condition),
        CollectionRow.id,
        first=first,
        before=before_id,
        counted=select(func.count()).select_from(CollectionRow).where(condition),
    )


def _by_viewer(keys: Sequence[tuple[int, ViewerKey]]) -> dict[ViewerKey, list[int]]:
    grouped: dict[ViewerKey, list[int]] = defaultdict(list)
    for collection_id, viewer in keys:
        grouped[viewer].append(collection_id)
    return grouped


async def stats_for(
    session: AsyncSession, keys: Sequence[tuple[int, ViewerKey]]
) -> dict[tuple[int, ViewerKey], CollectionStats]:
    """Each (collection id, viewer)'s stats, one statement per viewer (a DataLoader's
    batch); collections with no item the viewer may see are left out (zero)."""
    found: dict[tuple[int, ViewerKey], CollectionStats] = {}
    for viewer, collection_ids in _by_viewer(keys).items():
        rows = await session.exec(
            select(
                CollectionItemRow.collection_id,
                func.count(),
                func.coalesce(func.sum(cast(AssetRow.duration, Float)), 0.0),
            )
            .join(AssetRow, col(AssetRow.id) == col(CollectionItemRow.asset_id))
            .where(
                col(CollectionItemRow.collection_id).in_(collection_ids),
                access.visible(actor_of(viewer)),
            )
            .group_by(col(CollectionItemRow.collection_id))
        )
        for collection_id, count, duration in rows.all():
            found[(collection_id, viewer)] = CollectionStats(int(count), float(duration))
    return found


# (collection id, viewer, after position (-1: from the start), how many)
ItemsKey = tuple[int, ViewerKey, int, int]


async def items_for(
    session: AsyncSession, keys: Sequence[ItemsKey]
) -> dict[ItemsKey, list[CollectionItemRow]]:
    """For each key, up to `limit` items of the collection after `after` (a position), in
    position order, holding only assets the viewer may see; one statement per
    (viewer, after, limit) (a DataLoader's batch). Keys with no such item are left out."""
    groups: dict[tuple[ViewerKey, int, int], list[int]] = defaultdict(list)
    for collection_id, viewer, after, limit in keys:
        groups[(viewer, after, limit)].append(collection_id)
    found: dict[ItemsKey, list[CollectionItemRow]] = {}
    for (viewer, after, limit), collection_ids in groups.items():
        rank = (
            func.row_number()
            .over(
                partition_by=col(CollectionItemRow.collection_id),
                order_by=col(CollectionItemRow.position),
            )
            .label("rank")
        )
        ranked = (
            select(CollectionItemRow, rank)
            .join(AssetRow, col(AssetRow.id) == col(CollectionItemRow.asset_id))
            .where(
                col(CollectionItemRow.collection_id).in_(collection_ids),
                col(CollectionItemRow.position) > after,
                access.visible(actor_of(viewer)),
            )
            .subquery()
        )
        item = aliased(CollectionItemRow, ranked)
        rows = await session.exec(
            select(item)
            .where(ranked.c.rank <= limit)
            .order_by(col(item.collection_id), col(item.position))
        )
        for row in rows.all():
            found.setdefault((row.collection_id, viewer, after, limit), []).append(row)
    return found
