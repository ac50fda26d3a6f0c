"""Attacks on the speed work (compiled reads, the plan cache, one read connection per
query, orjson responses): each test here failed before the fix its commit names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.graphql import build_context
from api.schema import schema
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
