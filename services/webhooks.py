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
import re
import time
from collections.abc import Mapping

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
    """The delivery's `webhook-id` if it is genuine and fresh; else WebhookRejected.

    Fails closed: whatever the header values (any length, any characters), the
    outcome is a webhook id or WebhookRejected, never another exception.
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
    expected = sign(secret, webhook_id, timestamp, body).encode()
    for candidate in candidates:
        if hmac.compare_digest(candidate.encode(), expected):
            return webhook_id
    raise WebhookRejected("no matching signature")
