"""Pages of the emulator's `GET /v1/predictions`: newest first, with opaque cursors."""

from __future__ import annotations

import json
from dataclasses import dataclass

from services import cursors, decoding
from services.replicate.emulator.predictions import PredictionRecord


@dataclass
class PredictionPage:
    """One page of `GET /v1/predictions`: newest first, with opaque cursors."""

    results: list[PredictionRecord]
    next_cursor: str | None
    previous_cursor: str | None


def encode_cursor(direction: str, seq: int) -> str:
    """The opaque cursor of the page `direction` ("before": older, "after": newer) of
    the prediction numbered `seq`: `{"before": 12}` as JSON in unpadded URL-safe
    base64. Replicate's own cursors are opaque too (the `next` and `previous` URLs
    of https://replicate.com/docs/reference/http#predictions.list)."""
    return cursors.encode(json.dumps({direction: seq}, separators=(",", ":")), padded=False)


def decode_cursor(cursor: str) -> tuple[str, int] | None:
    """`(direction, seq)` from a cursor `encode_cursor` made; None for anything else
    (over 200 characters, not base64 or JSON, another shape). Never raises."""
    text = cursors.decode(cursor, max_length=200)
    try:
        data = decoding.loads(text) if text is not None else None
    except ValueError:  # MalformedJson is a ValueError
        return None
    if not isinstance(data, dict) or len(data) != 1:
        return None
    ((direction, seq),) = data.items()
    if direction not in ("before", "after") or type(seq) is not int:
        return None
    return direction, seq
