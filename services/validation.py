"""Input rules shared by every service: bounds on text, numbers and URLs.

Each check either returns the cleaned value or records an `InvalidInput` on a
`Checks` collector, so one call reports every problem of an input at once:

    checks = Checks()
    title = checks.text(raw_title, field=("title",), max_length=TITLE_MAX)
    checks.raise_if_any()

Every write service checks in the same order: the input on its own; then, if an
ID was malformed (nothing can be looked up), it reports all it found; then
access, which fails alone (NOT_FOUND, FORBIDDEN); then what depends on stored
state; then it reports everything. A caller that decodes IDs passes its
`Checks` in, so malformed IDs are reported along with the other problems.

The *_MAX and *_MIN lengths below are characters (Python `len`: code points);
METADATA_MAX_BYTES is bytes of compact JSON; MAX_* are counts of items.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence, Sized
from typing import Any, Literal, TypeVar, Union
from urllib.parse import urlsplit

import httpx

from services.errors import InvalidInput, StudioError, ValidationFailed

NAME_MAX = 100
TITLE_MAX = 200
EMAIL_MAX = 254
PASSWORD_MIN = 8
PASSWORD_MAX = 256
DESCRIPTION_MAX = 10_000
PROMPT_MAX = 10_000
PLANNER_DATA_MAX = 200_000
URL_MAX = 2048
METADATA_MAX_BYTES = 16_384
MAX_VARIANTS = 12
# Variants are numbered from 0, as in the design: an iteration of six holds 0..5.
LAST_VARIANT = MAX_VARIANTS - 1
MAX_SHOTS_PER_SCENE = 200
MAX_SCENES_PER_PROJECT = 500


# How much of a client's input a message or a field path quotes back, in characters.
SHOWN_MAX = 40


def shown(value: object, limit: int = SHOWN_MAX) -> str:
    """`value` as JSON, cut to `limit` characters: what a message quotes back of a
    client's value or name (`"ab…"`), however long the input was."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # an integer past Python's 4300-digit limit for str()
        return "a number too long to show"
    return shortened(text, limit)


def shortened(text: str, limit: int = SHOWN_MAX) -> str:
    """`text` itself if at most `limit` characters, else its start and "…" in `limit`:
    a client's name as a field path shows it (`params.kkk…`)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def within(items: Sized, *, field: Sequence[str], most: int, label: str) -> None:
    """Refuse a list over `most` items at once (InvalidInput, TOO_LONG), before any item
    of it is looked at: a long list must not cost work per item to be turned away."""
    if len(items) > most:
        raise InvalidInput(
            f"At most {most} {label} may be given at once; got {len(items)}.",
            code="TOO_LONG",
            field=field,
        )


def storable(text: str) -> bool:
    """Whether the text can be stored on every engine: PostgreSQL refuses NUL
    characters (and `\\u0000` in JSON), and no engine takes unpaired surrogates."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_storable(value: Any) -> bool:
    """Whether every string (keys included) of parsed JSON `value` is `storable`.
    Iterative, so a value of any depth is safe to walk."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not storable(item):
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


class Checks:
    """Collects input problems so they are reported together.

    Each check records InvalidInput with a stable code and the input's field path
    and returns the (cleaned) value anyway, so checking goes on; `raise_if_any`
    ends it. `errors` is the list recorded so far.
    """

    def __init__(self) -> None:
        self.errors: list[StudioError] = []
        self._unresolvable = False

    def fail(self, code: str, message: str, field: Sequence[str]) -> None:
        """Record an InvalidInput with this code, message and field path."""
        self.errors.append(InvalidInput(message, code=code, field=field))

    def add(self, error: StudioError, *, blocks_lookup: bool = False) -> None:
        """Record an error found elsewhere; `blocks_lookup` for an ID that names nothing at all."""
        self.errors.append(error)
        self._unresolvable = self._unresolvable or blocks_lookup

    def raise_if_unresolvable(self) -> None:
        """Report what was found so far if some ID cannot even be looked up."""
        if self._unresolvable:
            self.raise_if_any()

    def text(
        self,
        value: str,
        *,
        field: Sequence[str],
        max_length: int,
        min_length: int = 1,
        label: str | None = None,
    ) -> str:
        """Strip surrounding white space, then bound the length; `min_length=0` allows empty.

        Records BLANK, TOO_SHORT, TOO_LONG or INVALID_CHARACTERS (see `storable`);
        `label` names the input in messages (default: the field's last part).
        Returns the stripped text.
        """
        label = label or field[-1]
        cleaned = value.strip()
        if min_length > 0 and not cleaned:
            self.fail("BLANK", f"The {label} cannot be blank.", field)
        elif len(cleaned) < min_length:
            self.fail("TOO_SHORT", f"The {label} must be at least {min_length} characters.", field)
        elif len(cleaned) > max_length:
            self.fail(
                "TOO_LONG",
                f"The {label} is {len(cleaned)} characters long; the limit is {max_length}.",
                field,
            )
        else:
            self.storable(cleaned, field=field, label=label)
        return cleaned

    def storable(self, value: str, *, field: Sequence[str], label: str) -> None:
        """Record INVALID_CHARACTERS unless `storable(value)`."""
        if not storable(value):
            self.fail(
                "INVALID_CHARACTERS",
                f"The {label} contains a NUL character or broken Unicode, which cannot be stored.",
                field,
            )

    def optional_text(
        self, value: str | None, *, field: Sequence[str], max_length: int, label: str | None = None
    ) -> str | None:
        """Like `text`, but None and all-blank become None."""
        if value is None or not value.strip():
            return None
        return self.text(value, field=field, max_length=max_length, label=label)

    def number(
        self, value: int, *, field: Sequence[str], low: int, high: int, label: str | None = None
    ) -> int:
        """Record OUT_OF_RANGE unless low <= value <= high (both inclusive); the value."""
        if not low <= value <= high:
            label = label or field[-1]
            self.fail(
                "OUT_OF_RANGE", f"The {label} must be between {low} and {high}; got {value}.", field
            )
        return value

    def url(self, value: str, *, field: Sequence[str]) -> str:
        """An absolute http(s) URL that the server's fetcher can parse (httpx, as it will).

        Records TOO_LONG over URL_MAX (2048) characters, INVALID_URL for anything
        else it refuses (another scheme, no host, a port outside 1-65535, ...).
        Returns the stripped URL. Whether its host may be fetched is decided
        later, when it is (`services.outbound`).
        """
        cleaned = value.strip()
        if len(cleaned) > URL_MAX:
            self.fail("TOO_LONG", f"The URL is longer than {URL_MAX} characters.", field)
        elif not storable(cleaned) or not _absolute_http_url(cleaned):
            self.fail("INVALID_URL", "The URL must be an absolute http or https URL.", field)
        return cleaned

    def json_object(self, value: Any, *, field: Sequence[str]) -> dict[str, Any] | None:
        """A client's metadata: None stays None; anything but a JSON object records
        INVALID_JSON, a NUL or broken Unicode anywhere in it INVALID_CHARACTERS,
        over METADATA_MAX_BYTES (16 KiB) as compact JSON TOO_LONG. Returns the
        value (None when it is not an object)."""
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail("INVALID_JSON", "The metadata must be a JSON object.", field)
            return None
        if not json_storable(value):
            self.storable("\x00", field=field, label="metadata")
        elif (size := len(json.dumps(value, separators=(",", ":")).encode())) > METADATA_MAX_BYTES:
            self.fail(
                "TOO_LONG",
                f"The metadata is {size} bytes; the limit is {METADATA_MAX_BYTES}.",
                field,
            )
        return value

    def raise_if_any(self) -> None:
        """Raise the one error recorded, ValidationFailed for several; nothing if none."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ValidationFailed(self.errors)


class _Unchanged(enum.Enum):
    UNCHANGED = "UNCHANGED"


UNCHANGED = _Unchanged.UNCHANGED
"""The value of an update argument that was not given, as opposed to given as None."""

T = TypeVar("T")
Maybe = Union[T, Literal[_Unchanged.UNCHANGED]]  # noqa: UP007 (a generic alias needs Union)


def _absolute_http_url(value: str) -> bool:
    """Whether `value` parses, both as the standard library and httpx read it, to an
    http(s) URL with a host. Anything they cannot read (a bracketed IPv4 address,
    invalid punycode such as `xn--zz.com`, a port outside 1-65535) raises ValueError
    or httpx.InvalidURL."""
    try:
        parts = urlsplit(value)
        port = parts.port  # read lazily: "-1", "+80" and "99999" raise only here
        parsed = httpx.URL(value)
        host = parsed.host
    except (ValueError, httpx.InvalidURL):
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and bool(host) and port != 0
