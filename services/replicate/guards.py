"""Guards on calls to Replicate: a throttle on creates and a circuit breaker.

Replicate allows 600 creates a minute per account (other endpoints 3000:
https://replicate.com/docs/topics/predictions/rate-limits); `CreateThrottle`
keeps one process under it. `CircuitBreaker` counts failed calls (not HTTP
attempts) and, after repeated failures, makes calls fail fast with
`ProviderUnavailable` for a while, then lets one trial call decide.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable

from services.errors import ProviderUnavailable

logger = logging.getLogger("studio.replicate")


class CreateThrottle:
    """At most `per_minute` creates in any 60 seconds; callers wait for a slot.

    One per process: it cannot see what other processes using the same token send.
    `clock` returns seconds (monotonic).
    """

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take a slot, sleeping until the oldest of the last `per_minute` is 60 s old."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 60.0:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    return
                await asyncio.sleep(60.0 - (now - self._sent[0]))


class CircuitBreaker:
    """Opens after `threshold` failures in a row; after `cooldown` seconds lets one call try."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def failures(self) -> int:
        """Failed calls in a row (each call counts once, whatever its HTTP attempts)."""
        return self._failures

    @property
    def is_open(self) -> bool:
        """Whether calls fail fast now (opened less than `cooldown` seconds ago)."""
        return self._opened_at is not None and self._clock() - self._opened_at < self.cooldown

    def before_call(self) -> None:
        """Let a call through, or raise ProviderUnavailable while open (or while the
        one trial call after the cooldown is running); the call that gets through
        after the cooldown is that trial."""
        if self._opened_at is None:
            return
        if self.is_open or self._trial_running:
            raise ProviderUnavailable(
                "The image and video provider is not answering; try again in a minute."
            )
        self._trial_running = True  # half-open: this call decides

    def released(self) -> None:
        """A call ended without telling whether the provider is healthy (it was only busy)."""
        self._trial_running = False

    def succeeded(self) -> None:
        """A call got an answer: close the circuit and forget the failures."""
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def failed(self) -> None:
        """A call failed: count it; at `threshold` in a row (or a failed trial) open
        the circuit for another `cooldown` seconds."""
        self._failures += 1
        self._trial_running = False
        if self._failures >= self.threshold or self._opened_at is not None:
            if self._opened_at is None:
                logger.warning("Replicate failed %d times in a row: pausing calls", self._failures)
            self._opened_at = self._clock()
