"""Every database connection taken (a burst of operations) is SERVICE_UNAVAILABLE, never a fault.

An operation that waits longer than the pool's timeout (DATABASE_POOL_TIMEOUT_SECONDS)
for a connection did nothing: it is answered with a stable code and a message
saying to try again, not masked as an internal error; over HTTP, when even the
token check before the operation found no connection, a 503 with Retry-After.
The pool is really exhausted here: every connection it may open is checked out
and held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection
from websockets.asyncio.client import ClientConnection, connect

import migrations
from api.app import create_app
from api.cli import _uvicorn_options
from api.graphql import build_context
from api.ports import free_port
from api.schema import schema
from api.settings import Settings
from api.state import AppState
from schema.error_codes import BUSY, SERVICE_UNAVAILABLE
from services.database import Database
from tests.factories import account, execute, resources
from tests.realtime_harness import Api
from tests.servers import serving_in_process

SECRET_KEY = "busy database tests secret key, long enough to be accepted"
POOL_TIMEOUT = 0.3


@contextlib.asynccontextmanager
async def every_connection_taken(db: Database) -> AsyncIterator[int]:
    """Hold every connection the engine's pool will give (until it times out); yield
    how many."""
    async with contextlib.AsyncExitStack() as held:
        taken: list[AsyncConnection] = []
        while True:
            try:
                taken.append(await held.enter_async_context(db.read_engine.connect()))
            except PoolTimeout:
                break
        yield len(taken)


@pytest.fixture
async def small_db(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url, pool_size=1, pool_timeout=POOL_TIMEOUT)
    await migrations.upgrade_to_head(db)
    try:
        yield db
    finally:
        await db.dispose()


async def test_an_operation_with_no_connection_free_is_told_to_try_again(
    small_db: Database,
) -> None:
    owner = await account(small_db)
    # Signed in first: the token check needs a connection too (over HTTP, see below).
    context = await build_context(resources(small_db), owner.token)
    async with every_connection_taken(small_db) as taken:
        assert taken > 0
        result = await schema.execute(
            "{ projects(first: 5) { totalCount } }", context_value=context
        )
    assert result.errors is not None
    assert [(e.message, (e.extensions or {}).get("code")) for e in result.errors] == [
        (BUSY, SERVICE_UNAVAILABLE)
    ]
    # Once connections are free again, the same operation runs.
    again = await execute(small_db, "{ projects(first: 5) { totalCount } }", token=owner.token)
    assert again.errors is None
    assert again.data == {"projects": {"totalCount": 0}}


async def test_a_write_with_no_connection_free_writes_nothing(small_db: Database) -> None:
    owner = await account(small_db)
    create = (
        'mutation { createProject(input: {title: "Busy", prompt: "x"}) '
        "{ project { id } userErrors { code } } }"
    )
    context = await build_context(resources(small_db), owner.token)
    async with every_connection_taken(small_db):
        result = await schema.execute(create, context_value=context)
    assert result.errors is not None
    assert [(e.extensions or {}).get("code") for e in result.errors] == [SERVICE_UNAVAILABLE]
    listed = await execute(small_db, "{ projects(first: 5) { totalCount } }", token=owner.token)
    assert listed.data == {"projects": {"totalCount": 0}}


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[tuple[str, AppState]]:
    migrated = Database(database_url)
    try:
        await migrations.upgrade_to_head(migrated)
    finally:
        await migrated.dispose()
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        secret_key=SECRET_KEY,
        database_pool_timeout_seconds=POOL_TIMEOUT,
    )
    port = free_port()
    app = create_app(settings, port=port)
    async with serving_in_process(app, port, **_uvicorn_options(settings)) as base_url:
        yield base_url, app.state.studio


async def test_over_http_no_connection_for_the_token_check_is_a_503(
    server: tuple[str, AppState],
) -> None:
    base_url, state = server
    async with Api(base_url) as api:
        await api.sign_up("Busy")
        async with every_connection_taken(state.db):
            response = await api.http.post(
                "/graphql",
                json={"query": "{ viewer { name } }"},
                headers={"Authorization": f"Bearer {api.token}"},
            )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "1"
        assert response.json() == {
            "errors": [{"message": BUSY, "extensions": {"code": SERVICE_UNAVAILABLE}}]
        }
        # And once free, the same request is answered.
        assert await api.data("{ viewer { name } }") == {"viewer": {"name": "Busy"}}


async def _ws(base_url: str) -> ClientConnection:
    url = base_url.replace("http://", "ws://") + "/graphql"
    return await connect(url, subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]


async def test_over_websocket_no_connection_for_the_sign_in_is_try_again_later(
    server: tuple[str, AppState],
) -> None:
    base_url, state = server
    async with Api(base_url) as api:
        await api.sign_up("Busy")
        socket = await _ws(base_url)
        async with every_connection_taken(state.db):
            init = {"type": "connection_init", "payload": {"authorization": f"Bearer {api.token}"}}
            await socket.send(json.dumps(init))
            await asyncio.wait_for(socket.wait_closed(), 5)
        # RFC 6455's Try Again Later, with the code and message as over HTTP; not a
        # dropped connection.
        assert socket.close_code == 1013, (socket.close_code, socket.close_reason)
        assert (socket.close_reason or "").startswith(f"{SERVICE_UNAVAILABLE}: "), (
            socket.close_reason
        )


async def test_over_websocket_no_connection_for_an_operation_is_an_error(
    server: tuple[str, AppState],
) -> None:
    base_url, state = server
    async with Api(base_url) as api:
        await api.sign_up("Busy")
        socket = await _ws(base_url)
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {api.token}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        async with every_connection_taken(state.db):
            await socket.send(
                json.dumps(
                    {"id": "1", "type": "subscribe", "payload": {"query": "{ viewer { name } }"}}
                )
            )
            first = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert first == {
            "id": "1",
            "type": "error",
            "payload": [{"message": BUSY, "extensions": {"code": SERVICE_UNAVAILABLE}}],
        }
        # The socket stays open, and once connections are free the operation runs.
        await socket.send(
            json.dumps(
                {"id": "2", "type": "subscribe", "payload": {"query": "{ viewer { name } }"}}
            )
        )
        again = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert again == {
            "id": "2",
            "type": "next",
            "payload": {"data": {"viewer": {"name": "Busy"}}},
        }
        await socket.close()


async def test_over_graphql_ws_no_connection_for_an_operation_is_an_error(
    server: tuple[str, AppState],
) -> None:
    base_url, state = server
    async with Api(base_url) as api:
        await api.sign_up("Busy")
        url = base_url.replace("http://", "ws://") + "/graphql"
        socket = await connect(url, subprotocols=["graphql-ws"])  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {api.token}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        query = 'subscription { projectEvents(projectId: "UHJvamVjdDox") { __typename } }'
        async with every_connection_taken(state.db):
            await socket.send(json.dumps({"id": "1", "type": "start", "payload": {"query": query}}))
            first = {"type": "ka"}
            while first["type"] == "ka":  # graphql-ws's keep-alive
                first = json.loads(await asyncio.wait_for(socket.recv(), 5))
        assert first == {
            "id": "1",
            "type": "error",
            "payload": {"message": BUSY, "extensions": {"code": SERVICE_UNAVAILABLE}},
        }
        await socket.close()
