"""Relay connections for lists that grow without bound.

Every connection field declares, checks and answers its arguments the same way,
with the helpers here:

    async def projects(self, info: Info, first: First = 20, after: After = None) -> ...:
        check_first(first)                              # BadRequest unless 0..MAX_PAGE
        before_id = decode_after(after, "project")      # None: from the start
        ...
        page_info(edges, has_next=page.has_next, has_previous=before_id is not None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol

import strawberry

from schema.context import BadRequest
from schema.ids import MAX_PK
from schema.storyboard import Project
from services import cursors

MAX_PAGE = 100
MAX_CURSOR_LENGTH = 100

First = Annotated[int, strawberry.argument(description=f"How many to return, 0..{MAX_PAGE}.")]
"""A connection's `first` argument (check it with `check_first`); give the default at the field."""

After = Annotated[
    str | None, strawberry.argument(description="The `endCursor` of the previous page.")
]
"""A connection's `after` argument (decode it with `decode_after` or the list's own decoder)."""


class _Edge(Protocol):
    @property
    def cursor(self) -> str: ...


def check_first(first: int) -> None:
    """Refuse a `first` outside 0..MAX_PAGE.

    Raises BadRequest (a top-level error, not a userError: it is a malformed query)."""
    if not 0 <= first <= MAX_PAGE:
        raise BadRequest(f"`first` must be between 0 and {MAX_PAGE}.")


def decode_after(cursor: str | None, name: str, *, low: int = 1, high: int = MAX_PK) -> int | None:
    """The number in an `after` cursor `cursors.encode_numbers(name, n)` gave out, or
    None when there is no cursor (the page starts at the top).

    The number must be ASCII digits from `low` to `high` (by default a primary key: a
    cursor of `project:2**70` would otherwise reach the database and overflow its
    BIGINT). Raises BadRequest for a cursor of another list, a bounded-out number, or
    anything `cursors.decode_numbers` refuses."""
    if cursor is None:
        return None
    decoded = cursors.decode_numbers(
        cursor, name, 1, max_length=MAX_CURSOR_LENGTH, high=high, low=low
    )
    if decoded is None:
        raise BadRequest("That `after` cursor is not one this list gave out.")
    return decoded[0]


def page_info(edges: Sequence[_Edge], *, has_next: bool, has_previous: bool) -> PageInfo:
    """The `PageInfo` of a page of `edges` (in list order): its start and end cursors are
    the first and the last edge's (None for an empty page)."""
    return PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


@strawberry.type(description="Where a page of a connection sits in the whole list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="Items come before this page.")
    start_cursor: str | None = strawberry.field(description="The cursor of the first item.")
    end_cursor: str | None = strawberry.field(
        description="The cursor of the last item; pass as `after`."
    )


@strawberry.type(description="A project and its place in the list.")
class ProjectEdge:
    cursor: str = strawberry.field(description="Pass as `after` for the projects after this one.")
    node: Project = strawberry.field(description="The project.")


@strawberry.type(description="A page of projects, newest first.")
class ProjectConnection:
    edges: list[ProjectEdge] = strawberry.field(description="The projects of this page.")
    page_info: PageInfo = strawberry.field(description="Where this page sits.")
    total_count: int = strawberry.field(description="How many projects there are in all.")

    @strawberry.field(description="The projects of this page, without cursors.")
    def nodes(self) -> list[Project]:
        return [edge.node for edge in self.edges]
