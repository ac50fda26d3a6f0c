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
- `ping()`, a real round trip through the backend, for readiness;
- fan-out off the writer's path. `post()` only appends to a bounded outbox and
  returns: one publisher task per bus sends the outbox in order (so a channel's
  messages keep their order), logs what fails, and afterwards tells the channels
  that lost a message to resync, so their followers read the gap from their own
  records. A writer never waits for Redis, PostgreSQL or any subscriber;
- paced delivery: at most `fanout_concurrency` subscribers of this process work
  on a message at once (a subscriber holds its slot from `get()` until its next
  `get()`, or `fanout_lease` seconds at most, so a client that stopped reading
  cannot hold one). Thousands of subscribers woken by one event then take turns
  instead of all running at once, and a request that arrives meanwhile (a
  write, a query) waits behind a few of them, not behind all.

    bus = EventBus("redis://127.0.0.1:6379")
    await bus.start()
    async with bus.subscribe("project:7") as subscription:
        bus.post("project:7", {"sequence": 12})
        message = await subscription.get()
"""

from __future__ import annotations

import asyncio
import collections
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


class _Slots:
    """At most `limit` holders at once; each gives its slot back within `lease` seconds."""

    def __init__(self, limit: int, lease: float) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self._lease = lease

    async def take(self) -> _Slot:
        await self._semaphore.acquire()
        return _Slot(self._semaphore, self._lease)


class _Slot:
    def __init__(self, semaphore: asyncio.Semaphore, lease: float) -> None:
        self._semaphore: asyncio.Semaphore | None = semaphore
        self._expiry = asyncio.get_running_loop().call_later(lease, self.release)

    def release(self) -> None:
        if self._semaphore is not None:
            self._expiry.cancel()
            self._semaphore.release()
            self._semaphore = None


class Subscription:
    """Messages of some channels for one subscriber, from a bounded queue.

    `get()` waits for a delivery slot before it returns a message (see the
    module); the slot goes back at the next `get()` or when the subscription ends.
    """

    def __init__(self, channels: tuple[str, ...], size: int, slots: _Slots) -> None:
        self.channels = channels
        self.channel = channels[0]
        self._size = size
        self._buffer: collections.deque[Message] = collections.deque()
        self._arrived = asyncio.Event()
        self._slots = slots
        self._slot: _Slot | None = None
        self.overflowed = False

    def _offer(self, message: Message) -> bool:
        if len(self._buffer) >= self._size:
            self.overflowed = True
            return False
        self._buffer.append(message)
        self._arrived.set()
        return True

    def _give_back(self) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    async def get(self) -> Message:
        """The next message; SubscriberTooSlow once this subscriber has been cut off."""
        self._give_back()  # done with the previous message
        while not self._buffer:
            if self.overflowed:
                raise SubscriberTooSlow(self.channel)
            self._arrived.clear()
            await self._arrived.wait()
        # Cancelled while waiting here, the message stays in the buffer for next time.
        self._slot = await self._slots.take()
        return self._buffer.popleft()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            yield await self.get()


class EventBus:
    """Publish JSON messages to every process; fan them out to bounded local subscriptions.

    `queue_size`: messages a subscriber may fall behind before it is cut off.
    `outbox_size`: messages `post()` may hold while the backend is slow; beyond
    it a message is dropped (logged) and its channel told to resync.
    `fanout_concurrency` and `fanout_lease`: how many subscribers of this
    process work on messages at once, and for how many seconds one may keep its
    turn (see the module).
    """

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 256,
        namespace: str = "",
        outbox_size: int = 10_000,
        fanout_concurrency: int = 32,
        fanout_lease: float = 1.0,
    ) -> None:
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
        self._slots = _Slots(fanout_concurrency, fanout_lease)
        self._outbox: collections.deque[tuple[str, str]] = collections.deque()
        self._outbox_size = outbox_size
        self._posted = asyncio.Event()
        self._sent = asyncio.Event()
        self._sent.set()
        self._in_flight = 0
        self._unsent: set[str] = set()  # wire channels that lost a message: to resync
        self._publisher: asyncio.Task[None] | None = None
        self._chores: set[asyncio.Task[None]] = set()

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
        self._publisher = asyncio.create_task(self._publish_posted(), name="event-bus-publisher")

    async def stop(self, *, flush_within: float = 5.0) -> None:
        """Send what was posted (for `flush_within` seconds at most), then disconnect."""
        if self._publisher is not None:
            with contextlib.suppress(TimeoutError):
                await self.flushed(within=flush_within)
        for task in (self._task, self._publisher, *self._chores):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._backend.disconnect()

    def _wire(self, channel: str) -> str:
        return f"{self.namespace}:{channel}" if self.namespace else channel

    async def publish(self, channel: str, message: Message) -> None:
        """Publish now, waiting for the backend; raises BusError if it refuses.

        Writers use `post()`, which never waits; this is for callers that must know.
        """
        await self._backend.publish(self._wire(channel), json.dumps(message, separators=(",", ":")))

    def post(self, channel: str, message: Message) -> None:
        """Hand a message to the publisher task and return at once (O(1), never raises BusError).

        Messages are published in the order posted. One that cannot be published
        (the outbox is full, the backend refuses) is logged, and its channel is
        sent `{"resync": true}` once the backend takes messages again.
        """
        wire = self._wire(channel)
        if len(self._outbox) >= self._outbox_size:
            if wire not in self._unsent:
                logger.warning(
                    "event bus: %d messages wait to be published; dropped one on %s (its "
                    "subscribers will be told to resync)",
                    len(self._outbox),
                    channel,
                )
            self._unsent.add(wire)
            return
        self._outbox.append((wire, json.dumps(message, separators=(",", ":"))))
        self._sent.clear()
        self._posted.set()

    @property
    def unpublished(self) -> int:
        """Messages posted and not yet handed to the backend (or given up on)."""
        return len(self._outbox) + self._in_flight

    async def flushed(self, within: float = 10.0) -> None:
        """Wait until everything posted so far was handed to the backend (or given up on)."""
        await asyncio.wait_for(self._sent.wait(), within)

    async def _publish_posted(self) -> None:
        backoff = _Backoff(base=0.2, cap=5.0)
        while True:
            if not self._outbox:
                self._sent.set()
                if self._unsent and not await self._resync_unsent():
                    await backoff.wait()
                    continue
                backoff.reset()
                self._posted.clear()
                await self._posted.wait()
                continue
            wire, text = self._outbox.popleft()
            self._in_flight = 1
            try:
                await self._backend.publish(wire, text)
            except Exception as error:  # BusError, or anything a backend let through
                logger.warning(
                    "event bus: could not publish on %s (%s); its subscribers will be told "
                    "to resync, and read what they missed from the events table",
                    wire,
                    error,
                )
                self._unsent.add(wire)
            finally:
                self._in_flight = 0

    async def _resync_unsent(self) -> bool:
        """Tell each channel that lost a message to resync; whether all of them were told."""
        for wire in sorted(self._unsent):
            try:
                await self._backend.publish(wire, json.dumps({"resync": True}))
            except Exception as error:
                logger.warning("event bus: still cannot publish on %s (%s)", wire, error)
                return False
            self._unsent.discard(wire)
        return True

    @contextlib.asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[Subscription]:
        """One queue for the messages of these channels, in the order they arrive.

        Subscribe before reading current state, so nothing falls in between.
        """
        subscription = Subscription(channels, self.queue_size, self._slots)
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
            # Without awaiting: a task cancelled again while it cleans up (an anyio
            # cancel scope cancels at every await) must still leave nothing behind.
            subscription._give_back()
            self._all.discard(subscription)
            emptied = []
            for channel in channels:
                subscribers = self._subscribers.get(channel)
                if subscribers is not None:
                    subscribers.discard(subscription)
                    if not subscribers:
                        del self._subscribers[channel]
                        emptied.append(channel)
            if emptied:
                chore = asyncio.create_task(self._unsubscribe(emptied))
                self._chores.add(chore)
                chore.add_done_callback(self._chores.discard)

    async def _unsubscribe(self, channels: list[str]) -> None:
        async with self._lock:
            for channel in channels:
                if channel not in self._subscribers:  # nobody subscribed again meanwhile
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
