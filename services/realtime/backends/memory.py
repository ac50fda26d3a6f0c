"""The in-process backend of the event bus: one queue, JSON text as on the wire."""

from __future__ import annotations

import asyncio
from typing import Any

from broadcaster import BroadcastBackend, Event


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
