"""Searching the library: filters, sorts and keyset pages over the assets a viewer may see.

Every statement here starts from `services.library.access.visible`, the one rule, so
a page, its `totalCount` and the facets (`services.library.facets`) never hold an
asset the viewer may not see, nor count one (an expired share stops counting at its
expiry). Filters combine with AND; the values of one filter with OR (tags with ANY
or ALL). Text is matched by the database's full-text search (migration 0012): on
PostgreSQL `assets.search_vector @@ plainto_tsquery('english', ...)`, ranked by
`ts_rank`; on SQLite the FTS5 table `asset_search` (porter stemming), ranked by
`bm25` (`services.library.text_search`). Both stem, so "running" finds "run"; ranks
differ between the engines.

Pages are keyset pages: a `Position` (the last row's sort value and id) says where
the next one starts, never an OFFSET, so a page costs the same however deep it is
and rows added meanwhile neither repeat nor vanish. Ties are broken by id, in the
direction of the sort; assets without a duration come last in both directions.

Example:

    page = await search(
        session, actor, LibraryFilter(team_id=3, text="rainy market", kinds=("IMAGE",)),
        LibrarySort(SortField.RELEVANCE), first=24, after=None,
    )
    page.total_count, [hit.row.name for hit in page.hits]
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Text,
    and_,
    exists,
    func,
    literal,
    literal_column,
    not_,
    or_,
    tuple_,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.util import ClauseAdapter
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.accounts.access import Actor
from services.errors import InvalidInput
from services.library import collection_rules
from services.library.access import visible
from services.library.tables import (
    AssetRow,
    AssetShareRow,
    CollectionItemRow,
    CollectionRow,
    ShareLevel,
)
from services.library.text_search import text_match, words
from services.tables import ShotImageRow, utcnow
from services.validation import storable

MAX_TEXT = 200  # characters of search text
MAX_VALUES = 100  # values of one list filter


class SortField(enum.StrEnum):
    """What a library page is ordered by; RELEVANCE needs search text."""

    RELEVANCE = "RELEVANCE"
    CREATED = "CREATED"
    NAME = "NAME"
    DURATION = "DURATION"
    VIEWS = "VIEWS"


@dataclass(frozen=True)
class LibrarySort:
    """The order of a search: `field`, descending (the default) or ascending."""

    field: SortField = SortField.CREATED
    descending: bool = True


@dataclass(frozen=True)
class LibraryFilter:
    """What a search keeps; every part optional, parts combined with AND, the values of
    one part with OR (tags: any of them, or all with `all_tags`).

    Ids are primary keys; `tags` are compared lower-cased; `created_after` is
    inclusive, `created_before` exclusive; durations are seconds, both bounds
    inclusive. `has_lineage`: True keeps assets with a lineage parent or child the
    viewer may see, False those without, None both. `favorites_only`: assets whose
    source shot image is starred. `include_public`: also PUBLIC assets of teams the
    viewer is not in (otherwise only their teams' assets and those shared with them).
    """

    team_id: int | None = None
    text: str | None = None
    tags: tuple[str, ...] = ()
    all_tags: bool = False
    categories: tuple[str, ...] = ()
    moods: tuple[str, ...] = ()
    scene_types: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    creator_ids: tuple[int, ...] = ()
    project_ids: tuple[int, ...] = ()
    collection_id: int | None = None
    share_levels: tuple[str, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    has_lineage: bool | None = None
    favorites_only: bool = False
    include_public: bool = False


@dataclass(frozen=True)
class Position:
    """Where a row sits in a sort: its sort value (None: no duration) and its id."""

    value: datetime | str | float | int | None
    asset_id: int


@dataclass(frozen=True)
class SearchHit:
    """One asset of a page and its position (for its cursor)."""

    row: AssetRow
    position: Position


@dataclass(frozen=True)
class SearchPage:
    """A page of a search: its hits, whether more follow, and how many match in all."""

    hits: list[SearchHit]
    has_next: bool
    total_count: int


def check(search: LibraryFilter, sort: LibrarySort) -> None:
    """Raise InvalidInput (its `field` a path under `filter` or `sort`) unless the filter
    and sort make a search: RELEVANCE needs text, ranges must not be inverted, text and
    lists are bounded, texts storable (INVALID_CHARACTERS: no NUL, no broken Unicode),
    dates within UTC's range (OUT_OF_RANGE)."""
    if search.text is not None and len(search.text) > MAX_TEXT:
        raise InvalidInput(
            f"Search text is at most {MAX_TEXT} characters.",
            code="TOO_LONG",
            field=("filter", "text"),
        )
    if sort.field is SortField.RELEVANCE and not (search.text or "").strip():
        raise InvalidInput(
            "Sorting by RELEVANCE needs search text (`filter.text`).",
            code="RELEVANCE_WITHOUT_TEXT",
            field=("sort", "field"),
        )
    text_values = {
        "text": (search.text,) if search.text is not None else (),
        "tags": search.tags,
        "categories": search.categories,
        "moods": search.moods,
        "models": search.models,
    }
    for name, texts in text_values.items():
        if not all(storable(value) for value in texts):
            raise InvalidInput(
                "A filter value contains a NUL character or broken Unicode.",
                code="INVALID_CHARACTERS",
                field=("filter", name),
            )
    for name, moment in (
        ("createdAfter", search.created_after),
        ("createdBefore", search.created_before),
    ):
        try:
            if moment is not None and moment.tzinfo is not None:
                moment.astimezone(UTC)  # year 1 at +14:00 is before any UTC time there is
        except OverflowError:
            raise InvalidInput(
                "That date is outside the range of dates in UTC.",
                code="OUT_OF_RANGE",
                field=("filter", name),
            ) from None
    lists: dict[str, tuple[object, ...]] = {
        "tags": search.tags,
        "categories": search.categories,
        "moods": search.moods,
        "sceneTypes": search.scene_types,
        "kinds": search.kinds,
        "models": search.models,
        "creatorIds": search.creator_ids,
        "projectIds": search.project_ids,
        "shareLevels": search.share_levels,
    }
    for name, values in lists.items():
        if len(values) > MAX_VALUES:
            raise InvalidInput(
                f"At most {MAX_VALUES} values per filter.",
                code="TOO_MANY_VALUES",
                field=("filter", name),
            )
    after, before = search.created_after, search.created_before
    if after is not None and before is not None and after >= before:
        raise InvalidInput(
            "`createdAfter` must be before `createdBefore`.",
            code="OUT_OF_RANGE",
            field=("filter", "createdBefore"),
        )
    for name, bound in (("minDuration", search.min_duration), ("maxDuration", search.max_duration)):
        if bound is not None and bound < 0:
            raise InvalidInput(
                "A duration is at least 0 seconds.", code="OUT_OF_RANGE", field=("filter", name)
            )
    shortest, longest = search.min_duration, search.max_duration
    if shortest is not None and longest is not None and shortest > longest:
        raise InvalidInput(
            "`minDuration` must not exceed `maxDuration`.",
            code="OUT_OF_RANGE",
            field=("filter", "maxDuration"),
        )


# --- the filter ----------------------------------------------------------------------


def _visible_other(actor: Actor, now: datetime, other: Any) -> ColumnElement[bool]:
    """`visible` (the one rule) applied to another row of `assets`, aliased as `other`."""
    return ClauseAdapter(other).traverse(visible(actor, now=now))


def conditions(
    actor: Actor, search: LibraryFilter, dialect: str, *, now: datetime
) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a search on `assets`, visibility first; no text match
    (see `text_match`)."""
    teams = None if search.team_id is None else [search.team_id]
    where: list[ColumnElement[bool]] = [
        visible(actor, now=now, teams=teams, public_of_other_teams=search.include_public)
    ]
    if search.team_id is not None:
        where.append(col(AssetRow.team_id) == search.team_id)
    else:
        where.append(_reachable(actor, dialect, search.include_public))
    for field, values in (
        (col(AssetRow.category), search.categories),
        (col(AssetRow.mood), search.moods),
        (col(AssetRow.scene_type), search.scene_types),
        (col(AssetRow.kind), search.kinds),
        (col(AssetRow.model), search.models),
        (col(AssetRow.creator_id), search.creator_ids),
        (col(AssetRow.project_id), search.project_ids),
        (col(AssetRow.share_level), search.share_levels),
    ):
        if values:
            where.append(field.in_(sorted(set(values), key=str)))
    if search.tags:
        where.append(_tags(dialect, sorted({t.lower() for t in search.tags}), search.all_tags))
    if search.created_after is not None:
        where.append(col(AssetRow.created_at) >= search.created_after)
    if search.created_before is not None:
        where.append(col(AssetRow.created_at) < search.created_before)
    if search.min_duration is not None:
        where.append(col(AssetRow.duration) >= search.min_duration)
    if search.max_duration is not None:
        where.append(col(AssetRow.duration) <= search.max_duration)
    if search.collection_id is not None:
        where.append(_in_collection(actor, search.collection_id))
    if search.has_lineage is not None:
        lineage = has_lineage(actor, now)
        where.append(lineage if search.has_lineage else not_(lineage))
    if search.favorites_only:
        where.append(
            exists(
                select(ShotImageRow.id).where(
                    col(ShotImageRow.id) == col(AssetRow.shot_image_id),
                    col(ShotImageRow.is_favorite),
                )
            )
        )
    return where


def _reachable(actor: Actor, dialect: str, include_public: bool) -> ColumnElement[bool]:
    """SQL on `assets`: a row `visible` could let through, in a form indexes serve.

    Not a rule of its own (`visible` still decides every row): a superset of it, the
    places a viewer's assets come from (their teams, their shares, expired or not,
    and PUBLIC ones when asked), so that a search of every team reads those instead of
    testing `visible`'s share lookup on every row of the table. A new way into an
    asset in `services.library.access` must be added here too.
    """
    shared = select(AssetShareRow.asset_id).where(col(AssetShareRow.user_id) == actor.user_id)
    if dialect == "postgresql":
        # One array, computed once (an InitPlan): `id = ANY(...)` is then an index scan.
        ids = select(func.array_agg(col(AssetShareRow.asset_id))).where(
            col(AssetShareRow.user_id) == actor.user_id
        )
        # any(coalesce((SELECT ...), ...)): an array expression, not an ANY subquery.
        array = func.coalesce(ids.scalar_subquery(), literal_column("'{}'::bigint[]"))
        by_share = col(AssetRow.id) == func.any(array)
    else:
        by_share = col(AssetRow.id).in_(shared)
    places = [col(AssetRow.team_id).in_(actor.team_ids), by_share]
    if include_public:
        places.append(col(AssetRow.share_level) == ShareLevel.PUBLIC.value)
    return or_(*places)


def _tags(dialect: str, tags: list[str], all_tags: bool) -> ColumnElement[bool]:
    if dialect == "postgresql":
        # One operator either way (`?|` any, `@>` all), so the GIN index over
        # (team_id, tags) serves it together with the team.
        column = col(AssetRow.tags)
        if all_tags:
            return column.op("@>")(func.jsonb_build_array(*tags))
        return column.op("?|")(cast_(postgresql.array(tags), postgresql.ARRAY(Text)))
    each = func.json_each(col(AssetRow.tags)).table_valued("value")
    matched = select(func.count(func.distinct(each.c.value))).where(each.c.value.in_(tags))
    needed = len(tags) if all_tags else 1
    return matched.scalar_subquery() >= needed


def _in_collection(actor: Actor, collection_id: int) -> ColumnElement[bool]:
    # Only a collection the viewer could open counts (the collections' one rule):
    # another collection holds nothing for them.
    seen = collection_rules.visible(actor)
    return exists(
        select(CollectionItemRow.id)
        .join(CollectionRow, col(CollectionRow.id) == col(CollectionItemRow.collection_id))
        .where(
            col(CollectionItemRow.asset_id) == col(AssetRow.id),
            col(CollectionItemRow.collection_id) == collection_id,
            seen,
        )
    )


def has_lineage(actor: Actor, now: datetime) -> ColumnElement[bool]:
    """SQL on `assets`: the asset has a lineage parent or child that the actor may see
    (a hidden relative does not count, so it is not revealed)."""
    assets = AssetRow.__table__  # type: ignore[attr-defined]
    parent, child = assets.alias("lineage_parent"), assets.alias("lineage_child")
    parent_seen = exists(
        select(parent.c.id).where(
            parent.c.id == col(AssetRow.parent_id), _visible_other(actor, now, parent)
        )
    )
    child_seen = exists(
        select(child.c.id).where(
            child.c.parent_id == col(AssetRow.id), _visible_other(actor, now, child)
        )
    )
    return or_(and_(col(AssetRow.parent_id).is_not(None), parent_seen), child_seen)


# --- sorting and pages -----------------------------------------------------------------


def sort_key(sort: LibrarySort, rank: ColumnElement[float] | None) -> ColumnElement[Any]:
    """The expression a sort orders by (RELEVANCE: the text rank)."""
    if sort.field is SortField.RELEVANCE:
        assert rank is not None, "check() refuses RELEVANCE without text"
        return rank
    name = {
        SortField.CREATED: "created_at",
        SortField.NAME: "name",
        SortField.DURATION: "duration",
        SortField.VIEWS: "views",
    }[sort.field]
    return cast(ColumnElement[Any], col(getattr(AssetRow, name)))


def _after(key: ColumnElement[Any], sort: LibrarySort, at: Position) -> ColumnElement[bool]:
    """SQL: the row comes after `at` in the sort (row values, so indexes serve it)."""
    ids = col(AssetRow.id)
    if sort.field is SortField.DURATION and at.value is None:  # within the NULL tail
        return and_(key.is_(None), ids < at.asset_id if sort.descending else ids > at.asset_id)
    # The value bound with the key's own type, so it is stored-form on either engine.
    pair, start = tuple_(key, ids), tuple_(literal(at.value, key.type), literal(at.asset_id))
    beyond = pair < start if sort.descending else pair > start
    return or_(beyond, key.is_(None)) if sort.field is SortField.DURATION else beyond


def _order(key: ColumnElement[Any], sort: LibrarySort) -> list[Any]:
    ids = col(AssetRow.id)
    if sort.descending:
        primary = key.desc()
        tie = ids.desc()
    else:
        primary = key.asc()
        tie = ids.asc()
    if sort.field is SortField.DURATION:
        primary = primary.nulls_last()
    return [primary, tie]


def _value(row: AssetRow, sort: LibrarySort, rank: float | None) -> Any:
    if sort.field is SortField.RELEVANCE:
        return float(rank or 0.0)
    return {
        SortField.CREATED: row.created_at,
        SortField.NAME: row.name,
        SortField.DURATION: row.duration,
        SortField.VIEWS: row.views,
    }[sort.field]


async def search(
    session: AsyncSession,
    actor: Actor,
    search: LibraryFilter,
    sort: LibrarySort,
    *,
    first: int,
    after: Position | None,
    now: datetime | None = None,
) -> SearchPage:
    """Up to `first` assets matching `search` that the actor may see, after `after` in
    `sort`, and how many match in all (`total_count`, regardless of `after`).

    Raises InvalidInput for a filter or sort `check` refuses. `first` is bounded by
    the caller (the API); 0 gives only the count.
    """
    check(search, sort)
    moment = now or utcnow()
    dialect = session.get_bind().dialect.name
    where = conditions(actor, search, dialect, now=moment)
    rank: ColumnElement[float] | None = None
    if (search.text or "").strip():
        match = text_match(dialect, words(search.text))
        where.append(match.condition)
        rank = match.rank
    count = select(func.count()).select_from(AssetRow).where(*where)
    total = int((await session.exec(count)).one())
    if first == 0 or total == 0:
        return SearchPage(hits=[], has_next=False, total_count=total)
    key = sort_key(sort, rank)
    page_where = list(where)
    if after is not None:
        page_where.append(_after(key, sort, after))
    columns: list[Any] = [AssetRow]
    if rank is not None:
        columns.append(rank.label("rank"))
    statement = select(*columns).where(*page_where).order_by(*_order(key, sort)).limit(first + 1)
    rows = list((await session.exec(statement)).all())
    hits = []
    for found in rows[:first]:
        row, score = (found[0], found[1]) if rank is not None else (found, None)
        assert row.id is not None
        hits.append(SearchHit(row=row, position=Position(_value(row, sort, score), row.id)))
    return SearchPage(hits=hits, has_next=len(rows) > first, total_count=total)
