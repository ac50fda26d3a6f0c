"""Limits: request rates, logIn waits, open subscriptions and list lengths.

The limiter itself runs on both of its stores (this process, and a real Redis);
the rest runs against real `studio serve` processes over HTTP and WebSocket:
429 with Retry-After, forwarded addresses believed only from trusted proxies,
logIn waits that never lock the owner out, subscriptions bounded per connection
and per user (also across two servers sharing Redis, and freed when a server
is killed), and over-long lists refused before their items are read.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from services.database import scratch_postgres_database
from services.errors import RateLimited
from services.request_limits.policy import (
    Backoff,
    Limits,
    LimitSettings,
    LoginPolicy,
    address_key,
)
from services.request_limits.stores import MemoryStore
from tests.conftest import ADMIN_URL, _unavailable
from tests.factories import PASSWORD
from tests.realtime_harness import PROJECT_EVENTS, Api, Feed, Socket
from tests.servers import StudioServer, free_port, run_studio, studio_env

SECRET_KEY = "limits end-to-end tests secret key, long enough to pass"
REDIS_URL = "redis://127.0.0.1:6379/0"

LOG_IN = """
mutation($input: LogInInput!) { logIn(input: $input) { token userErrors { code field message } } }
"""
SIGN_UP = """
mutation($input: SignUpInput!) { signUp(input: $input) { token userErrors { code message } } }
"""


# -- the limiter, on each of its stores ------------------------------------------------------


async def reachable_redis() -> str:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, aioredis.ConnectionError) as error:
        _unavailable("Redis", error)
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def store_url(request: pytest.FixtureRequest) -> str:
    return "memory://" if request.param == "memory" else await reachable_redis()


@pytest.fixture
async def make_limits(store_url: str) -> AsyncIterator[Any]:
    """Limits over `store_url`, each call another server of one studio (one namespace)."""
    namespace = secrets.token_hex(6)
    opened: list[Limits] = []
    shared: dict[str, Limits] = {}

    async def make(settings: LimitSettings) -> Limits:
        if store_url == "memory://" and "memory" in shared:
            return shared["memory"]  # one process: its servers are the one object
        limits = Limits(store_url, settings, namespace=namespace)
        await limits.start()
        opened.append(limits)
        shared["memory"] = limits
        return limits

    yield make
    for limits in opened:
        await limits.stop()


async def test_a_rate_refuses_past_its_limit_and_says_when(make_limits: Any) -> None:
    limits = await make_limits(LimitSettings(graphql="3/minute"))
    for _ in range(3):
        await limits.hit("graphql", "user:1")
    with pytest.raises(RateLimited) as refused:
        await limits.hit("graphql", "user:1")
    assert refused.value.code == "RATE_LIMITED"
    assert refused.value.retry_after is not None
    assert 1 <= refused.value.retry_after <= 60
    await limits.hit("graphql", "user:2")  # someone else's budget is their own


async def test_login_waits_grow_after_the_free_failures_and_a_success_forgives(
    make_limits: Any,
) -> None:
    policy = LoginPolicy(
        pair=Backoff(free=2, base=1.0, cap=8.0),
        address=Backoff(free=100),
        account=Backoff(free=100, cap=30.0),
    )
    limits = await make_limits(LimitSettings(login=policy))
    who = {"account": "Ann@Example.com", "address": "198.51.100.7"}
    await limits.login_attempt(**who)
    await limits.login_attempt(**who)
    with pytest.raises(RateLimited) as first:
        await limits.login_attempt(**who)
    assert first.value.retry_after == 1
    # Another address is not held back by these failures, nor is the email's spelling a way out.
    await limits.login_attempt(account="ann@example.com", address="203.0.113.5")
    with pytest.raises(RateLimited):
        await limits.login_attempt(account=" ANN@example.com", address="198.51.100.7")
    await asyncio.sleep(1.1)
    await limits.login_attempt(**who)  # allowed after the wait, and counted
    with pytest.raises(RateLimited) as second:
        await limits.login_attempt(**who)
    assert second.value.retry_after == 2  # the wait doubled
    await asyncio.sleep(2.1)
    await limits.login_attempt(**who)
    await limits.login_succeeded(**who)  # that one was right: the slate is clean
    await limits.login_attempt(**who)
    await limits.login_attempt(**who)


async def test_the_account_wide_wait_holds_back_only_callers_that_failed_themselves(
    make_limits: Any,
) -> None:
    """Guesses from many addresses make the account wait, but only for addresses that
    guessed wrong themselves: the owner, from a new address or from one that signed in
    since its own failures, is never refused because of someone else's failures, however
    the attacker times its guesses."""
    policy = LoginPolicy(
        pair=Backoff(free=5),
        address=Backoff(free=5),
        account=Backoff(free=3, base=10.0, cap=20.0),
    )
    limits = await make_limits(LimitSettings(login=policy))
    victim = "victim@example.com"
    for n in range(12):  # each new address's first guess is counted, and let through
        await limits.login_attempt(account=victim, address=f"192.0.2.{n}")
    # A second guess from an address that failed: held back by the account-wide wait,
    # which is short (the cap), so it is never a lock for anyone.
    with pytest.raises(RateLimited) as held:
        await limits.login_attempt(account=victim, address="192.0.2.3")
    assert held.value.retry_after is not None
    assert 1 <= held.value.retry_after <= 20
    # The owner from addresses the attacker never used: never refused.
    for n in range(5):
        owner = {"account": victim, "address": f"203.0.113.{n}"}
        await limits.login_attempt(**owner)
        await limits.login_succeeded(**owner)
    # The owner's own address, after a typo there: it signed in from here, so the
    # account-wide wait does not apply (its own, per-address budget still does).
    home = {"account": victim, "address": "203.0.113.1"}
    await limits.login_attempt(**home)  # a typo (not forgiven)
    await limits.login_attempt(**home)  # the right one
    await limits.login_succeeded(**home)
    # An address that only ever failed is still held back.
    with pytest.raises(RateLimited):
        await limits.login_attempt(account=victim, address="192.0.2.7")


async def test_a_refused_log_in_attempt_stores_nothing(make_limits: Any) -> None:
    """Refused attempts leave no records, so guessing many emails from a throttled address
    cannot fill the store (and, in one process, push its own waits out of memory)."""
    policy = LoginPolicy(pair=Backoff(free=1), address=Backoff(free=1, base=30.0))
    limits = await make_limits(LimitSettings(login=policy))
    await limits.login_attempt(account="a@example.com", address="198.51.100.200")
    for n in range(20):
        with pytest.raises(RateLimited):
            await limits.login_attempt(account=f"x{n}@example.com", address="198.51.100.200")
    # A fresh account from a fresh address: nothing was recorded for the refused emails.
    store = limits._store
    if isinstance(store, MemoryStore):
        assert len(store._failures) == 3  # pair, address, account of the first attempt
    else:
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            keys = await client.keys(f"{store._prefix}:login:*")
        finally:
            await client.aclose()
        assert len(keys) == 3, keys


async def test_subscription_slots_are_counted_per_user_on_every_server(make_limits: Any) -> None:
    settings = LimitSettings(subscriptions_per_user=2)
    a, b = await make_limits(settings), await make_limits(settings)
    async with a.subscription("user:1"), b.subscription("user:1"):
        with pytest.raises(RateLimited) as refused:
            async with a.subscription("user:1"):
                pass
        assert refused.value.retry_after is None
        async with b.subscription("user:2"):  # another user's slots are their own
            pass
    async with b.subscription("user:1"), a.subscription("user:1"):  # freed when they ended
        pass


async def test_a_store_that_does_not_answer_lets_requests_through(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    limits = Limits(nowhere, LimitSettings(graphql="1/minute"), namespace="down")
    await limits.start()
    try:
        for _ in range(3):
            await limits.hit("graphql", "user:1")
            await limits.login_attempt(account="a@example.com", address="192.0.2.1")
        async with limits.subscription("user:1"):
            pass
    finally:
        await limits.stop()
    assert "let through" in caplog.text


# -- servers -----------------------------------------------------------------------------------


def limited_server(cwd: Path, name: str, **settings: str) -> StudioServer:
    defaults = {
        "SECRET_KEY": SECRET_KEY,
        "DATABASE_URL": f"sqlite+aiosqlite:///{cwd / name}.db",
        "MEDIA_ROOT": str(cwd / f"media-{name}"),
        "EMULATOR_LATENCY_MS": "200",
    }
    return StudioServer(env=studio_env(**(defaults | settings)), cwd=cwd, name=name, log_dir=cwd)


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    """Behind a trusted proxy at 127.0.0.1: each test claims addresses of its own."""
    cwd = tmp_path_factory.mktemp("edge")
    server = limited_server(
        cwd,
        "edge",
        TRUSTED_PROXIES="127.0.0.1",
        RATE_LIMIT_GRAPHQL="40/minute",
        RATE_LIMIT_MEDIA="3/minute",
        RATE_LIMIT_SIGN_UP="2/hour",
        LOGIN_FREE_FAILURES="3",
        LOGIN_ADDRESS_FREE_FAILURES="10",
        LOGIN_BASE_DELAY_SECONDS="1",
        LOGIN_MAX_DELAY_SECONDS="4",
    )
    with server:
        yield server


@pytest.fixture(scope="module")
def subs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    cwd = tmp_path_factory.mktemp("subs")
    server = limited_server(
        cwd, "subs", MAX_SUBSCRIPTIONS_PER_CONNECTION="2", MAX_SUBSCRIPTIONS_PER_USER="3"
    )
    with server:
        yield server


_addresses = iter(range(1, 250))


def new_address() -> dict[str, str]:
    """Headers that make this test's requests come from an address no other test uses."""
    return {"X-Forwarded-For": f"198.51.100.{next(_addresses)}"}


def post(
    server: StudioServer,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers or {},
        timeout=30,
        trust_env=False,
    )


def sign_up(server: StudioServer, headers: dict[str, str]) -> tuple[str, str]:
    email = f"rae-{secrets.token_hex(5)}@example.com"
    response = post(
        server, SIGN_UP, {"input": {"email": email, "password": PASSWORD, "name": "Rae"}}, headers
    )
    payload = response.json()["data"]["signUp"]
    assert payload["userErrors"] == [], payload
    return email, payload["token"]


def assert_rate_limited(response: httpx.Response) -> int:
    """A 429 in the agreed shape; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}
    assert "Try again in" in error["message"]
    return retry_after


def assert_rate_limited_handshake(response: Response) -> int:
    """A WebSocket handshake refused as `assert_rate_limited` has a request refused."""
    refused = httpx.Response(
        response.status_code,
        headers=list(response.headers.raw_items()),
        content=bytes(response.body or b""),
    )
    return assert_rate_limited(refused)


# -- request rates over HTTP -------------------------------------------------------------------


@pytest.mark.e2e
def test_graphql_over_the_rate_is_429_and_a_signed_in_user_has_a_budget_of_their_own(
    edge: StudioServer,
) -> None:
    address = new_address()
    _, token = sign_up(edge, address)  # one of the address's 40
    answers = [post(edge, "{ __typename }", headers=address).status_code for _ in range(39)]
    assert answers == [200] * 39
    assert_rate_limited(post(edge, "{ __typename }", headers=address))
    # The same address, signed in: counted as its user, not as the address.
    signed_in = address | {"Authorization": f"Bearer {token}"}
    answers = [post(edge, "{ viewer { id } }", headers=signed_in).status_code for _ in range(40)]
    assert answers == [200] * 40
    assert_rate_limited(post(edge, "{ viewer { id } }", headers=signed_in))
    # Probes and webhooks are not limited (webhooks are signed and verified instead).
    for _ in range(3):
        assert httpx.get(f"{edge.base_url}/healthz", headers=address).status_code == 200
        hook = httpx.post(f"{edge.base_url}/webhooks/replicate", content=b"{}", headers=address)
        assert hook.status_code != 429


@pytest.mark.e2e
def test_several_credentials_are_counted_by_address_not_as_the_first_ones_user(
    edge: StudioServer,
) -> None:
    address = new_address()
    _, token = sign_up(edge, address)
    signed_in = address | {"Authorization": f"Bearer {token}"}
    answers = [post(edge, "{ viewer { id } }", headers=signed_in).status_code for _ in range(40)]
    assert answers == [200] * 40
    assert_rate_limited(post(edge, "{ viewer { id } }", headers=signed_in))
    # Sent next to another credential, the token is not taken as the client's: the
    # request counts on the address (which has budget left) and is refused as malformed.
    for credentials in (
        [f"Bearer {token}", "Bearer sbs_other"],
        [f"Bearer {token}, Bearer sbs_other"],
    ):
        headers = [*address.items(), *(("Authorization", value) for value in credentials)]
        response = httpx.post(
            f"{edge.base_url}/graphql",
            json={"query": "{ viewer { id } }"},
            headers=headers,
            timeout=30,
            trust_env=False,
        )
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


@pytest.mark.e2e
def test_media_has_a_rate_of_its_own(edge: StudioServer) -> None:
    address = new_address()
    for _ in range(3):
        response = httpx.get(f"{edge.base_url}/media/nothing.png", headers=address)
        assert response.status_code != 429
    assert_rate_limited(httpx.get(f"{edge.base_url}/media/nothing.png", headers=address))
    assert post(edge, "{ __typename }", headers=address).status_code == 200  # /graphql is apart


@pytest.mark.e2e
def test_forwarded_addresses_are_believed_only_from_trusted_proxies(
    edge: StudioServer, tmp_path: Path
) -> None:
    # Trusted: each forwarded address has a budget of its own.
    first, second = new_address(), new_address()
    for _ in range(40):
        post(edge, "{ __typename }", headers=first)
    assert_rate_limited(post(edge, "{ __typename }", headers=first))
    assert post(edge, "{ __typename }", headers=second).status_code == 200
    # Not trusted (no TRUSTED_PROXIES): a made-up X-Forwarded-For buys nothing.
    with limited_server(tmp_path, "direct", RATE_LIMIT_GRAPHQL="3/minute") as direct:
        for n in range(3):
            spoofed = {"X-Forwarded-For": f"203.0.113.{n}", "Forwarded": f"for=203.0.113.{n}"}
            assert post(direct, "{ __typename }", headers=spoofed).status_code == 200
        assert_rate_limited(
            post(direct, "{ __typename }", headers={"X-Forwarded-For": "192.0.2.99"})
        )
        # Opening a WebSocket counts too: over the rate, the handshake is refused as a
        # request is, with 429, Retry-After and the same body.
        url = direct.base_url.replace("http://", "ws://") + "/graphql"
        with pytest.raises(InvalidStatus) as refused:
            connect(url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=10)
        assert_rate_limited_handshake(refused.value.response)


@pytest.mark.e2e
async def test_operations_over_a_websocket_count_and_the_socket_stays_open(
    edge: StudioServer,
) -> None:
    address = new_address()
    _, token = sign_up(edge, address)
    async with await Socket.open(edge, token) as socket:
        feeds = [await socket.subscribe("{ viewer { id } }", {}) for _ in range(41)]
        answers = [await feed.message() for feed in feeds]
        # Operations on one socket run side by side: any one of them may be the 41st.
        refusals = [a for a in answers if a["type"] != "next"]
        assert len(refusals) == 1, refusals
        [refused] = refusals
        assert refused["type"] == "error", refused
        (error,) = refused["payload"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert 1 <= error["extensions"]["retryAfter"] <= 60
        pong = await socket.connection.ping()
        await asyncio.wait_for(pong, 5)  # still open


# -- logIn and signUp --------------------------------------------------------------------------


def log_in(server: StudioServer, email: str, password: str, headers: dict[str, str]) -> Any:
    response = post(
        server, LOG_IN, {"input": {"email": email, "password": password}}, headers=headers
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]["logIn"]


_networks = iter(range(1, 250))


def new_network() -> list[dict[str, str]]:
    """Forwarded-address headers for many addresses of one IPv6 /64 no other test uses, in
    every spelling a client may pick (short, full, upper case, the last 64 bits random)."""
    prefix = f"2001:db8:{next(_networks):x}:7"
    spellings = [
        f"{prefix}::1",
        f"{prefix}::2",
        f"{prefix}:ffff:ffff:ffff:fffe",
        f"{prefix}:1:2:3:4".upper(),
        f"{prefix}:{secrets.randbits(16):x}:{secrets.randbits(16):x}:0:9",
        f"2001:0db8:{int(prefix.split(':')[2], 16):04x}:0007:0000:0000:0000:00aa",
    ]
    return [{"X-Forwarded-For": spelling} for spelling in spellings]


def test_an_ipv6_client_is_keyed_by_its_network_and_ipv4_by_its_address() -> None:
    net = "address:2001:db8:1:2::/64"
    for spelling in ["2001:db8:1:2::1", "2001:DB8:1:2:FFFF:FFFF:FFFF:FFFF", "2001:db8:1:2:a:b:c:d"]:
        assert address_key(spelling) == net
    assert address_key("2001:db8:1:3::1") != net
    assert address_key("2001:db8:1:2::1", ipv6_prefix=56) == "address:2001:db8:1::/56"
    assert address_key("2001:db8:1:2::1", ipv6_prefix=128) == "address:2001:db8:1:2::1/128"
    assert address_key("fe80::1%eth0") == "address:fe80::/64"
    # IPv4 is its own address; written as IPv4-mapped IPv6, it is still that address.
    assert address_key("10.1.1.1") == "address:10.1.1.1"
    assert address_key("::ffff:10.1.1.1") == "address:10.1.1.1"
    assert address_key("10.1.1.2") != address_key("10.1.1.1")
    assert address_key("unknown") == "address:unknown"


@pytest.mark.e2e
def test_every_per_address_limit_counts_an_ipv6_slash_64_as_one_client(
    edge: StudioServer,
) -> None:
    """A host holds a whole /64: new addresses in it buy no new budget, for any limit."""
    # signUp (2/hour): the third attempt, from another address of the /64, is refused,
    # though its email is taken (taken attempts count too).
    hosts = new_network()
    email, _ = sign_up(edge, hosts[0])
    again = post(
        edge, SIGN_UP, {"input": {"email": email, "password": PASSWORD, "name": "T"}}, hosts[1]
    ).json()["data"]["signUp"]
    assert [e["code"] for e in again["userErrors"]] == ["EMAIL_TAKEN"]
    for host in hosts[2:]:
        third = f"third-{secrets.token_hex(4)}@example.com"
        refused = post(
            edge, SIGN_UP, {"input": {"email": third, "password": PASSWORD, "name": "T"}}, host
        ).json()["data"]["signUp"]
        assert [e["code"] for e in refused["userErrors"]] == ["RATE_LIMITED"], host
    sign_up(edge, new_network()[0])  # another /64 is another client

    # Requests on /graphql (40/minute), spread over the /64; then WebSocket handshakes too.
    hosts = new_network()
    answers = [post(edge, "{ __typename }", headers=hosts[n % 6]).status_code for n in range(40)]
    assert answers == [200] * 40
    for host in hosts:
        assert_rate_limited(post(edge, "{ __typename }", headers=host))
    url = edge.base_url.replace("http://", "ws://") + "/graphql"
    with pytest.raises(InvalidStatus) as refused_socket:
        connect(
            url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers=hosts[4],
            open_timeout=10,
        )
    assert_rate_limited_handshake(refused_socket.value.response)

    # /media (3/minute).
    hosts = new_network()
    for host in hosts[:3]:
        assert httpx.get(f"{edge.base_url}/media/nothing.png", headers=host).status_code != 429
    for host in hosts[3:]:
        assert_rate_limited(httpx.get(f"{edge.base_url}/media/nothing.png", headers=host))

    # logIn waits (3 free failures per account and client): the fourth guess waits (for
    # 1 s only, so just one is tried).
    email, _ = sign_up(edge, new_address())
    hosts = new_network()
    for host in hosts[:3]:
        (error,) = log_in(edge, email, "wrong password!", host)["userErrors"]
        assert error["code"] == "INVALID_CREDENTIALS"
    (error,) = log_in(edge, email, "wrong password!", hosts[5])["userErrors"]
    assert error["code"] == "RATE_LIMITED"


@pytest.mark.e2e
def test_log_in_waits_grow_after_failures_but_never_lock_the_owner_out(edge: StudioServer) -> None:
    email, _ = sign_up(edge, new_address())
    attacker, owner = new_address(), new_address()
    codes = []
    started = time.monotonic()
    for _ in range(30):
        (error,) = log_in(edge, email, "wrong password!", attacker)["userErrors"]
        codes.append(error["code"])
    assert codes[:3] == ["INVALID_CREDENTIALS"] * 3
    checked = codes.count("INVALID_CREDENTIALS")
    # After three free failures each guess waits 1 s, then 2, then 4.
    assert checked <= 3 + int(time.monotonic() - started) + 1, codes
    assert "RATE_LIMITED" in codes
    # A guess checked once the last wait ended starts the next wait: on a busy machine
    # the 30 guesses may end after their last wait did.
    while True:
        (error,) = log_in(edge, email, "wrong password!", attacker)["userErrors"]
        if error["code"] == "INVALID_CREDENTIALS":
            break
        time.sleep(int(re.search(r"Try again in (\d+) s", error["message"]).group(1)))  # type: ignore[union-attr]
    # The right password from the attacker's address must wait too...
    refused = log_in(edge, email, PASSWORD, attacker)
    assert refused["token"] is None
    (error,) = refused["userErrors"]
    assert error["code"] == "RATE_LIMITED"
    wait = int(re.search(r"Try again in (\d+) s", error["message"]).group(1))  # type: ignore[union-attr]
    assert 1 <= wait <= 4
    # ...while the owner, elsewhere, signs in at once,
    assert log_in(edge, email, PASSWORD, owner)["token"]
    # and the wait ends: it is never a lock.
    time.sleep(wait + 0.2)
    assert log_in(edge, email, PASSWORD, attacker)["token"]


@pytest.mark.e2e
@pytest.mark.parametrize("store", ["memory://", REDIS_URL])
def test_an_attacker_timing_guesses_to_each_wait_never_keeps_the_owner_out(
    tmp_path: Path, store: str
) -> None:
    """The attack that defeated an account-wide wait: guesses from a few addresses, each
    sent the moment the announced wait ends, so the account always has a wait running.
    The owner, signing in from addresses of their own, gets in every time."""
    server = limited_server(
        tmp_path,
        "siege",
        LIMITS_URL=store,
        TRUSTED_PROXIES="127.0.0.1",
        RATE_LIMIT_GRAPHQL="",
        LOGIN_FREE_FAILURES="2",
        LOGIN_ADDRESS_FREE_FAILURES="4",
        LOGIN_ACCOUNT_FREE_FAILURES="3",
        LOGIN_BASE_DELAY_SECONDS="1",
        LOGIN_ACCOUNT_MAX_DELAY_SECONDS="5",
    )
    with server:
        email, _ = sign_up(server, {"X-Forwarded-For": "198.18.0.1"})
        stop = time.monotonic() + 12
        refused_attacker = 0

        def attack() -> None:
            nonlocal refused_attacker
            n = 0
            while time.monotonic() < stop:
                address = {"X-Forwarded-For": f"198.18.1.{n % 3 + 1}"}  # three, reused
                n += 1
                answer = log_in(server, email, f"guess {n}!", address)
                (error,) = answer["userErrors"]
                if error["code"] == "RATE_LIMITED":
                    refused_attacker += 1
                    wait = re.search(r"Try again in (\d+) s", error["message"])
                    assert wait is not None
                    time.sleep(max(0.05, int(wait.group(1)) - 0.3))

        attacker = threading.Thread(target=attack)
        attacker.start()
        try:
            time.sleep(2)  # the account's wait is running
            owner_answers = []
            for n in range(8):
                # A new address each time, and the owner's usual one after a typo there.
                fresh = {"X-Forwarded-For": f"198.18.2.{n + 1}"}
                owner_answers.append(log_in(server, email, PASSWORD, fresh)["userErrors"])
                time.sleep(0.6)
            home = {"X-Forwarded-For": "198.18.2.1"}  # signed in from here above
            assert log_in(server, email, "a typo!!", home)["userErrors"][0]["code"] == (
                "INVALID_CREDENTIALS"
            )
            owner_answers.append(log_in(server, email, PASSWORD, home)["userErrors"])
        finally:
            attacker.join()
        assert owner_answers == [[]] * 9
        assert refused_attacker > 0  # the attacker, meanwhile, was held back


@pytest.mark.e2e
async def test_parallel_guesses_are_counted_before_any_password_is_checked(
    edge: StudioServer,
) -> None:
    email, _ = sign_up(edge, new_address())
    attacker = new_address()
    body = {"query": LOG_IN, "variables": {"input": {"email": email, "password": "not it!!"}}}
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=60, trust_env=False) as client:
        answers = await asyncio.gather(
            *(client.post("/graphql", json=body, headers=attacker) for _ in range(30))
        )
    elapsed = time.monotonic() - started
    codes = [answer.json()["data"]["logIn"]["userErrors"][0]["code"] for answer in answers]
    assert set(codes) == {"INVALID_CREDENTIALS", "RATE_LIMITED"}, codes
    # Three free guesses, then one per wait (1 s, 2 s, ...): not thirty checked at once.
    assert codes.count("INVALID_CREDENTIALS") <= 3 + int(elapsed) + 1, (codes, elapsed)


@pytest.mark.e2e
def test_sign_up_has_a_rate_per_address(edge: StudioServer) -> None:
    address = new_address()
    sign_up(edge, address)
    sign_up(edge, address)
    email = f"third-{secrets.token_hex(4)}@example.com"
    answer = post(
        edge, SIGN_UP, {"input": {"email": email, "password": PASSWORD, "name": "T"}}, address
    ).json()["data"]["signUp"]
    assert answer["token"] is None
    assert [e["code"] for e in answer["userErrors"]] == ["RATE_LIMITED"]
    assert "Try again in" in answer["userErrors"][0]["message"]
    sign_up(edge, new_address())  # another address is not held back


# -- open subscriptions ------------------------------------------------------------------------


async def user_with_project(server: StudioServer) -> tuple[Api, str]:
    api = await Api(server.base_url).sign_up()
    return api, await api.create_project()


async def subscribed(socket: Socket, project_id: str) -> Feed:
    """A new projectEvents subscription, which must start (its snapshot arrives)."""
    feed = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
    await feed.next()
    return feed


async def assert_refused(socket: Socket, project_id: str) -> None:
    feed = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
    assert await feed.error_codes() == ["RATE_LIMITED"]


async def eventually_subscribed(socket: Socket, project_id: str, within: float = 15.0) -> None:
    """A subscription starts once slots held elsewhere are freed, which takes a moment."""
    deadline = time.monotonic() + within
    while True:
        feed = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
        message = await feed.message()
        if message["type"] == "next" and "errors" not in message["payload"]:
            return
        assert time.monotonic() < deadline, f"still refused after {within:.0f} s: {message}"
        await asyncio.sleep(0.2)


@pytest.mark.e2e
async def test_subscriptions_are_bounded_per_connection_and_per_user(subs: StudioServer) -> None:
    api, project_id = await user_with_project(subs)
    other, others_project = await user_with_project(subs)
    try:
        async with await Socket.open(subs, api.token) as first:
            one = await subscribed(first, project_id)
            await subscribed(first, project_id)
            await assert_refused(first, project_id)  # a third on one connection
            # The socket stays open: ending one makes room on it.
            await first.send({"id": one.id, "type": "complete"})
            await eventually_subscribed(first, project_id)
            async with await Socket.open(subs, api.token) as second:
                await subscribed(second, project_id)  # the user's third
                await assert_refused(second, project_id)  # a fourth, on any connection
                async with await Socket.open(subs, other.token) as theirs:
                    await subscribed(theirs, others_project)  # another user is not counted
                await first.close()
                # The closed connection's subscriptions no longer count.
                await eventually_subscribed(second, project_id)
    finally:
        await api.aclose()
        await other.aclose()


# -- two servers sharing Redis -----------------------------------------------------------------


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    try:
        async with scratch_postgres_database(ADMIN_URL, prefix="studio_limits") as url:
            yield url
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable("PostgreSQL", error)


@pytest.mark.e2e
async def test_two_servers_sharing_redis_share_every_limit_and_a_killed_one_frees_its_slots(
    postgres_url: str, tmp_path: Path
) -> None:
    await reachable_redis()
    migrated = run_studio(
        ["migrate"], env=studio_env(DATABASE_URL=postgres_url, SECRET_KEY=SECRET_KEY), cwd=tmp_path
    )
    assert migrated.returncode == 0, migrated.stderr
    shared = {
        "DATABASE_URL": postgres_url,
        "EVENT_BUS_URL": REDIS_URL,  # LIMITS_URL unset: the limits follow the bus to Redis
        "TRUSTED_PROXIES": "127.0.0.1",
        "RATE_LIMIT_GRAPHQL": "30/minute",
        "MAX_SUBSCRIPTIONS_PER_USER": "2",
        "SUBSCRIPTION_LEASE_SECONDS": "2",
    }
    a, b = limited_server(tmp_path, "a", **shared), limited_server(tmp_path, "b", **shared)
    with a, b:
        address = new_address()
        for server in (a, b) * 15:
            assert post(server, "{ __typename }", headers=address).status_code == 200
        assert_rate_limited(post(a, "{ __typename }", headers=address))
        assert_rate_limited(post(b, "{ __typename }", headers=address))

        api, project_id = await user_with_project(a)
        try:
            socket_a = await Socket.open(a, api.token)
            await subscribed(socket_a, project_id)
            await subscribed(socket_a, project_id)
            async with await Socket.open(b, api.token) as socket_b:
                await assert_refused(socket_b, project_id)  # A's two count on B
                a.process.send_signal(signal.SIGKILL)  # A cannot say it let them go
                a.process.wait(10)
                await assert_refused(socket_b, project_id)
                # The dead server's leases expire (SUBSCRIPTION_LEASE_SECONDS) and free them.
                await eventually_subscribed(socket_b, project_id)
            await socket_a.close()
        finally:
            await api.aclose()


# -- list lengths ------------------------------------------------------------------------------

CREATE_SCENE = """
mutation($input: CreateSceneInput!) {
  createScene(input: $input) { scene { id } userErrors { code field message } }
}
"""
REORDER_SCENES = """
mutation($input: ReorderInput!) {
  reorderScenes(input: $input) { project { id } userErrors { code field message } }
}
"""
ADD_SHOT_IMAGES = """
mutation($input: AddShotImagesInput!) {
  addShotImages(input: $input) { images { id } userErrors { code field message } }
}
"""


@pytest.mark.e2e
async def test_over_long_lists_are_refused_before_their_items_are_read(subs: StudioServer) -> None:
    api, project_id = await user_with_project(subs)
    try:
        auth = {"Authorization": f"Bearer {api.token}"}
        # Past MAX_INPUT_LIST_LENGTH: refused before the variables become inputs.
        huge = {"input": {"projectId": project_id, "title": "Big", "shots": [{}] * 60_000}}
        response = post(subs, CREATE_SCENE, huge, headers=auth)
        assert response.status_code == 200, response.text
        (error,) = response.json()["errors"]
        assert error["extensions"] == {"code": "TOO_LONG", "field": ["input", "shots"]}
        # Past an argument's own limit: a userError naming the field.
        over = {"input": {"projectId": project_id, "title": "Long", "shots": [{}] * 201}}
        payload = post(subs, CREATE_SCENE, over, headers=auth).json()["data"]["createScene"]
        assert payload["scene"] is None
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("TOO_LONG", ["shots"])]
        scene = await api.create_scene(project_id, "Short", [{"description": "One"}])
        reorder = {"input": {"parentId": project_id, "ids": [scene["id"]] * 501}}
        payload = post(subs, REORDER_SCENES, reorder, headers=auth).json()["data"]["reorderScenes"]
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [("TOO_LONG", ["ids"])]
        images = [{"variantNumber": n, "status": "PENDING"} for n in range(13)]
        add = {
            "input": {"shotId": scene["shots"][0]["id"], "iterationPrompt": "p", "images": images}
        }
        payload = post(subs, ADD_SHOT_IMAGES, add, headers=auth).json()["data"]["addShotImages"]
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
            ("TOO_LONG", ["images"])
        ]
        scenes = await api.data(
            "query($id: ID!) { project(id: $id) { scenes { title } } }", {"id": project_id}
        )
        assert scenes["project"]["scenes"] == [{"title": "Short"}]  # nothing else was made
    finally:
        await api.aclose()
