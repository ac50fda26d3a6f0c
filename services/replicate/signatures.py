"""Verifying Replicate's webhooks (Standard Webhooks signatures).

A delivery is genuine when `webhook-signature` holds a `v1,<base64>` entry equal
to HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{raw body}", keyed with
the base64 part of the `whsec_...` secret, and its timestamp is within five
minutes of now (older ones could be replays).

Sources: the Standard Webhooks specification ("Signature scheme", "Webhook
headers", "Verifying signatures"),
https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md,
and Replicate's https://replicate.com/docs/topics/webhooks/verify-webhook. The
header may carry several space-separated signatures (secret rotation); one
match is enough. The specification leaves the tolerance to the receiver; five
minutes is its reference libraries' (`WEBHOOK_TOLERANCE_IN_SECONDS = 5 * 60`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

from services.decoding import decimal

TOLERANCE_SECONDS = 300
MAX_TIMESTAMP = 10**12
"""Far beyond any real clock (year 33658); only bounds what `decimal` will parse."""
_WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,200}")
"""Visible ASCII: the ids Replicate sends are `msg_...`; anything else is refused unread."""
_SIGNATURE = re.compile(r"v1,[A-Za-z0-9+/]{43}=")
"""`v1,` and the base64 of a 32-byte HMAC-SHA256."""
MAX_SIGNATURES = 10


class WebhookRejected(Exception):
    """The delivery is not provably from the provider; the reason is for our logs only."""


SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret


def secret_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after `whsec_`.

    The prefix may be left off. ValueError if the rest is not base64 of at least
    one byte.
    """
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("a webhook secret must look like whsec_<base64>") from error
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for a delivery: `v1,<base64 of the HMAC-SHA256>`.

    Signs "{webhook-id}.{webhook-timestamp}.{raw body}" (Standard Webhooks);
    `timestamp` is unix seconds, `body` the raw bytes as sent. WebhookRejected if
    `secret` is not `whsec_<base64>`.
    """
    try:
        key = secret_key(secret)
    except ValueError as error:
        raise WebhookRejected(f"the configured webhook secret is not usable: {error}") from error
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


class Claimed(NamedTuple):
    """What a delivery's headers claim, once their shape is known to be verifiable."""

    webhook_id: str
    timestamp: int
    signatures: tuple[str, ...]


def claimed(headers: Mapping[str, str], *, now: float | None = None) -> Claimed:
    """The headers of a delivery that could verify; else WebhookRejected.

    Needs no secret, so it runs before any is fetched: a delivery that can never
    verify (a missing or malformed header, a timestamp outside the tolerance, no
    `v1,<base64 of 32 bytes>` signature) is refused without the provider being
    asked for anything. Fails closed: whatever the header values (any length,
    any characters), the outcome is a `Claimed` or WebhookRejected.
    """
    webhook_id = headers.get("webhook-id", "")
    raw_timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not webhook_id or not raw_timestamp or not signatures:
        raise WebhookRejected("missing webhook-id, webhook-timestamp or webhook-signature")
    if not _WEBHOOK_ID.fullmatch(webhook_id):
        raise WebhookRejected("malformed webhook-id")
    timestamp = decimal(raw_timestamp, high=MAX_TIMESTAMP)
    if timestamp is None:
        raise WebhookRejected("malformed webhook-timestamp")
    moment = time.time() if now is None else now
    if abs(moment - timestamp) > TOLERANCE_SECONDS:
        raise WebhookRejected("timestamp outside the tolerance (a replay, or a wrong clock)")
    candidates = [c for c in signatures.split(" ") if _SIGNATURE.fullmatch(c)][:MAX_SIGNATURES]
    if not candidates:
        raise WebhookRejected("malformed webhook-signature")
    return Claimed(webhook_id, timestamp, tuple(candidates))


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> str:
    """The delivery's `webhook-id` if it is genuine and fresh; else WebhookRejected.

    Fails closed: whatever the header values (any length, any characters), the
    outcome is a webhook id or WebhookRejected, never another exception.
    """
    claim = claimed(headers, now=now)
    expected = sign(secret, claim.webhook_id, claim.timestamp, body).encode()
    for candidate in claim.signatures:
        if hmac.compare_digest(candidate.encode(), expected):
            return claim.webhook_id
    raise WebhookRejected("no matching signature")


class SecretUnavailable(Exception):
    """The signing secret is not known yet and cannot be fetched now.

    `retry_after` is whole seconds until a fetch may be tried again.
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the webhook signing secret is not available; retry in {retry_after} s")
        self.retry_after = retry_after


def _retrieve(task: asyncio.Task[str]) -> None:
    """Mark a fetch's failure as seen: its callers may all have stopped waiting."""
    if not task.cancelled():
        task.exception()


class SigningSecret:
    """The webhook signing secret: configured, or fetched from the provider on demand.

    Unauthenticated requests decide when it is needed, so fetching is bounded:
    one fetch at a time (every caller shares it, waiting at most `wait`
    seconds), and after a failed fetch none for `first_backoff` seconds,
    doubling after each further failure up to `max_backoff`. Meanwhile callers
    get SecretUnavailable at once, so a provider outage costs the provider at
    most one fetch per back-off, whoever sends webhooks. `fetch` raises any
    Exception subclass on failure; the cause is the caller's to log.

        secret = SigningSecret(gateway.webhook_secret)
        key = await secret.get()  # str, or SecretUnavailable
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[str]],
        *,
        configured: str | None = None,
        wait: float = 5.0,
        first_backoff: float = 5.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._value = configured
        self._wait = wait
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._backoff = 0.0
        self._clock = clock
        self._not_before = 0.0
        self._inflight: asyncio.Task[str] | None = None
        self.fetches = 0
        """How many fetches were started (for tests and logs)."""

    @property
    def known(self) -> bool:
        """Whether the secret is at hand (no fetch needed)."""
        return self._value is not None

    async def get(self) -> str:
        """The secret; SecretUnavailable when it is not known and cannot be had now."""
        if self._value is not None:
            return self._value
        if self._inflight is None:
            remaining = self._not_before - self._clock()
            if remaining > 0:
                raise SecretUnavailable(math.ceil(remaining))
            self.fetches += 1
            self._inflight = asyncio.create_task(self._run())
            self._inflight.add_done_callback(_retrieve)
        try:
            # Shielded: a caller that gives up never cancels the fetch others share.
            async with asyncio.timeout(self._wait):
                return await asyncio.shield(self._inflight)
        except TimeoutError:
            raise SecretUnavailable(math.ceil(self._wait)) from None
        except SecretUnavailable:
            raise
        except Exception as error:
            raise SecretUnavailable(math.ceil(max(self._backoff, 1.0))) from error

    async def _run(self) -> str:
        try:
            value = await self._fetch()
        except BaseException:
            self._backoff = min(
                self._max_backoff,
                self._backoff * 2 if self._backoff else self._first_backoff,
            )
            self._not_before = self._clock() + self._backoff
            raise
        else:
            self._value = value
            self._backoff = 0.0
            return value
        finally:
            self._inflight = None
