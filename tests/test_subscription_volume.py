"""Thousands of subscriptions opened and closed leave nothing behind.

Subscriptions end by cancellation: a WebSocket `complete` or disconnect cancels
the operation's task once, but a Server-Sent Events stream runs in Starlette's
anyio task group, whose cancel scope cancels the task again at every await until
it is gone. Cleanup that awaits (a lock, an UNSUBSCRIBE to Redis or PostgreSQL)
was cut short that way, so a subscription stayed in the bus's channel map for
good: its queue kept filling with every later event, and the channel stayed
subscribed on the broker. Here each kind of feed is opened and closed by the
thousand, in-process (the bus, `feed.follow`, the schema) and against real
`studio serve` processes, and what they made must be gone.
"""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis.asyncio as redis

from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Context, Resources
from services.database import Database
from services.realtime import events, feed
from services.realtime.bus import EventBus, Subscription
from tests.factories import MEDIA, Account, account, project, scene
from tests.realtime_harness import ANIMATION_STATUS, ITERATION_STATUS, PROJECT_EVENTS, Api, Socket
from tests.servers import StudioServer
from tests.test_bus import URLS, _reachable
from tests.test_fanout import RedisProcess, paused_redis  # noqa: F401  (a fixture)
from tests.test_subscriptions import studio_server

NETWORK_BUSES = ["redis", "postgres"]


def live(kind: type) -> int:
    """Objects of `kind` still reachable after a full collection."""
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, kind))


async def settle(bus: EventBus) -> None:
    """Let the bus finish the unsubscribing it does after subscribers leave."""
    for _ in range(100):
        if not getattr(bus, "_chores", None):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)


async def started(kind: str) -> EventBus:
    await _reachable(kind)
    instance = EventBus(URLS[kind])
    await instance.start()
    return instance


@pytest.fixture(params=NETWORK_BUSES)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    instance = await started(request.param)
    yield instance
    await instance.stop()


async def test_subscriptions_cancelled_by_a_cancel_scope_are_freed(bus: EventBus) -> None:
    made: list[weakref.ref[Subscription]] = []

    async def hold(n: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        # As `feed.follow` does: the project's channel and the user's.
        async with bus.subscribe(f"project:{n % 7}", "access:1") as subscription:
            made.append(weakref.ref(subscription))
            task_status.started()
            await subscription.get()

    for _ in range(3):
        async with anyio.create_task_group() as group:
            for n in range(400):
                await group.start(hold, n)
            group.cancel_scope.cancel()  # what Starlette does when an SSE client leaves
    await settle(bus)
    gc.collect()
    alive = sum(1 for ref in made if ref() is not None)
    assert (len(made), alive, bus.subscriber_count) == (1200, 0, 0)


async def test_followers_cancelled_by_a_cancel_scope_are_freed(db: Database, bus: EventBus) -> None:
    owner = await account(db)
    pk = ids.decode(await project(db, owner), "Project")

    async def allowed() -> bool:
        return True

    async def follow(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        stream = feed.follow(
            bus,
            db.session,
            pk,
            after=None,
            user_id=ids.decode(owner.user_id, "User"),
            still_allowed=allowed,
        )
        async for event in stream:
            if event.kind == events.SNAPSHOT:
                task_status.started()

    before = live(Subscription)
    for _ in range(2):
        async with anyio.create_task_group() as group:
            for _ in range(300):
                await group.start(follow)
            group.cancel_scope.cancel()
    await settle(bus)
    assert (live(Subscription) - before, bus.subscriber_count) == (0, 0)


# -- through the schema -----------------------------------------------------------------------


async def feeds_of(db: Database, owner: Account) -> list[tuple[str, dict[str, Any]]]:
    project_id = await project(db, owner)
    shot_id = (await scene(db, owner, project_id, shots=1))["shots"][0]["id"]
    return [
        (PROJECT_EVENTS, {"projectId": project_id}),
        (ITERATION_STATUS, {"shotId": shot_id}),
        (ANIMATION_STATUS, {"projectId": project_id}),
    ]


async def test_every_kind_of_feed_opened_and_closed_by_the_thousand_is_freed(
    db: Database, bus: EventBus
) -> None:
    live_db = Database(db.url, bus=bus)
    try:
        owner = await account(live_db)
        feeds = await feeds_of(live_db, owner)
        tools = Resources(db=live_db, media=MEDIA, bus=bus)

        async def run(n: int, *, task_status: anyio.abc.TaskStatus[None]) -> None:
            query, variables = feeds[n % len(feeds)]
            context = await build_context(tools, owner.token)
            stream = await schema.subscribe(query, variable_values=variables, context_value=context)
            async for result in stream:
                assert not result.errors, result.errors
                task_status.started()

        before = {kind: live(kind) for kind in (Subscription, Context, Database)}
        # 400 feeds per database and bus, 1,600 in all: cleanup cut short leaves every
        # one of them behind, while 600 a round took four times as long to show it.
        for _ in range(2):
            async with anyio.create_task_group() as group:
                for n in range(200):
                    await group.start(run, n)
                group.cancel_scope.cancel()
        await settle(bus)
        # Before any collection: a feed must not wait for the garbage collector to leave.
        assert bus.subscriber_count == 0
        # None left behind: no more of each than before (fewer when something an earlier
        # test left was freed meanwhile, which is not this test's business).
        after = {kind: live(kind) for kind in before}
        assert {kind: max(after[kind] - before[kind], 0) for kind in before} == dict.fromkeys(
            before, 0
        ), (before, after)
    finally:
        await live_db.dispose()


# -- against real servers ---------------------------------------------------------------------


@pytest.fixture
def redis_studio(paused_redis: RedisProcess, tmp_path: Path) -> Iterator[StudioServer]:  # noqa: F811
    """A server on SQLite whose bus is a Redis server of this test alone."""
    server = studio_server(
        tmp_path,
        "volume",
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}",
        EVENT_BUS_URL=paused_redis.url,
        LOG_LEVEL="WARNING",
    )
    with server:
        yield server


async def subscribed_channels(url: str) -> list[str]:
    """The pub/sub channels someone listens on, as Redis itself counts them."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        channels = await client.pubsub_channels()
    finally:
        await client.aclose()
    return sorted(str(name) for name in channels if "control" not in str(name))


def rss_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


async def open_sse(api: Api, query: str, variables: dict[str, Any]) -> httpx.Response:
    """A Server-Sent Events subscription, read up to its first message."""
    request = api.http.build_request(
        "POST",
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {api.token}", "Accept": "text/event-stream"},
    )
    response = await api.http.send(request, stream=True)
    assert response.status_code == 200
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            assert "errors" not in json.loads(line[len("data: ") :])
            return response
    raise AssertionError("the stream ended before its first message")


@pytest.mark.e2e
async def test_thousands_of_subscriptions_over_the_wire_leave_nothing_subscribed(
    redis_studio: StudioServer,
    paused_redis: RedisProcess,  # noqa: F811
) -> None:
    server = redis_studio
    async with Api(server.base_url) as api:
        await api.sign_up()
        project_id = await api.create_project()
        shot_id = (await api.create_scene(project_id, "S", [{"description": "a"}]))["shots"][0][
            "id"
        ]
        feeds = [
            (PROJECT_EVENTS, {"projectId": project_id}),
            (ITERATION_STATUS, {"shotId": shot_id}),
            (ANIMATION_STATUS, {"projectId": project_id}),
        ]
        sizes = []
        for round_number in range(4):
            # 300 over WebSocket (3 sockets of 100), then 150 streams of SSE.
            sockets = [await Socket.open(server, api.token) for _ in range(3)]
            subscribed = [
                await socket.subscribe(*feeds[n % 3]) for socket in sockets for n in range(100)
            ]
            for feed in subscribed:
                await feed.next(within=120)
            async with Api(server.base_url, api.token) as sse:
                await sse.http.aclose()
                sse.http = httpx.AsyncClient(  # one connection per stream, all open at once
                    base_url=server.base_url,
                    timeout=60,
                    trust_env=False,
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
                )
                streams = [await open_sse(sse, *feeds[n % 3]) for n in range(150)]
                assert len(await subscribed_channels(paused_redis.url)) == 2  # project, access
                await asyncio.gather(*(stream.aclose() for stream in streams))
            await asyncio.gather(*(socket.close() for socket in sockets))
            for _ in range(100):
                if not await subscribed_channels(paused_redis.url):
                    break
                await asyncio.sleep(0.1)
            assert await subscribed_channels(paused_redis.url) == [], (
                f"round {round_number}: the server still listens after every subscriber left"
            )
            sizes.append(rss_megabytes(server.process.pid))
        # The server still serves new subscribers, and its memory did not keep growing.
        async with await Socket.open(server, api.token) as socket:
            feed = await socket.subscribe(*feeds[0])
            assert (await feed.next())["projectEvents"]["kind"] == "SNAPSHOT"
    print(f"\nserver RSS after each round of 450 subscriptions: {sizes} MB")
