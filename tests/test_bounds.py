"""Every number a client sends is bounded and every JSON value has a bounded shape:
out-of-range cursors, IDs and page sizes, JSON nested thousands deep, and
NaN/Infinity are client errors (BAD_USER_INPUT / INVALID_CURSOR), never a
masked internal error; and a response never holds a bare NaN."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select

from schema import ids
from schema.events import decode_cursor, encode_cursor
from services.database import Database
from services.replicate.gateway import _retry_after_seconds
from services.tables import ShotImageRow
from tests.factories import (
    Account,
    account,
    execute,
    image_drafts,
    iteration,
    mutate_ok,
    project,
    scene,
)
from tests.realtime_harness import PROJECT_EVENTS, Api, Socket
from tests.servers import StudioServer, studio_env

MASKED = "Something went wrong on our side; it has been logged."
PAGE = (
    "query($after: String, $first: Int) { projects(first: $first, after: $after) { totalCount } }"
)


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def codes(result: Any) -> list[Any]:
    assert result.errors, "expected top-level errors"
    assert all(error.message != MASKED for error in result.errors), result.errors
    return [(error.extensions or {}).get("code") for error in result.errors]


@pytest.fixture
async def owner(db: Database) -> Account:
    return await account(db)


# -- cursors, IDs and page sizes -------------------------------------------------------------


@pytest.mark.parametrize(
    "cursor",
    [
        b64(f"project:{2**70}"),
        b64(f"project:{2**63}"),
        b64("project:0"),
        b64("project:-1"),
        b64("project:" + "9" * 5000),
        b64("project:" + "9" * 60),
        b64("project:²"),
        b64("project:\u0663"),
        b64("project: 7"),
        "x" * 100_000,
    ],
    ids=[
        "2^70",
        "2^63",
        "zero",
        "negative",
        "5000-digits",
        "60-digits",
        "superscript",
        "arabic-digit",
        "space",
        "huge",
    ],
)
async def test_project_cursors_out_of_range_are_bad_input(
    db: Database, owner: Account, cursor: str
) -> None:
    result = await execute(db, PAGE, {"after": cursor, "first": 5}, token=owner.token)
    assert codes(result) == ["BAD_USER_INPUT"]


async def test_the_largest_valid_project_cursor_is_an_empty_tail(
    db: Database, owner: Account
) -> None:
    await project(db, owner)
    result = await execute(
        db, PAGE, {"after": b64(f"project:{2**63 - 1}"), "first": 5}, token=owner.token
    )
    assert result.errors is None, result.errors
    assert result.data is not None


@pytest.mark.parametrize("first", [2**31, 2**40, -(2**31) - 1, 10**30])
async def test_int_arguments_past_32_bits_are_refused(
    db: Database, owner: Account, first: int
) -> None:
    """graphql-core bounds Int to 32 bits by itself; this keeps it so."""
    result = await execute(db, PAGE, {"first": first}, token=owner.token)
    assert result.errors
    assert all(error.message != MASKED for error in result.errors)


@pytest.mark.parametrize(
    "sequence", ["9" * 5000, "9" * 20, str(2**63), "²", "\u0663", "-1", "", " 1"]
)
def test_event_cursors_out_of_range_decode_to_nothing(sequence: str) -> None:
    cursor = b64(f"ProjectEvent:7:{sequence}")
    assert decode_cursor(cursor, 7) is None
    assert decode_cursor(encode_cursor(7, 2**63 - 1), 7) == 2**63 - 1


@pytest.mark.parametrize(
    "pk",
    [2**63, 2**70, 0, "9" * 5000, "²", "\u0663"],
    ids=["2^63", "2^70", "zero", "5000-digits", "superscript", "arabic-digit"],
)
def test_global_ids_out_of_range_are_not_ids(pk: object) -> None:
    """Already bounded before; kept so the whole kind stays covered."""
    text = f"Project:{pk}"
    assert ids.parse(base64.b64encode(text.encode()).decode()) is None


# -- JSON: nesting and non-finite numbers ----------------------------------------------------


async def shot_of(db: Database, owner: Account) -> str:
    project_id = await project(db, owner)
    made = await scene(db, owner, project_id, shots=1)
    shot_id: str = made["shots"][0]["id"]
    return shot_id


ADD = """
mutation($input: AddShotImagesInput!) {
  addShotImages(input: $input) { images { id metadata } userErrors { code field message } }
}
"""


@pytest.mark.parametrize(
    "metadata",
    [
        nested(40),
        nested(5000),
        {"seed": math.nan},
        {"seed": math.inf},
        {"deep": [-math.inf]},
    ],
    ids=["40-deep", "5000-deep", "nan", "inf", "negative-inf"],
)
async def test_json_variables_deep_or_not_finite_are_bad_input(
    db: Database, owner: Account, metadata: Any
) -> None:
    shot_id = await shot_of(db, owner)
    draft = {**image_drafts(1)[0], "metadata": metadata}
    result = await execute(
        db,
        ADD,
        {"input": {"shotId": shot_id, "iterationPrompt": "p", "images": [draft]}},
        token=owner.token,
    )
    assert codes(result) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    "literal",
    ["{seed: 1e999}", "{seed: -1e999}", "[" * 40 + "1" + "]" * 40],
    ids=["1e999", "-1e999", "40-deep"],
)
async def test_json_literals_deep_or_not_finite_are_bad_input(
    db: Database, owner: Account, literal: str
) -> None:
    shot_id = await shot_of(db, owner)
    query = (
        'mutation($shot: ID!) { addShotImages(input: {shotId: $shot, iterationPrompt: "p", '
        'images: [{variantNumber: 0, status: COMPLETE, imageUrl: "https://x.example.com/a.png", '
        f"metadata: {literal}}}]}}) {{ images {{ id }} userErrors {{ code }} }} }}"
    )
    result = await execute(db, query, {"shot": shot_id}, token=owner.token)
    assert codes(result) == ["BAD_USER_INPUT"]


async def test_json_within_bounds_is_accepted(db: Database, owner: Account) -> None:
    shot_id = await shot_of(db, owner)
    draft = {**image_drafts(1)[0], "metadata": {"seed": 1.5, "deep": nested(30)}}
    payload = await mutate_ok(
        db,
        "addShotImages",
        {"shotId": shot_id, "iterationPrompt": "p", "images": [draft]},
        "images { metadata }",
        token=owner.token,
    )
    assert payload["images"][0]["metadata"]["deep"] == nested(30)


async def test_a_stored_nan_is_sent_as_null(db: Database, owner: Account) -> None:
    if not db.is_sqlite:
        pytest.skip("PostgreSQL's JSONB cannot hold NaN, so no such row can exist there")
    shot_id = await shot_of(db, owner)
    payload = await iteration(db, owner, shot_id, count=1, prompt="p")
    pk = ids.decode(payload["images"][0]["id"], "ShotImage")
    async with db.transaction() as session:  # a row from before NaN was refused
        row = (await session.exec(select(ShotImageRow).where(ShotImageRow.id == pk))).one()
        row.generation_metadata = {"seed": math.nan, "list": [math.inf, 1.0]}
        session.add(row)
    result = await execute(
        db,
        "query($id: ID!) { node(id: $id) { ... on ShotImage { metadata } } }",
        {"id": payload["images"][0]["id"]},
        token=owner.token,
    )
    assert result.errors is None, result.errors
    assert result.data == {"node": {"metadata": {"seed": None, "list": [None, 1.0]}}}


# -- over HTTP and WebSocket -----------------------------------------------------------------


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    tmp = tmp_path_factory.mktemp("bounds")
    server = StudioServer(
        env=studio_env(
            DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'studio.db'}",
            SECRET_KEY="bounds tests secret key, long enough to be accepted",
        ),
        cwd=tmp,
        name="bounds",
    )
    with server:
        yield server


NAN_ADD = """
mutation($shot: ID!, $m: JSON) {
  addShotImages(input: {shotId: $shot, iterationPrompt: "p", images: [
    {variantNumber: 0, status: COMPLETE, imageUrl: "https://x.example.com/a.png", metadata: $m}
  ]}) { images { id metadata } userErrors { code } }
}
"""


def refuse_constant(name: str) -> Any:
    raise AssertionError(f"bare {name} in a response")


@pytest.mark.e2e
async def test_bounds_over_http_and_websocket(studio: StudioServer) -> None:
    async with Api(studio.base_url) as anonymous:
        api = await anonymous.sign_up()
        project_id = await api.create_project()
        headers = {"Authorization": f"Bearer {api.token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=studio.base_url, trust_env=False) as http:
            cursor = b64(f"project:{2**70}")
            body = json.dumps({"query": PAGE, "variables": {"after": cursor, "first": 5}})
            response = await http.post("/graphql", content=body, headers=headers)
            result = json.loads(response.text, parse_constant=refuse_constant)
            assert [e["extensions"]["code"] for e in result["errors"]] == ["BAD_USER_INPUT"]

            # NaN written into the body text: not JSON, so never stored or echoed.
            made = await api.create_scene(project_id, "Dock", [{"description": "a"}])
            for constant in ("NaN", "Infinity", "-Infinity"):
                raw = (
                    '{"query": '
                    + json.dumps(NAN_ADD)
                    + ', "variables": {"shot": "'
                    + made["shots"][0]["id"]
                    + '", "m": {"seed": '
                    + constant
                    + "}}}"
                )
                response = await http.post("/graphql", content=raw, headers=headers)
                # The body itself is not JSON: refused whole, before any operation.
                assert response.status_code == 400, response.text
                answer = json.loads(response.text, parse_constant=refuse_constant)
                assert answer.get("data") is None, answer
                assert [e["extensions"]["code"] for e in answer["errors"]] == ["BAD_REQUEST"]
                assert answer["errors"][0]["message"] == f"{constant} is not a JSON number."

        async with await Socket.open(studio, api.token) as socket:
            for sequence in ("9" * 5000, str(2**70)):
                after = b64(f"ProjectEvent:{ids.decode(project_id, 'Project')}:{sequence}")
                feed = await socket.subscribe(
                    PROJECT_EVENTS, {"projectId": project_id, "after": after}
                )
                assert await feed.error_codes() == ["INVALID_CURSOR"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers(0, 10**6).map(str), st.just("9" * 5000)))
def test_a_providers_retry_after_never_raises(value: str) -> None:
    seconds = _retry_after_seconds(value)
    assert seconds is None or 0 <= seconds <= 86_400
    if value.isascii() and value.isdigit() and len(value) <= 5:
        assert seconds == min(float(value), 86_400)
