"""The gateway's retry layers, time budget and circuit breaker, counted at the emulator.

The emulator runs on its own loopback port and counts every API request it
receives (`GET /_emulator/requests`), so these tests see exactly how many HTTP
requests one gateway call makes against a provider that answers 503 or 429.

The client's own retry layer (replicate 1.0.7 `RetryTransport`) retries a GET on
429/503/504 up to 10 times, sleeping 0.1 s, 0.2 s, 0.4 s, ... (+-10% jitter), or
the `Retry-After` it is given; the gateway adds no retries of its own to reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from services.errors import ProviderUnavailable
from services.replicate.gateway import ReplicateGateway
from services.replicate.guards import CircuitBreaker
from tests.emulator_harness import EmulatorServer

GET_ROUTE = "GET /v1/predictions/{id}"
CREATE_ROUTE = "POST /v1/models/{owner}/{name}/predictions"
CANCEL_ROUTE = "POST /v1/predictions/{id}/cancel"


@pytest.fixture
def provider() -> Iterator[EmulatorServer]:
    with EmulatorServer(latency_ms=100) as server:
        yield server


def requests_received(server: EmulatorServer) -> dict[str, int]:
    response = httpx.get(f"{server.url}/_emulator/requests", timeout=5, trust_env=False)
    assert response.status_code == 200, response.text
    counts: dict[str, int] = response.json()["by_route"]
    return counts


def gateway(server: EmulatorServer, **options: float) -> ReplicateGateway:
    return ReplicateGateway(
        api_token=None,
        base_url=server.url,
        backoff_base=0.05,
        backoff_cap=0.1,
        breaker=CircuitBreaker(threshold=2, cooldown=60.0),
        **options,  # type: ignore[arg-type]
    )


async def test_a_get_against_a_503_makes_one_layer_of_requests_within_its_budget(
    provider: EmulatorServer,
) -> None:
    provider.config.down = True
    # Within 2.3 s the client's layer sends at 0, ~0.1, ~0.3, ~0.7 and ~1.5 s; the
    # sixth try would come at ~3.1 s (at least 2.79 s with jitter).
    replicate = gateway(provider, call_timeout=2.3)
    try:
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await replicate.get("p" * 26)
        took = time.monotonic() - began
        assert requests_received(provider) == {GET_ROUTE: 5}
        assert 2.2 < took < 3.0, took
        assert replicate.breaker.failures == 1  # one failed call, not five attempts
        assert not replicate.breaker.is_open

        with pytest.raises(ProviderUnavailable):
            await replicate.get("q" * 26)
        assert replicate.breaker.is_open  # threshold 2: two failed calls
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await replicate.get("r" * 26)  # fails fast: the circuit is open
        assert time.monotonic() - began < 0.1
        assert requests_received(provider) == {GET_ROUTE: 10}
    finally:
        await replicate.aclose()


async def test_a_long_retry_after_is_capped_and_throttling_is_not_a_failure(
    provider: EmulatorServer,
) -> None:
    provider.config.other_limit_per_minute = 0  # every read: 429 with Retry-After: 60
    replicate = gateway(provider, call_timeout=2.6, retry_after_cap=1.0)
    try:
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable) as raised:
            await replicate.get("p" * 26)
        took = time.monotonic() - began
        # Honoured uncapped, the second try would wait a minute; capped, one second.
        assert requests_received(provider) == {GET_ROUTE: 3}
        assert took < 3.3, took
        assert "busy" in raised.value.message
        assert replicate.breaker.failures == 0  # busy, not down
    finally:
        await replicate.aclose()


async def test_creates_and_cancels_are_retried_by_our_layer_alone(
    provider: EmulatorServer,
) -> None:
    provider.config.down = True
    replicate = gateway(provider, max_attempts=3, call_timeout=10.0)
    try:
        with pytest.raises(ProviderUnavailable):
            await replicate.create("black-forest-labs/flux-schnell", {"prompt": "a fox"})
        assert requests_received(provider) == {CREATE_ROUTE: 3}
        assert replicate.breaker.failures == 1
        with pytest.raises(ProviderUnavailable):
            await replicate.cancel("p" * 26)
        assert requests_received(provider) == {CREATE_ROUTE: 3, CANCEL_ROUTE: 3}

        provider.config.down = False
        replicate.breaker.succeeded()
        created = await replicate.create("black-forest-labs/flux-schnell", {"prompt": "a fox"})
        assert created.status == "starting"
        fetched = await replicate.get(created.id)
        assert fetched.id == created.id
        assert fetched.input["prompt"] == "a fox"
        assert requests_received(provider) == {
            CREATE_ROUTE: 4,
            CANCEL_ROUTE: 3,
            GET_ROUTE: 1,
        }
    finally:
        await replicate.aclose()


async def test_a_stalled_provider_cannot_hold_a_call_past_its_budget(
    provider: EmulatorServer,
) -> None:
    # The prediction is made, but its answer is held for 5 s: the budget ends the call.
    provider.config.create_response_delay_ms = 5000
    replicate = gateway(provider, call_timeout=1.0)
    try:
        began = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            await replicate.create("black-forest-labs/flux-schnell", {"prompt": "a fox"})
        assert time.monotonic() - began < 1.5
        # A create that may have reached the provider is never sent again blindly.
        assert requests_received(provider) == {CREATE_ROUTE: 1}
    finally:
        await replicate.aclose()
