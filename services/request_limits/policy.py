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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from limits import RateLimitItem, parse_many
from limits.aio.strategies import MovingWindowRateLimiter

from services.errors import RateLimited
from services.request_limits.stores import open_store

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
        """Stop renewing leases, give back the ones this server holds (errors ignored),
        then close the store. Raises what the store's `stop` raises."""
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
