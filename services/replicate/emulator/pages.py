"""Pages of the emulator's `GET /v1/predictions`: newest first, with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from services import decoding
from services.replicate.emulator.predictions import PredictionRecord


@dataclass
class PredictionPage:
    """One page of `GET /v1/predictions`: newest first, with opaque cursors."""

    results: list[PredictionRecord]
    next_cursor: str | None
    previous_cursor: str | None


def encode_cursor(direction: str, seq: int) -> str:
    raw = json.dumps({direction: seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int] | None:
    if len(cursor) > 200:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = decoding.loads(raw)
    except (binascii.Error, ValueError):  # MalformedJson is a ValueError
        return None
    if not isinstance(data, dict) or len(data) != 1:
        return None
    ((direction, seq),) = data.items()
    if direction not in ("before", "after") or type(seq) is not int:
        return None
    return direction, seq
