"""Shared subscription feeds (api/fanout.py) against a real server on a real socket.

The server runs in this process (uvicorn on a free port, the whole app with its
lifespan) so that the test can count the SQL statements its engine sends and the
executions of each shared group; the clients are real WebSockets speaking
graphql-transport-ws. Subscribers of the same operation, variables and user share
one execution per event; different users never share; a subscriber who loses
access is dropped at once however it is delivered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import secrets
import socket as tcp
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

import migrations
from api.app import create_app
from api.cli import _uvicorn_options
from api.environment import UNLIMITED
from api.fanout import OUTBOX_BYTES, FanOut, Follower
from api.graphql import StudioGraphQL
from api.ports import free_port
from api.settings import Settings
from api.state import AppState
from services.database import Database
from services.validation import PLANNER_DATA_MAX
from tests.factories import statements
from tests.realtime_harness import WAIT, Api, Feed, Socket
from tests.servers import StudioServer, serving_in_process
from tests.test_bus import _reachable

pytestmark = pytest.mark.e2e

SECRET_KEY = "shared feed tests secret key, long enough to be accepted"
REDIS_URL = "redis://127.0.0.1:6379/0"

# Every subscriber's event reads the scene it names: unshared, each one reads it.
WITH_NODE = """
subscription($projectId: ID!) {
  projectEvents(projectId: $projectId) {
    sequence kind
    node { id ... on Scene { title } }
  }
}
"""

# What differs between two members of one team: their role.
WITH_ROLE = """
subscription($projectId: ID!) {
  projectEvents(projectId: $projectId) {
    sequence kind
    node { ... on Scene { project { team { viewerRole } } } }
  }
}
"""


@dataclass
class Running:
    base_url: str
    app: Starlette

    @property
    def state(self) -> AppState:
        return cast(AppState, self.app.state.studio)

    @property
    def db(self) -> Database:
        return self.state.db

    @property
    def fanout(self) -> FanOut:
        for route in self.app.routes:
            if isinstance(route, WebSocketRoute) and route.path == "/graphql":
                view = route.endpoint
                assert isinstance(view, StudioGraphQL)
                return view.fanout
        raise AssertionError("no GraphQL WebSocket route")

    def members(self) -> list[int]:
        """How many subscribers each running group has, in no order."""
        return sorted(len(group._members) for group in self.fanout._groups.values())

    def executions(self) -> int:
        return sum(group.executions for group in self.fanout._groups.values())


_UNLIMITED: dict[str, Any] = {name.lower(): value for name, value in UNLIMITED.items()}


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Running]:
    """The app on each engine: SQLite with the in-process bus, PostgreSQL with Redis."""
    url = database_url
    redis_bus = url.startswith("postgresql")
    if redis_bus:
        await _reachable("redis")
    migrated = Database(url)
    try:
        await migrations.upgrade_to_head(migrated)
    finally:
        await migrated.dispose()
    settings = Settings(
        _env_file=None,
        database_url=url,
        secret_key=SECRET_KEY,
        event_bus_url=REDIS_URL if redis_bus else "memory://",
        generation_poll_seconds=3600,  # no reads of its own while statements are counted
        # No request limit: these tests sign up more than signUp's 20 an hour from one
        # address, and on Redis the counters outlive the run (tests/test_limits.py tests them).
        **_UNLIMITED,
    )
    port = free_port()
    app = create_app(settings, port=port)
    # As `studio serve` runs it: shared frames go through its protocol's write_now.
    async with serving_in_process(app, port, **_uvicorn_options(settings)) as base_url:
        yield Running(base_url, app)


async def until(condition: Any, what: str) -> None:
    """Wait (bounded) until `condition()` holds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never: {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def sockets(server: Running, token: str, count: int) -> AsyncIterator[list[Socket]]:
    opened = [await Socket.open(cast(StudioServer, server), token) for _ in range(count)]
    try:
        yield opened
    finally:
        for socket in opened:
            await socket.close()


async def subscribe_all(opened: list[Socket], query: str, variables: dict[str, Any]) -> list[Feed]:
    feeds = []
    for socket in opened:
        feed = await socket.subscribe(query, variables)
        assert (await feed.next())["projectEvents"]["kind"] == "SNAPSHOT"
        feeds.append(feed)
    return feeds


async def setup(server: Running) -> tuple[Api, str, str, str]:
    """An owner, a project of a team of theirs, a scene in it; and the team's ID."""
    owner = await Api(server.base_url).sign_up("Owner")
    team = await owner.mutate("createTeam", {"name": "Crew"}, "team { id }")
    team_id = team["team"]["id"]
    project_id = await owner.create_project(team_id=team_id)
    scene = await owner.mutate(
        "createScene", {"projectId": project_id, "title": "Quay"}, "scene { id }"
    )
    return owner, project_id, scene["scene"]["id"], team_id


async def rename_and_receive(
    server: Running, owner: Api, scene_id: str, feeds: list[Feed]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rename the scene once; the SELECTs the server sent until every feed had the
    event (the rename's own included), and what each feed got."""
    title = f"Quay {secrets.token_hex(3)}"
    with statements(server.db) as sent:
        await owner.rename_scene(scene_id, title)
        got = [(await feed.next())["projectEvents"] for feed in feeds]
    for event in got:
        assert event["kind"] == "SCENE_UPDATED"
        assert event["node"] == {"id": scene_id, "title": title}
    return [text for text in sent if text.lstrip().upper().startswith("SELECT")], got


async def test_like_subscribers_share_one_execution_and_reads_stay_flat(server: Running) -> None:
    owner, project_id, scene_id, _ = await setup(server)
    variables = {"projectId": project_id}
    async with sockets(server, owner.token, 21) as opened:
        alone = await subscribe_all(opened[:1], WITH_NODE, variables)
        await until(lambda: server.members() == [1], "the first subscriber parked")
        await rename_and_receive(server, owner, scene_id, alone)  # the group warms up
        one, _ = await rename_and_receive(server, owner, scene_id, alone)

        crowd = alone + await subscribe_all(opened[1:], WITH_NODE, variables)
        await until(lambda: server.members() == [21], "every subscriber parked in one group")
        await rename_and_receive(server, owner, scene_id, crowd)
        before = server.executions()
        twenty_one, got = await rename_and_receive(server, owner, scene_id, crowd)
        assert server.executions() == before + 1  # one execution for 21 subscribers
        assert len({event["sequence"] for event in got}) == 1
        # The same statements per event for 1 subscriber and for 21: none per subscriber
        # (reads per subscriber would add 20 or more). The window also sees the server's
        # own background reads (a subscriber's periodic access check, the engine's poll),
        # which may fall into either window: at most two such are allowed for.
        assert len(twenty_one) <= len(one) + 2, (one, twenty_one)


async def test_users_never_share_a_frame(server: Running) -> None:
    owner, project_id, scene_id, team_id = await setup(server)
    viewer = await Api(server.base_url).sign_up("Viewer")
    await viewer.join(owner, team_id, role="VIEWER")
    variables = {"projectId": project_id}
    async with (
        sockets(server, owner.token, 2) as owners,
        sockets(server, viewer.token, 2) as viewers,
    ):
        owner_feeds = await subscribe_all(owners, WITH_ROLE, variables)
        viewer_feeds = await subscribe_all(viewers, WITH_ROLE, variables)
        await until(lambda: server.members() == [2, 2], "a group per user")
        await owner.rename_scene(scene_id, "Pier")
        for feeds, role in ((owner_feeds, "OWNER"), (viewer_feeds, "VIEWER")):
            for feed in feeds:
                event = (await feed.next())["projectEvents"]
                assert event["node"]["project"]["team"]["viewerRole"] == role


async def test_a_shared_subscriber_who_loses_access_gets_nothing_more(server: Running) -> None:
    owner, project_id, scene_id, team_id = await setup(server)
    member = await Api(server.base_url).sign_up("Member")
    await member.join(owner, team_id)
    variables = {"projectId": project_id}
    async with (
        sockets(server, owner.token, 1) as owners,
        sockets(server, member.token, 2) as members,
    ):
        owner_feed = (await subscribe_all(owners, WITH_NODE, variables))[0]
        member_feeds = await subscribe_all(members, WITH_NODE, variables)
        await until(lambda: server.members() == [1, 2], "both users' groups")
        await owner.rename_scene(scene_id, "Pier")
        for feed in [owner_feed, *member_feeds]:
            assert (await feed.next())["projectEvents"]["kind"] == "SCENE_UPDATED"

        await owner.remove(member, team_id)
        await owner.rename_scene(scene_id, "Jetty")  # must not reach the removed member
        for feed in member_feeds:
            assert await feed.error_codes() == ["NOT_FOUND"]  # then `complete`, nothing else
        event = (await owner_feed.next())["projectEvents"]
        assert event["node"]["title"] == "Jetty"


async def test_a_shared_subscriber_signed_out_is_closed_at_once(server: Running) -> None:
    owner, project_id, _, _ = await setup(server)
    variables = {"projectId": project_id}
    async with sockets(server, owner.token, 2) as opened:
        await subscribe_all(opened, WITH_NODE, variables)
        await until(lambda: server.members() == [2], "both parked")
        await owner.data("mutation { logOut { userErrors { code } } }")
        for socket in opened:
            assert await socket.close_code() == 4403


# Each event's frame carries the project's planner data: a large frame per event.
WITH_PLANNER = """
subscription($projectId: ID!) {
  projectEvents(projectId: $projectId) {
    sequence kind
    node { ... on Project { promptPlannerData } }
  }
}
"""


def queued_bytes() -> list[int]:
    """The bytes each live shared subscriber has waiting for its socket."""
    return [
        follower.queued_bytes for follower in gc.get_objects() if isinstance(follower, Follower)
    ]


def _masked(message: dict[str, Any]) -> bytes:
    """A client's text frame (masked, as RFC 6455 requires of clients)."""
    payload = json.dumps(message).encode()
    mask = secrets.token_bytes(4)
    length = len(payload)
    header = bytes([0x81]) + (
        bytes([0x80 | length]) if length < 126 else bytes([0x80 | 126]) + length.to_bytes(2, "big")
    )
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def stalled_subscriber(
    server: Running, token: str, query: str, variables: dict[str, Any]
) -> tcp.socket:
    """A raw socket that signs in, subscribes, and from then on never reads a byte."""
    loop = asyncio.get_running_loop()
    raw = tcp.socket()
    raw.setsockopt(tcp.SOL_SOCKET, tcp.SO_RCVBUF, 4096)
    raw.setblocking(False)
    port = int(server.base_url.rsplit(":", 1)[1])
    await loop.sock_connect(raw, ("127.0.0.1", port))
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    await loop.sock_sendall(
        raw,
        (
            f"GET /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
        ).encode(),
    )
    received = b""
    while b"connection_ack" not in received:
        if b"\r\n\r\n" in received and not received.startswith(b"HTTP/1.1 101"):
            raise AssertionError(received)
        if b"\r\n\r\n" in received and b"init" not in received:
            received += b"init"  # sent once, after the handshake
            await loop.sock_sendall(
                raw,
                _masked(
                    {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
                ),
            )
        chunk = await asyncio.wait_for(loop.sock_recv(raw, 65536), WAIT)
        assert chunk, "closed before the ack"
        received += chunk
    await loop.sock_sendall(
        raw,
        _masked(
            {"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}}
        ),
    )
    return raw


@contextlib.asynccontextmanager
async def stalled_beside_reading(
    server: Running, token: str, project_id: str
) -> AsyncIterator[tuple[tcp.socket, Feed]]:
    """Two subscribers of the project's large events (`WITH_PLANNER`) parked in one
    group: a raw socket that never reads, and a feed that does."""
    variables = {"projectId": project_id}
    stalled = await stalled_subscriber(server, token, WITH_PLANNER, variables)
    try:
        async with sockets(server, token, 1) as reading:
            feed = (await subscribe_all(reading, WITH_PLANNER, variables))[0]
            await until(lambda: server.members() == [2], "both parked")
            yield stalled, feed
    finally:
        stalled.close()


async def test_a_shared_subscriber_that_never_reads_holds_bounded_bytes(server: Running) -> None:
    """A parked subscriber whose socket does not keep up queued up to OUTBOX frames
    whatever their size, each its own copy of the group's payload: 256 frames of a
    200 kB planner were 51 MB for one client that stops reading (an unshared
    subscription holds one frame). The outbox is bounded in bytes too, and a frame
    waiting there shares the group's payload."""
    owner, project_id, _, _ = await setup(server)
    async with stalled_beside_reading(server, owner.token, project_id) as (_, feed):
        planner = "p" * (PLANNER_DATA_MAX - 10)
        handed_back = False
        for n in range(60):
            await owner.mutate(
                "updateProject",
                {"id": project_id, "promptPlannerData": f"{n:08}{planner}"},
                "project { id }",
            )
            event = (await feed.next())["projectEvents"]  # the reading one keeps up
            assert event["node"]["promptPlannerData"].startswith(f"{n:08}")
            assert max(queued_bytes()) < OUTBOX_BYTES + PLANNER_DATA_MAX * 2, n
            handed_back = handed_back or server.members() == [1]
        assert handed_back  # the stalled one left the group, its queue bounded
