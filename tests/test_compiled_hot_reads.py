"""Compiled reads of the other hot roots (`projects`, `node`, the `iterationStatus`
message) give exactly what field-by-field resolution gives (data, key order, access),
in a number of statements that does not grow with the size of what is read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import update
from sqlmodel import col
from strawberry.types import ExecutionResult

from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.compiled.rows import ASSET_LEAVES
from services.database import Database
from services.library.tables import AssetRow
from services.realtime.bus import EventBus
from services.tables import ShotImageRow, StoryboardSelectionRow
from tests import factories
from tests.factories import (
    Account,
    account,
    iteration,
    join,
    mutate_ok,
    project,
    resources,
    scene,
)

TREE = """
    id title status workflowVersion prompt
    progress { totalScenes totalShots shotsWithSelections selectionProgress isSelectionComplete }
    scenes {
      id sceneNumber title description
      shots {
        id shotNumber latestIterationNumber
        selectedImage { id imageUrl }
        iterations {
          iterationNumber prompt status parentImage { id variantNumber }
          images { id iterationNumber variantNumber status imageUrl isFavorite }
        }
      }
    }
"""

PROJECTS_EDGES = f"""
query($first: Int, $after: String) {{
  projects(first: $first, after: $after) {{
    totalCount
    pageInfo {{ hasNextPage hasPreviousPage startCursor endCursor }}
    edges {{ cursor node {{ {TREE} }} }}
  }}
}}
"""

# Fragments, an alias, __typename and directives: collected as graphql-core would.
PROJECTS_NODES = """
query($withScenes: Boolean!) {
  mine: projects(first: 10) {
    edges { cursor }
    totalCount
    nodes {
      kind: __typename
      ...Head
      ... on Node { id }
      scenes @include(if: $withScenes) { title shots { n: shotNumber ...ShotPart } }
      name: title
    }
  }
}
fragment Head on Project { title progress { __typename totalShots } }
fragment ShotPart on Shot { id selectedImage { imageUrl } }
"""

# Two places asking for the projects: resolved field by field, still the same answer.
PROJECTS_TWICE = """
{ projects { edges { node { id title } } nodes { title scenes { id } } } }
"""

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename
    id
    ... on Project { title scenes { id shots { id } } }
    ... on Scene { sceneNumber title shots { id shotNumber description } }
    ... on Shot {
      shotNumber initialPrompt latestIterationNumber
      selectedImage { id imageUrl }
      iterations { iterationNumber status images { id variantNumber imageUrl isFavorite } }
    }
    ... on ShotImage { iterationNumber variantNumber status imageUrl model error }
    ... on StoryboardSelection { animationStatus animatedVideoUrl shot { id } updatedAt }
  }
}
"""

# A field outside the catalogue: resolved field by field.
NODE_UNCOMPILED = """
query($id: ID!) { node(id: $id) { id ... on Shot { createdAt } ... on Scene { createdAt } } }
"""

ITERATION_STATUS = """
subscription($shotId: ID!) {
  iterationStatus(shotId: $shotId) {
    cursor
    shot { id shotNumber description selectedImage { id imageUrl } }
    iterations {
      iterationNumber prompt status
      parentImage { id }
      images { __typename id variantNumber status imageUrl isFavorite }
    }
    image { id }
  }
}
"""


ANIMATION_STATUS = """
subscription($projectId: ID!) {
  animationStatus(projectId: $projectId) {
    progress { totalShots shotsWithSelections shotsWithAnimations animationProgress }
    cursor
    selections {
      __typename id animationStatus model predictionId error animatedVideoUrl
      shot { id shotNumber }
      selectedImage { id variantNumber imageUrl }
    }
    selection { id selectedImage { id } }
  }
}
"""


@asynccontextmanager
async def reader_of(db: Database) -> AsyncIterator[Database]:
    """An engine of its own, so its statements can be counted: the shared `db` may be
    running other tests' background work."""
    reader = Database(db.url.render_as_string(hide_password=False))
    try:
        # Once uncounted: a new engine's first connection asks the server about itself.
        async with reader.session() as session:
            await session.connection()
        yield reader
    finally:
        await reader.dispose()


def same(a: Any, b: Any) -> bool:
    """Equal data with keys in the same order (as a client reads the response)."""
    return orjson.dumps(a) == orjson.dumps(b)


async def run(
    db: Database, query: str, variables: dict[str, Any], token: str, *, compiled: bool
) -> tuple[dict[str, Any], int]:
    """The data of `query`, and how many statements it sent."""
    context = await build_context(replace(resources(db), compiled_reads=compiled), token)
    with factories.statements(db) as sent:
        result = await schema.execute(query, variables, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, len(sent)


async def both(
    db: Database, query: str, variables: dict[str, Any], token: str
) -> tuple[dict[str, Any], int, int]:
    """The data of `query`, the same compiled and field by field, and the statements each sent."""
    async with reader_of(db) as reader:
        for _ in range(2):
            compiled, compiled_count = await run(reader, query, variables, token, compiled=True)
            plain, plain_count = await run(reader, query, variables, token, compiled=False)
            # A signed link's expiry is rounded up to a bucket (a minute for short ones):
            # two runs that straddle a bucket's edge are run again, once.
            if same(compiled, plain):
                break
    assert same(compiled, plain), (compiled, plain)
    return compiled, compiled_count, plain_count


async def storyboard(db: Database, owner: Account, *, scenes: int, shots: int, images: int) -> str:
    """A project of `scenes` x `shots`, each shot with an iteration of `images`, a
    refinement of its first image, and that image selected; one image stored, so its
    URL is signed."""
    project_id = await project(db, owner, title=f"{scenes}x{shots}x{images}")
    for _ in range(scenes):
        made = await scene(db, owner, project_id, shots=shots)
        for shot in made["shots"]:
            first = await iteration(db, owner, shot["id"], count=images)
            await iteration(
                db, owner, shot["id"], count=1, parent_image_id=first["images"][0]["id"]
            )
            await mutate_ok(
                db,
                "selectMasterShot",
                {"shotId": shot["id"], "imageId": first["images"][0]["id"]},
                "selection { id }",
                token=owner.token,
            )
            stored = ids.decode(first["images"][-1]["id"], "ShotImage")
            async with db.transaction() as session:
                await session.exec(
                    update(ShotImageRow)
                    .where(col(ShotImageRow.id) == stored)
                    .values(storage_key=f"shots/{stored}.png")
                )
            await with_previews(db, owner, first["images"])
    return project_id


async def with_previews(db: Database, owner: Account, images: list[dict[str, Any]]) -> None:
    """Previews for an iteration's images: the first's own asset's, the second's from
    the library asset it was added from (when there are that many)."""
    first = ids.decode(images[0]["id"], "ShotImage")
    async with db.transaction() as session:
        own = await session.exec(
            update(AssetRow)
            .where(col(AssetRow.shot_image_id) == first)
            .values(thumbnail_key=f"thumbs/{first}.webp")
        )
    if own.rowcount == 0:
        await factories.library_asset(
            db, owner, shot_image_id=first, thumbnail_key=f"thumbs/{first}.webp"
        )
    if len(images) > 1:
        source = await factories.library_asset(db, owner, thumbnail_key="thumbs/source.webp")
        async with db.transaction() as session:
            await session.exec(
                update(ShotImageRow)
                .where(col(ShotImageRow.id) == ids.decode(images[1]["id"], "ShotImage"))
                .values(source_asset_id=ids.decode(source, "Asset"))
            )


async def test_projects_pages_are_the_same_compiled(db: Database) -> None:
    owner = await account(db)
    await project(db, owner, title="Empty")
    await storyboard(db, owner, scenes=1, shots=1, images=1)
    await storyboard(db, owner, scenes=2, shots=2, images=3)

    first, compiled_count, plain_count = await both(db, PROJECTS_EDGES, {"first": 2}, owner.token)
    page = first["projects"]
    assert page["totalCount"] == 3
    assert [e["node"]["title"] for e in page["edges"]] == ["2x2x3", "1x1x1"]
    shots = page["edges"][0]["node"]["scenes"][1]["shots"]
    assert shots[1]["iterations"][0]["images"][2]["imageUrl"].startswith("http://testserver/media/")
    assert compiled_count < plain_count

    after = page["pageInfo"]["endCursor"]
    rest, _, _ = await both(db, PROJECTS_EDGES, {"first": 2, "after": after}, owner.token)
    assert [e["node"]["title"] for e in rest["projects"]["edges"]] == ["Empty"]
    assert rest["projects"]["pageInfo"]["hasPreviousPage"] is True

    for flag in (True, False):
        shaped, _, _ = await both(db, PROJECTS_NODES, {"withScenes": flag}, owner.token)
        nodes = shaped["mine"]["nodes"]
        assert list(nodes[0]) == (
            ["kind", "title", "progress", "id", "scenes", "name"]
            if flag
            else ["kind", "title", "progress", "id", "name"]
        )
    twice, _, _ = await both(db, PROJECTS_TWICE, {}, owner.token)
    assert len(twice["projects"]["nodes"]) == 3


async def test_projects_lists_only_the_readers_teams(db: Database) -> None:
    owner, member, stranger = await account(db), await account(db), await account(db)
    team = await factories.team_with(db, owner, {})
    await join(db, team, member, role="VIEWER", inviter=owner)
    await project(db, owner, title="Shared", team_id=team)
    await project(db, stranger, title="Theirs")

    seen, _, _ = await both(db, PROJECTS_EDGES, {"first": 10}, member.token)
    assert [e["node"]["title"] for e in seen["projects"]["edges"]] == ["Shared"]
    theirs, _, _ = await both(db, PROJECTS_EDGES, {"first": 10}, stranger.token)
    assert [e["node"]["title"] for e in theirs["projects"]["edges"]] == ["Theirs"]

    await mutate_ok(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": member.user_id},
        "team { id }",
        token=owner.token,
    )
    gone, _, _ = await both(db, PROJECTS_EDGES, {"first": 10}, member.token)
    assert gone["projects"]["edges"] == []
    assert gone["projects"]["totalCount"] == 0


async def test_a_projects_page_costs_the_same_statements_at_any_size(db: Database) -> None:
    small, large = await account(db), await account(db)
    await storyboard(db, small, scenes=1, shots=1, images=1)
    for _ in range(3):
        await storyboard(db, large, scenes=3, shots=2, images=4)
    _, small_count, _ = await both(db, PROJECTS_EDGES, {"first": 10}, small.token)
    _, large_count, _ = await both(db, PROJECTS_EDGES, {"first": 10}, large.token)
    assert small_count == large_count


async def test_node_reads_are_the_same_compiled(db: Database) -> None:
    owner = await account(db)
    project_id = await storyboard(db, owner, scenes=2, shots=2, images=3)
    tree = (
        await factories.gql(
            db,
            "query($id: ID!) { project(id: $id) { scenes { id shots { id iterations { "
            "images { id } } storyboardSelection { id } } } } }",
            {"id": project_id},
            token=owner.token,
        )
    )["project"]
    scene_id = tree["scenes"][1]["id"]
    shot_id = tree["scenes"][1]["shots"][1]["id"]
    image_id = tree["scenes"][1]["shots"][1]["iterations"][0]["images"][2]["id"]
    selection_id = tree["scenes"][1]["shots"][1]["storyboardSelection"]["id"]

    for global_id, type_name in (
        (project_id, "Project"),
        (scene_id, "Scene"),
        (shot_id, "Shot"),
        (image_id, "ShotImage"),
        (selection_id, "StoryboardSelection"),
    ):
        data, compiled_count, plain_count = await both(db, NODE, {"id": global_id}, owner.token)
        assert data["node"]["__typename"] == type_name
        assert data["node"]["id"] == global_id
        assert compiled_count <= plain_count
        other, _, _ = await both(db, NODE_UNCOMPILED, {"id": global_id}, owner.token)
        assert other["node"]["id"] == global_id
    stored = await both(db, NODE, {"id": image_id}, owner.token)
    assert stored[0]["node"]["imageUrl"].startswith("http://testserver/media/")

    missing = ids.encode("Shot", 10**9)
    assert (await both(db, NODE, {"id": missing}, owner.token))[0] == {"node": None}


async def test_node_hides_other_teams_objects_and_revoked_ones(db: Database) -> None:
    owner, member, stranger = await account(db), await account(db), await account(db)
    team = await factories.team_with(db, owner, {})
    await join(db, team, member, role="VIEWER", inviter=owner)
    project_id = await project(db, owner, team_id=team)
    made = await scene(db, owner, project_id, shots=1)
    shot_id = made["shots"][0]["id"]
    image_id = (await iteration(db, owner, shot_id, count=2))["images"][1]["id"]
    selected = await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": image_id},
        "selection { id }",
        token=owner.token,
    )
    objects = [project_id, made["id"], shot_id, image_id, selected["selection"]["id"]]

    for global_id in objects:
        seen, _, _ = await both(db, NODE, {"id": global_id}, member.token)
        assert seen["node"]["id"] == global_id
        hidden, _, _ = await both(db, NODE, {"id": global_id}, stranger.token)
        assert hidden == {"node": None}

    await mutate_ok(
        db,
        "removeTeamMember",
        {"teamId": team, "userId": member.user_id},
        "team { id }",
        token=owner.token,
    )
    for global_id in objects:
        gone, _, _ = await both(db, NODE, {"id": global_id}, member.token)
        assert gone == {"node": None}


async def test_node_costs_the_same_statements_at_any_size(db: Database) -> None:
    owner = await account(db)
    small = await storyboard(db, owner, scenes=1, shots=1, images=1)
    large = await storyboard(db, owner, scenes=3, shots=3, images=5)
    _, small_count, _ = await both(db, NODE, {"id": small}, owner.token)
    _, large_count, _ = await both(db, NODE, {"id": large}, owner.token)
    assert small_count == large_count == 1


# -- iterationStatus ----------------------------------------------------------------------------


async def first_message(
    db: Database,
    bus: EventBus,
    variables: dict[str, Any],
    token: str,
    *,
    compiled: bool,
    query: str = ITERATION_STATUS,
) -> tuple[dict[str, Any], int]:
    """The first (snapshot) message of `query`, and the statements sent up to it."""
    res = replace(resources(db), bus=bus, compiled_reads=compiled)
    context = await build_context(res, token)
    with factories.statements(db) as sent:
        stream = await schema.subscribe(query, variables, context_value=context)
        assert not isinstance(stream, ExecutionResult), stream
        try:
            result = await anext(stream)
        finally:
            await stream.aclose()
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, len(sent)


async def test_iteration_status_snapshots_are_the_same_compiled(db: Database) -> None:
    owner, stranger = await account(db), await account(db)
    project_id = await storyboard(db, owner, scenes=1, shots=1, images=1)
    large = await storyboard(db, owner, scenes=1, shots=1, images=6)
    shots = []
    for pid in (project_id, large):
        tree = await factories.gql(
            db,
            "query($id: ID!) { project(id: $id) { scenes { shots { id } } } }",
            {"id": pid},
            token=owner.token,
        )
        shots.append(tree["project"]["scenes"][0]["shots"][0]["id"])

    bus = EventBus("memory://", queue_size=8)
    await bus.start()
    try:
        async with reader_of(db) as reader:
            counts = []
            for shot_id in shots:
                compiled, count = await first_message(
                    reader, bus, {"shotId": shot_id}, owner.token, compiled=True
                )
                plain, plain_count = await first_message(
                    reader, bus, {"shotId": shot_id}, owner.token, compiled=False
                )
                assert same(compiled, plain), (compiled, plain)
                print(f"iterationStatus snapshot statements: {count} compiled, {plain_count} not")
                assert count < plain_count
                counts.append(count)
            message = compiled["iterationStatus"]
            assert message["shot"]["id"] == shots[1]
            assert [len(i["images"]) for i in message["iterations"]] == [6, 1]
            assert message["iterations"][0]["images"][5]["imageUrl"].startswith(
                "http://testserver/media/"
            )
            assert counts[0] == counts[1]

            context = await build_context(replace(resources(reader), bus=bus), stranger.token)
            stream = await schema.subscribe(
                ITERATION_STATUS, {"shotId": shots[0]}, context_value=context
            )
            refused = stream if isinstance(stream, ExecutionResult) else await anext(stream)
            assert refused.errors is not None
            assert refused.errors[0].extensions == {"code": "NOT_FOUND"}
    finally:
        await bus.stop()


async def test_animation_status_snapshots_are_the_same_compiled(db: Database) -> None:
    owner = await account(db)
    small = await storyboard(db, owner, scenes=1, shots=1, images=1)
    large = await storyboard(db, owner, scenes=2, shots=3, images=2)
    await scene(db, owner, large, shots=1)  # a shot without a selection
    async with db.transaction() as session:
        await session.exec(
            update(StoryboardSelectionRow)
            .where(col(StoryboardSelectionRow.project_id) == ids.decode(large, "Project"))
            .values(animation_status="COMPLETE", model="kling", video_storage_key="clips/a.mp4")
        )

    bus = EventBus("memory://", queue_size=8)
    await bus.start()
    try:
        async with reader_of(db) as reader:
            counts = []
            for project_id in (small, large):
                variables = {"projectId": project_id}
                compiled, count = await first_message(
                    reader, bus, variables, owner.token, compiled=True, query=ANIMATION_STATUS
                )
                plain, plain_count = await first_message(
                    reader, bus, variables, owner.token, compiled=False, query=ANIMATION_STATUS
                )
                assert same(compiled, plain), (compiled, plain)
                print(f"animationStatus snapshot statements: {count} compiled, {plain_count} not")
                assert count < plain_count
                counts.append(count)
            message = compiled["animationStatus"]
            assert len(message["selections"]) == 6
            assert message["selections"][0]["animationStatus"] == "COMPLETE"
            assert message["selections"][0]["animatedVideoUrl"].startswith("http://testserver/")
            assert message["progress"]["totalShots"] == 7
            assert message["selection"] is None
            assert counts[0] == counts[1]
    finally:
        await bus.stop()


async def test_live_messages_are_the_same_compiled(db: Database) -> None:
    owner = await account(db)
    project_id = await storyboard(db, owner, scenes=1, shots=2, images=3)
    tree = await factories.gql(
        db,
        "query($id: ID!) { project(id: $id) { scenes { shots { id iterations { images { id } } "
        "} } } }",
        {"id": project_id},
        token=owner.token,
    )
    shot = tree["project"]["scenes"][0]["shots"][1]
    images = [image["id"] for image in shot["iterations"][0]["images"]]

    bus = EventBus("memory://", queue_size=32)
    await bus.start()
    writer = Database(db.url, bus=bus)
    streams: dict[tuple[str, bool], Any] = {}
    try:
        async with reader_of(db) as reader:
            for name, query, variables in (
                ("iterationStatus", ITERATION_STATUS, {"shotId": shot["id"]}),
                ("animationStatus", ANIMATION_STATUS, {"projectId": project_id}),
            ):
                for compiled in (True, False):
                    res = replace(resources(reader), bus=bus, compiled_reads=compiled)
                    context = await build_context(res, owner.token)
                    stream = await schema.subscribe(query, variables, context_value=context)
                    assert not isinstance(stream, ExecutionResult), stream
                    streams[name, compiled] = stream
                    await anext(stream)  # the snapshot

            async def next_pair(name: str) -> dict[str, Any]:
                compiled, plain = [(await anext(streams[name, c])).data for c in (True, False)]
                assert same(compiled, plain), (compiled, plain)
                assert compiled is not None
                message: dict[str, Any] = compiled[name]
                return message

            await mutate_ok(
                writer,
                "setImageFavorite",
                {"imageId": images[2], "isFavorite": True},
                "image { id }",
                token=owner.token,
            )
            changed = await next_pair("iterationStatus")
            assert changed["image"] == {"id": images[2]}
            assert changed["iterations"][0]["images"][2]["isFavorite"] is True

            await mutate_ok(
                writer,
                "selectMasterShot",
                {"shotId": shot["id"], "imageId": images[1]},
                "selection { id }",
                token=owner.token,
            )
            selected = await next_pair("animationStatus")
            assert selected["selection"]["selectedImage"] == {"id": images[1]}
    finally:
        for stream in streams.values():
            await stream.aclose()
        await writer.dispose()
        await bus.stop()


# -- the library search's page of assets --------------------------------------------------------

ASSET_LEAF_SELECTION = " ".join(ASSET_LEAVES)
LIBRARY = f"""
query($first: Int!, $after: String) {{
  library(filter: {{includePublic: true}}, first: $first, after: $after) {{
    totalCount
    pageInfo {{ hasNextPage endCursor }}
    edges {{ cursor node {{ {ASSET_LEAF_SELECTION} }} }}
  }}
}}
"""
# The grid's query (web/static/app/library/results.js), with a fragment, aliases and
# __typename.
LIBRARY_GRID = """
query($withUrl: Boolean!) {
  found: library(filter: {includePublic: true}, first: 100) {
    totalCount
    nodes {
      id name kind status thumbnailUrl @include(if: $withUrl) tags mood category
      ...More
      t: __typename
    }
  }
}
fragment More on Asset { sceneType duration views createdAt shareLevel n: name ... on Node { id } }
"""
# Beyond the leaves: resolved field by field.
LIBRARY_DEEP = """
{ library(filter: {includePublic: true}) { nodes { id name creator { name } fileUrl } } }
"""


async def library_world(db: Database) -> tuple[Account, Account, str]:
    """Ann's two assets (one stored, with a preview), Bob's PUBLIC one, one he shares
    with Ann until a few minutes from now, and one she may not see; the share's ID."""
    ann, bob = await account(db), await account(db)
    await factories.library_asset(
        db,
        ann,
        name="Harbor",
        storage_key="assets/harbor.png",
        thumbnail_key="thumbs/harbor.webp",
        tags=["sea", "night"],
        category="location",
        mood="calm",
        scene_type="WIDE",
        duration=5.0,
        width=1024,
        generation_params={"seed": 7, "steps": [1, 2]},
        prompt="a harbor at night",
        model="flux",
    )
    await factories.library_asset(db, ann, name="Draft", kind="VIDEO", fps=24.0)
    await factories.library_asset(
        db, bob, name="Public", share_level="PUBLIC", storage_key="assets/public.png"
    )
    shared = await factories.library_asset(
        db, bob, name="Shared", storage_key="assets/shared.png", thumbnail_key="thumbs/s.webp"
    )
    await factories.library_asset(db, bob, name="Hidden")
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    payload = await mutate_ok(
        db,
        "shareAsset",
        {"assetId": shared, "userId": ann.user_id, "permission": "VIEW", "expiresAt": soon},
        "share { id }",
        token=bob.token,
    )
    return ann, bob, payload["share"]["id"]


def test_the_asset_leaves_are_the_schemas() -> None:
    fields = schema._schema.type_map["Asset"].fields  # type: ignore[attr-defined]
    assert set(ASSET_LEAVES) <= set(fields)


async def test_library_pages_are_the_same_finished_in_one_pass(db: Database) -> None:
    ann, bob, share_id = await library_world(db)

    data, compiled_count, plain_count = await both(db, LIBRARY, {"first": 3}, ann.token)
    page = data["library"]
    assert page["totalCount"] >= 4  # other tests' PUBLIC assets count too
    assert compiled_count == plain_count
    after = page["pageInfo"]["endCursor"]
    await both(db, LIBRARY, {"first": 3, "after": after}, ann.token)

    for flag in (True, False):
        grid, _, _ = await both(db, LIBRARY_GRID, {"withUrl": flag}, ann.token)
        names = {node["name"]: node for node in grid["found"]["nodes"]}
        assert {"Harbor", "Draft", "Public", "Shared"} <= set(names)
        assert "Hidden" not in names
        assert list(names["Harbor"])[:5] == (
            ["id", "name", "kind", "status", "thumbnailUrl"]
            if flag
            else ["id", "name", "kind", "status", "tags"]
        )
    deep, _, _ = await both(db, LIBRARY_DEEP, {}, ann.token)
    links = {node["name"]: node["fileUrl"] for node in deep["library"]["nodes"]}
    assert links["Harbor"] is not None

    await mutate_ok(db, "revokeShare", {"id": share_id}, "deletedId", token=bob.token)
    grid, _, _ = await both(db, LIBRARY_GRID, {"withUrl": True}, ann.token)
    assert "Shared" not in {node["name"] for node in grid["found"]["nodes"]}


async def test_a_library_page_costs_the_same_statements_at_any_size(db: Database) -> None:
    small, large = await account(db), await account(db)
    await factories.library_asset(db, small)
    for _ in range(6):
        await factories.library_asset(db, large, storage_key="assets/x.png", tags=["a"])
    query = "{ library(first: 10) { nodes { id name fileUrl tags viewerPermission } } }"
    small_data, small_count, _ = await both(db, query, {}, small.token)
    large_data, large_count, _ = await both(db, query, {}, large.token)
    assert len(small_data["library"]["nodes"]) == 1
    assert len(large_data["library"]["nodes"]) == 6
    assert small_count == large_count


# -- the web editor's own reads (web/static/app) --------------------------------------------------

EDITOR_IMAGE = """id iterationNumber variantNumber status isFavorite error model updatedAt
  thumbnailUrl imageUrl parentImage { id }"""
EDITOR_ITERATION = f"""iterationNumber prompt status
  parentImage {{ id iterationNumber variantNumber thumbnailUrl imageUrl }}
  images {{ {EDITOR_IMAGE} }}"""
EDITOR_MASTER = "selectedImage { id thumbnailUrl imageUrl iterationNumber variantNumber }"
EDITOR_SHOTS = f"""query IteratorShots($id: ID!) {{
  project(id: $id) {{ id scenes {{ id sceneNumber title
    shots {{ id shotNumber description {EDITOR_MASTER} }} }} }}
}}"""
EDITOR_MASTER_OF_SHOT = f"""query IteratorMaster($id: ID!) {{
  node(id: $id) {{ ... on Shot {{ id {EDITOR_MASTER} }} }}
}}"""
EDITOR_ITERATION_STATUS = f"""subscription IterationStatus($shotId: ID!, $after: String) {{
  iterationStatus(shotId: $shotId, after: $after) {{
    cursor shot {{ id }} iterations {{ {EDITOR_ITERATION} }} image {{ id status }}
  }}
}}"""
EDITOR_CLIP = """fragment StoryboardClip on StoryboardSelection {
  id animationStatus model error updatedAt animatedVideoUrl
  shot { id } selectedImage { id imageUrl }
}"""
EDITOR_ANIMATION_STATUS = f"""subscription StoryboardFeed($projectId: ID!, $after: String) {{
  animationStatus(projectId: $projectId, after: $after) {{
    cursor
    selections {{ ...StoryboardClip }}
  }}
}}
{EDITOR_CLIP}"""
DATED = """query($id: ID!) { project(id: $id) { createdAt updatedAt scenes { createdAt updatedAt
  shots { createdAt updatedAt iterations { images { createdAt updatedAt } } } } } }"""


async def test_the_editors_reads_are_compiled_and_the_same(db: Database) -> None:
    owner = await account(db)
    project_id = await storyboard(db, owner, scenes=2, shots=2, images=3)

    shots, compiled_count, plain_count = await both(
        db, EDITOR_SHOTS, {"id": project_id}, owner.token
    )
    assert compiled_count < plain_count
    master = shots["project"]["scenes"][0]["shots"][0]["selectedImage"]
    assert master["thumbnailUrl"].startswith("http://testserver/media/thumbs/")
    shot_id = shots["project"]["scenes"][1]["shots"][1]["id"]
    _, compiled_count, plain_count = await both(
        db, EDITOR_MASTER_OF_SHOT, {"id": shot_id}, owner.token
    )
    assert compiled_count < plain_count
    dated, compiled_count, plain_count = await both(db, DATED, {"id": project_id}, owner.token)
    assert compiled_count < plain_count
    assert dated["project"]["createdAt"].endswith("+00:00")

    bus = EventBus("memory://", queue_size=8)
    await bus.start()
    try:
        async with reader_of(db) as reader:
            for query, variables in (
                (EDITOR_ITERATION_STATUS, {"shotId": shot_id}),
                (EDITOR_ANIMATION_STATUS, {"projectId": project_id}),
            ):
                compiled, count = await first_message(
                    reader, bus, variables, owner.token, compiled=True, query=query
                )
                plain, plain_count = await first_message(
                    reader, bus, variables, owner.token, compiled=False, query=query
                )
                assert same(compiled, plain), (compiled, plain)
                assert count < plain_count
            message, _ = await first_message(
                reader,
                bus,
                {"shotId": shot_id},
                owner.token,
                compiled=True,
                query=EDITOR_ITERATION_STATUS,
            )
            iterations = message["iterationStatus"]["iterations"]
            images = iterations[0]["images"]
            assert "/media/thumbs/" in images[0]["thumbnailUrl"]  # its own asset's
            assert "/media/thumbs/source.webp" in images[1]["thumbnailUrl"]  # its source's
            assert images[2]["thumbnailUrl"] is None
            assert iterations[1]["parentImage"]["id"] == images[0]["id"]
    finally:
        await bus.stop()


EDITOR_PROJECTS = """query Projects($teamId: ID!, $first: Int!, $after: String) {
  projects(teamId: $teamId, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id title status updatedAt owner { id name } team { id }
      progress { totalScenes totalShots shotsWithSelections shotsWithAnimations
        selectionProgress animationProgress } } }
  }
}"""
TEAM_AND_OWNER = """{ projects { nodes { team { __typename id name isPersonal createdAt }
  owner { id name email createdAt } } } }"""


async def test_the_editors_projects_page_is_compiled_and_the_same(db: Database) -> None:
    owner, member = await account(db), await account(db)
    team = await factories.team_with(db, owner, {})
    await join(db, team, member, role="EDITOR", inviter=owner)
    await storyboard(db, owner, scenes=1, shots=2, images=2)
    for n in range(3):
        await project(db, member if n % 2 else owner, title=f"Team {n}", team_id=team)

    for reader, team_id in ((owner, owner.team_id), (owner, team), (member, team)):
        variables = {"teamId": team_id, "first": 2}
        page, compiled_count, plain_count = await both(db, EDITOR_PROJECTS, variables, reader.token)
        assert compiled_count < plain_count
        after = page["projects"]["pageInfo"]["endCursor"]
        await both(db, EDITOR_PROJECTS, {**variables, "after": after}, reader.token)
    hidden, _, _ = await both(
        db, EDITOR_PROJECTS, {"teamId": team, "first": 5}, (await account(db)).token
    )
    assert hidden["projects"]["edges"] == []
    people, _, _ = await both(db, TEAM_AND_OWNER, {}, owner.token)
    owners = {node["owner"]["name"] for node in people["projects"]["nodes"]}
    assert owners == {"Ann"}  # the factories' accounts are all named Ann
    assert {node["team"]["isPersonal"] for node in people["projects"]["nodes"]} == {False, True}
