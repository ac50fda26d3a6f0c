"""Opaque cursors decode only as they were given out, and never raise."""

from __future__ import annotations

import base64

import pytest

from schema.ids import MAX_PK
from services import cursors


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_a_cursor_decodes_to_its_numbers() -> None:
    cursor = cursors.encode_numbers("ProjectEvent", 12, 40)
    assert cursors.decode_numbers(cursor, "ProjectEvent", 2, max_length=200, high=MAX_PK) == (
        12,
        40,
    )
    assert base64.urlsafe_b64decode(cursor).decode() == "ProjectEvent:12:40"


@pytest.mark.parametrize(
    "cursor",
    [
        b64("project:12"),  # another name
        b64("ProjectEvent:12"),  # too few numbers
        b64("ProjectEvent:12:40:1"),  # too many
        b64(f"ProjectEvent:12:{MAX_PK + 1}"),  # past a BIGINT
        b64("ProjectEvent:12:" + "9" * 5000),
        b64("ProjectEvent:12:-1"),
        b64("ProjectEvent:12:\u0663"),  # a digit, but not ASCII
        b64("ProjectEvent:0:0")[:-3] + "*",  # not base64
        "%%%",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
    ],
)
def test_anything_else_is_none(cursor: str) -> None:
    assert cursors.decode_numbers(cursor, "ProjectEvent", 2, max_length=10_000, high=MAX_PK) is None


def test_a_long_cursor_is_not_read_and_low_bounds_each_number() -> None:
    assert (
        cursors.decode_numbers(
            cursors.encode_numbers("project", 7), "project", 1, max_length=4, high=MAX_PK
        )
        is None
    )
    assert (
        cursors.decode_numbers(
            cursors.encode_numbers("project", 0), "project", 1, max_length=100, high=MAX_PK, low=1
        )
        is None
    )
