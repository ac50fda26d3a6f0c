"""The in-process backend of the event bus: one queue, JSON text as on the wire."""

from __future__ import annotations

import asyncio
from typing import Any

from broadcaster import BroadcastBackend, Event


class MemoryBackend(BroadcastBackend):
    """One process: a queue. Messages are still JSON text, as on the wire.

    broadcaster's `BroadcastBackend` interface (`broadcaster/_backends/base.py`); `url`
    (`memory://`) is not read. Nothing crosses a process, and nothing here raises.
    """

    def __init__(self, url: str) -> None:
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        """Nothing to connect to: returns at once."""

    async def disconnect(self) -> None:
        """Nothing to close: returns at once (messages still queued stay there)."""

    async def subscribe(self, group: str) -> None:
        """Keep, from now on, the messages published on channel `group`."""
        self._channels.add(group)

    async def unsubscribe(self, group: str) -> None:
        """Stop keeping channel `group`'s messages (those already queued stay)."""
        self._channels.discard(group)

    async def publish(self, channel: str, message: Any) -> None:
        """Queue `message` (JSON text) for `next_published` if `channel` is subscribed;
        otherwise drop it, as a broker drops what no one listens to. Never waits: the
        queue is unbounded (`EventBus` bounds what it posts and what it delivers).
        """
        if channel in self._channels:
            self._queue.put_nowait(Event(channel, message))

    async def next_published(self) -> Event:
        """The next queued message as `Event(channel, message)`, waiting for one."""
        return await self._queue.get()
