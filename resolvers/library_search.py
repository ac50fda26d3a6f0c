"""The library's search and facets (`services.library.search`, `services.library.facets`)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from schema import nodes
from schema.compiled.rows import finish_assets
from schema.connections import After, First, check_first
from schema.context import BadRequest, Info
from schema.library_search import (
    AssetConnection,
    LibraryFilterInput,
    LibraryFilters,
    LibrarySortInput,
    connection_of,
    decode_cursor,
    fingerprint,
    library_filters_of,
)
from services.errors import InvalidInput
from services.library import facets, search
from services.library.search import LibraryFilter, LibrarySort

DEFAULT_PAGE = 24


async def library(
    info: Info,
    filter: Annotated[
        LibraryFilterInput | None,
        strawberry.argument(description="What to keep (default: everything you may see)."),
    ] = None,
    sort: Annotated[
        LibrarySortInput | None,
        strawberry.argument(description="The order (default: CREATED, DESC)."),
    ] = None,
    first: First = DEFAULT_PAGE,
    after: After = None,
) -> AssetConnection:
    """A page of the library assets you may see that match the filter, in the order asked."""
    actor = info.context.require_actor()
    check_first(first)
    wanted = filter.to_filter() if filter is not None else LibraryFilter()
    order = sort.to_sort() if sort is not None else LibrarySort()
    try:
        search.check(wanted, order)
    except InvalidInput as error:
        raise BadRequest(error.message) from None
    digest = fingerprint(wanted)
    position = decode_cursor(after, order, digest)
    async with info.context.db.session() as session:
        page = await search.search(session, actor, wanted, order, first=first, after=position)
    connection = await connection_of(info, page, order, digest, after=position is not None)
    finish_assets(info, connection)  # in one pass, when the selection allows
    return connection


async def library_filters(
    info: Info,
    team_id: Annotated[strawberry.ID, strawberry.argument(description="The team's ID.")],
    include_public: Annotated[
        bool,
        strawberry.argument(
            description="Also count the team's PUBLIC assets when you are not in it, as "
            "`library(filter: {includePublic: true})` finds them."
        ),
    ] = False,
) -> LibraryFilters:
    """Every value each library filter can take among the team's assets you may see."""
    actor = info.context.require_actor()
    _, team_pk = nodes.parse_or_reject(team_id, "Team")
    async with info.context.db.session() as session:
        found = await facets.facets(session, actor, team_pk, include_public=include_public)
    return await library_filters_of(info, found)
