"""Opaque cursors: a little text in URL-safe base64, so clients pass it back unread.

Every cursor we give out (a project list's, an event feed's, the emulator's
prediction pages) is this encoding of a short text whose shape its owner checks.
Decoding accepts a cursor with or without its `=` padding.
"""

from __future__ import annotations

import base64

from services import decoding


def encode(text: str, *, padded: bool = True) -> str:
    """`text` (UTF-8) in URL-safe base64 (RFC 4648 section 5); `padded=False` drops the `=`s."""
    encoded = base64.urlsafe_b64encode(text.encode()).decode()
    return encoded if padded else encoded.rstrip("=")


def decode(cursor: str, *, max_length: int) -> str | None:
    """The text in a cursor; None if it is longer than `max_length` characters, not
    URL-safe base64 (any other character is refused, not skipped) or not UTF-8.
    Never raises."""
    if len(cursor) > max_length:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        return None


def encode_numbers(name: str, *numbers: int) -> str:
    """The cursor of `numbers` under `name`: `encode("name:1:2")`.

    >>> encode_numbers("project", 41)
    'cHJvamVjdDo0MQ=='
    """
    return encode(":".join([name, *map(str, numbers)]))


def decode_numbers(
    cursor: str, name: str, count: int, *, max_length: int, high: int, low: int = 0
) -> tuple[int, ...] | None:
    """The `count` numbers of a cursor `encode_numbers(name, ...)` gave out; None for
    anything else (another name, another count, a number that is not ASCII digits
    from `low` to `high`, or whatever `decode` refuses). Never raises."""
    text = decode(cursor, max_length=max_length)
    if text is None:
        return None
    found, *parts = text.split(":")
    numbers = [decoding.decimal(part, low=low, high=high) for part in parts]
    if found != name or len(numbers) != count:
        return None
    decoded = tuple(number for number in numbers if number is not None)
    return decoded if len(decoded) == count else None
