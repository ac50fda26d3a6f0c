"""A WebSocket has the rights of its token as of each operation, never as of connection_init.

Real `studio serve` processes, spoken to over graphql-transport-ws, the older
graphql-ws, server-sent events and HTTP. An EDITOR removed from the team loses
it at once on an open socket (reads are null, writes NOT_FOUND, a new feed
replays nothing); a token logged out or expired closes its sockets with 4403, on
the next operation and on open subscriptions (an expiring token's feeds, on every
transport, the moment it expires, however busy the project); each operation reads the
database as it is when it runs; and an operation over a socket answers exactly
what it answers over HTTP.

A token that signs no one in (malformed, unknown, revoked, expired) is
TOKEN_INVALID ("sign in again") on every transport, apart from no token at all
(UNAUTHENTICATED); public fields such as logIn ignore it. The `Authorization`
credentials are read alike everywhere (RFC 9110 section 11.4, RFC 6750 section
2.1): a Bearer credential without a well-formed token is TOKEN_INVALID, another
scheme is no token, and several credentials are refused (400, or 4400 on a
socket) rather than one of them picked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, update
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from schema import ids
from schema.events import encode_cursor
from services.accounts.accounts import hash_token
from services.database import Database
from services.realtime.feed import PAGE
from services.tables import AccessTokenRow, utcnow
from tests.factories import PASSWORD, backlog
from tests.realtime_harness import ANIMATION_STATUS, ITERATION_STATUS, PROJECT_EVENTS, WAIT, Api
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
    with server:
        yield server


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
        code, _ = await closing(self.connection)
        return code

    async def close(self) -> None:
        await self.connection.close()


async def closing(connection: ClientConnection) -> tuple[int | None, str]:
    """Wait for the server to close the socket: its close code and reason."""
    try:
        async with asyncio.timeout(WAIT):
            while True:
                await connection.recv()
    except ConnectionClosed as closed:
        if closed.rcvd is None:
            return None, ""
        return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("unreachable")  # pragma: no cover


def codes(result: dict[str, Any]) -> list[str | None]:
    return [error.get("extensions", {}).get("code") for error in result.get("errors") or []]


async def shared_project(owner: Api, member: Api) -> tuple[str, str, str]:
    """`owner` and `member` signed up (as "Owner" and "Editor"); a team of owner's with
    member as EDITOR, its project and a scene in it: (team, project, scene) IDs."""
    await owner.sign_up("Owner")
    await member.sign_up("Editor")
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
        team_id, project_id, scene_id = await shared_project(owner, member)
        client = await Client.open(studio, member.token, TRANSPORT_WS)
        try:
            seen = await client.ask(PROJECT, {"id": project_id})
            assert seen["data"]["project"]["title"] == "Shared"
            feed = await client.start(PROJECT_EVENTS, {"projectId": project_id})
            first = (await client.result(feed))["data"]["projectEvents"]
            await client.send({"type": "complete", "id": feed})

            await owner.remove(member, team_id)

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
        team_id, project_id, _ = await shared_project(owner, member)
        following = await Client.open(studio, member.token, GRAPHQL_WS)
        idle = await Client.open(studio, member.token, GRAPHQL_WS)  # no feed: hears no notice
        try:
            feed = await following.start(PROJECT_EVENTS, {"projectId": project_id})
            first = (await following.result(feed))["data"]["projectEvents"]
            await owner.remove(member, team_id)
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


def assert_sign_in_again(code: int | None, reason: str) -> None:
    """A socket closed for a token that no longer signs anyone in: 4403, TOKEN_INVALID."""
    assert code == 4403, (code, reason)
    assert reason.startswith("TOKEN_INVALID: "), reason
    assert "sign in again" in reason, reason


async def expire(database: Path, token: str, at: datetime | None = None) -> None:
    """Make `token` expire `at` (default: a second ago), straight in the module's database."""
    db = Database(f"sqlite+aiosqlite:///{database}")
    try:
        async with db.transaction() as session:
            await session.exec(
                update(AccessTokenRow)
                .where(col(AccessTokenRow.token_hash) == hash_token(token))
                .values(expires_at=at or utcnow() - timedelta(seconds=1))
            )
    finally:
        await db.dispose()


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
        assert_sign_in_again(*await closing(client.connection))


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
        assert_sign_in_again(*await closing(client.connection))


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, GRAPHQL_WS])
async def test_an_expired_token_closes_its_socket_on_the_next_operation(
    studio: StudioServer, database: Path, protocol: str
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        client = await Client.open(studio, api.token, protocol)
        await expire(database, api.token)
        await client.start(PROJECT_EVENTS, {"projectId": project_id})
        assert_sign_in_again(*await closing(client.connection))


# -- a token that expires while its feeds are busy ---------------------------------------------

SSE = "server-sent events"
EXPIRES_IN = 4.0  # seconds after the feeds are set up: time enough to open them all
ENDED_WITHIN = 1.5  # seconds after the expiry by which every feed must have ended
FEEDS = {
    "projectEvents": PROJECT_EVENTS,
    "iterationStatus": ITERATION_STATUS,
    "animationStatus": ANIMATION_STATUS,
}


@dataclass
class Ending:
    """How a feed ended: when (`time.time()`), after how many data messages, and why
    (a WebSocket's close code and reason; for server-sent events no code, and the
    codes of the last message's errors)."""

    at: float
    messages: int
    code: int | None
    reason: str


class SocketFeed:
    """One subscription alone on a WebSocket of either subprotocol."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @classmethod
    async def open(
        cls, studio: StudioServer, token: str, protocol: str, query: str, variables: dict[str, Any]
    ) -> SocketFeed:
        """Subscribed, its first message (the state it starts from) received."""
        client = await Client.open(studio, token, protocol)
        first = await client.result(await client.start(query, variables))
        assert not first.get("errors"), first
        return cls(client)

    async def ending(self, by: float) -> Ending:
        """Read until the server closes the socket, at the latest at `by` (`time.time()`)."""
        messages = 0
        try:
            async with asyncio.timeout(by - time.time()):
                while True:
                    message = json.loads(await self.client.connection.recv())
                    messages += message.get("type") in ("next", "data")
        except ConnectionClosed as closed:
            code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
            return Ending(time.time(), messages, code, reason)
        except TimeoutError:
            raise AssertionError(f"still open after {messages} messages") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self.client.close()


class StreamFeed:
    """One subscription over server-sent events (a POST with `Accept: text/event-stream`)."""

    def __init__(self, events: AsyncIterator[tuple[str, str]], stack: contextlib.AsyncExitStack):
        self.events = events
        self.stack = stack

    @classmethod
    async def open(
        cls, studio: StudioServer, token: str, query: str, variables: dict[str, Any]
    ) -> StreamFeed:
        """Subscribed, its first message (the state it starts from) received."""
        stack = contextlib.AsyncExitStack()
        api = await stack.enter_async_context(Api(studio.base_url, token))
        response = await stack.enter_async_context(
            api.http.stream(
                "POST",
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"},
            )
        )
        assert response.status_code == 200, await response.aread()
        feed = cls(cls._events(response.aiter_lines()), stack)
        kind, data = await asyncio.wait_for(anext(feed.events), WAIT)
        assert kind == "next", (kind, data)
        assert "errors" not in json.loads(data), data
        return feed

    @staticmethod
    async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
        """Each event as (its name, its data); comments (heartbeats) are skipped."""
        kind = ""
        async for line in lines:
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") or line == "data:":
                yield kind, line.removeprefix("data:").strip()

    async def ending(self, by: float) -> Ending:
        """Read until the stream says `complete` (or ends), at the latest at `by`."""
        messages, last_errors = 0, ""
        try:
            async with asyncio.timeout(by - time.time()):
                async for kind, data in self.events:
                    if kind != "next":
                        break
                    messages += 1
                    errors = json.loads(data).get("errors") or []
                    last_errors = " ".join(e.get("extensions", {}).get("code", "") for e in errors)
        except TimeoutError:
            raise AssertionError(f"still open after {messages} messages") from None
        return Ending(time.time(), messages, None, last_errors)

    async def close(self) -> None:
        await self.stack.aclose()


async def keep_busy(api: Api, project_id: str) -> None:
    """Rename the project about five times a second until cancelled."""
    for n in itertools.count():
        await api.mutate(
            "updateProject", {"id": project_id, "title": f"Take {n}"}, "project { id }"
        )
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("transport", [TRANSPORT_WS, GRAPHQL_WS, SSE])
async def test_an_expiring_token_ends_busy_feeds_the_moment_it_expires(
    studio: StudioServer, database: Path, transport: str
) -> None:
    """Every feed ends at its token's expiry (4403 TOKEN_INVALID on a socket, a TOKEN_INVALID
    error over server-sent events), however busy the project is: no event that arrives
    in the meantime puts the check off."""
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        scene = await api.create_scene(project_id, "Opening", [{"description": "Wide"}])
        again = await api.mutate("logIn", {"email": api.email, "password": PASSWORD}, "token")
        async with Api(studio.base_url, again["token"]) as second_session:
            variables = {"projectId": project_id, "shotId": scene["shots"][0]["id"]}
            expiry = utcnow() + timedelta(seconds=EXPIRES_IN)
            await expire(database, api.token, at=expiry)
            feeds: dict[str, SocketFeed | StreamFeed] = {}
            busy: asyncio.Task[None] | None = None
            try:
                for name, query in FEEDS.items():
                    used = {k: v for k, v in variables.items() if f"${k}" in query}
                    feeds[name] = await (
                        StreamFeed.open(studio, api.token, query, used)
                        if transport == SSE
                        else SocketFeed.open(studio, api.token, transport, query, used)
                    )
                assert utcnow() < expiry, "setting the feeds up took longer than the token lasts"
                busy = asyncio.create_task(keep_busy(second_session, project_id))
                by = expiry.timestamp() + ENDED_WITHIN
                endings = dict(
                    zip(
                        feeds,
                        await asyncio.gather(*(f.ending(by) for f in feeds.values())),
                        strict=True,
                    )
                )
            finally:
                if busy is not None:
                    busy.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await busy
                for feed in feeds.values():
                    await feed.close()
    for name, ending in endings.items():
        if transport == SSE:
            assert ending.reason == "TOKEN_INVALID", (name, ending)
        else:
            assert_sign_in_again(ending.code, ending.reason)
        assert ending.at >= expiry.timestamp(), (name, "ended before the expiry", ending)
    # The project was busy until the end: the project's feed carried its renames.
    assert endings["projectEvents"].messages >= 5, endings


async def test_an_expiring_token_ends_a_long_replay_at_the_instant(
    studio: StudioServer, database: Path
) -> None:
    """A feed replaying pages of events after its cursor (graphql-transport-ws) sends
    none of them once its token has expired: it closes with 4403 at the instant, not
    after the last page."""
    async with Api(studio.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        db = Database(f"sqlite+aiosqlite:///{database}")
        try:
            last = await backlog(db, project_id, 6 * PAGE)
        finally:
            await db.dispose()
        after = encode_cursor(ids.decode(project_id, "Project"), 1)
        client = await Client.open(studio, api.token, TRANSPORT_WS)
        expiry = utcnow() + timedelta(seconds=0.5)
        await expire(database, api.token, at=expiry)
        await client.start(PROJECT_EVENTS, {"projectId": project_id, "after": after})
        received: list[tuple[int, float]] = []
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    message = json.loads(await client.connection.recv())
                    if message.get("type") == "next":
                        event = message["payload"]["data"]["projectEvents"]
                        received.append((event["sequence"], time.time()))
        except ConnectionClosed as closed:
            code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
        closed_at = time.time()
    assert_sign_in_again(code, reason)
    assert received, "nothing was replayed"
    assert received[0][1] < expiry.timestamp(), "the replay began after the expiry"
    late = [sequence for sequence, at in received if at > expiry.timestamp() + 0.1]
    assert not late, f"{len(late)} events replayed after the expiry (up to {late[-1]})"
    assert received[-1][0] < last, "the whole replay went out before the expiry"
    assert [sequence for sequence, _ in received] == list(range(2, 2 + len(received)))
    assert closed_at - expiry.timestamp() < ENDED_WITHIN


# -- a token that signs no one in: TOKEN_INVALID, not "sign in first" ---------------------------

BAD_TOKENS = ["malformed", "unknown", "revoked", "expired"]


async def bad_token(kind: str, studio: StudioServer, database: Path) -> str:
    """A bearer token of `kind` that signs no one in."""
    if kind == "malformed":
        return "not-one-of-ours"
    if kind == "unknown":
        return "sbs_" + secrets.token_urlsafe(32)  # the shape of ours, but never issued
    async with Api(studio.base_url) as api:
        await api.sign_up()
        assert (await api.data("{ viewer { id } }"))["viewer"]["id"] == api.user_id
        if kind == "revoked":
            await api.mutate("logOut", None, "success")
        else:
            await expire(database, api.token)
        return api.token


async def post(
    studio: StudioServer,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
    accept: str = "application/json",
) -> Any:
    """POST one operation with `token` (if any) as the bearer token; the response."""
    headers = {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with Api(studio.base_url) as api:
        return await api.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_a_bad_token_is_token_invalid_over_http_and_server_sent_events(
    studio: StudioServer, database: Path, kind: str
) -> None:
    token = await bad_token(kind, studio, database)
    for query in [
        "{ viewer { id } }",
        'mutation { createProject(input: {title: "x"}) { project { id } } }',
    ]:
        response = await post(studio, query, token=token)
        body = response.json()
        assert codes(body) == ["TOKEN_INVALID"], body
        assert "sign in again" in body["errors"][0]["message"], body
        assert body["data"] is None, body
    streamed = await post(
        studio,
        PROJECT_EVENTS,
        {"projectId": "UHJvamVjdDox"},
        token=token,
        accept="text/event-stream",
    )
    assert "TOKEN_INVALID" in streamed.text, streamed.text
    assert "UNAUTHENTICATED" not in streamed.text, streamed.text


async def test_no_token_is_still_unauthenticated(studio: StudioServer) -> None:
    body = (await post(studio, "{ viewer { id } }")).json()
    assert codes(body) == ["UNAUTHENTICATED"], body
    assert "Sign in first" in body["errors"][0]["message"], body
    # Another scheme is no bearer token at all (RFC 6750 §3.1): sign in first, too.
    async with Api(studio.base_url) as api:
        basic = await api.http.post(
            "/graphql",
            json={"query": "{ viewer { id } }"},
            headers={"Authorization": "Basic dXNlcjpwYXNz"},
        )
    assert codes(basic.json()) == ["UNAUTHENTICATED"], basic.text


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_public_fields_ignore_a_bad_token(
    studio: StudioServer, database: Path, kind: str
) -> None:
    """A client holding a stale token can still sign up and log in (and introspect)."""
    token = await bad_token(kind, studio, database)
    email = f"stale-{secrets.token_hex(5)}@example.com"
    signed_up = await post(
        studio,
        "mutation($input: SignUpInput!) { signUp(input: $input) { token userErrors { code } } }",
        {"input": {"email": email, "password": "correct horse battery", "name": "Stale"}},
        token=token,
    )
    assert signed_up.json()["data"]["signUp"]["userErrors"] == [], signed_up.text
    logged_in = await post(
        studio,
        "mutation($input: LogInInput!) { logIn(input: $input) { token userErrors { code } } }",
        {"input": {"email": email, "password": "correct horse battery"}},
        token=token,
    )
    fresh = logged_in.json()["data"]["logIn"]["token"]
    assert fresh, logged_in.text
    assert (await post(studio, "{ __typename }", token=token)).json() == {
        "data": {"__typename": "Query"}
    }
    viewer = (await post(studio, "{ viewer { email } }", token=fresh)).json()
    assert viewer == {"data": {"viewer": {"email": email}}}


NO_PAYLOAD = object()  # connection_init without a `payload` key


async def refused_at_init(
    studio: StudioServer, protocol: str, payload: Any
) -> tuple[int | None, str, list[dict[str, Any]]]:
    """Open a socket and send `connection_init` with `payload` (NO_PAYLOAD: none at all):
    the close code, reason and messages before it."""
    url = studio.base_url.replace("http://", "ws://") + "/graphql"
    async with connect(
        url,
        subprotocols=[protocol],  # type: ignore[list-item]
        open_timeout=WAIT,
        ping_interval=None,
    ) as connection:
        init: dict[str, Any] = {"type": "connection_init"}
        if payload is not NO_PAYLOAD:
            init["payload"] = payload
        await connection.send(json.dumps(init))
        received: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    received.append(json.loads(await connection.recv()))
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                return None, "", received
            return closed.rcvd.code, closed.rcvd.reason, received
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, GRAPHQL_WS])
@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_a_bad_token_at_connection_init_is_token_invalid(
    studio: StudioServer, database: Path, kind: str, protocol: str
) -> None:
    token = await bad_token(kind, studio, database)
    code, reason, received = await refused_at_init(
        studio, protocol, {"authorization": f"Bearer {token}"}
    )
    assert_sign_in_again(code, reason)
    if protocol == GRAPHQL_WS:
        [error] = received
        assert error["type"] == "connection_error", error
        assert error["payload"]["extensions"] == {"code": "TOKEN_INVALID"}, error
        assert "sign in again" in error["payload"]["message"], error
    else:
        assert received == []


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, GRAPHQL_WS])
@pytest.mark.parametrize(
    "payload",
    [NO_PAYLOAD, None, {}, {"authorization": None}, {"authorization": "Basic dXNlcjpwYXNz"}],
    ids=["none", "null", "empty", "null-authorization", "basic"],
)
async def test_no_token_at_connection_init_is_unauthenticated(
    studio: StudioServer, protocol: str, payload: Any
) -> None:
    """Both protocols allow the payload to be left out or null (graphql-transport-ws:
    `payload?: Record<string, unknown> | null`): no token, as over graphql-ws."""
    code, reason, received = await refused_at_init(studio, protocol, payload)
    assert code == 4403, (code, reason)
    assert reason.startswith("UNAUTHENTICATED: Sign in first"), reason
    if protocol == GRAPHQL_WS:
        assert [message["payload"]["extensions"] for message in received] == [
            {"code": "UNAUTHENTICATED"}
        ], received


# -- the credentials' syntax, alike on every transport -----------------------------------------


async def post_headers(
    studio: StudioServer,
    headers: list[tuple[str, str]],
    query: str = "{ viewer { id } }",
    variables: dict[str, Any] | None = None,
    accept: str = "application/json",
) -> Any:
    """POST one operation with exactly these headers (a name may repeat; values are sent
    as ISO-8859-1 bytes, as a client may); the response."""
    raw = [(name.encode(), value.encode("latin-1")) for name, value in headers]
    async with Api(studio.base_url) as api:
        return await api.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=[(b"Accept", accept.encode()), *raw],
        )


def malformed_credentials(token: str) -> dict[str, str]:
    """Authorization values of the Bearer scheme that hold no well-formed token.

    A tab between scheme and token is not the 1*SP of RFC 9110 section 11.4: the
    client meant a bearer token, so it is a malformed one, not another scheme.
    """
    return {
        "bare": "Bearer",
        "bare-lower": "bearer",
        "tab": f"Bearer\t{token}",
        "two-parts": f"Bearer {token} extra",
        "not-token68": f"Bearer {token[:10]}é{token[10:]}",
        "param": "Bearer realm=studio",
    }


async def test_bearer_credentials_are_read_as_rfc_9110_has_them(studio: StudioServer) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        token = api.token
    # The scheme in any case, one or more spaces before the token: signed in.
    for value in [f"Bearer {token}", f"bearer {token}", f"BEARER   {token}"]:
        body = (await post_headers(studio, [("Authorization", value)])).json()
        assert body == {"data": {"viewer": {"id": api.user_id}}}, (value, body)
    for kind, value in malformed_credentials(token).items():
        response = await post_headers(studio, [("Authorization", value)])
        assert response.status_code == 200, (kind, response.text)
        body = response.json()
        assert codes(body) == ["TOKEN_INVALID"], (kind, body)
        assert "sign in again" in body["errors"][0]["message"], (kind, body)
    # Another scheme, or a token with no scheme at all, is no bearer token.
    for value in ["Basic dXNlcjpwYXNz", "Basic\tdXNlcjpwYXNz", token, 'Digest a=1, b="x, y"']:
        body = (await post_headers(studio, [("Authorization", value)])).json()
        assert codes(body) == ["UNAUTHENTICATED"], (value, body)


async def several_credentials(studio: StudioServer, database: Path) -> dict[str, list[str]]:
    """Ways to send more than one credential, each holding a valid and a revoked token."""
    async with Api(studio.base_url) as api:
        await api.sign_up()
        valid = api.token
    revoked = await bad_token("revoked", studio, database)
    return {
        "valid-then-revoked": [f"Bearer {valid}", f"Bearer {revoked}"],
        "revoked-then-valid": [f"Bearer {revoked}", f"Bearer {valid}"],
        "same-twice": [f"Bearer {valid}", f"Bearer {valid}"],
        "comma-joined": [f"Bearer {valid}, Bearer {revoked}"],
        "basic-then-bearer": [f"Basic dXNlcjpwYXNz, Bearer {valid}"],
    }


def assert_several_refused(response: Any) -> None:
    assert response.status_code == 400, response.text
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "BAD_REQUEST"}, error
    assert "Authorization" in error["message"], error
    assert "exactly one" in error["message"], error


async def test_several_authorization_credentials_are_a_400_and_none_is_used(
    studio: StudioServer, database: Path
) -> None:
    for values in (await several_credentials(studio, database)).values():
        headers = [("Authorization", value) for value in values]
        assert_several_refused(await post_headers(studio, headers))
        # Not even a public operation runs on them: the request itself is refused.
        assert_several_refused(await post_headers(studio, headers, "{ __typename }"))
        streamed = await post_headers(
            studio,
            headers,
            PROJECT_EVENTS,
            {"projectId": "UHJvamVjdDox"},
            accept="text/event-stream",
        )
        assert_several_refused(streamed)


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, GRAPHQL_WS])
async def test_connection_init_reads_credentials_as_http_does(
    studio: StudioServer, database: Path, protocol: str
) -> None:
    async with Api(studio.base_url) as api:
        await api.sign_up()
        token = api.token
    for kind, value in malformed_credentials(token).items():
        code, reason, received = await refused_at_init(studio, protocol, {"authorization": value})
        assert_sign_in_again(code, reason)
        if protocol == GRAPHQL_WS:
            assert [m["payload"]["extensions"] for m in received] == [{"code": "TOKEN_INVALID"}], (
                kind,
                received,
            )
    # Several credentials, or a value that is not a string: a malformed message (4400).
    several = await several_credentials(studio, database)
    payloads: list[dict[str, Any]] = [
        {"authorization": several["comma-joined"][0]},
        {"authorization": f"Bearer {token}", "Authorization": f"Bearer {token}"},
        {"authorization": ["Bearer", token]},
    ]
    for payload in payloads:
        code, reason, received = await refused_at_init(studio, protocol, payload)
        assert code == 4400, (payload, code, reason)
        assert reason.startswith("BAD_REQUEST: "), reason
        if protocol == GRAPHQL_WS:
            assert [m["payload"]["extensions"] for m in received] == [{"code": "BAD_REQUEST"}], (
                payload,
                received,
            )
    # The key in any case, the scheme in any case: signed in.
    client = await refused_or_signed_in(studio, protocol, {"AUTHORIZATION": f"bearer  {token}"})
    assert client == "connection_ack"


async def refused_or_signed_in(studio: StudioServer, protocol: str, payload: Any) -> str:
    """The type of the server's answer to `connection_init` with `payload`."""
    url = studio.base_url.replace("http://", "ws://") + "/graphql"
    async with connect(
        url,
        subprotocols=[protocol],  # type: ignore[list-item]
        open_timeout=WAIT,
        ping_interval=None,
    ) as connection:
        await connection.send(json.dumps({"type": "connection_init", "payload": payload}))
        answer: str = json.loads(await asyncio.wait_for(connection.recv(), WAIT))["type"]
        return answer


async def test_a_logged_out_graphql_ws_socket_closes_whatever_it_sends(
    studio: StudioServer,
) -> None:
    """Rights come before the operation's type: a query, which graphql-ws does not
    carry, closes a logged-out socket with 4403 rather than being answered BAD_REQUEST."""
    async with Api(studio.base_url) as api:
        await api.sign_up()
        client = await Client.open(studio, api.token, GRAPHQL_WS)
        await api.mutate("logOut", None, "success")
        await client.start("{ viewer { id } }")
        assert_sign_in_again(*await closing(client.connection))


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
        team_id, project_id, scene_id = await shared_project(owner, member)
        own_project = await member.create_project("Mine")
        client = await Client.open(studio, member.token, TRANSPORT_WS)
        await owner.remove(member, team_id)
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
