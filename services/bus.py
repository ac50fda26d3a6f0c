"""The event bus between server processes: broadcaster's backend interface, never used bare.

`EventBus` publishes small JSON messages on named channels and fans them out to
local subscribers. What broadcaster lacks, it adds:

- its own backends, chosen by `EVENT_BUS_URL`: `memory://` (one process),
  `redis://...`, and `postgres://...` (LISTEN/NOTIFY), each publishing and
  listening on separate connections;
- reconnection with backoff after a Redis or PostgreSQL connection drops,
  re-subscribing every channel, logged as it happens;
- JSON on every backend (memory too), so nothing works in tests that would
  fail on the wire;
- bounded queues: a subscriber that falls `queue_size` messages behind is cut
  off with `SubscriberTooSlow`, never buffered without limit. Events carry a
  cursor, so such a client reconnects with it and misses nothing;
- `ping()`, a real round trip through the backend, for readiness.

    bus = EventBus("redis://127.0.0.1:6379")
    await bus.start()
    async with bus.subscribe("project:7") as subscription:
        await bus.publish("project:7", {"sequence": 12})
        message = await subscription.get()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from broadcaster._backends.base import BroadcastBackend
from broadcaster._base import Event

logger = logging.getLogger("studio.bus")

Message = dict[str, Any]

# What a backend returns after it reconnects: messages may have been lost meanwhile,
# so every subscriber gets {"resync": true} and catches up from its own records.
RESYNC = "\x00resync"


class BusError(Exception):
    """The bus cannot publish or deliver right now."""


class SubscriberTooSlow(BusError):
    """This subscriber fell too far behind and was cut off; resume from the last cursor."""


class _Backoff:
    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    async def wait(self) -> None:
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempt))  # noqa: S311
        self.attempt += 1
        await asyncio.sleep(delay)

    def reset(self) -> None:
        self.attempt = 0


class MemoryBackend(BroadcastBackend):
    """One process: a queue. Messages are still JSON text, as on the wire."""

    def __init__(self, url: str) -> None:
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        return None

    async def disconnect(self) -> None:
        return None

    async def subscribe(self, group: str) -> None:
        self._channels.add(group)

    async def unsubscribe(self, group: str) -> None:
        self._channels.discard(group)

    async def publish(self, channel: str, message: Any) -> None:
        if channel in self._channels:
            self._queue.put_nowait(Event(channel, message))

    async def next_published(self) -> Event:
        return await self._queue.get()


class RedisBackend(BroadcastBackend):
    """Redis pub/sub: one connection publishes, another listens and is re-made when it drops."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._channels: set[str] = set()
        # Subscribed at once: with redis-py 8 the first channel of an idle connection
        # can miss its messages, and this one also carries ping round trips.
        self.control = f"studio-bus-control-{secrets.token_hex(6)}"
        self._backoff = _Backoff()
        self._publisher: Any = None
        self._listener: Any = None
        self._pubsub: Any = None

    async def connect(self) -> None:
        import redis.asyncio as redis

        self._publisher = redis.Redis.from_url(self._url, socket_connect_timeout=5)
        await self._listen()

    async def _listen(self) -> None:
        import redis.asyncio as redis

        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.aclose()
        self._listener = redis.Redis.from_url(
            self._url, socket_connect_timeout=5, health_check_interval=10
        )
        pubsub = self._listener.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self.control, *self._channels)
        self._pubsub = pubsub

    async def disconnect(self) -> None:
        for client in (self._pubsub, self._listener, self._publisher):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def subscribe(self, group: str) -> None:
        self._channels.add(group)
        with contextlib.suppress(Exception):  # if it fails, the reconnect re-subscribes
            await self._pubsub.subscribe(group)

    async def unsubscribe(self, group: str) -> None:
        self._channels.discard(group)
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe(group)

    async def publish(self, channel: str, message: Any) -> None:
        import redis.exceptions

        try:
            await self._publisher.publish(channel, message)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            raise BusError(f"Redis refused the publish: {error}") from error

    async def next_published(self) -> Event:
        import redis.exceptions

        if self._pubsub is None:  # never connected: Redis was down at start-up
            await self._reconnect()
            return Event(RESYNC, "{}")
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (
                redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError,
                OSError,
            ) as error:
                logger.warning("event bus: lost Redis (%s); reconnecting", error)
                await self._reconnect()
                return Event(RESYNC, "{}")
            except Exception as error:  # e.g. the event loop's "handler is closed" mid-retry
                logger.warning("event bus: Redis listener failed (%r); reconnecting", error)
                await self._reconnect()
                return Event(RESYNC, "{}")
            if message is None or message.get("type") != "message":
                continue
            channel, data = message["channel"], message["data"]
            return Event(
                channel.decode() if isinstance(channel, bytes) else str(channel),
                data.decode() if isinstance(data, bytes) else str(data),
            )

    async def _reconnect(self) -> None:
        while True:
            await self._backoff.wait()
            try:
                await self._listen()
            except Exception as error:
                logger.warning("event bus: Redis still unreachable (%s)", error)
                continue
            self._backoff.reset()
            logger.warning(
                "event bus: reconnected to Redis; %d channels re-subscribed", len(self._channels)
            )
            return


class PostgresBackend(BroadcastBackend):
    """LISTEN/NOTIFY on two asyncpg connections: one listens, one notifies (under a lock)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._dsn = parts._replace(scheme="postgresql").geturl()
        self._channels: set[str] = set()
        self.control = f"studio_bus_control_{secrets.token_hex(6)}"
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._lost = asyncio.Event()
        self._backoff = _Backoff()
        self._publish_lock = asyncio.Lock()
        self._listener: Any = None
        self._publisher: Any = None

    def _deliver(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait(Event(channel, payload))

    def _on_lost(self, _connection: Any) -> None:
        self._lost.set()

    async def connect(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        import asyncpg

        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=1)
        self._listener = await asyncpg.connect(self._dsn, timeout=5)
        self._listener.add_termination_listener(self._on_lost)
        for channel in (self.control, *self._channels):
            await self._listener.add_listener(channel, self._deliver)
        self._lost.clear()

    async def _publisher_connection(self) -> Any:
        import asyncpg

        if self._publisher is None or self._publisher.is_closed():
            self._publisher = await asyncpg.connect(self._dsn, timeout=5)
        return self._publisher

    async def disconnect(self) -> None:
        for connection in (self._listener, self._publisher):
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)

    async def subscribe(self, group: str) -> None:
        self._channels.add(group)
        with contextlib.suppress(Exception):
            await self._listener.add_listener(group, self._deliver)

    async def unsubscribe(self, group: str) -> None:
        self._channels.discard(group)
        with contextlib.suppress(Exception):
            await self._listener.remove_listener(group, self._deliver)

    async def publish(self, channel: str, message: Any) -> None:
        import asyncpg

        async with self._publish_lock:  # one asyncpg connection runs one statement at a time
            try:
                connection = await self._publisher_connection()
                await connection.execute("SELECT pg_notify($1, $2)", channel, message)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self._publisher = None
                raise BusError(f"PostgreSQL refused the notify: {error}") from error

    async def next_published(self) -> Event:
        if self._listener is None:  # never connected: PostgreSQL was down at start-up
            await self._reconnect()
            return Event(RESYNC, "{}")
        while True:
            getting = asyncio.ensure_future(self._queue.get())
            lost = asyncio.ensure_future(self._lost.wait())
            done, _ = await asyncio.wait({getting, lost}, return_when=asyncio.FIRST_COMPLETED)
            if getting in done:
                lost.cancel()
                return getting.result()
            getting.cancel()
            logger.warning("event bus: lost PostgreSQL; reconnecting")
            await self._reconnect()
            return Event(RESYNC, "{}")

    async def _reconnect(self) -> None:
        while True:
            await self._backoff.wait()
            try:
                await self._listen()
            except Exception as error:
                logger.warning("event bus: PostgreSQL still unreachable (%s)", error)
                continue
            self._backoff.reset()
            logger.warning(
                "event bus: reconnected to PostgreSQL; %d channels re-subscribed",
                len(self._channels),
            )
            return


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def backend_for(url: str) -> BroadcastBackend:
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryBackend(url)
    if scheme in ("redis", "rediss"):
        return RedisBackend(url)
    if scheme in ("postgres", "postgresql"):
        return PostgresBackend(url)
    raise ValueError(
        f"EVENT_BUS_URL must be memory://, redis://... or postgres://...; got {scheme}://"
    )


class Subscription:
    """Messages of some channels for one subscriber, from a bounded queue."""

    def __init__(self, channels: tuple[str, ...], size: int) -> None:
        self.channels = channels
        self.channel = channels[0]
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(maxsize=size)
        self.overflowed = False

    def _offer(self, message: Message) -> bool:
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True

    async def get(self) -> Message:
        """The next message; SubscriberTooSlow once this subscriber has been cut off."""
        if self.overflowed and self._queue.empty():
            raise SubscriberTooSlow(self.channel)
        message = await self._queue.get()
        if message is None:
            raise SubscriberTooSlow(self.channel)
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            yield await self.get()


class EventBus:
    """Publish JSON messages to every process; fan them out to bounded local subscriptions."""

    def __init__(self, url: str, *, queue_size: int = 256, namespace: str = "") -> None:
        self.url = url
        self.queue_size = queue_size
        # Prefixed to every channel: studios sharing one Redis or PostgreSQL server
        # (Redis pub/sub ignores the database number) never hear each other.
        self.namespace = namespace
        self._backend = backend_for(url)
        self._subscribers: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._pings: dict[str, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def _control(self) -> str | None:
        return getattr(self._backend, "control", None)

    async def start(self) -> None:
        """Connect and start listening; if the backend is down, keep trying in the background.

        Until it answers, `ping()` fails (so readiness says so) and publishes raise.
        """
        try:
            await self._backend.connect()
        except Exception as error:
            logger.warning(
                "event bus: %s is unreachable (%s); connecting in the background",
                _without_credentials(self.url),
                error,
            )
        self._task = asyncio.create_task(self._listen(), name="event-bus")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._backend.disconnect()

    def _wire(self, channel: str) -> str:
        return f"{self.namespace}:{channel}" if self.namespace else channel

    async def publish(self, channel: str, message: Message) -> None:
        await self._backend.publish(self._wire(channel), json.dumps(message, separators=(",", ":")))

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:
        """One queue for the messages of these channels, in the order they arrive.

        Subscribe before reading current state, so nothing falls in between.
        """
        subscription = Subscription(channels, self.queue_size)
        channels = tuple(self._wire(channel) for channel in channels)
        async with self._lock:
            for channel in channels:
                if channel not in self._subscribers:
                    self._subscribers[channel] = set()
                    await self._backend.subscribe(channel)
                self._subscribers[channel].add(subscription)
            self._all.add(subscription)
        try:
            yield subscription
        finally:
            async with self._lock:
                self._all.discard(subscription)
                for channel in channels:
                    subscribers = self._subscribers.get(channel, set())
                    subscribers.discard(subscription)
                    if not subscribers:
                        self._subscribers.pop(channel, None)
                        await self._backend.unsubscribe(channel)

    @property
    def subscriber_count(self) -> int:
        return len(self._all)

    async def ping(self, within: float = 2.0) -> None:
        """A round trip through the backend; raises BusError if it does not come back."""
        if self._task is None or self._task.done():
            raise BusError("the event bus listener is not running")
        channel = self._control
        if channel is None:  # memory: in-process, nothing to cross
            return
        token = secrets.token_hex(8)
        arrived: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[token] = arrived
        try:
            await self._backend.publish(channel, json.dumps({"ping": token}))
            await asyncio.wait_for(arrived, within)
        except TimeoutError as error:
            raise BusError("the event bus did not answer a ping") from error
        finally:
            self._pings.pop(token, None)

    async def _listen(self) -> None:
        while True:
            try:
                event = await self._backend.next_published()
            except Exception:
                # Never let the listener die silently: subscribers would hang.
                logger.exception("event bus: the listener failed; starting it again")
                await asyncio.sleep(1.0)
                event = Event(RESYNC, "{}")
            try:
                message = json.loads(event.message)
            except ValueError:
                logger.warning("event bus: dropped a message that is not JSON on %s", event.channel)
                continue
            if event.channel == RESYNC:
                for subscription in list(self._all):
                    self._deliver(subscription, {"resync": True}, "every channel")
                continue
            if event.channel == self._control:
                waiter = self._pings.get(str(message.get("ping")))
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                continue
            for subscription in list(self._subscribers.get(event.channel, ())):
                self._deliver(subscription, message, event.channel)

    @staticmethod
    def _deliver(subscription: Subscription, message: Message, channel: str) -> None:
        if not subscription.overflowed and not subscription._offer(message):
            logger.warning("event bus: a subscriber of %s fell behind; cut off", channel)
