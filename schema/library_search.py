"""Library search as GraphQL: the filter and sort inputs, the asset connection, its
opaque cursors, and the facets of `libraryFilters` (`services.library.search`, `.facets`).

A cursor holds the sort it was made for, the last row's sort value and id, and a
fingerprint of the filter: one handed back with another sort or filter, or one we did
not make, is refused as a BAD_USER_INPUT error, never read as something else.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import strawberry

from schema import ids, nodes
from schema.accounts import visible_user
from schema.connections import PageInfo, page_info
from schema.context import BadRequest, Info
from schema.ids import MAX_PK
from schema.library import Asset
from services import cursors, decoding
from services.library.access import permission
from services.library.facets import FacetCount, Facets
from services.library.search import LibraryFilter, LibrarySort, Position, SearchPage, SortField
from services.library.tables import AssetKind, AssetRow, SceneType, ShareLevel
from services.validation import storable

MAX_CURSOR_LENGTH = 600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAME_MAX = 200

strawberry.enum(
    SortField,
    name="LibrarySortField",
    description="What library results are ordered by: RELEVANCE (how well they match "
    "`filter.text`; only with text), CREATED, NAME, DURATION (assets without one come "
    "last), VIEWS. Ties are broken by ID.",
)


@strawberry.enum(description="Ascending or descending order.")
class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


@strawberry.enum(description="How `tags` combine: ANY of them, or ALL of them.")
class TagsMatch(enum.Enum):
    ANY = "ANY"
    ALL = "ALL"


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)  # a time without an offset is read as UTC


def _ids(values: Sequence[strawberry.ID] | None, type_name: str) -> tuple[int, ...]:
    return tuple(nodes.parse_or_reject(value, type_name)[1] for value in values or ())


@strawberry.input(
    name="LibraryFilter",
    description="What a library search keeps. Every field is optional; fields combine with "
    "AND, the values of one list with OR (tags: see `tagsMatch`).",
)
class LibraryFilterInput:
    team_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only this team's assets (those you may see)."
    )
    text: str | None = strawberry.field(
        default=None,
        description="Words to find in the name, description, prompt and tags, in any word "
        'form ("running" finds "run"); every word must match. At most 200 characters.',
    )
    tags: list[str] | None = strawberry.field(default=None, description="Tags (any case).")
    tags_match: TagsMatch = strawberry.field(
        default=TagsMatch.ANY, description="Whether an asset needs ANY or ALL of `tags`."
    )
    categories: list[str] | None = strawberry.field(default=None, description="Categories.")
    moods: list[str] | None = strawberry.field(default=None, description="Moods.")
    scene_types: list[SceneType] | None = strawberry.field(default=None, description="Scene types.")
    kinds: list[AssetKind] | None = strawberry.field(default=None, description="Kinds.")
    models: list[str] | None = strawberry.field(
        default=None, description="The models (engines) that made them."
    )
    creator_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Their creators (User IDs)."
    )
    project_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="The projects they came from (Project IDs)."
    )
    collection_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only assets in this collection (one you may open)."
    )
    share_levels: list[ShareLevel] | None = strawberry.field(
        default=None, description="Share levels."
    )
    created_after: datetime | None = strawberry.field(
        default=None, description="Made at or after this time."
    )
    created_before: datetime | None = strawberry.field(
        default=None, description="Made before this time."
    )
    min_duration: float | None = strawberry.field(
        default=None, description="At least this long, in seconds (assets without one drop out)."
    )
    max_duration: float | None = strawberry.field(
        default=None, description="At most this long, in seconds (assets without one drop out)."
    )
    has_lineage: bool | None = strawberry.field(
        default=None,
        description="true: only assets with a lineage parent or child you may see; false: "
        "only those without; null: both.",
    )
    favorites_only: bool = strawberry.field(
        default=False, description="Only assets whose source shot image is starred."
    )
    include_public: bool = strawberry.field(
        default=False,
        description="Also PUBLIC assets of teams you are not in (otherwise: your teams' "
        "assets and those shared with you).",
    )

    def to_filter(self) -> LibraryFilter:
        """The service's filter; a malformed or wrong-type ID is a BadRequest."""
        team_id = None if self.team_id is None else _ids([self.team_id], "Team")[0]
        collection_id = (
            None if self.collection_id is None else _ids([self.collection_id], "Collection")[0]
        )
        for bound in (self.min_duration, self.max_duration):
            if bound is not None and not math.isfinite(bound):
                raise BadRequest("A duration must be a finite number of seconds.")
        return LibraryFilter(
            team_id=team_id,
            text=self.text,
            tags=tuple(self.tags or ()),
            all_tags=self.tags_match is TagsMatch.ALL,
            categories=tuple(self.categories or ()),
            moods=tuple(self.moods or ()),
            scene_types=tuple(s.value for s in self.scene_types or ()),
            kinds=tuple(k.value for k in self.kinds or ()),
            models=tuple(self.models or ()),
            creator_ids=_ids(self.creator_ids, "User"),
            project_ids=_ids(self.project_ids, "Project"),
            collection_id=collection_id,
            share_levels=tuple(s.value for s in self.share_levels or ()),
            created_after=_utc(self.created_after),
            created_before=_utc(self.created_before),
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            has_lineage=self.has_lineage,
            favorites_only=self.favorites_only,
            include_public=self.include_public,
        )


@strawberry.input(name="LibrarySort", description="The order of library results.")
class LibrarySortInput:
    field: SortField = strawberry.field(
        default=SortField.CREATED, description="What to order by (default CREATED)."
    )
    direction: SortDirection = strawberry.field(
        default=SortDirection.DESC, description="ASC or DESC (default DESC)."
    )

    def to_sort(self) -> LibrarySort:
        """The service's sort."""
        return LibrarySort(self.field, self.direction is SortDirection.DESC)


# --- cursors ---------------------------------------------------------------------------


def fingerprint(search: LibraryFilter) -> str:
    """A short digest of a filter, so a cursor is refused under another filter."""
    return hashlib.sha256(repr(search).encode()).hexdigest()[:12]


def encode_cursor(sort: LibrarySort, position: Position, digest: str) -> str:
    """The opaque cursor of a row at `position` in `sort` under the filter `digest`."""
    value: Any = position.value
    if isinstance(value, datetime):
        value = (value - _EPOCH) // timedelta(microseconds=1)
    text = json.dumps(
        ["library", sort.field.value, sort.descending, value, position.asset_id, digest],
        separators=(",", ":"),
    )
    return cursors.encode(text, padded=False)


def _bad_cursor(message: str = "That `after` cursor is not one this search gave out.") -> NoReturn:
    raise BadRequest(message)


def decode_cursor(cursor: str | None, sort: LibrarySort, digest: str) -> Position | None:
    """The position in a cursor `encode_cursor` made for this sort and filter; None for
    no cursor; BadRequest for anything else."""
    if cursor is None:
        return None
    text = cursors.decode(cursor, max_length=MAX_CURSOR_LENGTH)
    try:
        parts = decoding.loads(text or "", max_depth=2) if text else None
    except decoding.MalformedJson:
        parts = None
    if not isinstance(parts, list) or len(parts) != 6 or parts[0] != "library":
        _bad_cursor()
    _, field, descending, value, asset_id, found_digest = parts
    if field != sort.field.value or descending is not sort.descending:
        _bad_cursor("That `after` cursor belongs to another sort: start from the top.")
    if found_digest != digest:
        _bad_cursor("That `after` cursor belongs to another filter: start from the top.")
    if type(asset_id) is not int or not 1 <= asset_id <= MAX_PK:
        _bad_cursor()
    return Position(_cursor_value(sort.field, value), asset_id)


def _cursor_value(field: SortField, value: Any) -> Any:
    number = type(value) in (int, float) and math.isfinite(value)
    if field is SortField.CREATED and type(value) is int and abs(value) < 2**62:
        try:
            return _EPOCH + timedelta(microseconds=value)
        except OverflowError:
            _bad_cursor()
    if (
        field is SortField.NAME
        and isinstance(value, str)
        and len(value) <= _NAME_MAX
        and storable(value)
    ):
        return value
    if field is SortField.VIEWS and type(value) is int and 0 <= value <= MAX_PK:
        return value
    if field is SortField.DURATION and (value is None or number):
        return None if value is None else float(value)
    if field is SortField.RELEVANCE and number:
        return float(value)
    return _bad_cursor()


# --- the connection --------------------------------------------------------------------


@strawberry.type(description="An asset and its place in a library search.")
class AssetEdge:
    cursor: str = strawberry.field(description="Pass as `after` for the assets after this one.")
    node: Asset = strawberry.field(description="The asset.")


@strawberry.type(description="A page of library assets, in the order asked for.")
class AssetConnection:
    edges: list[AssetEdge] = strawberry.field(description="The assets of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(
        description="How many assets match the filter in all (that you may see)."
    )

    @strawberry.field(description="The assets of this page, without cursors.")
    def nodes(self) -> list[Asset]:
        return [edge.node for edge in self.edges]


async def connection_of(
    info: Info, page: SearchPage, sort: LibrarySort, digest: str, *, after: bool
) -> AssetConnection:
    """The page as the viewer sees it (each asset with their access, shares in one batch)."""
    actor = info.context.require_actor()
    rows: list[AssetRow] = [hit.row for hit in page.hits]
    shares = await info.context.loaders.asset_share.load_many(
        [(row.id or 0, actor.user_id) for row in rows]
    )
    edges = []
    for hit, share in zip(page.hits, shares, strict=True):
        info.context.loaders.asset.prime(hit.position.asset_id, hit.row)
        granted = permission(actor, hit.row, share)
        if granted.permission is None:  # cannot happen: the search applied the same rule
            continue
        edges.append(
            AssetEdge(
                cursor=encode_cursor(sort, hit.position, digest),
                node=Asset.from_row(hit.row, granted),
            )
        )
    return AssetConnection(
        edges=edges,
        total_count=page.total_count,
        page_info=page_info(edges, has_next=page.has_next, has_previous=after),
    )


# --- facets ----------------------------------------------------------------------------


@strawberry.type(description="A value a filter can take, and how many assets hold it.")
class FacetValue:
    value: str = strawberry.field(description="The value, as the filter takes it.")
    count: int = strawberry.field(description="How many of the assets hold it.")


@strawberry.type(description="A kind, and how many assets are of it.")
class AssetKindFacetValue:
    value: AssetKind = strawberry.field(description="The kind.")
    count: int = strawberry.field(description="How many of the assets are of it.")


@strawberry.type(description="A scene type, and how many assets have it.")
class SceneTypeFacetValue:
    value: SceneType = strawberry.field(description="The scene type.")
    count: int = strawberry.field(description="How many of the assets have it.")


@strawberry.type(description="A share level, and how many assets have it.")
class ShareLevelFacetValue:
    value: ShareLevel = strawberry.field(description="The share level.")
    count: int = strawberry.field(description="How many of the assets have it.")


@strawberry.type(description="An object a filter can name (a creator, a project), with a count.")
class NodeFacetValue:
    value: strawberry.ID = strawberry.field(description="Its ID, as the filter takes it.")
    label: str | None = strawberry.field(
        description="Its name (a user's name, a project's title); null when you may not see it."
    )
    count: int = strawberry.field(description="How many of the assets it made or holds.")


@strawberry.type(description="The shortest and longest duration, in seconds.")
class DurationRange:
    min: float = strawberry.field(description="The shortest, in seconds.")
    max: float = strawberry.field(description="The longest, in seconds.")


@strawberry.type(description="The earliest and latest time.")
class DateTimeRange:
    earliest: datetime = strawberry.field(description="The earliest.")
    latest: datetime = strawberry.field(description="The latest.")


@strawberry.type(
    description="Every value each library filter can take among a team's assets you may see, "
    "with counts, highest first: what a client builds its filter menus from. A value's count "
    "is the totalCount of a search of that team on that value."
)
class LibraryFilters:
    total_count: int = strawberry.field(description="How many assets are counted.")
    tags: list[FacetValue] = strawberry.field(description="Tags.")
    categories: list[FacetValue] = strawberry.field(description="Categories.")
    moods: list[FacetValue] = strawberry.field(description="Moods.")
    scene_types: list[SceneTypeFacetValue] = strawberry.field(description="Scene types.")
    kinds: list[AssetKindFacetValue] = strawberry.field(description="Kinds.")
    models: list[FacetValue] = strawberry.field(description="Models (engines).")
    creators: list[NodeFacetValue] = strawberry.field(description="Creators.")
    projects: list[NodeFacetValue] = strawberry.field(description="Source projects.")
    share_levels: list[ShareLevelFacetValue] = strawberry.field(description="Share levels.")
    duration_range: DurationRange | None = strawberry.field(
        description="The range of durations; null when none has one."
    )
    created_range: DateTimeRange | None = strawberry.field(
        description="When the first and the last were made; null when there are none."
    )


def _plain(values: list[FacetCount]) -> list[FacetValue]:
    return [FacetValue(value=f.value, count=f.count) for f in values]


async def _creators(info: Info, values: list[FacetCount]) -> list[NodeFacetValue]:
    # Named only for the viewer or someone sharing a team with them, as Asset.creator;
    # gathered, so the loaders read every creator's teams, then every user, at once.
    keys = [int(facet.value) for facet in values]
    users = await asyncio.gather(*(visible_user(info, user_id) for user_id in keys))
    return [
        NodeFacetValue(
            value=ids.encode("User", user_id),
            label=user.name if user is not None else None,
            count=facet.count,
        )
        for facet, user_id, user in zip(values, keys, users, strict=True)
    ]


async def _projects(info: Info, values: list[FacetCount]) -> list[NodeFacetValue]:
    # Titled only for members of the project's team, as Asset.sourceProject.
    actor = info.context.require_actor()
    keys = [int(facet.value) for facet in values]
    rows = await info.context.loaders.project.load_many(keys)
    return [
        NodeFacetValue(
            value=ids.encode("Project", project_id),
            label=row.title if row is not None and actor.can_read(row.team_id) else None,
            count=facet.count,
        )
        for facet, project_id, row in zip(values, keys, rows, strict=True)
    ]


async def library_filters_of(info: Info, found: Facets) -> LibraryFilters:
    """The facets as GraphQL, with creators' and projects' labels where the viewer may see them."""
    durations = (
        DurationRange(min=found.min_duration, max=found.max_duration)
        if found.min_duration is not None and found.max_duration is not None
        else None
    )
    created = (
        DateTimeRange(earliest=found.earliest, latest=found.latest)
        if found.earliest is not None and found.latest is not None
        else None
    )
    return LibraryFilters(
        total_count=found.total,
        tags=_plain(found.tags),
        categories=_plain(found.category),
        moods=_plain(found.mood),
        scene_types=[
            SceneTypeFacetValue(value=SceneType(f.value), count=f.count)
            for f in found.scene_type
            if f.value in SceneType.__members__
        ],
        kinds=[
            AssetKindFacetValue(value=AssetKind(f.value), count=f.count)
            for f in found.kind
            if f.value in AssetKind.__members__
        ],
        models=_plain(found.model),
        creators=await _creators(info, found.creator),
        projects=await _projects(info, found.project),
        share_levels=[
            ShareLevelFacetValue(value=ShareLevel(f.value), count=f.count)
            for f in found.share_level
            if f.value in ShareLevel.__members__
        ],
        duration_range=durations,
        created_range=created,
    )
