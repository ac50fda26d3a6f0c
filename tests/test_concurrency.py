"""Concurrent writers to one project queue; numbers stay dense and unique."""

from __future__ import annotations

import asyncio

from services.database import Database
from tests.factories import PASSWORD, account, gql, image_drafts, mutate, project, scene


async def test_concurrent_appends_get_dense_distinct_numbers(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    results = await asyncio.gather(
        *(
            mutate(
                db,
                "createScene",
                {"projectId": pid, "title": f"S{n}"},
                "scene { sceneNumber }",
                token=ann.token,
            )
            for n in range(8)
        )
    )
    assert all(r["userErrors"] == [] for r in results)
    assert sorted(r["scene"]["sceneNumber"] for r in results) == list(range(1, 9))


async def test_concurrent_iterations_never_share_a_number(db: Database) -> None:
    ann = await account(db)
    pid = await project(db, ann)
    shot_id = (await scene(db, ann, pid, shots=1))["shots"][0]["id"]
    results = await asyncio.gather(
        *(
            mutate(
                db,
                "addShotImages",
                {"shotId": shot_id, "iterationPrompt": f"batch {n}", "images": image_drafts(6)},
                "iteration { iterationNumber }",
                token=ann.token,
            )
            for n in range(5)
        )
    )
    assert all(r["userErrors"] == [] for r in results)
    assert sorted(r["iteration"]["iterationNumber"] for r in results) == [0, 1, 2, 3, 4]
    data = await gql(
        db,
        "query($id: ID!) { node(id: $id) { ... on Shot { images { id } } } }",
        {"id": shot_id},
        token=ann.token,
    )
    assert len(data["node"]["images"]) == 30


async def test_concurrent_sign_ups_with_one_email_make_one_account(db: Database) -> None:
    email = "race@example.com"
    results = await asyncio.gather(
        *(
            mutate(
                db,
                "signUp",
                {"email": email, "password": PASSWORD, "name": "R"},
                "token",
                token=None,
            )
            for _ in range(4)
        )
    )
    winners = [r for r in results if r["token"]]
    assert len(winners) == 1
    assert all(
        [e["code"] for e in r["userErrors"]] == ["EMAIL_TAKEN"] for r in results if not r["token"]
    )
