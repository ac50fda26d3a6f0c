"""Every top-level error has an `extensions.code`, graphql-core's own included:
GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, BAD_USER_INPUT (schema.error_codes)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.database import Database
from tests.factories import Account, account, execute

PAGE = "query($n: Int!) { projects(first: $n) { totalCount } }"


@pytest.fixture
async def owner(db: Database) -> Account:
    return await account(db)


CASES: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("syntax", "{", None, "GRAPHQL_PARSE_FAILED"),
    ("nul", "{ __typename \x00 }", None, "GRAPHQL_PARSE_FAILED"),
    ("unknown field", "{ nope }", None, "GRAPHQL_VALIDATION_FAILED"),
    ("unused variable", "query($f: Float) { __typename }", None, "GRAPHQL_VALIDATION_FAILED"),
    (
        "undefined variable",
        "{ projects(first: $n) { totalCount } }",
        None,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    (
        "literal of the wrong type",
        '{ projects(first: "x") { totalCount } }',
        None,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    (
        "too deep",
        "{" + " viewer { teams { members { user {" * 4 + " id" + " } } } }" * 4 + " }",
        None,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    (
        "too many aliases",
        "{" + " ".join(f"a{i}: __typename" for i in range(40)) + " }",
        None,
        "GRAPHQL_VALIDATION_FAILED",
    ),
    ("missing variable", PAGE, {}, "BAD_USER_INPUT"),
    ("null variable", PAGE, {"n": None}, "BAD_USER_INPUT"),
    ("string for an Int", PAGE, {"n": "five"}, "BAD_USER_INPUT"),
    ("infinite number", PAGE, {"n": math.inf}, "BAD_USER_INPUT"),  # 1e400 in a body
    ("Int out of range", PAGE, {"n": 2**40}, "BAD_USER_INPUT"),
]


@pytest.mark.parametrize(
    ("query", "variables", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_graphql_cores_errors_carry_a_code(
    db: Database, owner: Account, query: str, variables: dict[str, Any] | None, code: str
) -> None:
    result = await execute(db, query, variables, token=owner.token)
    assert result.errors, result
    assert [(e.extensions or {}).get("code") for e in result.errors] == [code] * len(
        result.errors
    ), [e.formatted for e in result.errors]


async def test_codes_already_given_are_kept(db: Database) -> None:
    result = await execute(db, "{ viewer { id } }")
    assert [(e.extensions or {}).get("code") for e in (result.errors or [])] == ["UNAUTHENTICATED"]


@pytest.mark.parametrize("given", ["1", "abc"])
async def test_a_malformed_id_says_what_an_id_is(db: Database, owner: Account, given: str) -> None:
    # A newcomer's first guess is a database number; "'1' is not a valid ID." left it there.
    read = await execute(
        db, "query($id: ID!) { project(id: $id) { id } }", {"id": given}, token=owner.token
    )
    assert [e.message for e in read.errors or []] == [
        f"{given!r} is not a valid ID: use an `id` from one of the API's answers "
        '(an opaque string such as "UHJvamVjdDox", not a number).'
    ], read
    written = await execute(
        db,
        'mutation($id: ID!) { createScene(input: { projectId: $id, title: "x" }) '
        "{ userErrors { code message } } }",
        {"id": given},
        token=owner.token,
    )
    assert written.data == {
        "createScene": {
            "userErrors": [
                {
                    "code": "INVALID_ID",
                    "message": (
                        "That is not a valid ID: use an `id` from one of the API's answers "
                        '(an opaque string such as "UHJvamVjdDox", not a number).'
                    ),
                }
            ]
        }
    }, written
