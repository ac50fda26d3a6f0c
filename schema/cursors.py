"""Opaque cursors: a name and numbers in URL-safe base64 (`ProjectEvent:12:40`).

Clients treat them as opaque and only send back what they were given; anything
else decodes to None, never an exception, whatever was sent.

    encode("project", 41)                            # 'cHJvamVjdDo0MQ=='
    decode("cHJvamVjdDo0MQ==", "project", 1, max_length=100)   # (41,)
"""

from __future__ import annotations

import base64

from schema.ids import MAX_PK
from services.decoding import decimal


def encode(name: str, *numbers: int) -> str:
    """The cursor of `numbers` under `name`."""
    return base64.urlsafe_b64encode(":".join([name, *map(str, numbers)]).encode()).decode()


def decode(
    cursor: str, name: str, count: int, *, max_length: int, low: int = 0
) -> tuple[int, ...] | None:
    """The `count` numbers of a cursor `encode(name, ...)` gave out; None for anything else.

    A cursor longer than `max_length` characters is not read; each number is ASCII
    digits from `low` to `MAX_PK` (a BIGINT key), so none can overflow a column.
    """
    if len(cursor) > max_length:
        return None
    try:
        found, *parts = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        return None
    numbers = [decimal(part, low=low, high=MAX_PK) for part in parts]
    if found != name or len(numbers) != count:
        return None
    decoded = tuple(number for number in numbers if number is not None)
    return decoded if len(decoded) == count else None
