"""Where request-limit counts live: this process (memory), or a Redis every server shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from limits.aio.storage import MemoryStorage, RedisStorage, Storage

if TYPE_CHECKING:
    from services.request_limits.policy import Backoff


class Store(Protocol):
    """Where the counts live: one process, or a Redis every server shares.

    Three kinds of record, each under a key the caller chooses: request rates (in
    `rates`, kept by the `limits` package), failure records for waits that grow
    (`attempt`, `forgive`), and leases that expire unless renewed (`lease`, `renew`,
    `release`). Times are seconds. `MemoryStore` never raises; `RedisStore` raises
    redis-py's errors (`redis.exceptions.RedisError`: ConnectionError, TimeoutError
    after 2 s) when Redis is away, and `Limits` lets the request through then.
    """

    @property
    def rates(self) -> Storage:
        """The async storage of the `limits` package (`limits.aio.storage`) that the
        moving-window rate limiter counts requests in."""

    async def start(self) -> None:
        """Reach the store once (Redis: a PING), so an outage shows at start-up."""

    async def stop(self) -> None:
        """Let go of what the store holds open (connections, timers)."""

    async def attempt(
        self, keys: Sequence[tuple[str, Backoff]], memory: float, *, gated: int = 0
    ) -> float:
        """Seconds to wait, or 0.0 after counting this attempt as a failure against every key.

        keys: `(key, Backoff)` pairs, the caller's own record first; a key with n
        failures holds the attempt back until `Backoff.wait_after(n)` seconds after
        its last one. The last `gated` keys count always but hold the attempt back
        only when the first key has failures and no success since. memory: seconds
        a record is kept after its last failure. A refused attempt stores nothing.
        The check and the count are one atomic step, so parallel attempts cannot
        all pass before their failures are recorded.
        """

    async def forgive(self, cleared: str, lowered: Sequence[str], memory: float) -> None:
        """A success: `cleared` starts again at 0 failures, marked as having succeeded
        (kept `memory` seconds), and each key of `lowered` that has failures loses one
        (the failure `attempt` counted in advance)."""

    async def lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        """Take lease `lease_id` under `key` for `ttl` seconds if fewer than `limit`
        unexpired leases are held there: True if taken, False (nothing stored) if full."""

    async def renew(self, leases: Sequence[tuple[str, str]], ttl: float) -> None:
        """Extend each `(key, lease_id)` to `ttl` seconds from now; a lease that was
        released, or expired and was dropped, is not taken again."""

    async def release(self, key: str, lease_id: str) -> None:
        """Give lease `lease_id` under `key` back; nothing happens if it is not held."""


_MEMORY_RECORDS = 100_000  # failure records one process keeps at most


@dataclass
class _Failures:
    count: int
    last: float
    succeeded: bool = False  # the caller this record is for signed in since its failures


class MemoryStore:
    """This process only; the same rules as the Redis store, with a clock of its own.

    The clock is `time.monotonic()`. At most 100,000 failure records are kept (beyond
    that, records past `memory` go first, then the oldest). Nothing here raises.
    """

    def __init__(self) -> None:
        self._rates = MemoryStorage()
        self._failures: dict[str, _Failures] = {}
        self._leases: dict[str, dict[str, float]] = {}

    @property
    def rates(self) -> Storage:
        """The `limits` package's `MemoryStorage` (see `Store.rates`)."""
        return self._rates

    async def start(self) -> None:
        """Nothing to reach: returns at once."""

    async def stop(self) -> None:
        """Cancel the expiry timer task `MemoryStorage` starts (if it started one)."""
        timer = getattr(self._rates, "timer", None)
        if isinstance(timer, asyncio.Task):
            timer.cancel()

    def _forget_old(self, now: float, memory: float) -> None:
        if len(self._failures) <= _MEMORY_RECORDS:
            return
        for key, record in list(self._failures.items()):
            if now - record.last > memory:  # only a wait long past
                del self._failures[key]
        # Still too many (guesses from very many addresses): the oldest go first,
        # so memory stays bounded at the price of forgetting some failures.
        for key in list(self._failures)[: len(self._failures) - _MEMORY_RECORDS]:
            del self._failures[key]

    def _current(self, key: str, now: float, memory: float) -> _Failures | None:
        record = self._failures.get(key)
        return record if record is not None and now - record.last <= memory else None

    async def attempt(
        self, keys: Sequence[tuple[str, Backoff]], memory: float, *, gated: int = 0
    ) -> float:
        """Seconds to wait, or 0 after counting this attempt against every key.

        The last `gated` keys count always but hold the attempt back only when
        the first key (the caller's own record) has failures and no success.
        Nothing is stored for a refused attempt. See `Store.attempt`.
        """
        now = time.monotonic()
        self._forget_old(now, memory)
        own = self._current(keys[0][0], now, memory)
        own_failed = own is not None and own.count > 0 and not own.succeeded
        wait = 0.0
        for index, (key, backoff) in enumerate(keys):
            if index >= len(keys) - gated and not own_failed:
                continue
            record = self._current(key, now, memory)
            if record is not None and record.count:
                wait = max(wait, record.last + backoff.wait_after(record.count) - now)
        if wait > 0:
            return wait
        for key, _ in keys:
            record = self._current(key, now, memory)
            if record is None:
                record = self._failures[key] = _Failures(0, now)
            record.count += 1
            record.last = now
        return 0.0

    async def forgive(self, cleared: str, lowered: Sequence[str], memory: float) -> None:
        """See `Store.forgive`; `memory` is not needed here (records age out by `attempt`)."""
        self._failures[cleared] = _Failures(0, time.monotonic(), succeeded=True)
        for key in lowered:
            record = self._failures.get(key)
            if record is not None and record.count > 0:
                record.count -= 1

    async def lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        """See `Store.lease`; expired leases under `key` are dropped first."""
        now = time.monotonic()
        held = {k: v for k, v in self._leases.get(key, {}).items() if v > now}
        if len(held) >= limit:
            self._leases[key] = held
            return False
        held[lease_id] = now + ttl
        self._leases[key] = held
        return True

    async def renew(self, leases: Sequence[tuple[str, str]], ttl: float) -> None:
        """See `Store.renew`."""
        now = time.monotonic()
        for key, lease_id in leases:
            held = self._leases.get(key)
            if held is not None and lease_id in held:
                held[lease_id] = now + ttl

    async def release(self, key: str, lease_id: str) -> None:
        """See `Store.release`; a key left with no lease is forgotten."""
        held = self._leases.get(key)
        if held is not None:
            held.pop(lease_id, None)
            if not held:
                del self._leases[key]


# Each script reads the time from Redis, so servers with skewed clocks still agree.
# TIME before a write is allowed in a script since Redis 5, which replicates scripts
# by their effects: https://redis.io/docs/latest/develop/interact/programmability/eval-intro/
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS: failure records, the caller's own first; ARGV: memory (s), how many of the
# last keys are gated (they hold back only a caller whose own record has failures
# and no success), then free, base, cap for each key. Returns the seconds to wait
# (as text: Lua numbers become integers, fraction dropped, in a reply:
# https://redis.io/docs/latest/develop/interact/programmability/lua-api/), or '0'
# after counting this attempt against every key.
_ATTEMPT = (
    _NOW
    + """
local wait = 0
local gated = tonumber(ARGV[2])
local own = redis.call('HMGET', KEYS[1], 'n', 'ok')
local own_failed = (tonumber(own[1]) or 0) > 0 and own[2] ~= '1'
for i, key in ipairs(KEYS) do
  local free = tonumber(ARGV[3 * i])
  local base = tonumber(ARGV[3 * i + 1])
  local cap = tonumber(ARGV[3 * i + 2])
  local state = redis.call('HMGET', key, 'n', 'last')
  local n = tonumber(state[1]) or 0
  local last = tonumber(state[2]) or 0
  if i > #KEYS - gated and not own_failed then n = 0 end
  if n > 0 and n >= free then
    local delay = math.min(cap, base * 2 ^ math.min(n - free, 60))
    if last + delay - now > wait then wait = last + delay - now end
  end
end
if wait > 0 then return tostring(wait) end
local memory = math.ceil(tonumber(ARGV[1]) * 1000)
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'n', 1)
  redis.call('HSET', key, 'last', tostring(now))
  redis.call('PEXPIRE', key, memory)
end
return '0'
"""
)

# KEYS[1] cleared and marked as having succeeded; KEYS[2..] lowered by one.
# ARGV: memory (s).
_FORGIVE = """
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'n', 0, 'ok', '1')
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 1000))
for i = 2, #KEYS do
  if (tonumber(redis.call('HGET', KEYS[i], 'n')) or 0) > 0 then
    redis.call('HINCRBY', KEYS[i], 'n', -1)
  end
end
return 1
"""

# KEYS[1] a sorted set of lease -> expiry; ARGV: limit, lease id, ttl (s).
_LEASE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], tostring(now + tonumber(ARGV[3])), ARGV[2])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
return 1
"""
)

# KEYS: lease sets; ARGV: ttl (s), then the lease id for each key. ZADD XX only
# updates members that exist (https://redis.io/docs/latest/commands/zadd/).
_RENEW = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', tostring(now + ttl), ARGV[i + 1])
  redis.call('PEXPIRE', key, math.ceil(ttl * 1000))
end
return 1
"""
)


class RedisStore:
    """A Redis every server shares; each step is one Lua script, so it is atomic.

    Redis runs a script as a whole, with no other command in between
    (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
    url: `redis://` or `rediss://`, as redis-py's `Redis.from_url` takes it; every key
    is `<prefix>:<key>` (rates under `<prefix>:rate`). Failure records are hashes
    (n, last, ok) that expire `memory` seconds after their last counted attempt or
    success; leases are a
    sorted set per key, lease id -> expiry. Every call raises redis-py's errors
    (ConnectionError, TimeoutError after 2 s) when Redis is away.
    """

    def __init__(self, url: str, *, prefix: str) -> None:
        import redis.asyncio as redis

        # Short timeouts: while Redis is away each request waits this long before it is
        # let through.
        self._client: Any = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        scheme, _, rest = url.partition("://")
        shared: dict[str, Any] = {"connection_pool": self._client.connection_pool}
        self._rates = RedisStorage(
            f"async+{scheme}://{rest}",
            implementation="redispy",
            key_prefix=f"{prefix}:rate",
            **shared,
        )
        self._prefix = prefix
        self._attempt = self._client.register_script(_ATTEMPT)
        self._forgive = self._client.register_script(_FORGIVE)
        self._lease = self._client.register_script(_LEASE)
        self._renew = self._client.register_script(_RENEW)

    @property
    def rates(self) -> Storage:
        """The `limits` package's `RedisStorage`, on this store's connection pool."""
        return self._rates

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def start(self) -> None:
        """PING Redis; raises ConnectionError or TimeoutError if it does not answer."""
        await self._client.ping()

    async def stop(self) -> None:
        """Close the client and its connection pool (shared with `rates`)."""
        await self._client.aclose()

    async def attempt(
        self, keys: Sequence[tuple[str, Backoff]], memory: float, *, gated: int = 0
    ) -> float:
        """See `Store.attempt`; one script run (`_ATTEMPT`), on Redis's clock."""
        args: list[float] = [memory, gated]
        for _, backoff in keys:
            args += [backoff.free, backoff.base, backoff.cap]
        wait = await self._attempt(keys=[self._key(key) for key, _ in keys], args=args)
        return float(wait)

    async def forgive(self, cleared: str, lowered: Sequence[str], memory: float) -> None:
        """See `Store.forgive`; one script run (`_FORGIVE`)."""
        await self._forgive(keys=[self._key(cleared), *map(self._key, lowered)], args=[memory])

    async def lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        """See `Store.lease`; one script run (`_LEASE`): expired leases are dropped
        first, and the set itself expires `ttl` seconds after its last lease or renewal."""
        return bool(await self._lease(keys=[self._key(key)], args=[limit, lease_id, ttl]))

    async def renew(self, leases: Sequence[tuple[str, str]], ttl: float) -> None:
        """See `Store.renew`; one script run (`_RENEW`) for all of them, none for []."""
        if leases:
            keys = [self._key(key) for key, _ in leases]
            await self._renew(keys=keys, args=[ttl, *(lease_id for _, lease_id in leases)])

    async def release(self, key: str, lease_id: str) -> None:
        """See `Store.release`: a ZREM of the lease id."""
        await self._client.zrem(self._key(key), lease_id)


def open_store(url: str, *, namespace: str = "") -> Store:
    """The store a LIMITS_URL names: `memory://`, or `redis://` / `rediss://`.

    Not started yet (`Store.start`). `namespace` keeps studios sharing one Redis apart
    (keys under `studio-limits:<namespace>`). Raises ValueError for any other scheme.
    """
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(
            url, prefix=f"studio-limits:{namespace}" if namespace else "studio-limits"
        )
    raise ValueError(f"LIMITS_URL must be memory:// or redis://...; got {url.split(':')[0]}:")
