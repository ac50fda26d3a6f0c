"""Signed webhook delivery, per Standard Webhooks, with retries and injected faults.

Every event of a prediction becomes one `Delivery` with its own `webhook-id`; its
body is the prediction JSON at the moment of the event. Each attempt is signed
afresh:

    webhook-id:        msg_...    (the same on retries and duplicates of one event,
                                   as Standard Webhooks asks, so receivers can dedupe)
    webhook-timestamp: unix seconds of this attempt
    webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">, keyed
                       with the base64-decoded part of the `whsec_` secret

A prediction's deliveries go out one at a time, in event order (unless
`webhook_shuffle` holds them to the end and scrambles them). A failed attempt (non-2xx
or no answer) is retried with doubling backoff up to `webhook_max_attempts`.

Sources: the Standard Webhooks specification,
https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md,
and Replicate's https://replicate.com/docs/topics/webhooks/verify-webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import string
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from services.replicate.emulator.config import EmulatorConfig
from services.replicate.emulator.faults import FaultDice
from services.replicate.signatures import sign

logger = logging.getLogger("studio.emulator.webhooks")

Outcome = Literal["pending", "delivered", "failed", "dropped", "abandoned"]
_ID_ALPHABET = string.ascii_letters + string.digits
USER_AGENT = "Replicate-Webhooks/1.0 (storyboard-studio emulator)"


def new_webhook_id() -> str:
    """A Standard Webhooks message id (`msg_` and 27 random letters and digits)."""
    return "msg_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(27))


@dataclass
class Delivery:
    """One event of one prediction, bound for one URL, and what became of it."""

    prediction_id: str
    event: str
    url: str
    body: bytes
    copies: int  # 0: dropped by fault injection, 1: normal, 2: duplicated
    webhook_id: str = field(default_factory=new_webhook_id)
    attempts: int = 0
    outcome: Outcome = "pending"
    statuses: list[int | None] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The delivery as `GET /_emulator/predictions/{id}/webhooks` reports it: id,
        event, URL, copies, attempts, outcome, each attempt's status (None: no answer)."""
        return {
            "webhook_id": self.webhook_id,
            "event": self.event,
            "url": self.url,
            "copies": self.copies,
            "attempts": self.attempts,
            "outcome": self.outcome,
            "responses": self.statuses,
        }


@dataclass
class _Channel:
    queue: asyncio.Queue[Delivery | None]
    shuffle: bool
    task: asyncio.Task[None] | None = None


class WebhookDispatcher:
    """Queues, signs, sends and retries webhooks; owns one task per prediction in flight."""

    def __init__(self, config: EmulatorConfig, dice: FaultDice, client: httpx.AsyncClient) -> None:
        self._config = config
        self._dice = dice
        self._client = client
        self._channels: dict[str, _Channel] = {}
        self._log: dict[str, list[Delivery]] = {}
        self._closed = False

    def emit(self, prediction_id: str, url: str, event: str, body: bytes) -> Delivery:
        """Queue `body` for `url`; drop and duplicate faults are decided now, per event."""
        config = self._config
        if self._dice.roll(config.webhook_drop_rate):
            copies = 0
        elif self._dice.roll(config.webhook_duplicate_rate):
            copies = 2
        else:
            copies = 1
        delivery = Delivery(prediction_id, event, url, body, copies)
        self._log.setdefault(prediction_id, []).append(delivery)
        if self._closed:
            delivery.outcome = "abandoned"
            return delivery
        channel = self._channels.get(prediction_id)
        if channel is None:
            channel = _Channel(asyncio.Queue(), shuffle=config.webhook_shuffle)
            self._channels[prediction_id] = channel
            channel.task = asyncio.create_task(
                self._work(prediction_id, channel), name=f"webhooks-{prediction_id}"
            )
        channel.queue.put_nowait(delivery)
        return delivery

    def finish(self, prediction_id: str) -> None:
        """No more events for this prediction: its worker ends once the queue is sent."""
        channel = self._channels.get(prediction_id)
        if channel is not None:
            channel.queue.put_nowait(None)

    def deliveries(self, prediction_id: str) -> list[Delivery]:
        """Every delivery of a prediction so far, in event order."""
        return list(self._log.get(prediction_id, []))

    async def aclose(self) -> None:
        """Stop every worker; undelivered events are marked `abandoned`."""
        self._closed = True
        tasks = [channel.task for channel in self._channels.values() if channel.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for deliveries in self._log.values():
            for delivery in deliveries:
                if delivery.outcome == "pending":
                    delivery.outcome = "abandoned"
        self._channels.clear()

    async def _work(self, prediction_id: str, channel: _Channel) -> None:
        held: list[Delivery] = []
        try:
            while (delivery := await channel.queue.get()) is not None:
                if channel.shuffle:
                    held.append(delivery)  # sent, scrambled, once the last event is in
                else:
                    await self._deliver(delivery)
            self._dice.derange(held)
            for delivery in held:
                await self._deliver(delivery)
        finally:
            if self._channels.get(prediction_id) is channel:
                del self._channels[prediction_id]

    async def _deliver(self, delivery: Delivery) -> None:
        if delivery.copies == 0:
            delivery.outcome = "dropped"
            return
        delivered = False
        for _ in range(delivery.copies):
            delivered = await self._send_with_retries(delivery) or delivered
        delivery.outcome = "delivered" if delivered else "failed"

    async def _send_with_retries(self, delivery: Delivery) -> bool:
        attempts = self._config.webhook_max_attempts
        for attempt in range(1, attempts + 1):
            if await self._attempt(delivery):
                return True
            if attempt < attempts:
                await asyncio.sleep(self._config.webhook_retry_seconds * 2 ** (attempt - 1))
        logger.warning(
            "webhook %s (%s of %s) to %s failed after %d attempts",
            delivery.webhook_id,
            delivery.event,
            delivery.prediction_id,
            delivery.url,
            attempts,
        )
        return False

    async def _attempt(self, delivery: Delivery) -> bool:
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                self._config.webhook_secret, delivery.webhook_id, timestamp, delivery.body
            ),
        }
        delivery.attempts += 1
        try:
            response = await self._client.post(
                delivery.url,
                content=delivery.body,
                headers=headers,
                timeout=self._config.webhook_timeout_seconds,
            )
        except httpx.HTTPError as error:
            logger.info("webhook %s to %s: %s", delivery.webhook_id, delivery.url, error)
            delivery.statuses.append(None)
            return False
        delivery.statuses.append(response.status_code)
        return 200 <= response.status_code < 300
