"""The event bus on each backend: memory, and real Redis and PostgreSQL connections."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis
from broadcaster import Event

from services.realtime.backends.base import RESYNC
from services.realtime.backends.redis import RedisBackend
from services.realtime.bus import BusError, EventBus, SubscriberTooSlow, Subscription
from tests.conftest import _unavailable
from tests.servers import free_port

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_BUS_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
URLS = {"memory": "memory://", "redis": REDIS_URL, "postgres": POSTGRES_URL}


async def _reachable(kind: str) -> None:
    try:
        if kind == "redis":
            client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
            await client.ping()
            await client.aclose()
        elif kind == "postgres":
            connection = await asyncpg.connect(
                POSTGRES_URL.replace("postgres://", "postgresql://"), timeout=3
            )
            await connection.close()
    except (OSError, asyncpg.PostgresError, redis.ConnectionError) as error:
        _unavailable(kind, error)


@pytest.fixture(params=["memory", "redis", "postgres"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    await _reachable(request.param)
    instance = EventBus(URLS[request.param], queue_size=16)
    await instance.start()
    yield instance
    await instance.stop()


def channel() -> str:
    return f"test_{secrets.token_hex(6)}"


async def receive(subscription: Subscription, count: int) -> list[dict[str, object]]:
    return [await asyncio.wait_for(subscription.get(), 10) for _ in range(count)]


async def test_messages_arrive_in_order_as_json(bus: EventBus) -> None:
    name = channel()
    async with bus.subscribe(name) as subscription:
        for n in range(10):
            await bus.publish(name, {"sequence": n, "kind": "image.updated", "ids": [n, "x"]})
        got = await receive(subscription, 10)
    assert got == [{"sequence": n, "kind": "image.updated", "ids": [n, "x"]} for n in range(10)]


async def test_every_subscriber_of_a_channel_gets_it_and_others_do_not(bus: EventBus) -> None:
    name, other = channel(), channel()
    async with (
        bus.subscribe(name) as first,
        bus.subscribe(name) as second,
        bus.subscribe(other) as third,
    ):
        await bus.publish(name, {"n": 1})
        await bus.publish(other, {"n": 2})
        assert await receive(first, 1) == [{"n": 1}]
        assert await receive(second, 1) == [{"n": 1}]
        assert await receive(third, 1) == [{"n": 2}]
    assert bus.subscriber_count == 0


async def test_one_subscription_can_follow_several_channels(bus: EventBus) -> None:
    project, access = channel(), channel()
    async with bus.subscribe(project, access) as subscription, bus.subscribe(access) as alone:
        assert bus.subscriber_count == 2
        await bus.publish(project, {"n": 1})
        await bus.publish(access, {"n": 2})
        await bus.publish(project, {"n": 3})
        assert await receive(subscription, 3) == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert await receive(alone, 1) == [{"n": 2}]
    assert bus.subscriber_count == 0


async def test_notices_are_counted_as_they_arrive_and_left_in_the_queue(bus: EventBus) -> None:
    project, access = channel(), channel()
    async with (
        bus.subscribe(project, access, notices=("access",)) as subscription,
        bus.subscribe(project, access) as witness,  # given each message with `subscription`
    ):
        await bus.publish(project, {"n": 1})
        await bus.publish(access, {"access": "changed"})
        await bus.publish(project, {"n": 2, "accessed": True})
        await bus.publish(access, {"access": "changed"})
        await receive(witness, 4)
        assert subscription.notices_received == 2  # counted before anything is read
        assert witness.notices_received == 0
        assert await receive(subscription, 4) == [
            {"n": 1},
            {"access": "changed"},
            {"n": 2, "accessed": True},
            {"access": "changed"},
        ]
        assert subscription.notices_received == 2


async def test_ping_is_a_round_trip(bus: EventBus) -> None:
    await bus.ping()


async def test_a_slow_subscriber_is_cut_off_not_buffered_without_limit(bus: EventBus) -> None:
    name = channel()
    async with bus.subscribe(name) as slow, bus.subscribe(name) as fast:
        for n in range(40):
            await bus.publish(name, {"n": n})
            assert await receive(fast, 1) == [{"n": n}]  # a subscriber that keeps up gets all
        assert slow.overflowed
        kept = await receive(slow, 16)  # what fitted in its queue, in order...
        assert kept == [{"n": n} for n in range(16)]
        with pytest.raises(SubscriberTooSlow):  # ...then it is told to resume from its cursor
            await slow.get()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_two_processes_share_one_bus(kind: str) -> None:
    await _reachable(kind)
    here, there = EventBus(URLS[kind]), EventBus(URLS[kind])
    await here.start()
    await there.start()
    try:
        name = channel()
        async with there.subscribe(name) as subscription:
            await here.publish(name, {"from": "here"})
            assert await receive(subscription, 1) == [{"from": "here"}]
    finally:
        await here.stop()
        await there.stop()


def _tagged(kind: str, tag: str) -> str:
    """The bus URL of `kind` whose connections carry `tag` as their client name, so a
    test can find them among everyone else's on the shared server."""
    parameter = "client_name" if kind == "redis" else "application_name"
    url = URLS[kind]
    return f"{url}{'&' if '?' in url else '?'}{parameter}={tag}"


async def _kill_listener(kind: str, tag: str) -> None:
    """Drop the listening connection of the bus made with `_tagged(kind, tag)` from the
    server side, as a failover would; other buses on the server are left alone."""
    if kind == "redis":
        admin = redis.Redis.from_url(REDIS_URL)
        try:
            for client in await admin.client_list(_type="pubsub"):
                if client["name"] == tag:
                    await admin.client_kill_filter(_id=client["id"])
        finally:
            await admin.aclose()
    else:
        admin = await asyncpg.connect(POSTGRES_URL.replace("postgres://", "postgresql://"))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = $1 AND query ILIKE 'LISTEN%'",
                tag,
            )
        finally:
            await admin.close()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_a_dropped_connection_is_remade_and_the_stream_carries_on_after_a_resync(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _reachable(kind)
    tag = channel()
    bus = EventBus(_tagged(kind, tag))
    await bus.start()
    try:
        name = channel()
        async with bus.subscribe(name) as subscription:
            await bus.publish(name, {"n": "before"})
            assert await receive(subscription, 1) == [{"n": "before"}]
            await _kill_listener(kind, tag)
            # Publish until the re-made listener hears it: messages sent while it was away
            # are lost at this level, which is why clients resume from the events table.
            deadline = asyncio.get_running_loop().time() + 20
            seen = []
            while True:
                await bus.publish(name, {"n": "after"})
                try:
                    message = await asyncio.wait_for(subscription.get(), 0.5)
                except TimeoutError:
                    assert asyncio.get_running_loop().time() < deadline, "the bus never came back"
                    continue
                seen.append(message)
                if message == {"n": "after"}:
                    break
            await bus.ping()
            # Told to catch up from its own records, once, before the stream goes on.
            assert seen.count({"resync": True}) == 1, seen
    finally:
        await bus.stop()
    assert any("reconnected" in record.getMessage() for record in caplog.records)


async def _listeners_named(tag: str) -> int:
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        return sum(client["name"] == tag for client in await admin.client_list(_type="pubsub"))
    finally:
        await admin.aclose()


async def test_a_listener_remade_by_redis_py_itself_still_resyncs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """redis-py re-makes a dropped pub/sub connection by itself when a SUBSCRIBE (another
    subscriber arriving) finds it gone, and subscribes its channels again: what was
    published meanwhile is lost with no error to the listener, so it must still say so."""
    await _reachable("redis")
    tag = channel()
    backend = RedisBackend(_tagged("redis", tag))
    await backend.connect()
    admin = redis.Redis.from_url(REDIS_URL)
    try:
        name = channel()
        await backend.subscribe(name)
        await _kill_listener("redis", tag)
        assert await _listeners_named(tag) == 0
        await admin.publish(name, "published while no one listened")
        # The next subscriber's SUBSCRIBE meets the dropped connection, and the library
        # connects again behind it (the first write may still go out before the reset).
        deadline = asyncio.get_running_loop().time() + 10
        while await _listeners_named(tag) == 0:
            assert asyncio.get_running_loop().time() < deadline, "redis-py never reconnected"
            await backend.subscribe(channel())
            await asyncio.sleep(0.05)
        await admin.publish(name, "after")
        first = await asyncio.wait_for(backend.next_published(), 5)
        assert first == Event(RESYNC, "{}")
        assert any("lost Redis" in record.getMessage() for record in caplog.records)
        # ...and the stream goes on, on a listener of its own.
        await admin.publish(name, "later")
        assert await asyncio.wait_for(backend.next_published(), 5) == Event(name, "later")
    finally:
        await admin.aclose()
        await backend.disconnect()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_a_bus_started_while_its_backend_is_down_is_not_ready(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A server starts without its bus (readiness says so) instead of refusing to start."""
    await _reachable(kind)
    port = free_port()
    down = {
        "redis": f"redis://127.0.0.1:{port}/0",
        "postgres": f"postgres://postgres@127.0.0.1:{port}/postgres",
    }[kind]
    bus = EventBus(down)
    await bus.start()
    try:
        with pytest.raises(BusError):
            await bus.ping(within=0.5)
        with pytest.raises(BusError):
            await bus.publish(channel(), {"n": 1})
        assert any("unreachable" in record.getMessage() for record in caplog.records)
    finally:
        await bus.stop()


async def test_a_bus_started_before_redis_connects_when_redis_comes_up() -> None:
    if shutil.which("redis-server") is None:
        _unavailable("redis-server", FileNotFoundError("redis-server"))
    port = free_port()
    bus = EventBus(f"redis://127.0.0.1:{port}/0")
    await bus.start()
    server = await asyncio.create_subprocess_exec(
        *("redis-server", "--port", str(port), "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            try:
                await bus.ping(within=0.5)
                break
            except BusError:
                assert asyncio.get_running_loop().time() < deadline, "never connected"
                await asyncio.sleep(0.2)
        name = channel()
        async with bus.subscribe(name) as subscription:
            await bus.publish(name, {"n": 1})
            assert await receive(subscription, 1) == [{"n": 1}]
    finally:
        await bus.stop()
        server.kill()
        await server.wait()


@pytest.mark.parametrize("kind", ["redis", "postgres"])
async def test_namespaces_keep_studios_on_one_server_apart(kind: str) -> None:
    await _reachable(kind)
    ours, theirs = EventBus(URLS[kind], namespace="a1"), EventBus(URLS[kind], namespace="b2")
    await ours.start()
    await theirs.start()
    try:
        name = channel()
        async with ours.subscribe(name) as subscription:
            await theirs.publish(name, {"from": "another studio"})
            await ours.publish(name, {"from": "us"})
            assert await receive(subscription, 1) == [{"from": "us"}]
    finally:
        await ours.stop()
        await theirs.stop()


def test_broadcaster_is_used_through_its_public_names_only() -> None:
    """broadcaster is alpha: its private modules (`broadcaster._base`, ...) may move."""
    from pathlib import Path

    sources = Path(__file__).resolve().parent.parent / "services"
    private = [
        str(path)
        for path in sources.rglob("*.py")
        if "broadcaster._" in path.read_text(encoding="utf-8")
    ]
    assert private == []
    assert list(sources.rglob("*.py"))  # the scan saw the sources
