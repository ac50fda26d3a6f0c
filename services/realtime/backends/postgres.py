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
    """LISTEN/NOTIFY on two asyncpg connections: one listens, one notifies (under a lock).

    broadcaster's `BroadcastBackend` interface (`broadcaster/_backends/base.py`).
    `url`: `postgres://` or `postgresql://` with user, password, host, port and
    database, as asyncpg takes it. Each instance also listens on a `control` channel
    of its own (`EventBus.ping` round trips). PostgreSQL delivers a notification only
    to sessions listening when it is sent, and keeps nothing for later
    (https://www.postgresql.org/docs/current/sql-notify.html), so after a lost
    connection subscribers are told to resync (`RESYNC`).
    """

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
        """Open the listening connection (5-second connect timeout) and LISTEN on the
        control channel and every channel subscribed so far; the publishing connection
        opens on the first `publish`.

        Raises what asyncpg raises when PostgreSQL cannot be reached or refuses the
        login (OSError, TimeoutError, asyncpg.PostgresError); `EventBus.start` logs it
        and `next_published` keeps trying to connect with backoff.
        """
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
        """Close both connections (one second each at most); errors are ignored."""
        for connection in (self._listener, self._publisher):
            if connection is not None and not connection.is_closed():
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)

    async def subscribe(self, group: str) -> None:
        """LISTEN on channel `group` (asyncpg's `add_listener`, which quotes the name).

        Never raises: the channel is remembered first, so if the LISTEN fails (the
        connection is down) the reconnect LISTENs on it. PostgreSQL truncates channel
        names, like every identifier, to 63 bytes
        (https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS).
        """
        self._channels.add(group)
        with contextlib.suppress(Exception):
            await self._listener.add_listener(group, self._deliver)

    async def unsubscribe(self, group: str) -> None:
        """UNLISTEN channel `group` and forget it; never raises (a lost connection
        forgets every LISTEN anyway, and the reconnect skips this channel)."""
        self._channels.discard(group)
        with contextlib.suppress(Exception):
            await self._listener.remove_listener(group, self._deliver)

    async def publish(self, channel: str, message: Any) -> None:
        """`SELECT pg_notify(channel, message)` on the publishing connection, one at a
        time under a lock; it runs in its own implicit transaction, so it is delivered
        on completion (NOTIFY inside a transaction waits for its commit).

        `message`: JSON text, shorter than 8000 bytes (PostgreSQL's payload limit in
        the default configuration, https://www.postgresql.org/docs/current/sql-notify.html).
        Raises BusError when PostgreSQL cannot be reached or refuses the notify (a
        longer payload, for one); the connection is then opened afresh next time.
        """
        import asyncpg

        async with self._publish_lock:  # one asyncpg connection runs one statement at a time
            try:
                connection = await self._publisher_connection()
                await connection.execute("SELECT pg_notify($1, $2)", channel, message)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                self._publisher = None
                raise BusError(f"PostgreSQL refused the notify: {error}") from error

    async def next_published(self) -> Event:
        """The next notification on a listened channel, as `Event(channel, payload)`.

        Waits for one; when the listening connection is lost (or was never made) it
        reconnects with backoff, LISTENs again on every channel, and returns
        `Event(RESYNC, "{}")`: notifications sent meanwhile are gone. Never raises
        for a lost connection; waits as long as PostgreSQL stays away.
        """
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
