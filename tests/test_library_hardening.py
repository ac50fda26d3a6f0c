"""What an attack on the library found, each kept shut: shares that turned into assets of
one's own, a PRIVATE level that hid nothing, input that failed on PostgreSQL, an
outsider moving a team's map, and tags that differ only in their Unicode form."""

from __future__ import annotations

from typing import Any

from schema import ids
from services.database import Database
from services.library.tables import AssetShareRow
from tests import factories

SET_LEVEL = "asset { id shareLevel }"
LIBRARY = """query($filter: LibraryFilter) {
  library(filter: $filter, first: 5) { totalCount } }"""


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["userErrors"]]


async def share(db: Database, asset_id: str, user: factories.Account, permission: str) -> None:
    async with db.transaction() as session:
        session.add(
            AssetShareRow(
                asset_id=ids.decode(asset_id, "Asset"),
                user_id=ids.decode(user.user_id, "User"),
                permission=permission,
            )
        )


async def test_an_asset_a_project_shows_its_team_cannot_be_private(db: Database) -> None:
    ann = await factories.account(db)
    project = await factories.project(db, ann)
    shot = (await factories.scene(db, ann, project, shots=1))["shots"][0]["id"]
    image = (await factories.iteration(db, ann, shot, count=1))["images"][0]["id"]
    asset = await factories.library_asset(
        db, ann, shot_image_id=ids.decode(image, "ShotImage"), storage_key="images/1/a.png"
    )
    level = {"assetId": asset, "shareLevel": "PRIVATE"}
    refused = await factories.mutate(db, "setShareLevel", level, SET_LEVEL, token=ann.token)
    assert codes(refused) == ["IN_A_PROJECT"]
    assert refused["asset"] is None
    await factories.mutate_ok(
        db, "setShareLevel", {**level, "shareLevel": "PUBLIC"}, SET_LEVEL, token=ann.token
    )
    # Once the project no longer holds its image, its creator may keep it to themselves.
    await factories.mutate_ok(db, "deleteShotImage", {"id": image}, "deletedId", token=ann.token)
    done = await factories.mutate_ok(db, "setShareLevel", level, SET_LEVEL, token=ann.token)
    assert done["asset"]["shareLevel"] == "PRIVATE"


async def test_an_asset_added_to_a_shot_cannot_be_private_while_it_is_there(
    db: Database,
) -> None:
    ann = await factories.account(db)
    project = await factories.project(db, ann)
    shot = (await factories.scene(db, ann, project, shots=1))["shots"][0]["id"]
    asset = await factories.library_asset(db, ann, storage_key="images/1/b.png")
    await factories.mutate_ok(
        db,
        "addShotImages",
        {
            "shotId": shot,
            "iterationPrompt": "from the library",
            "images": [{"variantNumber": 0, "status": "COMPLETE", "assetId": asset}],
        },
        "images { id }",
        token=ann.token,
    )
    refused = await factories.mutate(
        db,
        "setShareLevel",
        {"assetId": asset, "shareLevel": "PRIVATE"},
        SET_LEVEL,
        token=ann.token,
    )
    assert codes(refused) == ["IN_A_PROJECT"]


async def test_a_view_share_does_not_put_anothers_asset_into_ones_own_shot(
    db: Database,
) -> None:
    ann = await factories.account(db)
    mal = await factories.account(db, name="Mal")
    asset = await factories.library_asset(db, ann, share_level="PRIVATE", storage_key="x/1.png")
    await share(db, asset, mal, "VIEW")
    project = await factories.project(db, mal)
    shot = (await factories.scene(db, mal, project, shots=1))["shots"][0]["id"]
    payload = await factories.mutate(
        db,
        "addShotImages",
        {
            "shotId": shot,
            "iterationPrompt": "taken",
            "images": [{"variantNumber": 0, "status": "COMPLETE", "assetId": asset}],
        },
        "images { id imageUrl }",
        token=mal.token,
    )
    assert codes(payload) == ["ASSET_OF_ANOTHER_TEAM"]
    assert payload["images"] is None


async def test_search_input_the_database_cannot_take_is_an_input_error(db: Database) -> None:
    ann = await factories.account(db)
    for bad in (
        {"tags": ["a\u0000"]},
        {"categories": ["\u0000"]},
        {"moods": ["calm\u0000"]},
        {"models": ["m\u0000"]},
        {"text": "rain\u0000"},
        {"createdAfter": "0001-01-01T00:00:00+14:00"},
        {"createdBefore": "9999-12-31T23:59:59-14:00"},
    ):
        result = await factories.execute(db, LIBRARY, {"filter": bad}, token=ann.token)
        assert result.errors, bad
        assert result.errors[0].extensions == {"code": "BAD_USER_INPUT"}, (bad, result.errors)


async def test_only_team_members_place_assets_on_the_teams_map(db: Database) -> None:
    ann = await factories.account(db)
    dave = await factories.account(db, name="Dave")
    asset = await factories.library_asset(db, ann)
    await share(db, asset, dave, "EDIT")
    place = {"assetId": asset, "x": 5.0, "y": 5.0}
    refused = await factories.mutate(
        db, "setConstellationPosition", place, "node { id }", token=dave.token
    )
    assert codes(refused) == ["TEAM_MEMBERS_ONLY"]
    placed = await factories.mutate(
        db, "setConstellationPosition", place, "node { id x y pinned }", token=ann.token
    )
    assert placed["userErrors"] == []
    assert (placed["node"]["x"], placed["node"]["y"], placed["node"]["pinned"]) == (5, 5, True)


async def test_a_tag_typed_in_either_unicode_form_is_one_tag(db: Database) -> None:
    ann = await factories.account(db)
    asset = await factories.library_asset(db, ann)
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    payload = await factories.mutate_ok(
        db,
        "updateAsset",
        {"id": asset, "tags": [composed, decomposed, "Caf\u00c9"]},
        "asset { tags }",
        token=ann.token,
    )
    assert payload["asset"]["tags"] == [composed]
