"""Talking to Replicate (or the built-in emulator, through the same HTTP API).

`ReplicateGateway` wraps the official client with what it lacks for a server:
- a throttle on creates, kept under the account's limit (600 a minute);
- retries of 429 and 5xx answers and network errors, with exponential backoff
  and full jitter, waiting at least as long as the server's `Retry-After`;
- a circuit breaker: after repeated failures calls fail fast with
  `ProviderUnavailable` for a while, then one trial call decides.

    gateway = ReplicateGateway(api_token=token, base_url="https://api.replicate.com")
    prediction = await gateway.create("black-forest-labs/flux-schnell", {"prompt": "..."})
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from replicate.client import Client
from replicate.exceptions import ReplicateError

from services.errors import ProviderRejected, ProviderUnavailable

logger = logging.getLogger("studio.replicate")

T = TypeVar("T")
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "retry_after", default=None
)


@dataclass(frozen=True)
class Prediction:
    """What we use of a Replicate prediction."""

    id: str
    status: str  # starting, processing, succeeded, failed, canceled (or aborted)
    output: Any = None
    error: str | None = None
    logs: str | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in ("succeeded", "failed", "canceled", "aborted")

    @property
    def output_urls(self) -> list[str]:
        if isinstance(self.output, str):
            return [self.output]
        if isinstance(self.output, list):
            return [item for item in self.output if isinstance(item, str)]
        return []

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        return cls(
            id=str(data["id"]),
            status=str(data.get("status", "starting")),
            output=data.get("output"),
            error=None if data.get("error") is None else str(data["error"]),
            logs=data.get("logs"),
        )


def _retry_after_seconds(value: str) -> float | None:
    """Seconds from a `Retry-After` of delay-seconds (RFC 9110 section 10.2.3), else None.

    ASCII digits only and at most a day: `float()` also takes "²"-like digits
    (raising) and "1e999" (infinity)."""
    whole, _, fraction = value.partition(".")
    if not whole or not all(part.isascii() and part.isdigit() for part in (whole, fraction or "0")):
        return None
    if len(whole) > 6:
        return None
    return min(float(f"{whole}.{fraction or '0'}"), 86_400.0)


class _RetryAfterTransport(httpx.AsyncBaseTransport):
    """Notes a 429's `Retry-After` for the task that made the request (the client drops it)."""

    def __init__(self, wrapped: httpx.AsyncBaseTransport) -> None:
        self._wrapped = wrapped

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._wrapped.handle_async_request(request)
        if response.status_code == 429:
            value = response.headers.get("retry-after", "").strip()
            _retry_after.set(_retry_after_seconds(value))
        return response

    async def aclose(self) -> None:
        await self._wrapped.aclose()


class CreateThrottle:
    """At most `per_minute` creates in any 60 seconds; callers wait for a slot."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._sent: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
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
    def is_open(self) -> bool:
        return self._opened_at is not None and self._clock() - self._opened_at < self.cooldown

    def before_call(self) -> None:
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
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def failed(self) -> None:
        self._failures += 1
        self._trial_running = False
        if self._failures >= self.threshold or self._opened_at is not None:
            if self._opened_at is None:
                logger.warning("Replicate failed %d times in a row: pausing calls", self._failures)
            self._opened_at = self._clock()


class ReplicateGateway:
    """Replicate's API with a throttle, retries and a circuit breaker."""

    def __init__(
        self,
        *,
        api_token: str | None,
        base_url: str,
        creates_per_minute: int = 540,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        breaker: CircuitBreaker | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._client = Client(
            api_token=api_token or "",
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=_RetryAfterTransport(httpx.AsyncHTTPTransport()),
        )
        self._downloads = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=5.0), follow_redirects=True
        )
        self.throttle = CreateThrottle(creates_per_minute)
        self.breaker = breaker or CircuitBreaker()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap

    async def aclose(self) -> None:
        await self._downloads.aclose()
        await self._client._async_client.aclose()

    def _delay(self, attempt: int, server_hint: float | None) -> float:
        backoff = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))  # noqa: S311
        return max(backoff, server_hint or 0.0)

    async def _call(
        self, what: str, call: Callable[[], Awaitable[T]], *, throttled: bool = False
    ) -> T:
        """Run `call`, retrying what is worth retrying; map failures to domain errors.

        Failures (5xx, network) count toward the circuit breaker; 429s do not: a
        throttling provider is up, just busy, so they get a longer budget instead.
        """
        self.breaker.before_call()
        failures = throttles = 0
        while True:
            if throttled:
                await self.throttle.acquire()
            _retry_after.set(None)
            try:
                result = await call()
            except ReplicateError as error:
                status = error.status or 0
                if status == 429:
                    throttles += 1
                    if throttles >= self.max_attempts * 3:
                        self.breaker.released()
                        raise ProviderUnavailable(
                            "The image and video provider is busy; try again in a minute."
                        ) from error
                    delay = self._delay(throttles, _retry_after.get())
                    logger.info("Replicate throttled %s; retrying in %.1fs", what, delay)
                elif status >= 500:
                    failures += 1
                    delay = self._delay(failures, None)
                    logger.warning(
                        "Replicate %s answered %d; retrying in %.1fs", what, status, delay
                    )
                else:
                    self.breaker.succeeded()  # it answered: it is up
                    raise ProviderRejected(
                        f"The provider refused this: {error.detail or error.title or status}",
                        code="PROVIDER_REJECTED",
                    ) from error
            except (httpx.TransportError, httpx.TimeoutException) as error:
                failures += 1
                delay = self._delay(failures, None)
                logger.warning("Replicate %s failed (%s); retrying in %.1fs", what, error, delay)
            else:
                self.breaker.succeeded()
                return result
            if failures >= self.max_attempts:
                self.breaker.failed()
                raise ProviderUnavailable(
                    "The image and video provider is not answering; try again in a minute."
                )
            await asyncio.sleep(delay)

    async def create(
        self,
        model: str,
        input: dict[str, Any],
        *,
        webhook: str | None = None,
        events: Sequence[str] = ("start", "completed"),
    ) -> Prediction:
        """Start a prediction of an official model (`owner/name`)."""
        options: dict[str, Any] = {"input": input}
        if webhook:
            options.update(webhook=webhook, webhook_events_filter=list(events))

        async def call() -> Prediction:
            created = await self._client.models.predictions.async_create(model=model, **options)
            return _convert(created)

        return await self._call(f"create {model}", call, throttled=True)

    async def get(self, prediction_id: str) -> Prediction:
        async def call() -> Prediction:
            response = await self._client._async_request("GET", f"/v1/predictions/{prediction_id}")
            return Prediction.from_json(response.json())

        return await self._call(f"get {prediction_id}", call)

    async def cancel(self, prediction_id: str) -> Prediction:
        async def call() -> Prediction:
            response = await self._client._async_request(
                "POST", f"/v1/predictions/{prediction_id}/cancel"
            )
            return Prediction.from_json(response.json())

        return await self._call(f"cancel {prediction_id}", call)

    async def upload(self, data: bytes, *, filename: str, content_type: str) -> str:
        """Upload a file (an input image) and return the URL a prediction can read it from."""

        async def call() -> str:
            response = await self._client._async_request(
                "POST",
                "/v1/files",
                files={"content": (filename, data, content_type)},
            )
            url: str = response.json()["urls"]["get"]
            return url

        return await self._call("upload", call)

    async def webhook_secret(self) -> str:
        async def call() -> str:
            secret = await self._client.webhooks.default.async_secret()
            key: str = secret.key
            return key

        return await self._call("webhook secret", call)

    async def download(self, url: str) -> tuple[bytes, str]:
        """An output's bytes and content type; outputs need no token."""
        for attempt in range(self.max_attempts):
            try:
                response = await self._downloads.get(url)
                if response.status_code == 200:
                    content_type = response.headers.get("content-type", "application/octet-stream")
                    return response.content, content_type.split(";")[0].strip()
                if response.status_code in (404, 410):
                    raise ProviderRejected(
                        "The provider no longer has this output.", code="OUTPUT_GONE"
                    )
            except httpx.HTTPError as error:
                logger.warning("download of %s failed (%s)", url, error)
            await asyncio.sleep(self._delay(attempt, None))
        raise ProviderUnavailable("The provider's output could not be downloaded; will retry.")


def _convert(prediction: Any) -> Prediction:
    return Prediction(
        id=prediction.id,
        status=prediction.status,
        output=prediction.output,
        error=None if prediction.error is None else str(prediction.error),
        logs=prediction.logs,
    )
