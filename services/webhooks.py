"""Verifying Replicate's webhooks (Standard Webhooks signatures).

A delivery is genuine when `webhook-signature` holds a `v1,<base64>` entry equal
to HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{raw body}", keyed with
the base64 part of the `whsec_...` secret, and its timestamp is within five
minutes of now (older ones could be replays).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping

TOLERANCE_SECONDS = 300


class WebhookRejected(Exception):
    """The delivery is not provably from the provider; the reason is for our logs only."""


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error as error:
        raise WebhookRejected("the configured webhook secret is not whsec_<base64>") from error


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for a delivery."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(digest).decode()}"


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> str:
    """The delivery's `webhook-id` if it is genuine and fresh; else WebhookRejected."""
    webhook_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not webhook_id or not timestamp or not signatures:
        raise WebhookRejected("missing webhook-id, webhook-timestamp or webhook-signature")
    if len(webhook_id) > 200 or not timestamp.isdigit():
        raise WebhookRejected("malformed webhook-id or webhook-timestamp")
    moment = time.time() if now is None else now
    if abs(moment - int(timestamp)) > TOLERANCE_SECONDS:
        raise WebhookRejected("timestamp outside the tolerance (a replay, or a wrong clock)")
    expected = sign(secret, webhook_id, int(timestamp), body).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected):
            return webhook_id
    raise WebhookRejected("no matching signature")
