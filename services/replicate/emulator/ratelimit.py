"""A sliding-window request limiter, as Replicate applies per API token.

Replicate's limits are per minute
(https://replicate.com/docs/topics/predictions/rate-limits); how it counts
within the minute is not published, so a sliding window stands in.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable

WINDOW_SECONDS = 60.0


class SlidingWindowLimiter:
    """At most `limit` accepted requests per key in any `window` seconds.

    Only accepted requests count, so a client hammering through a 429 does not push
    its own recovery further away.
    """

    def __init__(
        self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._hits: dict[Hashable, deque[float]] = {}

    def acquire(self, key: Hashable, limit: int) -> int | None:
        """Record a request and return None, or return the whole seconds until one is allowed."""
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(hits) < limit:
            hits.append(now)
            return None
        if limit <= 0:  # nothing is allowed until the limit is raised
            return math.ceil(self._window)
        # The request that frees a slot is the (len - limit + 1)-th oldest (the limit
        # may have been lowered below the number of requests already in the window).
        frees_at = hits[len(hits) - limit] + self._window
        return max(1, math.ceil(frees_at - now))

    def reset(self) -> None:
        """Forget every request (for tests and the admin endpoint)."""
        self._hits.clear()
