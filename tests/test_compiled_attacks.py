"""Attacks on the speed work (compiled reads, the plan cache, one read connection per
query, orjson responses): each test here failed before the fix its commit names."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest

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
