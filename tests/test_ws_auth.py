"""A WebSocket has the rights of its token as of each operation, never as of connection_init.

Real `studio serve` processes, spoken to over graphql-transport-ws, the older
graphql-ws, server-sent events and HTTP. An EDITOR removed from the team loses
it at once on an open socket (reads are null, writes NOT_FOUND, a new feed
replays nothing); a token logged out or expired closes its sockets with 4403, on
the next operation and on open subscriptions; each operation reads the
database as it is when it runs; and an operation over a socket answers exactly
what it answers over HTTP.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from services.accounts.accounts import hash_token
from services.database import Database
from services.tables import AccessTokenRow, utcnow
from tests.realtime_harness import PROJECT_EVENTS, WAIT, Api
from tests.servers import StudioServer
from tests.test_subscriptions import studio_server

pytestmark = pytest.mark.e2e

TRANSPORT_WS = "graphql-transport-ws"
GRAPHQL_WS = "graphql-ws"

PROJECT = "query($id: ID!) { project(id: $id) { id title } }"
UPDATE_PROJECT = (
    "mutation($input: UpdateProjectInput!) { updateProject(input: $input) "
    "{ project { id title } userErrors { code } } }"
)
DELETE_SCENE = (
    "mutation($input: DeleteInput!) { deleteScene(input: $input) "
    "{ deletedId userErrors { code } } }"
)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ws-auth") / "studio.db"


@pytest.fixture(scope="module")
def studio(database: Path) -> Iterator[StudioServer]:
    server = studio_server(
        database.parent, "ws-auth", DATABASE_URL=f"sqlite+aiosqlite:///{database}"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- a client of either subprotocol, one operation at a time -----------------------------------


class Client:
    """One signed-in WebSocket of either subprotocol; `ask` runs one operation to its end."""

    _ids = itertools.count(1)

    def __init__(self, connection: ClientConnection, protocol: str) -> None:
        self.connection = connection
        self.protocol = protocol

    @classmethod
    async def open(cls, server: StudioServer, token: str, protocol: str) -> Client:
        url = server.base_url.replace("http://", "ws://") + "/graphql"
        connection = await connect(
            url,
            subprotocols=[protocol],  # type: ignore[list-item]
            open_timeout=WAIT,
            ping_interval=None,
        )
        client = cls(connection, protocol)
        await client.send(
            {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        )
        ack = await client.receive()
        assert ack["type"] == "connection_ack", ack
        return client

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self) -> dict[str, Any]:
        """The next message that is not a keep-alive."""
        while True:
            message: dict[str, Any] = json.loads(
                await asyncio.wait_for(self.connection.recv(), WAIT)
            )
            if message.get("type") not in ("ka", "ping", "pong"):
                return message

    async def start(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> str:
        operation_id = str(next(self._ids))
        kind = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        payload = {"query": query, "variables": variables or {}, "operationName": operation_name}
        await self.send({"type": kind, "id": operation_id, "payload": payload})
        return operation_id

    async def message(self, operation_id: str) -> dict[str, Any]:
        message = await self.receive()
        assert message.get("id") == operation_id, message
        return message

    @staticmethod
    def as_result(message: dict[str, Any]) -> dict[str, Any]:
        """A `next`/`data` or `error` message as `{data, errors}`."""
        if message["type"] == "error":
            errors = message["payload"]
            return {"data": None, "errors": errors if isinstance(errors, list) else [errors]}
        assert message["type"] in ("next", "data"), message
        return dict(message["payload"])

    async def result(self, operation_id: str) -> dict[str, Any]:
        """The operation's next result as `{data, errors}` (an `error` message too)."""
        return self.as_result(await self.message(operation_id))

    async def ask(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """A query or mutation (graphql-transport-ws): its result, once it completed."""
        operation_id = await self.start(query, variables)
        message = await self.message(operation_id)
        if message["type"] != "error":
            ending = await self.receive()
            assert ending == {"id": operation_id, "type": "complete"}, ending
        return self.as_result(message)

    async def close_code(self) -> int | None:
        """Wait for the server to close the socket; its close code."""
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    await self.connection.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.connection.close()


def codes(result: dict[str, Any]) -> list[str | None]:
    return [error.get("extensions", {}).get("code") for error in result.get("errors") or []]


async def shared_project(owner: Api, member: Api) -> tuple[str, str, str]:
    """A team of owner with member as EDITOR; its project and a scene: (team, project, scene)."""
    team = await owner.mutate("createTeam", {"name": "Crew"}, "team { id }")
    team_id: str = team["team"]["id"]
    await member.join(owner, team_id, "EDITOR")
    project_id = await owner.create_project("Shared", team_id=team_id)
    scene = await owner.create_scene(project_id, "Opening", [{"description": "Wide"}])
    return team_id, project_id, scene["id"]


# -- a member removed from the team ------------------------------------------------------------


async def test_a_removed_member_loses_the_team_at_once_on_an_open_socket(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as owner, Api(studio.base_url) as member:
        await owner.sign_up("Owner")
        await member.sign_up("Editor")
        team_id, project_id, scene_id = await shared_project(owner, member)
        client = await Client.open(studio, member.token, TRANSPORT_WS)
        try:
            seen = await client.ask(PROJECT, {"id": project_id})
            assert seen["data"]["project"]["title"] == "Shared"
            feed = await client.start(PROJECT_EVENTS, {"projectId": project_id})
            first = (await client.result(feed))["data"]["projectEvents"]
            await client.send({"type": "complete", "id": feed})

            await owner.mutate(
                "removeTeamMember", {"teamId": team_id, "userId": member.user_id}, "team { id }"
            )

            assert (await client.ask(PROJECT, {"id": project_id}))["data"] == {"project": None}
            renamed = await client.ask(
                UPDATE_PROJECT, {"input": {"id": project_id, "title": "Taken"}}
            )
            assert renamed["data"]["updateProject"]["userErrors"] == [{"code": "NOT_FOUND"}]
            deleted = await client.ask(DELETE_SCENE, {"input": {"id": scene_id}})
            assert deleted["data"]["deleteScene"]["userErrors"] == [{"code": "NOT_FOUND"}]
            # A new feed from the first cursor replays nothing: it is refused.
            again = await client.start(
                PROJECT_EVENTS, {"projectId": project_id, "after": first["cursor"]}
            )
            refused = await client.result(again)
            assert codes(refused) == ["NOT_FOUND"], refused
            assert not (refused.get("data") or {}).get("projectEvents")
        finally:
            await client.close()

        # Nothing they tried changed anything.
        kept = await owner.data(
            "query($id: ID!) { project(id: $id) { title scenes { id } } }", {"id": project_id}
        )
        assert kept["project"] == {"title": "Shared", "scenes": [{"id": scene_id}]}


async def test_a_removed_member_gets_no_feed_on_graphql_ws_or_server_sent_events(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as owner, Api(studio.base_url) as member:
        await owner.sign_up("Owner")
        await member.sign_up("Editor")
        team_id, project_id, _ = await shared_project(owner, member)
        following = await Client.open(studio, member.token, GRAPHQL_WS)
        idle = await Client.open(studio, member.token, GRAPHQL_WS)  # no feed: hears no notice
        try:
            feed = await following.start(PROJECT_EVENTS, {"projectId": project_id})
            first = (await following.result(feed))["data"]["projectEvents"]
            await owner.mutate(
                "removeTeamMember", {"teamId": team_id, "userId": member.user_id}, "team { id }"
            )
            ended = await following.result(feed)
            assert codes(ended) == ["NOT_FOUND"], ended
            assert await following.message(feed) == {"type": "complete", "id": feed}

            # A new feed from the first cursor, on a socket opened while still a member,
            # replays nothing: it is refused.
            again = await idle.start(
                PROJECT_EVENTS, {"projectId": project_id, "after": first["cursor"]}
            )
            refused = await idle.result(again)
            assert codes(refused) == ["NOT_FOUND"], refused
        finally:
            await following.close()
            await idle.close()

        response = await member.http.post(
            "/graphql",
            json={"query": PROJECT_EVENTS, "variables": {"projectId": project_id}},
            headers={"Authorization": f"Bearer {member.token}", "Accept": "text/event-stream"},
        )
        assert "NOT_FOUND" in response.text
        assert "SNAPSHOT" not in response.text


# -- a token that stops working ----------------------------------------------------------------


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, GRAPHQL_WS])
async def test_a_logged_out_token_closes_its_socket_on_the_next_operation(
    studio: StudioServer, protocol: str
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        client = await Client.open(studio, api.token, protocol)
        await api.mutate("logOut", None, "success")
        await client.start(PROJECT_EVENTS, {"projectId": project_id})
        assert await client.close_code() == 4403


async def test_a_logged_out_token_closes_open_graphql_ws_subscriptions_at_once(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        client = await Client.open(studio, api.token, GRAPHQL_WS)
        feed = await client.start(PROJECT_EVENTS, {"projectId": project_id})
        assert (await client.result(feed))["data"]["projectEvents"]["kind"] == "SNAPSHOT"
        await api.mutate("logOut", None, "success")
        assert await client.close_code() == 4403


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, GRAPHQL_WS])
async def test_an_expired_token_closes_its_socket_on_the_next_operation(
    studio: StudioServer, database: Path, protocol: str
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        client = await Client.open(studio, api.token, protocol)
        db = Database(f"sqlite+aiosqlite:///{database}")
        try:
            async with db.transaction() as session:
                await session.exec(
                    update(AccessTokenRow)
                    .where(col(AccessTokenRow.token_hash) == hash_token(api.token))
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
        finally:
            await db.dispose()
        await client.start(PROJECT_EVENTS, {"projectId": project_id})
        assert await client.close_code() == 4403


# -- each operation as of now, as over HTTP ----------------------------------------------------


async def test_each_operation_on_a_socket_reads_the_database_as_it_is_then(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project("Before")
        client = await Client.open(studio, api.token, TRANSPORT_WS)
        try:
            assert (await client.ask(PROJECT, {"id": project_id}))["data"]["project"][
                "title"
            ] == "Before"
            await api.mutate(
                "updateProject", {"id": project_id, "title": "After"}, "project { id }"
            )
            assert (await client.ask(PROJECT, {"id": project_id}))["data"]["project"][
                "title"
            ] == "After"
            # A write on the socket is seen by the next read on it, too.
            await client.ask(UPDATE_PROJECT, {"input": {"id": project_id, "title": "Later"}})
            assert (await client.ask(PROJECT, {"id": project_id}))["data"]["project"][
                "title"
            ] == "Later"
        finally:
            await client.close()


def _normalised(body: dict[str, Any]) -> dict[str, Any]:
    """`{data, errors}` of an HTTP body (200 or 400) or a socket's result, alike."""
    return {"data": body.get("data"), "errors": body.get("errors") or None}


async def test_operations_answer_the_same_over_a_socket_as_over_http(
    studio: StudioServer,
) -> None:
    async with Api(studio.base_url) as owner, Api(studio.base_url) as member:
        await owner.sign_up("Owner")
        await member.sign_up("Editor")
        team_id, project_id, scene_id = await shared_project(owner, member)
        own_project = await member.create_project("Mine")
        client = await Client.open(studio, member.token, TRANSPORT_WS)
        await owner.mutate(
            "removeTeamMember", {"teamId": team_id, "userId": member.user_id}, "team { id }"
        )
        two = "query A { viewer { id } } query B { viewer { name } }"
        operations: list[tuple[str, dict[str, Any], str | None]] = [
            ("{ viewer { id name teams { id } } }", {}, None),
            (PROJECT, {"id": project_id}, None),
            (PROJECT, {"id": own_project}, None),
            (PROJECT, {"id": "junk"}, None),
            ("{ projects(first: 1000) { totalCount } }", {}, None),
            ("{ projects(first: 5) { totalCount edges { node { id title } } } }", {}, None),
            (UPDATE_PROJECT, {"input": {"id": project_id, "title": "Taken"}}, None),
            (UPDATE_PROJECT, {"input": {"id": own_project, "title": ""}}, None),
            (DELETE_SCENE, {"input": {"id": scene_id}}, None),
            ("{ nosuchfield }", {}, None),
            (two, {}, None),
            (two, {}, "C"),
            (two, {}, "B"),
        ]
        try:
            for query, variables, name in operations:
                over_http = await member.http.post(
                    "/graphql",
                    json={"query": query, "variables": variables, "operationName": name},
                    headers={"Authorization": f"Bearer {member.token}"},
                )
                operation_id = await client.start(query, variables, name)
                message = await client.message(operation_id)
                if message["type"] != "error":
                    assert await client.receive() == {"id": operation_id, "type": "complete"}
                over_socket = client.as_result(message)
                assert _normalised(over_socket) == _normalised(over_http.json()), query
        finally:
            await client.close()
