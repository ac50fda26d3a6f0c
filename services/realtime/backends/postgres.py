"""The PostgreSQL backend of the event bus: LISTEN/NOTIFY on separate connections, reconnecting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from broadcaster import BroadcastBackend, Event

from services.backoff import Backoff
from services.realtime.backends.base import RESYNC, BusError, listen_again

logger = logging.getLogger("studio.bus")


class PostgresBackend(BroadcastBackend):
    """LISTEN/NOTIFY on two asyncpg connections: one listens, one notifies (under a lock)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._dsn = parts._replace(scheme="postgresql").geturl()
        self._channels: set[str] = set()
        self.control = f"studio_bus_control_{secrets.token_hex(6)}"
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._lost = asyncio.Event()
        self._backoff = Backoff()
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
        await listen_again(
            self._listen, self._backoff, logger, server="PostgreSQL", channels=self._channels
        )
