"""Attacks on the speed work (compiled reads, the plan cache, one read connection per
query, orjson responses): each test here failed before the fix its commit names."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest
from sqlalchemy import text

import migrations
from api.graphql import build_context
from api.schema import schema
from schema import compiled
from services.database import Database
from tests import factories
from tests.factories import account, project, resources


async def test_queries_that_also_open_sessions_never_wait_forever_for_the_pool(
    db: Database,
) -> None:
    """A query holds its read connection until it ends; a resolver of it that opens a
    session or a transaction of its own (`asset` counts a view, `projects` reads its
    page) asked the pool for a second connection meanwhile. With as many such queries
    at once as the pool has connections, each held one and waited for another: every
    one failed at the pool's timeout. Now the held connection is given back first."""
    if db.is_sqlite:
        pytest.skip("SQLite's connections are not the pool that runs out here")
    owner = await account(db)
    asset_id = await factories.library_asset(db, owner)
    project_id = await project(db, owner)
    small = Database(db.url.render_as_string(hide_password=False), pool_size=1)  # 2 connections
    try:
        queries = [
            ("query($id: ID!) { asset(id: $id) { id views } }", {"id": asset_id}),
            (
                "query($id: ID!) { a: project(id: $id) { title } viewer { id } "
                "projects { totalCount nodes { title } } }",
                {"id": project_id},
            ),
        ]

        async def one(query: str, variables: dict[str, Any]) -> Any:
            context = await build_context(resources(small), owner.token)
            return await schema.execute(query, variables, context_value=context)

        for query, variables in queries:
            results = await asyncio.gather(*(one(query, variables) for _ in range(8)))
            assert [r.errors for r in results] == [None] * 8
        assert small.engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        await small.dispose()


# --- compiled against field by field, with what a hostile client may send ---


async def both_results(
    db: Database, query: str, variables: dict[str, Any], token: str
) -> tuple[Any, Any]:
    """(data, error messages and codes) of `query` compiled, and field by field."""
    outcomes = []
    for on in (True, False):
        context = await build_context(dataclasses.replace(resources(db), compiled_reads=on), token)
        result = await schema.execute(query, variables, context_value=context)
        errors = [(e.message, (e.extensions or {}).get("code")) for e in result.errors or ()]
        outcomes.append((orjson.dumps(result.data), errors))
    return outcomes[0], outcomes[1]


async def test_a_null_directive_variable_is_an_error_compiled_too(db: Database) -> None:
    owner = await account(db)
    project_id = await project(db, owner)
    query = """query($id: ID!, $v: Boolean = true) {
      project(id: $id) { id title @include(if: $v) scenes @skip(if: $v) { id } }
    }"""
    for value in (True, False, None):
        compiled, plain = await both_results(db, query, {"id": project_id, "v": value}, owner.token)
        assert compiled == plain, value


async def test_the_plan_cache_stays_bounded_whatever_the_variables(db: Database) -> None:
    """One document whose directives read n variables has 2**n plans: sent with each
    combination in turn, it grew the cache by a plan per request, without bound."""
    owner = await account(db)
    project_id = await project(db, owner, title="Bounded")
    flags = [f"f{n}" for n in range(8)]
    query = (
        "query($id: ID!, "
        + ", ".join(f"${f}: Boolean!" for f in flags)
        + ") { project(id: $id) { id "
        + " ".join(f"{f}: title @include(if: ${f})" for f in flags)
        + " } }"
    )
    for combination in range(2 ** len(flags)):
        values = {f: bool(combination >> n & 1) for n, f in enumerate(flags)}
        data = await factories.gql(db, query, {"id": project_id, **values}, token=owner.token)
        assert data["project"] == {
            "id": project_id,
            **{f: "Bounded" for f in flags if values[f]},
        }
    assert max(len(entry.plans) for entry in compiled._cache.values()) <= (
        compiled.PLANS_PER_SELECTION
    )


NASTY = "q\"uo'te \\back\\slash \\u0000 \t tab \x01\x1f ctl \u2028 😀 </script> shots/1.png"

TREE = """query($id: ID!) { project(id: $id) {
  __typename id promptPlannerData status
  team { __typename id name isPersonal } owner { id name email }
  prompt: title title: prompt
  progress { __typename selectionProgress animationProgress isSelectionComplete }
  scenes { __typename id title description shots {
    id description initialPrompt latestIterationNumber selectedImage { id imageUrl thumbnailUrl }
    iterations { __typename iterationNumber prompt status parentImage { id imageUrl }
      images { __typename id status iterationPrompt model error predictionId imageUrl thumbnailUrl
        parentImage { id } } }
  } }
} }"""


async def test_hostile_text_and_recorded_urls_read_the_same_compiled(db: Database) -> None:
    """Quotes, backslashes, control characters, line separators, emoji, text at its
    longest, absent values, and a recorded URL or a title that looks like a storage
    key: the same compiled as field by field, and nothing a client wrote is signed."""
    owner = await account(db)
    project_id = (
        await factories.mutate_ok(
            db,
            "createProject",
            {"title": (NASTY * 20)[:200], "prompt": NASTY * 100, "promptPlannerData": NASTY},
            "project { id }",
            token=owner.token,
        )
    )["project"]["id"]
    made = await factories.scene(
        db,
        owner,
        project_id,
        title=NASTY,
        shots=[{"description": NASTY, "initialPrompt": "x" * 10_000}, {"description": "plain"}],
    )
    shot_id = made["shots"][0]["id"]
    recorded = "https://images.example.com/shots/1.png?x=%22%5C&y=\u00e9"
    images = [
        {"variantNumber": 0, "status": "COMPLETE", "imageUrl": recorded},
        {"variantNumber": 1, "status": "FAILED"},
    ]
    first = await factories.mutate_ok(
        db,
        "addShotImages",
        {"shotId": shot_id, "iterationPrompt": NASTY, "images": images},
        "images { id }",
        token=owner.token,
    )
    await factories.mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": first["images"][0]["id"]},
        "selection { id }",
        token=owner.token,
    )
    compiled, plain = await both_results(db, TREE, {"id": project_id}, owner.token)
    assert compiled == plain
    assert compiled[1] == []
    data = orjson.loads(compiled[0])["project"]
    assert data["prompt"] == (NASTY * 20)[:200].strip()
    image = data["scenes"][0]["shots"][0]["iterations"][0]["images"][0]
    assert image["imageUrl"] == recorded  # as recorded: never taken for a storage key
    assert data["scenes"][0]["shots"][0]["selectedImage"]["imageUrl"] == recorded


async def test_the_deepest_selections_allowed_read_the_same_compiled(db: Database) -> None:
    """As deep as the depth limit lets a storyboard go (parent images of parent images):
    SQLite's parser gave up on the compiled statement ("parser stack overflow"), so the
    field failed with a masked error; it is now resolved field by field."""
    owner = await account(db)
    project_id = await project(db, owner)
    made = await factories.scene(db, owner, project_id, shots=1)
    shot_id = made["shots"][0]["id"]
    first = await factories.iteration(db, owner, shot_id, count=2)
    await factories.iteration(db, owner, shot_id, count=1, parent_image_id=first["images"][0]["id"])
    for depth in range(1, 8):
        chain = "id imageUrl " + "parentImage { id imageUrl " * depth + "}" * depth
        query = (
            "query($id: ID!) { project(id: $id) { title scenes { shots { iterations { "
            f"images {{ {chain} }} }} }} }} }} }}"
        )
        for _ in range(2):  # the second time from the plan cache
            compiled, plain = await both_results(db, query, {"id": project_id}, owner.token)
            assert compiled == plain
            assert compiled[1] == []


async def test_a_database_fault_in_a_compiled_read_is_masked(empty_database_url: str) -> None:
    """A table gone under a compiled read: the field fails with the masked message and
    nothing of the statement or the table reaches the client, compiled or not."""
    db = Database(empty_database_url)
    try:
        await migrations.upgrade_to_head(db)
        owner = await account(db)
        project_id = await project(db, owner)
        made = await factories.scene(db, owner, project_id, shots=1)
        await factories.iteration(db, owner, made["shots"][0]["id"], count=1)
        async with db.transaction() as session:
            cascade = "" if db.is_sqlite else " CASCADE"
            await (await session.connection()).execute(text(f"DROP TABLE shot_images{cascade}"))
        query = """query($id: ID!) { project(id: $id) { title scenes { shots {
            iterations { images { id imageUrl } } } } } }"""
        compiled, plain = await both_results(db, query, {"id": project_id}, owner.token)
        for data, errors in (compiled, plain):
            assert orjson.loads(data) == {"project": None}
            assert errors == [("Something went wrong on our side; it has been logged.", None)]
    finally:
        await db.dispose()


async def test_many_sibling_reads_share_the_operations_connection_in_turn(db: Database) -> None:
    """Thirty compiled roots (the most aliases allowed), pages that open their own sessions, and a transaction
    (`asset` counts a view) side by side in one query, several such queries at once on
    a small pool: every answer is the field-by-field one, and no read meets another
    mid-statement ("another operation is in progress")."""
    owner = await account(db)
    project_id = await project(db, owner, title="Siblings")
    made = await factories.scene(db, owner, project_id, shots=2)
    await factories.iteration(db, owner, made["shots"][0]["id"], count=3)
    asset_id = await factories.library_asset(db, owner)
    roots = " ".join(
        f"p{n}: project(id: $id) {{ title scenes {{ shots {{ id iterations {{ images {{ id }} }} }} }} }}"
        f" n{n}: node(id: $shot) {{ id ... on Shot {{ shotNumber }} }}"
        for n in range(15)
    )
    query = (
        "query($id: ID!, $shot: ID!, $asset: ID!) { "
        + roots
        + " projects { totalCount nodes { title } } asset(id: $asset) { id } viewer { id } }"
    )
    variables = {"id": project_id, "shot": made["shots"][1]["id"], "asset": asset_id}
    url = db.url.render_as_string(hide_password=False)
    small = db if db.is_sqlite else Database(url, pool_size=2)
    try:

        async def one(on: bool) -> Any:
            context = await build_context(
                dataclasses.replace(resources(small), compiled_reads=on), owner.token
            )
            result = await schema.execute(query, variables, context_value=context)
            assert result.errors is None, result.errors
            return result.data

        answers = await asyncio.gather(*(one(n % 2 == 0) for n in range(8)))
        assert all(answer == answers[1] for answer in answers)
        assert answers[0]["p14"]["title"] == "Siblings"
    finally:
        if small is not db:
            await small.dispose()


async def test_same_named_fragments_of_many_documents_never_borrow_a_plan(db: Database) -> None:
    """More distinct documents than the plan cache holds (so entries are evicted and
    their nodes' ids may be reused), each spreading a fragment `F` of its own: every
    answer has exactly what its own document asks for."""
    owner = await account(db)
    project_id = await project(db, owner, title="Fragments")
    fields = ["title", "prompt", "status", "scenes { id }", "progress { totalShots }"]
    expected: dict[str, Any] = {
        "title": "Fragments",
        "prompt": "A rainy night market",
        "status": None,
        "scenes": [],
        "progress": {"totalShots": 0},
    }
    for n in range(compiled.PLAN_CACHE_SIZE + 100):
        field = fields[n % len(fields)]
        name = field.split()[0]
        query = (
            f"query($id: ID!) {{ project(id: $id) {{ k{n}: id ...F }} }} "
            f"fragment F on Project {{ {field} }}"
        )
        data = await factories.gql(db, query, {"id": project_id}, token=owner.token)
        got = data["project"]
        assert list(got) == [f"k{n}", name]
        if name != "status":
            assert got[name] == expected[name]
