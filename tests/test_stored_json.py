"""Stored JSON that no client could send today never breaks a read.

Rows written before input was bounded may hold a bare NaN or Infinity as their
whole `metadata`, NaN deep inside it, or arrays nested hundreds or thousands
deep (past what `json.loads` can read back). Reading such a shot's images gives
every other field as usual, and `metadata` as null (a top-level non-finite
number), with nulls for nested non-finite numbers, a marker string for what
nests deeper than 32 levels, or the UNREADABLE marker, never an error.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from schema import ids
from services.database import Database
from services.decoding import MAX_JSON_DEPTH, TOO_DEEP, UNREADABLE, finite_json
from tests.factories import (
    Account,
    account,
    execute,
    iteration,
    mutate_ok,
    project,
    scene,
)

IMAGES = """
query($id: ID!) {
  node(id: $id) { ... on Shot { images { id status metadata } } }
}
"""


@pytest.fixture
async def owner(db: Database) -> Account:
    return await account(db)


async def stored_image(db: Database, owner: Account, raw_metadata: str) -> tuple[str, str]:
    """A shot with one image whose metadata column holds `raw_metadata` as written."""
    project_id = await project(db, owner)
    made = await scene(db, owner, project_id, shots=1)
    shot_id: str = made["shots"][0]["id"]
    payload = await iteration(db, owner, shot_id, count=1, prompt="p")
    image_id: str = payload["images"][0]["id"]
    value = "CAST(:m AS jsonb)" if not db.is_sqlite else ":m"
    async with db.transaction() as session:  # as a row from before the bounds
        connection = await session.connection()
        await connection.execute(
            text(f"UPDATE shot_images SET metadata = {value} WHERE id = :id"),  # noqa: S608
            {"m": raw_metadata, "id": ids.decode(image_id, "ShotImage")},
        )
    return shot_id, image_id


async def read_metadata(db: Database, owner: Account, shot_id: str) -> Any:
    result = await execute(db, IMAGES, {"id": shot_id}, token=owner.token)
    assert result.errors is None, result.errors
    assert result.data is not None
    images = result.data["node"]["images"]
    assert len(images) == 1
    assert images[0]["status"] == "COMPLETE"
    return images[0]["metadata"]


def nested_text(depth: int) -> str:
    return '{"x": ' + "[" * depth + "1" + "]" * depth + "}"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_a_stored_top_level_non_finite_number_is_null(
    db: Database, owner: Account, constant: str
) -> None:
    if not db.is_sqlite:
        pytest.skip("PostgreSQL's JSONB cannot hold NaN or Infinity")
    shot_id, _ = await stored_image(db, owner, constant)
    assert await read_metadata(db, owner, shot_id) is None


async def test_stored_non_finite_numbers_inside_are_null(db: Database, owner: Account) -> None:
    if not db.is_sqlite:
        pytest.skip("PostgreSQL's JSONB cannot hold NaN or Infinity")
    shot_id, _ = await stored_image(db, owner, '{"a": [NaN, {"b": -Infinity}], "c": 1.5}')
    assert await read_metadata(db, owner, shot_id) == {"a": [None, {"b": None}], "c": 1.5}


@pytest.mark.parametrize("depth", [40, 500, 900])
async def test_stored_deep_nesting_is_served_down_to_a_marker(
    db: Database, owner: Account, depth: int
) -> None:
    shot_id, _ = await stored_image(db, owner, nested_text(depth))
    value = await read_metadata(db, owner, shot_id)
    levels = 1  # the object holding "x"
    value = value["x"]
    while isinstance(value, list):
        levels += 1
        (value,) = value
    assert levels == MAX_JSON_DEPTH
    assert value == TOO_DEEP


@pytest.mark.parametrize("raw", [nested_text(3000), '{"n": ' + "9" * 5000 + "}"])
async def test_stored_json_too_deep_or_long_to_decode_does_not_fail_the_row(
    db: Database, owner: Account, raw: str
) -> None:
    if not db.is_sqlite and raw.startswith('{"n"'):
        pytest.skip("asyncpg hands PostgreSQL's numeric over as text: covered on SQLite")
    shot_id, image_id = await stored_image(db, owner, raw)
    assert await read_metadata(db, owner, shot_id) == UNREADABLE
    # The row stays usable: it can still be changed.
    await mutate_ok(
        db,
        "setImageFavorite",
        {"imageId": image_id, "isFavorite": True},
        "image { isFavorite metadata }",
        token=owner.token,
    )


def test_finite_json_walks_any_depth_without_recursion() -> None:
    value: Any = 1.0
    for _ in range(100_000):
        value = [value]
    assert finite_json(value, max_depth=3) == [[[TOO_DEEP]]]
    assert finite_json({"a": float("nan"), "b": [float("inf"), "s", None, True, 2]}) == {
        "a": None,
        "b": [None, "s", None, True, 2],
    }
