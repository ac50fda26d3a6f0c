"""Talking to Replicate (or the built-in emulator, through the same HTTP API).

`ReplicateGateway` wraps the official client with what it lacks for a server:
- a throttle on creates, kept under the account's limit (600 a minute; other
  endpoints 3000: https://replicate.com/docs/topics/predictions/rate-limits);
- one retry layer per kind of call. The client (replicate 1.0.7,
  `replicate/client.py`) wraps every transport in its own `RetryTransport`,
  which retries reads (GET, also HEAD, PUT, DELETE, OPTIONS, TRACE) on
  429/503/504 up to 10 tries and honours `Retry-After`; there is no public way
  to turn it off, so reads get no retries of ours (a loop around it multiplied
  requests: 5 x 10 per `get`). Our layer retries only what the client never
  retries: creates, cancels and uploads (POST), on 429/503 and on connections
  that never reached the provider;
- a cap on `Retry-After`: our transport, which the client's retry layer wraps,
  lowers a longer hint to `retry_after_cap` before the client reads it;
- a time budget per call (`call_timeout`, an `asyncio.timeout` around all its
  tries), so no call stalls a sweep or a webhook request;
- a circuit breaker that counts failed calls (not HTTP attempts): after
  repeated failures calls fail fast with `ProviderUnavailable` for a while,
  then one trial call decides.

Only the client's public API is used (`predictions`, `models.predictions`,
`files`, `webhooks`); the transport is ours, passed with `transport=` (which the
client hands to httpx), and closed by us.

    gateway = ReplicateGateway(api_token=token, base_url="https://api.replicate.com")
    prediction = await gateway.create("black-forest-labs/flux-schnell", {"prompt": "..."})
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import io
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pydantic
from replicate.client import Client
from replicate.exceptions import ReplicateError

from services.backoff import full_jitter
from services.errors import ProviderRejected, ProviderUnavailable
from services.replicate.guards import CircuitBreaker, CreateThrottle

logger = logging.getLogger("studio.replicate")

T = TypeVar("T")
_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "retry_after", default=None
)
# The status of the last HTTP answer the task saw: a budget that runs out while
# the provider only throttles is "busy", not "down".
_last_status: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "last_status", default=None
)
# Answers after which our layer may send a POST again: it was not acted on.
_POST_RETRY_STATUSES = frozenset({429, 503})


MAX_PREDICTION_ID = 128
"""Characters a prediction's ID may have: the columns keeping one hold 128
(Replicate's are 26)."""


@dataclass(frozen=True)
class Prediction:
    """What we use of a Replicate prediction (the object of `GET /v1/predictions/{id}`,
    https://replicate.com/docs/reference/http#predictions.get).

    The API also answers `aborted`, for a prediction interrupted on its side,
    which the client's 1.0.7 models do not accept
    (https://github.com/replicate/replicate-python/pull/449): it is ended, too.
    """

    id: str
    status: str  # starting, processing, succeeded, failed, canceled (or aborted)
    output: Any = None
    error: str | None = None
    logs: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None  # ISO 8601, as Replicate writes it
    model: str | None = None  # owner/name

    @property
    def is_finished(self) -> bool:
        """Whether the prediction has ended (succeeded, failed, canceled or aborted)."""
        return self.status in ("succeeded", "failed", "canceled", "aborted")

    @property
    def created(self) -> datetime | None:
        """`created_at` as an aware datetime (Replicate may write nanoseconds)."""
        if not self.created_at:
            return None
        text = self.created_at.strip().replace("Z", "+00:00")
        whole, dot, rest = text.partition(".")
        if dot:  # keep microseconds: fromisoformat takes at most six digits
            digits = "".join(c for c in rest if c.isdigit())
            text = f"{whole}.{digits[:6]}{rest[len(digits) :]}"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    @property
    def output_urls(self) -> list[str]:
        """The output's URLs: a single string output as one, the strings of a list
        output in order; [] for anything else (no output, text, an object)."""
        if isinstance(self.output, str):
            return [self.output]
        if isinstance(self.output, list):
            return [item for item in self.output if isinstance(item, str)]
        return []

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Prediction:
        """From a prediction's JSON (a webhook body); KeyError without an `id`,
        ValueError when it is not a string of 1 to MAX_PREDICTION_ID characters
        (the columns that keep it hold no more).

        A missing status reads as `starting`, a non-object input as {}.
        """
        prediction_id = data["id"]
        if not isinstance(prediction_id, str) or not 0 < len(prediction_id) <= MAX_PREDICTION_ID:
            raise ValueError(
                f"A prediction's id is a string of 1 to {MAX_PREDICTION_ID} characters."
            )
        return cls(
            id=prediction_id,
            status=str(data.get("status", "starting")),
            output=data.get("output"),
            error=None if data.get("error") is None else str(data["error"]),
            logs=data.get("logs"),
            input=data["input"] if isinstance(data.get("input"), dict) else {},
            created_at=None if data.get("created_at") is None else str(data["created_at"]),
            model=None if data.get("model") is None else str(data["model"]),
        )


def _retry_after_seconds(value: str) -> float | None:
    """Seconds from a `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).

    None when it is neither; never more than a day. Delay-seconds are ASCII
    digits only: `float()` also takes "²"-like digits (raising) and "1e999"
    (infinity).
    """
    value = value.strip()
    whole, _, fraction = value.partition(".")
    if whole and all(part.isascii() and part.isdigit() for part in (whole, fraction or "0")):
        if len(whole) > 6:
            return None
        return min(float(f"{whole}.{fraction or '0'}"), 86_400.0)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, moment.timestamp() - time.time()), 86_400.0)


class _ProviderTransport(httpx.AsyncBaseTransport):
    """Our transport, under the client's retry layer: it sees every HTTP attempt.

    It caps `Retry-After` at `cap` seconds before the client's layer reads it (that
    layer honours any value, uncapped). The client reads whole seconds only, so the
    header is rewritten as whole seconds (an HTTP-date too); under one second it is
    dropped and the client falls back to its own short backoff. It also notes the
    hint and the status for the task that made the request.
    """

    def __init__(self, wrapped: httpx.AsyncBaseTransport, *, cap: float) -> None:
        self._wrapped = wrapped
        self._cap = cap

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._wrapped.handle_async_request(request)
        _last_status.set(response.status_code)
        raw = response.headers.get("retry-after")
        hint = None if raw is None else _retry_after_seconds(raw)
        if hint is not None:
            hint = min(hint, self._cap)
            if hint >= 1:  # rewritten as whole seconds, the only form the client reads
                response.headers["retry-after"] = str(int(hint))
        if raw is not None and (hint is None or hint < 1):
            del response.headers["retry-after"]
        _retry_after.set(hint)
        return response

    async def aclose(self) -> None:
        await self._wrapped.aclose()


class ReplicateGateway:
    """Replicate's API with a throttle, one retry layer, a time budget and a circuit breaker.

    `call_timeout` (seconds) bounds each call with all its tries; `max_attempts`
    bounds our tries of a POST; `retry_after_cap` (seconds) is the longest
    `Retry-After` either layer waits. Errors: `ProviderRejected` when Replicate
    refused the request itself (code `PREDICTION_NOT_FOUND` for an unknown
    prediction), `ProviderUnavailable` when it is down, busy or too slow.

    base_url: the API's origin (a trailing `/v1` is dropped); api_token: the bearer
    token (None or "": the client falls back to REPLICATE_API_TOKEN from the
    environment, and sends none without it); creates_per_minute: the
    throttle's budget (by default 540, under Replicate's 600);
    backoff_base, backoff_cap: seconds of the jittered exponential backoff
    between our POST tries; timeout: seconds for each HTTP read (connect: 5 s).
    `aclose()` it when done.
    """

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
        call_timeout: float = 20.0,
        retry_after_cap: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._transport = _ProviderTransport(httpx.AsyncHTTPTransport(), cap=retry_after_cap)
        self._client = Client(
            api_token=api_token or "",
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=self._transport,
        )
        self.throttle = CreateThrottle(creates_per_minute)
        self.breaker = breaker or CircuitBreaker()
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.call_timeout = call_timeout
        self.retry_after_cap = retry_after_cap

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._transport.aclose()  # ours: the client's connections go with it

    def _delay(self, attempt: int, server_hint: float | None) -> float:
        backoff = full_jitter(attempt, base=self.backoff_base, cap=self.backoff_cap)
        return min(max(backoff, server_hint or 0.0), max(self.retry_after_cap, backoff))

    async def _call(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        retry: bool = False,
        throttled: bool = False,
    ) -> T:
        """Run `call` within the time budget; map failures to domain errors.

        With `retry` (POSTs only: the client retries reads itself) our layer tries
        again on 429/503 and on connections that never got through. The breaker
        hears once per call: a failure (5xx, network, budget spent) or a success;
        a provider that only throttles is up, just busy, and counts as neither.
        """
        if throttled:
            # Our own limit, not the provider's budget; waited for before the breaker
            # lets a trial call through, so a wait cancelled here leaves it untouched.
            await self.throttle.acquire()
        self.breaker.before_call()
        _last_status.set(None)
        try:
            async with asyncio.timeout(self.call_timeout):
                result = await self._tries(what, call, retry=retry, throttled=throttled)
        except ProviderRejected:
            self.breaker.succeeded()  # it answered: it is up
            raise
        except _Busy as error:
            self.breaker.released()
            raise ProviderUnavailable(
                "The image and video provider is busy; try again in a minute."
            ) from error
        except TimeoutError as error:
            if _last_status.get() == 429:
                self.breaker.released()
                message = "The image and video provider is busy; try again in a minute."
            else:
                self.breaker.failed()
                message = "The image and video provider is not answering; try again in a minute."
            logger.warning("Replicate %s took longer than %.1fs", what, self.call_timeout)
            raise ProviderUnavailable(message) from error
        except _Down as error:
            self.breaker.failed()
            raise ProviderUnavailable(
                "The image and video provider is not answering; try again in a minute."
            ) from error
        except BaseException:
            self.breaker.released()  # cancelled, or a fault of ours: not the provider's
            raise
        self.breaker.succeeded()
        return result

    async def _tries(
        self, what: str, call: Callable[[], Awaitable[T]], *, retry: bool, throttled: bool
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            if throttled and attempt > 1:
                await self.throttle.acquire()
            _retry_after.set(None)
            try:
                return await call()
            except ReplicateError as error:
                status = error.status or 0
                if 400 <= status < 500 and status != 429:
                    code = "PREDICTION_NOT_FOUND" if status == 404 else "PROVIDER_REJECTED"
                    raise ProviderRejected(
                        f"The provider refused this: {error.detail or error.title or status}",
                        code=code,
                    ) from error
                again = retry and status in _POST_RETRY_STATUSES and attempt < self.max_attempts
                if not again:
                    raise (_Busy if status == 429 else _Down)(f"{what}: {status}") from error
                delay = self._delay(attempt, _retry_after.get())
                logger.info("Replicate %s answered %d; retrying in %.1fs", what, status, delay)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                # Never reached the provider: safe to send again, even a create.
                if not retry or attempt >= self.max_attempts:
                    raise _Down(f"{what}: {error}") from error
                delay = self._delay(attempt, None)
                logger.warning("Replicate %s failed (%s); retrying in %.1fs", what, error, delay)
            except httpx.HTTPError as error:
                # The request may have been acted on (a create may exist): not ours to repeat.
                raise _Down(f"{what}: {error}") from error
            except pydantic.ValidationError as error:
                # An answer the client's models refuse (1.0.7 cannot parse `aborted`).
                raise ProviderRejected(
                    "The provider's answer could not be read.", code="PROVIDER_REJECTED"
                ) from error
            await asyncio.sleep(delay)

    async def create(
        self,
        model: str,
        input: dict[str, Any],
        *,
        webhook: str | None = None,
        events: Sequence[str] = ("start", "completed"),
    ) -> Prediction:
        """Start a prediction of an official model (`owner/name`), as
        `POST /v1/models/{owner}/{name}/predictions`; the prediction as created
        (usually `starting`).

        `webhook` is the URL Replicate posts the prediction to on the `events`
        listed (any of start, output, logs, completed; see
        https://replicate.com/docs/topics/webhooks/receive-webhook).
        Waits for the throttle; retried on 429/503 and on connections that never
        got through. A create that times out may still have made a prediction
        (Replicate has no idempotency key): the caller looks for it (`recent`).
        """
        options: dict[str, Any] = {"input": input}
        if webhook:
            options.update(webhook=webhook, webhook_events_filter=list(events))

        async def call() -> Prediction:
            created = await self._client.models.predictions.async_create(model=model, **options)
            return _convert(created)

        return await self._call(f"create {model}", call, retry=True, throttled=True)

    async def get(self, prediction_id: str) -> Prediction:
        """A prediction by id; `ProviderRejected` (PREDICTION_NOT_FOUND) if it is unknown."""

        async def call() -> Prediction:
            return _convert(await self._client.predictions.async_get(prediction_id))

        return await self._call(f"get {prediction_id}", call)

    async def recent(self, *, since: datetime, limit: int = 500) -> list[Prediction]:
        """The account's predictions created at or after `since`, newest first.

        Follows `GET /v1/predictions` page by page (newest first, `next` cursors) until
        a page reaches back past `since` or `limit` predictions were read.
        """
        found: list[Prediction] = []
        cursor: Any = ...
        while cursor is not None and len(found) < limit:

            async def call(cursor: Any = cursor) -> tuple[list[Prediction], str | None]:
                page = await self._client.predictions.async_list(cursor)
                return [_convert(item) for item in page.results], page.next

            results, cursor = await self._call("list predictions", call)
            for prediction in results:
                created = prediction.created
                if created is not None and created < since:
                    return found
                found.append(prediction)
        return found

    async def cancel(self, prediction_id: str) -> Prediction:
        """Ask Replicate to cancel a prediction; the prediction as it then stands.

        ProviderRejected PREDICTION_NOT_FOUND if it is unknown.
        """

        async def call() -> Prediction:
            return _convert(await self._client.predictions.async_cancel(prediction_id))

        return await self._call(f"cancel {prediction_id}", call, retry=True)

    async def upload(self, data: bytes, *, filename: str, content_type: str) -> str:
        """Upload a file (an input image) and return the URL a prediction can read it from.

        `data` is the whole file; `content_type` its MIME type. `POST /v1/files`.
        """

        async def call() -> str:
            uploaded = await self._client.files.async_create(
                io.BytesIO(data), filename=filename, content_type=content_type
            )
            return str(uploaded.urls["get"])

        return await self._call("upload", call, retry=True)

    async def webhook_secret(self) -> str:
        """The account's webhook signing secret (`whsec_<base64>`), from
        `GET /v1/webhooks/default/secret`."""

        async def call() -> str:
            secret = await self._client.webhooks.default.async_secret()
            key: str = secret.key
            return key

        return await self._call("webhook secret", call)


class _Busy(Exception):
    """The provider kept throttling (429): up, but busy."""


class _Down(Exception):
    """The provider failed (5xx, or the connection did)."""


def _convert(prediction: Any) -> Prediction:
    return Prediction(
        id=prediction.id,
        status=prediction.status,
        output=prediction.output,
        error=None if prediction.error is None else str(prediction.error),
        logs=prediction.logs,
        input=dict(prediction.input or {}),
        created_at=prediction.created_at,
        model=prediction.model,
    )
