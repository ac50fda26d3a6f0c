"""The Redis backend of the event bus: pub/sub on separate connections, reconnecting."""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

from broadcaster import BroadcastBackend, Event

from services.backoff import Backoff
from services.realtime.backends.base import RESYNC, BusError, listen_again

logger = logging.getLogger("studio.bus")


class RedisBackend(BroadcastBackend):
    """Redis pub/sub: one connection publishes, another listens and is re-made when it drops.

    broadcaster's `BroadcastBackend` interface (`broadcaster/_backends/base.py`), on
    redis-py's asyncio client. `url`: `redis://` or `rediss://` as
    `redis.Redis.from_url` takes it. Each instance also subscribes a `control`
    channel of its own (`EventBus.ping` round trips). Redis pub/sub delivers at most
    once, only to clients subscribed at the time, and keeps nothing
    (https://redis.io/docs/latest/develop/interact/pubsub/#delivery-semantics), and
    its channels ignore the database number; after a lost connection subscribers
    are told to resync (`RESYNC`).
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._channels: set[str] = set()
        # Subscribed at once: with redis-py 8 the first channel of an idle connection
        # can miss its messages, and this one also carries ping round trips.
        self.control = f"studio-bus-control-{secrets.token_hex(6)}"
        self._backoff = Backoff()
        self._publisher: Any = None
        self._listener: Any = None
        self._pubsub: Any = None
        self._remade_by_client = False

    async def connect(self) -> None:
        """Make the publishing client and the listening one (5-second connect timeout,
        a health check every 10 s), and SUBSCRIBE the control channel and every channel
        subscribed so far.

        Raises redis.exceptions.ConnectionError (or TimeoutError) when Redis cannot be
        reached; `EventBus.start` logs it and `next_published` keeps trying to connect
        with backoff.
        """
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
        self._remade_by_client = False
        # redis-py connects a dropped pub/sub connection again by itself (a SUBSCRIBE
        # from another task, or the next read, finds it closed) and re-subscribes, with
        # no error to the reader: what was published in between is gone all the same.
        pubsub.connection.register_connect_callback(self._connected_again)
        self._pubsub = pubsub

    def _connected_again(self, connection: Any) -> None:
        """redis-py's connect callback (kept as a weak method), run on every later
        connect of the listening connection."""
        if self._pubsub is not None and connection is self._pubsub.connection:
            self._remade_by_client = True

    async def disconnect(self) -> None:
        """Close the subscription and both clients; errors are ignored."""
        for client in (self._pubsub, self._listener, self._publisher):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def subscribe(self, group: str) -> None:
        """SUBSCRIBE channel `group`. Never raises: the channel is remembered first,
        so if the SUBSCRIBE fails (the connection is down) the reconnect makes it."""
        self._channels.add(group)
        with contextlib.suppress(Exception):  # if it fails, the reconnect re-subscribes
            await self._pubsub.subscribe(group)

    async def unsubscribe(self, group: str) -> None:
        """UNSUBSCRIBE channel `group` and forget it; never raises."""
        self._channels.discard(group)
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe(group)

    async def publish(self, channel: str, message: Any) -> None:
        """PUBLISH `message` (JSON text) on `channel`
        (https://redis.io/docs/latest/commands/publish/); it reaches only the clients
        subscribed at that moment. Raises BusError when the connection fails or times out.
        """
        import redis.exceptions

        try:
            await self._publisher.publish(channel, message)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            raise BusError(f"Redis refused the publish: {error}") from error

    async def next_published(self) -> Event:
        """The next message on a subscribed channel, as `Event(channel, data)` (both
        decoded from UTF-8 bytes); subscribe confirmations and other replies are skipped.

        Waits for one (polling the connection every second); when the listening
        connection fails (or was never made) it reconnects with backoff, subscribes
        every channel again, and returns `Event(RESYNC, "{}")`: messages published
        meanwhile are gone. The same when redis-py re-made the connection by itself:
        a message read on it is dropped, as the resync reads it from the table.
        Never raises for a lost connection.
        """
        import redis.exceptions

        if self._pubsub is None:  # never connected: Redis was down at start-up
            await self._reconnect()
            return Event(RESYNC, "{}")
        while True:
            if self._remade_by_client:
                return await self._lost("its connection was dropped and made again")
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (
                redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError,
                OSError,
            ) as error:
                return await self._lost(str(error))
            except Exception as error:  # e.g. the event loop's "handler is closed" mid-retry
                return await self._lost(f"the listener failed: {error!r}")
            if self._remade_by_client:
                return await self._lost("its connection was dropped and made again")
            if message is None or message.get("type") != "message":
                continue
            channel, data = message["channel"], message["data"]
            return Event(
                channel.decode() if isinstance(channel, bytes) else str(channel),
                data.decode() if isinstance(data, bytes) else str(data),
            )

    async def _lost(self, reason: str) -> Event:
        logger.warning("event bus: lost Redis (%s); reconnecting", reason)
        await self._reconnect()
        return Event(RESYNC, "{}")

    async def _reconnect(self) -> None:
        await listen_again(
            self._listen, self._backoff, logger, server="Redis", channels=self._channels
        )
