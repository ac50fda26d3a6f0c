"""Facets of a team's library: every value each search filter can take, with counts.

The assets counted are exactly those `library(filter: {teamId})` searches over: the
team's assets the viewer may see (through the team, their authorship, an unexpired
share, or, with `include_public`, a PUBLIC level), by the one rule
(`services.library.access.visible`). So a facet's count is the `totalCount` of a
search on that one value.

Two statements: the grouped counts of every facet from one materialized scan of the
visible rows (a CTE), and the total and ranges.

Example:

    found = await facets(session, actor, team_id=3)
    found.tags[:3]   # [FacetCount("night", 41), FacetCount("rain", 17), ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, cast, func, literal, select, union_all
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.library.search import LibraryFilter, conditions
from services.library.tables import AssetRow
from services.tables import utcnow

# Each facet: its name and the column of `assets` it groups.
_GROUPED = {
    "category": "category",
    "mood": "mood",
    "scene_type": "scene_type",
    "kind": "kind",
    "model": "model",
    "creator": "creator_id",
    "project": "project_id",
    "share_level": "share_level",
}


@dataclass(frozen=True)
class FacetCount:
    """One value of a facet (a string; ids as decimal strings) and how many assets hold it."""

    value: str
    count: int


@dataclass
class Facets:
    """The facets of a team's visible assets, each ordered by count (highest first), then
    value. `total`: the assets counted; durations in seconds (None: no asset has one).

    (`hasLineage` has no count here: whether a relative is visible is a per-row
    lookup of the access rule, which would double the cost of the facets.)"""

    total: int = 0
    tags: list[FacetCount] = field(default_factory=list)
    category: list[FacetCount] = field(default_factory=list)
    mood: list[FacetCount] = field(default_factory=list)
    scene_type: list[FacetCount] = field(default_factory=list)
    kind: list[FacetCount] = field(default_factory=list)
    model: list[FacetCount] = field(default_factory=list)
    creator: list[FacetCount] = field(default_factory=list)
    project: list[FacetCount] = field(default_factory=list)
    share_level: list[FacetCount] = field(default_factory=list)
    min_duration: float | None = None
    max_duration: float | None = None
    earliest: datetime | None = None
    latest: datetime | None = None


async def facets(
    session: AsyncSession,
    actor: Actor,
    team_id: int,
    *,
    include_public: bool = False,
    now: datetime | None = None,
) -> Facets:
    """The facets of team `team_id`'s assets the actor may see (see the module). A team
    the actor has nothing visible in (or that does not exist) gives empty facets."""
    moment = now or utcnow()
    dialect = session.get_bind().dialect.name
    where = conditions(
        actor, LibraryFilter(team_id=team_id, include_public=include_public), dialect, now=moment
    )
    seen = (
        select(*(col(getattr(AssetRow, name)) for name in _GROUPED.values()), col(AssetRow.tags))
        .where(*where)
        .cte("seen_assets")
        .prefix_with("MATERIALIZED")
    )
    parts: list[Any] = [
        select(literal(name, String).label("facet"), cast(seen.c[column], Text).label("value"))
        .add_columns(func.count().label("n"))
        .where(seen.c[column].is_not(None))
        .group_by(seen.c[column])
        for name, column in _GROUPED.items()
    ]
    if dialect == "postgresql":
        each = func.jsonb_array_elements_text(seen.c.tags).table_valued("value")
    else:
        each = func.json_each(seen.c.tags).table_valued("value")
    parts.append(
        select(literal("tags", String).label("facet"), cast(each.c.value, Text).label("value"))
        .add_columns(func.count().label("n"))
        .select_from(seen)
        .join(each, literal(True))
        .group_by(each.c.value)
    )
    found = Facets()
    for facet, value, count in (await session.exec(union_all(*parts))).all():  # type: ignore[call-overload]
        getattr(found, facet).append(FacetCount(str(value), int(count)))
    for values in (getattr(found, name) for name in ("tags", *_GROUPED)):
        values.sort(key=lambda f: (-f.count, f.value))
    stats = select(
        func.count(),
        func.min(col(AssetRow.duration)),
        func.max(col(AssetRow.duration)),
        func.min(col(AssetRow.created_at)),
        func.max(col(AssetRow.created_at)),
    ).where(*where)
    total, shortest, longest, earliest, latest = (await session.exec(stats)).one()  # type: ignore[call-overload]
    found.total = int(total)
    found.min_duration, found.max_duration = shortest, longest
    found.earliest, found.latest = earliest, latest
    return found
