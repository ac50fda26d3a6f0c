"""Relay connections for lists that grow without bound."""

from __future__ import annotations

import strawberry

from schema.storyboard import Project

MAX_PAGE = 100


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
