"""Decoding what clients send: bounded decimal numbers, and JSON of bounded shape.

Python's own parsers accept more than a client should be able to send:

- `int()` takes any Unicode digit ("²" passes `str.isdigit()` but `int("²")`
  fails) and raises on strings over 4300 digits, so a long number is a 500
  unless it is refused first; and a number that parses may still overflow a
  64-bit column. `decimal()` takes ASCII digits only, of at most as many
  digits as its bound, and checks the bound.
- `json.loads` accepts `NaN`, `Infinity` and `-Infinity`, which are not JSON
  (RFC 8259 section 6) and which a browser cannot parse back, and it recurses
  once per nesting level, so a body of a million `[` is a RecursionError.
  `loads()` refuses both; `check_json()` does the same for a value that is
  already parsed (GraphQL variables), and `finite_json()` renders a stored
  value safely (a non-finite number becomes null).

    decimal("42", high=100)        # 42
    decimal("9" * 5000, high=100)  # None
    loads(b'{"a": NaN}')           # raises MalformedJson
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_DEPTH = 32
"""How deeply arrays and objects may nest in any JSON a client sends."""


class MalformedJson(ValueError):
    """The text is not JSON we accept; the message says why (safe to show a client)."""


def decimal(text: str, *, high: int, low: int = 0) -> int | None:
    """The integer written in `text` (ASCII digits only, no sign) if low <= it <= high; else None.

    Text with more characters than `high` has digits is refused unread, so the
    cost is bounded whatever its length.

    Never raises, whatever the text: this is for values straight from a client.
    """
    if not text or len(text) > len(str(high)) or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if low <= value <= high else None


def _refuse_constant(name: str) -> Any:
    raise MalformedJson(f"{name} is not a JSON number.")


def loads(data: str | bytes, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text (RFC 8259): no NaN or Infinity, nesting at most `max_depth` deep.

    `data` is str, or bytes in UTF-8 (`json.loads` also detects UTF-16 and
    UTF-32). Returns the parsed value (dict, list, str, int, float, bool or None).

    Raises MalformedJson for anything else: broken syntax, bytes that do not
    decode, a non-finite number, nesting too deep.
    """
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except MalformedJson:
        raise
    except RecursionError:
        # The C scanner recurses per level; it gives up long before the stack does.
        raise MalformedJson(f"The JSON nests deeper than {max_depth} levels.") from None
    except (ValueError, TypeError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise MalformedJson("The body is not valid JSON.") from error
    check_json(value, max_depth=max_depth)
    return value


def check_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise MalformedJson unless `value` (parsed JSON) nests at most `max_depth` deep and
    holds only finite numbers. Iterative, so any depth is safe to check."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise MalformedJson("NaN and Infinity are not JSON numbers.")
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise MalformedJson(f"The JSON nests deeper than {max_depth} levels.")
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


TOO_DEEP = f"(not shown: nested deeper than {MAX_JSON_DEPTH} levels)"
"""Stands in, in a response, for an array or object nested deeper than JSON may be sent."""

UNREADABLE: dict[str, str] = {
    "unreadable": "This stored JSON cannot be read: it nests too deep or holds a number "
    "too long to decode."
}
"""What a stored JSON value that cannot be decoded is read as (see `loads_stored`)."""


def finite_json(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`value`, safe to send: every non-finite number becomes None, and every array or
    object nested `max_depth` or more levels deep becomes the string TOO_DEEP.

    Rows stored before these were refused may hold them: a bare NaN would make the
    whole response unparseable, and deep nesting breaks every recursive encoder.
    Iterative, so a value of any depth is safe to walk. A top-level non-finite
    number gives None: a field that cannot be null must not be given one.
    """
    root: list[Any] = [None]
    pending: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while pending:
        item, parent, key, depth = pending.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                parent[key] = TOO_DEEP
                continue
            copy: dict[Any, Any] = dict.fromkeys(item)  # keeps the keys' order
            parent[key] = copy
            pending.extend((child, copy, name, depth + 1) for name, child in item.items())
        elif isinstance(item, list):
            if depth >= max_depth:
                parent[key] = TOO_DEEP
                continue
            items: list[Any] = [None] * len(item)
            parent[key] = items
            pending.extend((child, items, index, depth + 1) for index, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            parent[key] = None
        else:
            parent[key] = item
    return root[0]


def loads_stored(text: str | bytes) -> Any:
    """Decode a JSON column's text as the database hands it over; never raises.

    Values nested a thousand or more deep (or numbers over Python's 4300-digit
    limit) were storable before input was bounded, but `json.loads` cannot read
    them back: raising would make every read of their row fail. They are read as
    UNREADABLE instead. NaN and Infinity are kept (SQLite may hold them);
    `finite_json` renders them as null.
    """
    try:
        return json.loads(text)
    except (RecursionError, ValueError):
        return dict(UNREADABLE)
