"""What every event-bus backend shares: its errors, the resync marker, reconnect backoff."""

from __future__ import annotations

import asyncio
import random
from typing import Any

Message = dict[str, Any]

# What a backend returns after it reconnects: messages may have been lost meanwhile,
# so every subscriber gets {"resync": true} and catches up from its own records.
RESYNC = "\x00resync"


class BusError(Exception):
    """The bus cannot publish or deliver right now."""


class SubscriberTooSlow(BusError):
    """This subscriber fell too far behind and was cut off; resume from the last cursor."""


class Backoff:
    """Full-jitter exponential backoff: waits up to `base * 2**attempt` seconds, at most `cap`."""

    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    async def wait(self) -> None:
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempt))  # noqa: S311
        self.attempt += 1
        await asyncio.sleep(delay)

    def reset(self) -> None:
        self.attempt = 0
