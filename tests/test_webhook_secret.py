"""Webhooks while the signing secret is not known: refusals cost the provider nothing.

A server with no REPLICATE_WEBHOOK_SECRET fetches it from the provider when a
webhook first needs it. Deliveries that can never verify are refused with 401
before that; forged ones that could are answered 503 quickly, and however many
arrive, the provider is asked at most once per back-off.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from services.replicate.emulator import EmulatorConfig, create_emulator_app
from services.replicate.signatures import SecretUnavailable, SigningSecret
from tests.emulator_harness import ThreadedServer
from tests.servers import StudioServer, studio_env

pytestmark = pytest.mark.e2e

API_TOKEN = "r8_" + secrets.token_urlsafe(24)
SECRET_PATH = "/v1/webhooks/default/secret"
CALL_TIMEOUT = 3.0


class CountingEmulator(ThreadedServer):
    """The emulator, counting the requests for the webhook secret it receives."""

    def __init__(self, **settings: object) -> None:
        self.secret_requests = 0
        self._lock = threading.Lock()

        def build(url: str) -> ASGIApp:
            self.config = EmulatorConfig(public_url=url, **settings)  # type: ignore[arg-type]
            inner = create_emulator_app(self.config)

            async def app(scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == "http" and scope["path"] == SECRET_PATH:
                    with self._lock:
                        self.secret_requests += 1
                await inner(scope, receive, send)

            return app

        super().__init__(build, name="emulator")


@pytest.fixture(scope="module")
def provider() -> Iterator[CountingEmulator]:
    with CountingEmulator(api_token=API_TOKEN, down=True) as server:
        yield server


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, provider: CountingEmulator) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("webhook-secret")
    server = StudioServer(
        env=studio_env(
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'studio.db'}",
            SECRET_KEY="webhook secret tests: a long enough key",
            REPLICATE_BASE_URL=provider.url,
            REPLICATE_API_TOKEN=API_TOKEN,
            REPLICATE_CALL_TIMEOUT_SECONDS=str(CALL_TIMEOUT),
            MEDIA_ROOT=str(tmp / "media"),
        ),
        cwd=Path(tmp),
        name="webhook-secret",
    )
    with server:
        yield server.base_url


def post(base_url: str, headers: dict[str, str]) -> tuple[int, float, httpx.Headers]:
    started = time.monotonic()
    response = httpx.post(
        f"{base_url}/webhooks/replicate",
        content=b'{"id": "p1", "status": "succeeded"}',
        headers=headers,
        timeout=60.0,
        trust_env=False,
    )
    return response.status_code, time.monotonic() - started, response.headers


def forged() -> dict[str, str]:
    """Headers of the right shape, fresh, with a signature nobody made."""
    return {
        "webhook-id": "msg_" + secrets.token_hex(8),
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1," + base64.b64encode(secrets.token_bytes(32)).decode(),
    }


MALFORMED = [
    {},
    {"webhook-id": "x", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
    {**forged(), "webhook-timestamp": "1"},  # far outside the five minutes
    {**forged(), "webhook-timestamp": str(int(time.time()) + 3600)},
    {**forged(), "webhook-signature": "v1,short"},
    {**forged(), "webhook-signature": "v2," + base64.b64encode(b"x" * 32).decode()},
    {**forged(), "webhook-id": "has space"},
    {**forged(), "webhook-timestamp": "9" * 5000},
]


def test_webhooks_that_cannot_verify_are_401_without_asking_for_the_secret(
    studio: str, provider: CountingEmulator
) -> None:
    before = provider.secret_requests
    for headers in MALFORMED * 3:
        status, took, _ = post(studio, headers)
        assert status == 401, headers
        assert took < 2.0, (headers, took)
    assert provider.secret_requests == before


def test_forged_webhooks_during_an_outage_cost_one_fetch(
    studio: str, provider: CountingEmulator
) -> None:
    before = provider.secret_requests
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: post(studio, forged()), range(12)))
    assert [status for status, _, _ in answers] == [503] * 12
    assert all(headers.get("retry-after", "").isdigit() for _, _, headers in answers)
    # All twelve shared one fetch, cut at the call budget.
    assert time.monotonic() - started < CALL_TIMEOUT + 4.0
    one_fetch = provider.secret_requests - before
    assert 1 <= one_fetch <= 10, one_fetch  # the client's own retries of one GET
    # Backing off: more forged deliveries right after are refused at once, unasked.
    for _ in range(10):
        status, took, _ = post(studio, forged())
        assert status == 503
        assert took < 1.0
    assert provider.secret_requests == before + one_fetch


def test_the_secret_is_fetched_once_for_concurrent_callers_and_backs_off() -> None:
    clock = [0.0]
    calls: list[float] = []

    async def fetch() -> str:
        calls.append(clock[0])
        await asyncio.sleep(0.05)
        if len(calls) < 3:
            raise RuntimeError("provider down")
        return "whsec_" + base64.b64encode(b"k" * 32).decode()

    async def scenario() -> None:
        secret = SigningSecret(fetch, first_backoff=5.0, max_backoff=8.0, clock=lambda: clock[0])
        results = await asyncio.gather(*(secret.get() for _ in range(20)), return_exceptions=True)
        assert all(isinstance(r, SecretUnavailable) for r in results)
        assert len(calls) == 1
        clock[0] = 4.9
        with pytest.raises(SecretUnavailable) as waiting:
            await secret.get()
        assert waiting.value.retry_after == 1
        assert len(calls) == 1
        clock[0] = 5.0
        with pytest.raises(SecretUnavailable) as doubled:
            await secret.get()
        assert len(calls) == 2
        assert doubled.value.retry_after == 8  # 10 s doubled, capped at 8
        clock[0] = 13.0
        assert (await secret.get()).startswith("whsec_")
        assert await secret.get() == await secret.get()
        assert len(calls) == 3

    asyncio.run(scenario())
