"""Waits between retries: exponential backoff with full jitter.

The wait before retry `attempt` (0 for the first) is uniform in
`[0, min(cap, base * 2**attempt)]`, so clients that failed together spread out
instead of retrying in step. Source: Marc Brooker, "Exponential Backoff And
Jitter", AWS Architecture Blog, 2015 ("Full Jitter").
"""

from __future__ import annotations

import asyncio
import random


def full_jitter(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before retry `attempt` (0-based), `base` and `cap` in seconds."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311 - spreading retries, not secrets


class Backoff:
    """Full-jitter backoff that counts its own attempts: `await wait()` after each failure.

    backoff = Backoff(base=0.1, cap=5.0)  # seconds
    while not await try_once():
        await backoff.wait()
    backoff.reset()
    """

    def __init__(self, base: float = 0.1, cap: float = 5.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    async def wait(self) -> None:
        """Sleep for this attempt's jittered wait, then count the attempt."""
        delay = full_jitter(self.attempt, base=self.base, cap=self.cap)
        self.attempt += 1
        await asyncio.sleep(delay)

    def reset(self) -> None:
        """Start again from the shortest wait (after a success)."""
        self.attempt = 0
