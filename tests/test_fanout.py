"""Fan-out off the writer's path: a write hands its events over and returns; the bus sends them.

The bus publishes what writers post from its own task, in order, and never
drops a message without telling its channel to resync; its subscribers take
turns (a few at a time) instead of all running at once on every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from schema import ids
from services.database import Database
from services.realtime import events
from services.realtime.bus import EventBus, Subscription
from services.tables import ProjectRow
from tests.conftest import _unavailable
from tests.factories import account, project
from tests.servers import HOST, free_port
from tests.test_bus import URLS, _reachable, channel


async def receive(subscription: Subscription, count: int) -> list[dict[str, object]]:
    return [await asyncio.wait_for(subscription.get(), 10) for _ in range(count)]


@pytest.fixture(params=["memory", "redis", "postgres"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    await _reachable(request.param)
    instance = EventBus(URLS[request.param], queue_size=2_000)
    await instance.start()
    yield instance
    await instance.stop()


async def test_posting_returns_at_once_and_keeps_each_channels_order(bus: EventBus) -> None:
    one, two = channel(), channel()
    async with bus.subscribe(one) as first, bus.subscribe(two) as second:
        for n in range(300):  # no await in between: nothing is sent from here
            bus.post(one, {"n": n})
            bus.post(two, {"n": -n})
        assert bus.unpublished == 600
        assert first.overflowed is False
        assert await receive(first, 300) == [{"n": n} for n in range(300)]
        assert await receive(second, 300) == [{"n": -n} for n in range(300)]
    assert bus.unpublished == 0


async def test_a_message_the_outbox_cannot_hold_makes_its_channel_resync(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = EventBus("memory://", outbox_size=2)
    await bus.start()
    try:
        name, other = channel(), channel()
        async with bus.subscribe(name) as subscription, bus.subscribe(other) as bystander:
            for n in range(5):
                bus.post(name, {"n": n})  # 0 and 1 fit; 2, 3 and 4 do not
            await bus.flushed()
            assert await receive(subscription, 3) == [{"n": 0}, {"n": 1}, {"resync": True}]
            bus.post(other, {"n": "later"})
            assert await receive(bystander, 1) == [{"n": "later"}]
    finally:
        await bus.stop()
    assert sum("dropped one on" in record.getMessage() for record in caplog.records) == 1


async def test_only_a_few_subscribers_work_on_messages_at_once() -> None:
    bus = EventBus("memory://", fanout_concurrency=4)
    await bus.start()
    working = most = 0
    name = channel()

    async def subscriber(ready: asyncio.Event) -> list[dict[str, object]]:
        nonlocal working, most
        got = []
        async with bus.subscribe(name) as subscription:
            ready.set()
            for _ in range(3):
                got.append(await asyncio.wait_for(subscription.get(), 20))
                working += 1
                most = max(most, working)
                await asyncio.sleep(0.002)  # its work on the message: a query, a send
                working -= 1
        return got

    try:
        ready = [asyncio.Event() for _ in range(100)]
        tasks = [asyncio.create_task(subscriber(event)) for event in ready]
        for event in ready:
            await event.wait()
        for n in range(3):
            bus.post(name, {"n": n})
        results = await asyncio.gather(*tasks)
    finally:
        await bus.stop()
    assert all(got == [{"n": 0}, {"n": 1}, {"n": 2}] for got in results)
    assert most == 4


async def test_a_subscriber_that_stops_reading_gives_its_turn_back() -> None:
    bus = EventBus("memory://", fanout_concurrency=1, fanout_lease=0.2)
    await bus.start()
    try:
        name = channel()
        async with bus.subscribe(name) as stalled, bus.subscribe(name) as reader:
            bus.post(name, {"n": 1})
            assert await receive(stalled, 1) == [{"n": 1}]  # takes the one turn, keeps it
            assert await receive(reader, 1) == [{"n": 1}]  # gets it once the lease ran out
    finally:
        await bus.stop()


# -- the writer's path -------------------------------------------------------------------------


class RedisProcess:
    """A `redis-server` of this test alone, which can be paused (SIGSTOP) and resumed."""

    def __init__(self, cwd: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", HOST),
                *("--save", "", "--appendonly", "no", "--dir", str(cwd)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    async def ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            for _ in range(100):
                with contextlib.suppress(redis.ConnectionError):
                    await client.ping()
                    return
                await asyncio.sleep(0.1)
            raise AssertionError("redis-server did not start")
        finally:
            await client.aclose()

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def paused_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    try:
        server = RedisProcess(tmp_path)
    except FileNotFoundError as error:
        _unavailable("redis-server", error)
    try:
        yield server
    finally:
        server.stop()


async def test_a_write_does_not_wait_for_a_stalled_bus_and_its_event_still_arrives(
    db: Database, paused_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await paused_redis.ready()
    bus = EventBus(paused_redis.url)
    await bus.start()
    writer = Database(db.url, bus=bus)
    try:
        owner = await account(writer)
        pk = ids.decode(await project(writer, owner), "Project")
        async with bus.subscribe(events.project_channel(pk)) as subscription:
            await bus.ping()  # the subscription is in place on the server
            paused_redis.pause()  # a PUBLISH now waits until it is resumed

            async def rename() -> None:
                async with writer.transaction() as session:
                    row = await session.get(ProjectRow, pk)
                    assert row is not None
                    row.title = "Renamed while the bus is stalled"

            # The write returns while its PUBLISH cannot even have been answered (a
            # writer that waits for it returns only when the client gives up, 5 s on).
            await asyncio.wait_for(rename(), 10)
            assert not [r.getMessage() for r in caplog.records if "publish" in r.getMessage()]
            # Both waits are at the bus, not in the writer: the project's event and the
            # team's (a renamed project is a PROJECT_UPDATED on its team's feed too).
            assert bus.unpublished == 2
            paused_redis.resume()
            message = await asyncio.wait_for(subscription.get(), 20)
            while message["kind"] != "PROJECT_UPDATED":  # the project's creation, first
                message = await asyncio.wait_for(subscription.get(), 20)
        assert message["changes"] == ["title"]
    finally:
        paused_redis.resume()
        await writer.dispose()
        await bus.stop()
