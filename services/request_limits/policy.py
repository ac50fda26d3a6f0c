"""Limits every server of a studio shares: request rates, logIn waits, open subscriptions.

Counters live in one store, chosen by a URL (LIMITS_URL, see api/settings.py):

- `memory://`: this process only (the embedded default, one server);
- `redis://host:6379/0`: every server using that Redis sees the same counts.

Three kinds of limit, each keyed by a string the caller chooses (a user, an
address, an account):

- request rates: at most N in a moving window, through the `limits` package
  (alisaifee/limits, its asyncio API, memory or redis-py storage);
- logIn waits (`LoginPolicy`): after some free failures every further attempt
  must wait longer (1 s, 2 s, 4 s, ... up to a cap), per account and address,
  per address, and, more loosely and with a short cap, per account; the
  account-wide wait holds back only callers that failed on that account
  themselves, so no one can keep an owner out (see `LoginPolicy`);
- open subscriptions per user (`acquire`): a lease per subscription that its
  server renews while it runs, so a server that dies frees its slots when they
  expire instead of keeping them forever.

Over a limit, `RateLimited` (a `StudioError` with code RATE_LIMITED) says how
many seconds to wait. If the store cannot be reached the request is let
through and the fault logged: an outage of Redis must not stop the studio.

    limits = Limits("memory://", LimitSettings(graphql="600/minute"))
    await limits.start()
    await limits.hit("graphql", "user:7")        # raises RateLimited when over
    async with limits.subscription("user:7"):
        ...                                        # counted while open
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from services.errors import RateLimited

logger = logging.getLogger("studio.limits")


def parse_rates(text: str) -> list[RateLimitItem]:
    """`600/minute;20/second` as limits; empty text is no limit. Raises ValueError if malformed."""
    return parse_many(text) if text.strip() else []


def address_key(address: str, *, ipv6_prefix: int = 64) -> str:
    """The limit key for a client address: `address:<IPv4>` or `address:<IPv6 network>`.

    An IPv6 client is keyed by its network of `ipv6_prefix` bits (a /64 by
    default): one host is routinely given a whole /64 (RFC 7421 section 1, RFC
    8981 temporary addresses), so keying the exact address would give it 2^64
    budgets. An IPv4-mapped IPv6 address (`::ffff:10.1.1.1`) is its IPv4
    address, so a proxy mixing notations cannot double a budget. Anything that
    is not an IP address ("unknown", a Unix socket) is kept as given.
    """
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return f"address:{address}"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"address:{ip.ipv4_mapped}"
        bits = 128 - ipv6_prefix
        network = ipaddress.IPv6Network((int(ip) >> bits << bits, ipv6_prefix))
        return f"address:{network}"
    return f"address:{ip}"


@dataclass(frozen=True)
class Backoff:
    """Waits that grow after `free` failures: `base`, then doubling, at most `cap` seconds."""

    free: int
    base: float = 1.0
    cap: float = 900.0

    def wait_after(self, failures: int) -> float:
        """Seconds the next attempt must wait after the last of `failures` failures."""
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - self.free, 60))


@dataclass(frozen=True)
class LoginPolicy:
    """How failed logIns slow down further attempts; every number is a setting.

    Per account and address (`pair`) the waits grow to `pair.cap` (15 minutes);
    per address, over every account, likewise. Per account over every address
    (`account`) the free failures are many and the cap short, and that wait
    applies only to a caller whose own record for the account shows failures
    and no success: a first attempt from an address (or one from an address
    that signed in to the account since its failures) is never held back by
    what other addresses did. So an attacker cannot keep the owner out, not
    even by guessing again each time a wait ends; the price is that each new
    address (each IPv6 /64) gets one guess per account past the account-wide
    wait, within its own per-address budget.
    """

    pair: Backoff = Backoff(free=5)
    address: Backoff = Backoff(free=30)
    account: Backoff = Backoff(free=100, cap=30.0)
    memory: float = 3600.0  # failures are forgotten this long after the last one


@dataclass(frozen=True)
class LimitSettings:
    """Every limit, as plain values (api/settings.py has their meaning and defaults).

    Rates use the notation of the `limits` package; empty means no limit.
    """

    graphql: str = ""
    media: str = ""
    sign_up: str = ""
    max_input_list_length: int = 1000
    subscriptions_per_connection: int = 100
    subscriptions_per_user: int = 500
    lease_seconds: float = 60.0
    login: LoginPolicy = field(default_factory=LoginPolicy)
    ipv6_prefix: int = 64  # IPv6 clients share every per-address limit per network this wide


class _Store(Protocol):
    """Where the counts live: one process, or a Redis every server shares."""

    @property
    def rates(self) -> Storage: ...

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def attempt(
        self, keys: Sequence[tuple[str, Backoff]], memory: float, *, gated: int = 0
    ) -> float: ...
    async def forgive(self, cleared: str, lowered: Sequence[str], memory: float) -> None: ...
    async def lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool: ...
    async def renew(self, leases: Sequence[tuple[str, str]], ttl: float) -> None: ...
    async def release(self, key: str, lease_id: str) -> None: ...


_MEMORY_RECORDS = 100_000  # failure records one process keeps at most


@dataclass
class _Failures:
    count: int
    last: float
    succeeded: bool = False  # the caller this record is for signed in since its failures


class MemoryStore:
    """This process only; the same rules as the Redis store, with a clock of its own."""

    def __init__(self) -> None:
        self._rates = MemoryStorage()
        self._failures: dict[str, _Failures] = {}
        self._leases: dict[str, dict[str, float]] = {}

    @property
    def rates(self) -> Storage:
        return self._rates

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
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
        Nothing is stored for a refused attempt.
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
        self._failures[cleared] = _Failures(0, time.monotonic(), succeeded=True)
        for key in lowered:
            record = self._failures.get(key)
            if record is not None and record.count > 0:
                record.count -= 1

    async def lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        now = time.monotonic()
        held = {k: v for k, v in self._leases.get(key, {}).items() if v > now}
        if len(held) >= limit:
            self._leases[key] = held
            return False
        held[lease_id] = now + ttl
        self._leases[key] = held
        return True

    async def renew(self, leases: Sequence[tuple[str, str]], ttl: float) -> None:
        now = time.monotonic()
        for key, lease_id in leases:
            held = self._leases.get(key)
            if held is not None and lease_id in held:
                held[lease_id] = now + ttl

    async def release(self, key: str, lease_id: str) -> None:
        held = self._leases.get(key)
        if held is not None:
            held.pop(lease_id, None)
            if not held:
                del self._leases[key]


# Each script reads the time from Redis, so servers with skewed clocks still agree.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS: failure records, the caller's own first; ARGV: memory (s), how many of the
# last keys are gated (they hold back only a caller whose own record has failures
# and no success), then free, base, cap for each key. Returns the seconds to wait
# (as text: Lua numbers become integers), or '0' after counting this attempt
# against every key.
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

# KEYS: lease sets; ARGV: ttl (s), then the lease id for each key.
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
    """A Redis every server shares; each step is one Lua script, so it is atomic."""

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
        return self._rates

    def _key(self, key: str) -> str:
        return f"{self._prefix}:{key}"

    async def start(self) -> None:
        await self._client.ping()

    async def stop(self) -> None:
        await self._client.aclose()

    async def attempt(
        self, keys: Sequence[tuple[str, Backoff]], memory: float, *, gated: int = 0
    ) -> float:
        args: list[float] = [memory, gated]
        for _, backoff in keys:
            args += [backoff.free, backoff.base, backoff.cap]
        wait = await self._attempt(keys=[self._key(key) for key, _ in keys], args=args)
        return float(wait)

    async def forgive(self, cleared: str, lowered: Sequence[str], memory: float) -> None:
        await self._forgive(keys=[self._key(cleared), *map(self._key, lowered)], args=[memory])

    async def lease(self, key: str, lease_id: str, limit: int, ttl: float) -> bool:
        return bool(await self._lease(keys=[self._key(key)], args=[limit, lease_id, ttl]))

    async def renew(self, leases: Sequence[tuple[str, str]], ttl: float) -> None:
        if leases:
            keys = [self._key(key) for key, _ in leases]
            await self._renew(keys=keys, args=[ttl, *(lease_id for _, lease_id in leases)])

    async def release(self, key: str, lease_id: str) -> None:
        await self._client.zrem(self._key(key), lease_id)


def open_store(url: str, *, namespace: str = "") -> _Store:
    """The store a LIMITS_URL names: `memory://`, or `redis://` / `rediss://`."""
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(
            url, prefix=f"studio-limits:{namespace}" if namespace else "studio-limits"
        )
    raise ValueError(f"LIMITS_URL must be memory:// or redis://...; got {url.split(':')[0]}:")


def _seconds(wait: float) -> int:
    """A wait as whole seconds for Retry-After (RFC 9110 §10.2.3): rounded up, at least 1."""
    return max(1, math.ceil(wait))


def _fail_open(what: str, error: Exception) -> None:
    logger.warning("limits: %s let through, the store failed: %r", what, error)


class Limits:
    """Every limit of one server, over a store the studio's servers share."""

    def __init__(self, url: str, settings: LimitSettings, *, namespace: str = "") -> None:
        self.settings = settings
        self._store = open_store(url, namespace=namespace)
        self._window = MovingWindowRateLimiter(self._store.rates)
        self._rates = {
            "graphql": parse_rates(settings.graphql),
            "media": parse_rates(settings.media),
            "signUp": parse_rates(settings.sign_up),
        }
        self._held: dict[str, str] = {}  # lease id -> its key, renewed while held
        self._renewer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Reach the store and renew leases; a Redis that does not answer is logged, not fatal
        (requests are let through until it does, like a server whose event bus is down)."""
        try:
            await self._store.start()
        except Exception as error:
            logger.warning("limits: the store does not answer yet: %r", error)
        self._renewer = asyncio.create_task(self._renew_forever(), name="limits-leases")

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        for lease_id, key in list(self._held.items()):
            with contextlib.suppress(Exception):
                await self._store.release(key, lease_id)
        self._held.clear()
        await self._store.stop()

    def address(self, address: str) -> str:
        """The client key for `address` in every per-address limit (see `address_key`)."""
        return address_key(address, ipv6_prefix=self.settings.ipv6_prefix)

    def limited(self, rate: str) -> bool:
        """Whether the named rate has any limit at all."""
        return bool(self._rates[rate])

    async def hit(self, rate: str, client: str) -> None:
        """Count one request of `client` against the named rate (graphql, media, signUp).

        Raises RateLimited with the seconds until the oldest counted request
        leaves the window.
        """
        for item in self._rates[rate]:
            try:
                if await self._window.hit(item, rate, client):
                    continue
                stats = await self._window.get_window_stats(item, rate, client)
            except Exception as error:
                _fail_open(f"{rate} for {client}", error)
                return
            wait = _seconds(stats.reset_time - time.time())
            raise RateLimited(
                f"Too many requests: at most {item.amount} per {item.get_expiry()} s. "
                f"Try again in {wait} s.",
                retry_after=wait,
            )

    async def login_attempt(self, *, account: str, address: str) -> None:
        """Count a logIn attempt before the password is checked; raise RateLimited to refuse it.

        Counted as a failure until `login_succeeded` says otherwise, so parallel
        guesses cannot all slip in before their failures are recorded. The
        account-wide wait refuses only a caller (this address) that has failed
        on this account itself since it last signed in to it; see `LoginPolicy`.
        """
        policy = self.settings.login
        keys = self._login_keys(account, address)
        try:
            wait = await self._store.attempt(
                [(keys[0], policy.pair), (keys[1], policy.address), (keys[2], policy.account)],
                policy.memory,
                gated=1,
            )
        except Exception as error:
            _fail_open("a logIn", error)
            return
        if wait > 0:
            seconds = _seconds(wait)
            raise RateLimited(
                f"Too many failed sign-ins for this account or from this address. "
                f"Try again in {seconds} s.",
                retry_after=seconds,
            )

    async def login_succeeded(self, *, account: str, address: str) -> None:
        """The attempt was right: its account-and-address failures are forgotten, and this
        address is known to the account (the account-wide wait no longer holds it
        back) until its record is forgotten."""
        pair, by_address, by_account = self._login_keys(account, address)
        try:
            await self._store.forgive(pair, [by_address, by_account], self.settings.login.memory)
        except Exception as error:
            _fail_open("forgiving a logIn", error)

    def _login_keys(self, account: str, address: str) -> tuple[str, str, str]:
        # Hashed: an email of any length (or spelling case) makes one short key.
        account = hashlib.sha256(account.strip().lower().encode(errors="replace")).hexdigest()
        client = self.address(address)
        return (
            f"login:pair:{account}:{client}",
            f"login:{client}",
            f"login:account:{account}",
        )

    @contextlib.asynccontextmanager
    async def subscription(self, user: str) -> AsyncIterator[None]:
        """Hold one of `user`'s open subscriptions, on every server, while the block runs.

        Raises RateLimited when the user already holds MAX_SUBSCRIPTIONS_PER_USER.
        """
        key, lease_id = f"subscriptions:{user}", secrets.token_hex(8)
        limit = self.settings.subscriptions_per_user
        try:
            granted = await self._store.lease(key, lease_id, limit, self.settings.lease_seconds)
        except Exception as error:
            _fail_open("a subscription", error)
            granted = None
        if granted is False:
            raise RateLimited(
                f"You have {limit} subscriptions open, the most allowed; "
                "complete one before starting another.",
                retry_after=None,
            )
        if granted:
            self._held[lease_id] = key
        try:
            yield
        finally:
            if self._held.pop(lease_id, None) is not None:
                with contextlib.suppress(Exception):
                    await self._store.release(key, lease_id)

    async def _renew_forever(self) -> None:
        interval = self.settings.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                held = [(key, lease_id) for lease_id, key in self._held.items()]
                await self._store.renew(held, self.settings.lease_seconds)
            except Exception as error:
                logger.warning("limits: renewing subscription leases failed: %r", error)
