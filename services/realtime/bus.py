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
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from broadcaster import BroadcastBackend, Event

from services.backoff import Backoff
from services.realtime.backends.base import (
    RESYNC,
    BusError,
    Message,
    SubscriberTooSlow,
)
from services.realtime.backends.memory import MemoryBackend
from services.realtime.backends.postgres import PostgresBackend
from services.realtime.backends.redis import RedisBackend

__all__ = [
    "RESYNC",
    "BusError",
    "EventBus",
    "Message",
    "SubscriberTooSlow",
    "Subscription",
    "backend_for",
]

logger = logging.getLogger("studio.bus")


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def backend_for(url: str) -> BroadcastBackend:
    """The backend `url` names, not yet connected: `memory://` (`MemoryBackend`),
    `redis://` or `rediss://` (`RedisBackend`), `postgres://` or `postgresql://`
    (`PostgresBackend`). Raises ValueError for any other scheme (the message names
    the accepted ones, and not the rest of the URL, which may hold a password).
    """
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

    `notices_received` counts the messages queued so far that carry one of the
    `notices` keys (given at `EventBus.subscribe`), read or not: a subscriber busy
    elsewhere compares it with the count it last saw to learn, without taking
    anything from the queue, that a notice is waiting.
    """

    def __init__(
        self,
        channels: tuple[str, ...],
        size: int,
        slots: _Slots,
        notices: frozenset[str] = frozenset(),
    ) -> None:
        self.channels = channels
        self.channel = channels[0]
        self._size = size
        self._buffer: collections.deque[Message] = collections.deque()
        self._arrived = asyncio.Event()
        self._slots = slots
        self._slot: _Slot | None = None
        self._notices = notices
        self.notices_received = 0
        self.overflowed = False

    def _offer(self, message: Message) -> bool:
        if len(self._buffer) >= self._size:
            self.overflowed = True
            return False
        self._buffer.append(message)
        if self._notices and any(key in message for key in self._notices):
            self.notices_received += 1
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
        backoff = Backoff(base=0.2, cap=5.0)
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
    async def subscribe(
        self, *channels: str, notices: tuple[str, ...] = ()
    ) -> AsyncIterator[Subscription]:
        """One queue for the messages of these channels, in the order they arrive.

        Subscribe before reading current state, so nothing falls in between.
        A queued message carrying one of the `notices` keys (such as "resync")
        adds one to the subscription's `notices_received`.
        """
        subscription = Subscription(channels, self.queue_size, self._slots, frozenset(notices))
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
        """Open subscriptions in this process (each `subscribe` block counts once,
        whatever its number of channels)."""
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
