"""Opaque global IDs: base64 of "TypeName:primary key", as Relay expects.

>>> encode("Project", 7)
'UHJvamVjdDo3'
>>> decode("UHJvamVjdDo3", "Project")
7
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import strawberry

from services.decoding import decimal
from services.errors import InvalidInput
from services.validation import Checks

MAX_PK = 2**63 - 1


NOT_AN_ID = (
    "That is not a valid ID: use an `id` from one of the API's answers "
    '(an opaque string such as "UHJvamVjdDox", not a number).'
)
"""What a malformed ID is told: a newcomer's first guess is a database number."""


def encode(type_name: str, pk: int | None) -> strawberry.ID:
    assert pk is not None, "an object without a primary key has no global ID"
    return strawberry.ID(base64.b64encode(f"{type_name}:{pk}".encode()).decode())


def parse(global_id: str) -> tuple[str, int] | None:
    """The (type name, primary key) of a well-formed ID, else None."""
    if len(global_id) > 200:
        return None
    try:
        text = base64.b64decode(global_id, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    type_name, sep, raw_pk = text.partition(":")
    if not type_name.isidentifier() or not sep:
        return None
    pk = decimal(raw_pk, low=1, high=MAX_PK)
    return None if pk is None else (type_name, pk)


def decode(global_id: str, type_name: str, *, field: Sequence[str] = ("id",)) -> int:
    """The primary key of an ID of the given type, or InvalidInput naming the field."""
    parsed = parse(global_id)
    if parsed is None:
        raise InvalidInput(NOT_AN_ID, code="INVALID_ID", field=field)
    if parsed[0] != type_name:
        raise InvalidInput(
            f"Expected the ID of a {type_name}, got the ID of a {parsed[0]}.",
            code="WRONG_ID_TYPE",
            field=field,
        )
    return parsed[1]


def decode_into(checks: Checks, global_id: str, type_name: str, *, field: Sequence[str]) -> int:
    """Like `decode`, but a bad ID is recorded on `checks` (and 0 returned) so that it is
    reported with the input's other problems."""
    try:
        return decode(global_id, type_name, field=field)
    except InvalidInput as error:
        checks.add(error, blocks_lookup=True)
        return 0


def decode_optional_into(
    checks: Checks, global_id: str | None, type_name: str, *, field: Sequence[str]
) -> int | None:
    if global_id is None:
        return None
    return decode_into(checks, global_id, type_name, field=field)
