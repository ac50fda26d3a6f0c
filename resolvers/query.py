"""The root Query."""

from typing import Annotated, cast

import strawberry

from resolvers import collections as collection_resolvers
from resolvers import constellation, evolution, library, library_search, sharing
from schema import nodes
from schema.accounts import Team, User
from schema.compiled import NOT_COMPILED, node_read, project_read, projects_read
from schema.connections import (
    After,
    First,
    ProjectConnection,
    ProjectEdge,
    check_first,
    decode_after,
    page_info,
)
from schema.context import Info
from schema.generation import GenerationModel
from schema.node import Node
from schema.storyboard import Project
from services import cursors
from services.generation import catalog
from services.storyboard import projects

_CURSOR = "project"


def _cursor(project_id: int | None) -> str:
    return cursors.encode_numbers(_CURSOR, project_id or 0)


@strawberry.type(description="Everything you can read.")
class Query:
    @strawberry.field(
        description="Any object by its global ID; null if it does not exist or is not yours."
    )
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> Node | None:
        info.context.require_actor()
        type_name, pk = nodes.parse_or_reject(id)
        compiled = await node_read(info, type_name, pk)
        if compiled is not NOT_COMPILED:
            # A Finished value: the executor takes it as the completed field.
            return cast("Node | None", compiled)
        return await nodes.resolve(info, type_name, pk)

    @strawberry.field(description="You, the signed-in user.")
    async def viewer(self, info: Info) -> User | None:
        actor = info.context.require_actor()
        row = await info.context.loaders.user.load(actor.user_id)
        return User.from_row(row) if row else None

    @strawberry.field(description="A project of one of your teams.")
    async def project(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The project's ID.")],
    ) -> Project | None:
        info.context.require_actor()
        _, pk = nodes.parse_or_reject(id, "Project")
        compiled = await project_read(info, pk)
        if compiled is not NOT_COMPILED:
            # A Finished value: the executor takes it as the completed field.
            return cast("Project | None", compiled)
        return await nodes.visible_project(info, pk)

    asset = strawberry.field(
        resolver=library.asset,
        description="A library asset you may see (yours, your team's, shared with you, or "
        "PUBLIC); null otherwise. Opening it counts a view, once per viewer per hour.",
    )

    @strawberry.field(description="A team you are in.")
    async def team(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="The team's ID.")],
    ) -> Team | None:
        info.context.require_actor()
        _, pk = nodes.parse_or_reject(id, "Team")
        node = await nodes.resolve(info, "Team", pk)
        return node if isinstance(node, Team) else None

    @strawberry.field(description="Your projects, newest first: of one team, or of all your teams.")
    async def projects(
        self,
        info: Info,
        team_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this team's projects.")
        ] = None,
        first: First = 20,
        after: After = None,
    ) -> ProjectConnection:
        actor = info.context.require_actor()
        check_first(first)
        before_id = decode_after(after, _CURSOR)
        team_ids = actor.team_ids
        if team_id is not None:
            _, team_pk = nodes.parse_or_reject(team_id, "Team")
            team_ids = [team_pk] if actor.can_read(team_pk) else []
        async with info.context.db.session() as session:
            page = await projects.page_of_projects(
                session, team_ids, first=first, before_id=before_id
            )
        compiled = await projects_read(info, [row.id for row in page.rows if row.id is not None])
        # Finished values where compiled (the executor takes them as the completed nodes);
        # a project gone since its page was read is resolved field by field, as before.
        finished = {} if compiled is NOT_COMPILED else cast("dict[int, object]", compiled)
        edges = [
            ProjectEdge(
                cursor=_cursor(row.id),
                node=cast("Project", finished.get(row.id or 0) or Project.from_row(row)),
            )
            for row in page.rows
        ]
        return ProjectConnection(
            edges=edges,
            total_count=page.total_count,
            page_info=page_info(edges, has_next=page.has_next, has_previous=before_id is not None),
        )

    @strawberry.field(description="The models generateShotImages and animateShot accept, by kind.")
    def generation_models(self, info: Info) -> list[GenerationModel]:
        info.context.require_actor()
        return [GenerationModel.from_model(model) for model in catalog.MODELS]

    # --- collections ---
    collection = strawberry.field(
        resolver=collection_resolvers.collection,
        description="A collection you may see (yours, your team's, or PUBLIC); null otherwise.",
    )
    collections = strawberry.field(
        resolver=collection_resolvers.collections_of_team,
        description="A team's collections that you may see, newest first (of a team you are "
        "not in: its PUBLIC ones).",
    )
    # --- sharing ---
    shared_with_me = strawberry.field(
        resolver=sharing.shared_with_me,
        description="The assets shared with you by shares in force, newest share first.",
    )
    # --- constellation ---
    constellation = strawberry.field(
        resolver=constellation.constellation_map,
        description="A team's library as a map: the assets you may see, placed by shared "
        "tags in regions by category, their lineage and their clusters; null unless you are "
        "a member of the team. Assets without a position are placed when it is read.",
    )
    # --- evolution: lineage ---
    lineage = strawberry.field(
        resolver=evolution.lineage,
        description="An asset's family tree (its ancestors and descendants) as you may see "
        "it; null if the asset does not exist or you may not see it.",
    )
    # --- search ---
    library = strawberry.field(
        resolver=library_search.library,
        description="Search the library: the assets you may see (your teams', those shared "
        "with you, and with `includePublic` other teams' PUBLIC ones) that match the filter, "
        "sorted, a page at a time, with `totalCount`.",
    )
    library_filters = strawberry.field(
        resolver=library_search.library_filters,
        description="Every value each library filter can take among a team's assets you may "
        "see (facets), with counts, and the ranges of durations and dates.",
    )
