"""Editing and deleting library assets, using them in a project, and their usage fields.

updateAsset, deleteAsset (and when a shared stored file goes), addShotImages with an
assetId (refined through the emulator), Asset.usedInProjects, isFavorite, sourceImage,
and views counted by asset(id): through the schema on both engines.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update
from sqlmodel import col, select

from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from services.database import Database
from services.library import edits
from services.library.tables import (
    AssetRow,
    AssetShareRow,
    AssetViewRow,
    CollectionItemRow,
    CollectionRow,
)
from services.media.storage import LocalStorage
from services.tables import ShotImageRow, StoryboardSelectionRow, utcnow
from tests import factories
from tests.factories import ACCOUNTS, MEDIA, Account, gql, mutate, mutate_ok, statements
from tests.test_generation import running_studio, stored_image, wait_for_iteration

UPDATE = "asset { id name description tags category mood sceneType updatedAt }"
ASSET = """query($id: ID!) { asset(id: $id) {
  name description tags category mood sceneType views updatedAt } }"""
SOURCE_ASSET = "query($id: ID!) { node(id: $id) { ... on ShotImage { sourceAsset { id } } } }"
USAGE = """query($id: ID!) { node(id: $id) { ... on Asset {
  usedInProjects isFavorite sourceImage { id } views } } }"""


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


async def put_file(storage: LocalStorage, key: str | None = None) -> str:
    """A real PNG stored under a new key (or `key`); the key."""
    key = key or f"library/{secrets.token_hex(6)}.png"
    await storage.put(key, png_bytes(), content_type="image/png")
    return key


async def asset_row(db: Database, asset_id: str) -> AssetRow | None:
    async with db.session() as session:
        return await session.get(AssetRow, ids.decode(asset_id, "Asset"), populate_existing=True)


async def snapshot(db: Database, asset_id: str) -> dict[str, Any]:
    """Every stored column of the asset, to show that a refused write changed nothing."""
    row = await asset_row(db, asset_id)
    assert row is not None
    return row.model_dump()


async def image_row(db: Database, image_id: str) -> ShotImageRow:
    async with db.session() as session:
        row = await session.get(
            ShotImageRow, ids.decode(image_id, "ShotImage"), populate_existing=True
        )
    assert row is not None
    return row


async def run(
    resources: Resources, query: str, variables: dict[str, Any], token: str
) -> dict[str, Any]:
    context = await build_context(resources, token)
    result = await schema.execute(query, variable_values=variables, context_value=context)
    assert result.errors is None, [e.formatted for e in result.errors]
    assert result.data is not None
    return result.data


def codes(payload: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    return sorted((e["code"], e["field"]) for e in payload["userErrors"])


async def new_shot(db: Database, owner: Account, *, team_id: str | None = None) -> str:
    pid = await factories.project(db, owner, team_id=team_id)
    made = await factories.scene(db, owner, pid, shots=1)
    shot_id: str = made["shots"][0]["id"]
    return shot_id


async def add_from_asset(
    db: Database, who: Account, shot_id: str, asset_id: str, **image: Any
) -> dict[str, Any]:
    return await mutate(
        db,
        "addShotImages",
        {
            "shotId": shot_id,
            "iterationPrompt": "from the library",
            "images": [{"variantNumber": 0, "status": "COMPLETE", "assetId": asset_id, **image}],
        },
        "iteration { iterationNumber } images { id status imageUrl model metadata }",
        token=who.token,
    )


async def select_master(db: Database, who: Account, shot_id: str, image_id: str) -> None:
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot_id, "imageId": image_id},
        "selection { id }",
        token=who.token,
    )


# --- updateAsset --------------------------------------------------------------------


async def test_update_asset_changes_the_given_fields_and_leaves_the_rest(db: Database) -> None:
    ann = await factories.account(db)
    asset_id = await factories.library_asset(
        db, ann, name="Harbour", description="Boats at dawn", tags=["sea"], mood="calm"
    )
    before = await gql(db, ASSET, {"id": asset_id}, token=ann.token)
    changed = await mutate_ok(
        db,
        "updateAsset",
        {
            "id": asset_id,
            "name": "  Harbour at dawn ",
            "tags": [" Boats", "SEA", "boats", "fog  "],
            "category": "   ",
            "sceneType": "WIDE",
        },
        UPDATE,
        token=ann.token,
    )
    asset = changed["asset"]
    assert asset["name"] == "Harbour at dawn"
    assert asset["tags"] == ["boats", "sea", "fog"]  # trimmed, lower-cased, first kept
    assert asset["category"] is None  # blank clears
    assert asset["sceneType"] == "WIDE"
    assert asset["description"] == "Boats at dawn"  # omitted: unchanged
    assert asset["mood"] == "calm"
    assert asset["updatedAt"] > before["asset"]["updatedAt"]

    cleared = await mutate_ok(
        db,
        "updateAsset",
        {"id": asset_id, "name": None, "description": None, "tags": None, "sceneType": None},
        UPDATE,
        token=ann.token,
    )
    assert cleared["asset"]["name"] == "Harbour at dawn"  # a null name leaves it
    assert cleared["asset"]["description"] is None
    assert cleared["asset"]["tags"] == []
    assert cleared["asset"]["sceneType"] is None
    assert cleared["asset"]["mood"] == "calm"


async def test_update_asset_reports_every_problem_at_once_and_changes_nothing(
    db: Database,
) -> None:
    ann = await factories.account(db)
    asset_id = await factories.library_asset(db, ann, name="Lantern", tags=["light"])
    before = await snapshot(db, asset_id)
    payload = await mutate(
        db,
        "updateAsset",
        {
            "id": asset_id,
            "name": "   ",
            "description": "d" * 10_001,
            "tags": ["ok", "", "t" * 51, "bad\x00tag"],
            "category": "c" * 101,
            "mood": "m" * 101,
            "sceneType": "CLOSE_UP",
        },
        UPDATE,
        token=ann.token,
    )
    assert payload["asset"] is None
    assert codes(payload) == [
        ("BLANK", ["name"]),
        ("BLANK", ["tags", "1"]),
        ("INVALID_CHARACTERS", ["tags", "3"]),
        ("TOO_LONG", ["category"]),
        ("TOO_LONG", ["description"]),
        ("TOO_LONG", ["mood"]),
        ("TOO_LONG", ["tags", "2"]),
    ]
    assert await snapshot(db, asset_id) == before

    overlong = await mutate(
        db, "updateAsset", {"id": asset_id, "name": "n" * 201}, UPDATE, token=ann.token
    )
    assert codes(overlong) == [("TOO_LONG", ["name"])]
    too_many = await mutate(
        db,
        "updateAsset",
        {"id": asset_id, "tags": [f"tag{n}" for n in range(31)], "name": "Fine"},
        UPDATE,
        token=ann.token,
    )
    assert codes(too_many) == [("TOO_MANY_TAGS", ["tags"])]
    assert await snapshot(db, asset_id) == before
    thirty = await mutate_ok(
        db,
        "updateAsset",
        {"id": asset_id, "tags": [f"tag{n}" for n in range(30)]},
        UPDATE,
        token=ann.token,
    )
    assert len(thirty["asset"]["tags"]) == 30


async def test_update_asset_refuses_bad_ids_viewers_and_other_teams(db: Database) -> None:
    owner = await factories.account(db)
    viewer = await factories.account(db, name="Vic")
    editor = await factories.account(db, name="Eve")
    stranger = await factories.account(db, name="Sam")
    team = await factories.team_with(db, owner, {"VIEWER": viewer, "EDITOR": editor})
    asset_id = await factories.library_asset(db, owner, team_id=team, name="Map")
    private_id = await factories.library_asset(
        db, owner, team_id=team, name="Secret", share_level="PRIVATE"
    )
    project_id = await factories.project(db, owner)
    before = await snapshot(db, asset_id)
    cases = [
        (owner, "nonsense", ("INVALID_ID", ["id"])),
        (owner, project_id, ("WRONG_ID_TYPE", ["id"])),
        (owner, ids.encode("Asset", 10**12), ("NOT_FOUND", ["id"])),
        (viewer, asset_id, ("FORBIDDEN", None)),
        (stranger, asset_id, ("NOT_FOUND", ["id"])),
        (editor, private_id, ("NOT_FOUND", ["id"])),
    ]
    for who, target, expected in cases:
        payload = await mutate(
            db, "updateAsset", {"id": target, "name": "Changed"}, UPDATE, token=who.token
        )
        assert payload["asset"] is None
        assert codes(payload) == [expected], (target, payload)
    # A malformed ID is reported with the input's other problems.
    both = await mutate(
        db, "updateAsset", {"id": "nonsense", "name": ""}, UPDATE, token=owner.token
    )
    assert codes(both) == [("BLANK", ["name"]), ("INVALID_ID", ["id"])]
    assert await snapshot(db, asset_id) == before
    edited = await mutate_ok(
        db, "updateAsset", {"id": asset_id, "mood": "eerie"}, UPDATE, token=editor.token
    )
    assert edited["asset"]["mood"] == "eerie"


async def test_a_bad_scene_type_is_refused_before_anything_runs(db: Database) -> None:
    ann = await factories.account(db)
    asset_id = await factories.library_asset(db, ann)
    result = await factories.execute(
        db,
        "mutation($input: UpdateAssetInput!) { updateAsset(input: $input) { asset { id } } }",
        {"input": {"id": asset_id, "sceneType": "SIDEWAYS"}},
        token=ann.token,
    )
    assert result.errors is not None
    assert (await asset_row(db, asset_id)) is not None


# --- deleteAsset --------------------------------------------------------------------

DELETE = "deletedId"


async def test_delete_asset_needs_admin_and_refuses_bad_ids(db: Database) -> None:
    owner = await factories.account(db)
    viewer = await factories.account(db, name="Vic")
    editor = await factories.account(db, name="Eve")
    admin = await factories.account(db, name="Ada")
    stranger = await factories.account(db, name="Sam")
    team = await factories.team_with(
        db, owner, {"VIEWER": viewer, "EDITOR": editor, "ADMIN": admin}
    )
    asset_id = await factories.library_asset(db, owner, team_id=team)
    cases = [
        (owner, "nonsense", "INVALID_ID"),
        (owner, factories.unique_email(), "INVALID_ID"),
        (owner, team, "WRONG_ID_TYPE"),
        (owner, ids.encode("Asset", 10**12), "NOT_FOUND"),
        (viewer, asset_id, "FORBIDDEN"),
        (editor, asset_id, "FORBIDDEN"),
        (stranger, asset_id, "NOT_FOUND"),
    ]
    for who, target, code in cases:
        payload = await mutate(db, "deleteAsset", {"id": target}, DELETE, token=who.token)
        assert payload["deletedId"] is None
        assert [e["code"] for e in payload["userErrors"]] == [code], (target, payload)
    assert await asset_row(db, asset_id) is not None
    done = await mutate_ok(db, "deleteAsset", {"id": asset_id}, DELETE, token=admin.token)
    assert done["deletedId"] == asset_id
    assert await asset_row(db, asset_id) is None
    again = await mutate(db, "deleteAsset", {"id": asset_id}, DELETE, token=admin.token)
    assert [e["code"] for e in again["userErrors"]] == ["NOT_FOUND"]


async def test_deleting_an_asset_takes_its_rows_and_leaves_the_storyboard(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    shot_id = await new_shot(db, ann)
    made = await factories.iteration(db, ann, shot_id, count=1)
    source_image = made["images"][0]["id"]
    await select_master(db, ann, shot_id, source_image)
    asset_id = await factories.library_asset(
        db,
        ann,
        shot_image_id=ids.decode(source_image, "ShotImage"),
        storage_key=f"library/{secrets.token_hex(4)}.png",
    )
    other_shot = await new_shot(db, ann)
    added = await add_from_asset(db, ann, other_shot, asset_id)
    assert added["userErrors"] == []
    added_image = added["images"][0]["id"]
    pk = ids.decode(asset_id, "Asset")
    async with db.transaction() as session:
        collection = CollectionRow(team_id=ids.decode(ann.team_id, "Team"), name="Keep")
        session.add(collection)
        await session.flush()
        assert collection.id is not None
        session.add(
            AssetShareRow(asset_id=pk, user_id=ids.decode(bob.user_id, "User"), permission="VIEW")
        )
        session.add(AssetViewRow(asset_id=pk, user_id=ids.decode(ann.user_id, "User")))
        session.add(CollectionItemRow(collection_id=collection.id, asset_id=pk, position=0))
        child = AssetRow(
            team_id=collection.team_id, kind="IMAGE", name="Child", parent_id=pk, root_id=pk
        )
        session.add(child)
        await session.flush()
        child_id = child.id

    await mutate_ok(db, "deleteAsset", {"id": asset_id}, DELETE, token=ann.token)
    async with db.session() as session:
        for table in (AssetShareRow, AssetViewRow, CollectionItemRow):
            left = await session.exec(select(table).where(col(table.asset_id) == pk))
            assert left.all() == [], table
        kept_child = await session.get(AssetRow, child_id, populate_existing=True)
        assert kept_child is not None
        assert (kept_child.parent_id, kept_child.root_id) == (None, None)
        assert await session.get(CollectionRow, collection.id) is not None
    # The storyboard is as it was: its images, its master; the image added from the
    # asset keeps the shared file and forgets the asset.
    shot = await gql(
        db,
        "query($id: ID!) { node(id: $id) { ... on Shot { selectedImage { id } } } }",
        {"id": shot_id},
        token=ann.token,
    )
    assert shot["node"]["selectedImage"] == {"id": source_image}
    image = await image_row(db, added_image)
    assert image.source_asset_id is None
    unlinked = await gql(db, SOURCE_ASSET, {"id": added_image}, token=ann.token)
    assert unlinked["node"]["sourceAsset"] is None
    assert image.storage_key is not None
    assert image.status == "COMPLETE"
    gone = await gql(db, ASSET, {"id": asset_id}, token=ann.token)
    assert gone["asset"] is None


async def test_a_deleted_assets_file_goes_only_when_nothing_else_uses_it(
    db: Database, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "media")
    resources = Resources(db=db, media=MEDIA, accounts=ACCOUNTS, storage=storage)
    ann = await factories.account(db)

    async def delete(asset_id: str) -> None:
        query = (
            "mutation($id: ID!) { deleteAsset(input: {id: $id}) { deletedId userErrors { code } } }"
        )
        data = await run(resources, query, {"id": asset_id}, ann.token)
        assert data["deleteAsset"] == {"deletedId": asset_id, "userErrors": []}
        await edits.removals_done()

    async def exists(key: str) -> bool:
        return await storage.stat(key) is not None

    # Alone: its file and thumbnail go.
    alone, thumb = await put_file(storage), await put_file(storage)
    lonely = await factories.library_asset(db, ann, storage_key=alone, thumbnail_key=thumb)
    await delete(lonely)
    assert not await exists(alone)
    assert not await exists(thumb)

    # A duplicate shares the file: it stays until the last asset using it goes.
    shared = await put_file(storage)
    original = await factories.library_asset(db, ann, storage_key=shared, thumbnail_key=shared)
    duplicate = await factories.library_asset(db, ann, storage_key=shared)
    await delete(original)
    assert await exists(shared)
    await delete(duplicate)
    assert not await exists(shared)

    # A shot image added from the asset shares its file: it stays.
    in_shot = await put_file(storage)
    used = await factories.library_asset(db, ann, storage_key=in_shot)
    added = await add_from_asset(db, ann, await new_shot(db, ann), used)
    assert added["userErrors"] == []
    await delete(used)
    assert await exists(in_shot)
    assert await image_row(db, added["images"][0]["id"])

    # A selection's video with the same key: it stays.
    clip = await put_file(storage, f"videos/{secrets.token_hex(4)}.mp4")
    video = await factories.library_asset(db, ann, kind="VIDEO", storage_key=clip)
    shot_id = await new_shot(db, ann)
    made = await factories.iteration(db, ann, shot_id, count=1)
    await select_master(db, ann, shot_id, made["images"][0]["id"])
    async with db.transaction() as session:
        await session.exec(
            update(StoryboardSelectionRow)
            .where(col(StoryboardSelectionRow.shot_id) == ids.decode(shot_id, "Shot"))
            .values(video_storage_key=clip)
        )
    await delete(video)
    assert await exists(clip)


async def test_a_delete_that_rolls_back_keeps_the_asset_and_its_file(
    db: Database, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "media")
    ann = await factories.account(db)
    key = await put_file(storage)
    asset_id = await factories.library_asset(db, ann, storage_key=key)
    context = await build_context(factories.resources(db), ann.token)
    actor = context.require_actor()

    async def delete_then_fail() -> None:
        async with db.transaction() as session:
            orphans = await edits.delete_asset(
                session, actor, asset_id=ids.decode(asset_id, "Asset"), storage=storage
            )
            assert orphans == [key]
            raise RuntimeError("a later step of the same write failed")

    with pytest.raises(RuntimeError, match="later step"):
        await delete_then_fail()
    await edits.removals_done()
    assert await asset_row(db, asset_id) is not None
    assert await storage.stat(key) is not None


# --- addShotImages with an asset -----------------------------------------------------


async def test_an_asset_becomes_a_shots_image_sharing_its_file(db: Database) -> None:
    ann = await factories.account(db)
    key = f"library/{secrets.token_hex(4)}.png"
    asset_id = await factories.library_asset(
        db,
        ann,
        storage_key=key,
        model="black-forest-labs/flux-dev",
        prompt="a red kite over dunes",
    )
    shot_id = await new_shot(db, ann)
    added = await mutate_ok(
        db,
        "addShotImages",
        {
            "shotId": shot_id,
            "iterationPrompt": "kites",
            "images": [
                {
                    "variantNumber": 1,
                    "status": "COMPLETE",
                    "assetId": asset_id,
                    "metadata": {"seed": 7, "model": "someone/else"},
                },
                {
                    "variantNumber": 0,
                    "status": "COMPLETE",
                    "imageUrl": "https://images.example.com/kite.png",
                },
            ],
        },
        "iteration { iterationNumber } images { id variantNumber status imageUrl model metadata }",
        token=ann.token,
    )
    assert added["iteration"] == {"iterationNumber": 0}
    by_variant = {image["variantNumber"]: image for image in added["images"]}
    mine = by_variant[1]
    assert mine["status"] == "COMPLETE"
    assert mine["imageUrl"].startswith(f"http://testserver/media/{key}?")
    assert mine["model"] == "black-forest-labs/flux-dev"
    assert mine["metadata"] == {
        "seed": 7,
        "model": "black-forest-labs/flux-dev",
        "prompt": "a red kite over dunes",
    }
    row = await image_row(db, mine["id"])
    assert row.imported is True
    assert row.storage_key == key
    assert row.image_url is None
    assert row.source_asset_id == ids.decode(asset_id, "Asset")
    assert by_variant[0]["imageUrl"] == "https://images.example.com/kite.png"
    # It can be the shot's master.
    await select_master(db, ann, shot_id, mine["id"])
    linked = await gql(db, SOURCE_ASSET, {"id": mine["id"]}, token=ann.token)
    assert linked["node"]["sourceAsset"] == {"id": asset_id}
    other = await gql(db, SOURCE_ASSET, {"id": by_variant[0]["id"]}, token=ann.token)
    assert other["node"]["sourceAsset"] is None


async def test_an_image_shows_its_source_asset_only_to_those_who_see_it(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    team = await factories.team_with(db, ann, {"EDITOR": bob})
    key = f"library/{secrets.token_hex(4)}.png"
    private = await factories.library_asset(
        db, ann, team_id=team, share_level="PRIVATE", storage_key=key
    )
    shot_id = await new_shot(db, ann, team_id=team)
    image_id = (await add_from_asset(db, ann, shot_id, private))["images"][0]["id"]
    assert (await gql(db, SOURCE_ASSET, {"id": image_id}, token=ann.token))["node"] == {
        "sourceAsset": {"id": private}
    }
    # Bob sees the team's shot image, not Ann's private asset.
    assert (await gql(db, SOURCE_ASSET, {"id": image_id}, token=bob.token))["node"] == {
        "sourceAsset": None
    }


async def test_using_an_asset_refuses_what_cannot_be_a_shots_image(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    stored = {"storage_key": f"library/{secrets.token_hex(4)}.png"}
    ready = await factories.library_asset(db, ann, **stored)
    draft = await factories.library_asset(db, ann, status="DRAFT")
    video = await factories.library_asset(db, ann, kind="VIDEO", **stored)
    unstored = await factories.library_asset(db, ann)
    theirs = await factories.library_asset(db, bob, **stored)
    shot_id = await new_shot(db, ann)
    images = [
        {"variantNumber": 0, "status": "COMPLETE", "assetId": draft},
        {"variantNumber": 1, "status": "COMPLETE", "assetId": video},
        {"variantNumber": 2, "status": "COMPLETE", "assetId": unstored},
        {"variantNumber": 3, "status": "COMPLETE", "assetId": theirs},
        {"variantNumber": 4, "status": "COMPLETE", "assetId": ids.encode("Asset", 10**12)},
        {
            "variantNumber": 5,
            "status": "COMPLETE",
            "assetId": ready,
            "imageUrl": "https://images.example.com/a.png",
        },
        {"variantNumber": 6, "status": "FAILED", "assetId": ready},
        {"variantNumber": 7, "status": "COMPLETE"},
    ]
    payload = await mutate(
        db,
        "addShotImages",
        {"shotId": shot_id, "iterationPrompt": "p", "images": images},
        "iteration { iterationNumber }",
        token=ann.token,
    )
    assert payload["iteration"] is None
    assert codes(payload) == [
        ("ASSET_NOT_IMAGE", ["images", "1", "assetId"]),
        ("ASSET_NOT_READY", ["images", "0", "assetId"]),
        ("ASSET_NOT_STORED", ["images", "2", "assetId"]),
        ("IMAGE_SOURCE_CONFLICT", ["images", "5", "assetId"]),
        ("IMAGE_URL_REQUIRED", ["images", "7", "imageUrl"]),
        ("INVALID_STATUS", ["images", "6", "status"]),
        ("NOT_FOUND", ["images", "3", "assetId"]),
        ("NOT_FOUND", ["images", "4", "assetId"]),
    ]
    wrong_type = await add_from_asset(db, ann, shot_id, shot_id)
    assert codes(wrong_type) == [("WRONG_ID_TYPE", ["images", "0", "assetId"])]
    malformed = await add_from_asset(db, ann, shot_id, "???")
    assert codes(malformed) == [("INVALID_ID", ["images", "0", "assetId"])]
    shot = await gql(
        db,
        "query($id: ID!) { node(id: $id) { ... on Shot { latestIterationNumber } } }",
        {"id": shot_id},
        token=ann.token,
    )
    assert shot["node"]["latestIterationNumber"] is None  # nothing was recorded
    # Another team's asset is not a shot's to keep, even PUBLIC or shared with you.
    public = await factories.library_asset(db, bob, share_level="PUBLIC", **stored)
    refused = await add_from_asset(db, ann, shot_id, public)
    assert codes(refused) == [("ASSET_OF_ANOTHER_TEAM", ["images", "0", "assetId"])]


async def test_an_asset_used_in_a_shot_is_refined_through_the_emulator(
    db: Database, tmp_path: Path
) -> None:
    async with running_studio(db, tmp_path, latency_ms=50, retry_after_cap=0.05) as studio:
        ann = await factories.account(db)
        key = await put_file(studio.storage)
        asset_id = await factories.library_asset(db, ann, storage_key=key, prompt="a kite")
        shot_id = await new_shot(db, ann)
        added = await add_from_asset(db, ann, shot_id, asset_id)
        assert added["userErrors"] == []
        image_id = added["images"][0]["id"]
        refined = await studio.mutate(
            "generateShotImages",
            {
                "shotId": shot_id,
                "parentImageId": image_id,
                "prompt": "a kite in rain",
                "variantCount": 1,
            },
            "iteration { iterationNumber }",
            ann.token,
        )
        assert refined["userErrors"] == []
        done = await wait_for_iteration(studio, ann, shot_id, 1)
        assert done["status"] == "COMPLETE", done
        assert done["parentImage"] == {"id": image_id}
        await stored_image(studio, done["images"][0]["id"])
        await select_master(db, ann, shot_id, done["images"][0]["id"])
    assert await studio.storage.stat(key) is not None  # the asset's file is untouched


# --- usedInProjects, isFavorite, sourceImage -----------------------------------------


async def test_used_in_projects_counts_distinct_storyboards_in_one_statement(
    db: Database,
) -> None:
    ann = await factories.account(db)
    shot_a = await new_shot(db, ann)
    source = (await factories.iteration(db, ann, shot_a, count=1))["images"][0]["id"]
    asset_id = await factories.library_asset(
        db,
        ann,
        shot_image_id=ids.decode(source, "ShotImage"),
        storage_key=f"library/{secrets.token_hex(4)}.png",
    )
    idle = await factories.library_asset(db, ann)

    async def used() -> int:
        data = await gql(db, USAGE, {"id": asset_id}, token=ann.token)
        count: int = data["node"]["usedInProjects"]
        return count

    assert await used() == 0
    await select_master(db, ann, shot_a, source)
    assert await used() == 1
    # Added to a shot of another project and selected there: a second project.
    shot_b = await new_shot(db, ann)
    first = (await add_from_asset(db, ann, shot_b, asset_id))["images"][0]["id"]
    await select_master(db, ann, shot_b, first)
    assert await used() == 2
    # Another shot of that same project: still two projects.
    pid_b = (
        await gql(
            db,
            "query($id: ID!) { node(id: $id) { ... on Shot { project { id } } } }",
            {"id": shot_b},
            token=ann.token,
        )
    )["node"]["project"]["id"]
    more = await factories.scene(db, ann, pid_b, shots=1)
    shot_c = more["shots"][0]["id"]
    again = (await add_from_asset(db, ann, shot_c, asset_id))["images"][0]["id"]
    await select_master(db, ann, shot_c, again)
    # Added but not the master anywhere: not counted.
    await add_from_asset(db, ann, await new_shot(db, ann), asset_id)
    assert await used() == 2

    # However many assets a request shows, the usage fields cost the same statements.
    more_assets = [
        await factories.library_asset(db, ann, shot_image_id=ids.decode(image, "ShotImage"))
        for image in (first, again)
    ]
    counts = []
    for targets in ([asset_id], [asset_id, idle, *more_assets]):
        many = " ".join(
            f'a{n}: node(id: "{target}") {{ ... on Asset {{ usedInProjects isFavorite '
            f"sourceImage {{ id }} }} }}"
            for n, target in enumerate(targets)
        )
        with statements(db) as seen:
            data = await gql(db, f"{{ {many} }}", token=ann.token)
        assert [data[f"a{n}"]["usedInProjects"] for n in range(len(targets))] == [2, 0, 1, 1][
            : len(targets)
        ]
        assert len([s for s in seen if "storyboard_selections" in s]) == 1, seen
        counts.append(len(seen))
    assert counts[0] == counts[1], counts


async def test_is_favorite_and_source_image_follow_the_shot_image(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    shot_id = await new_shot(db, ann)
    image_id = (await factories.iteration(db, ann, shot_id, count=2))["images"][1]["id"]
    asset_id = await factories.library_asset(
        db, ann, shot_image_id=ids.decode(image_id, "ShotImage"), share_level="PUBLIC"
    )
    loose = await factories.library_asset(db, ann)

    mine = await gql(db, USAGE, {"id": asset_id}, token=ann.token)
    assert mine["node"]["isFavorite"] is False
    assert mine["node"]["sourceImage"] == {"id": image_id}
    await mutate_ok(
        db,
        "setImageFavorite",
        {"imageId": image_id, "isFavorite": True},
        "image { id }",
        token=ann.token,
    )
    starred = await gql(db, USAGE, {"id": asset_id}, token=ann.token)
    assert starred["node"]["isFavorite"] is True
    # Another team's user sees the PUBLIC asset, not the project its image is in.
    outside = await gql(db, USAGE, {"id": asset_id}, token=bob.token)
    assert outside["node"]["sourceImage"] is None
    assert outside["node"]["isFavorite"] is True
    unsourced = await gql(db, USAGE, {"id": loose}, token=ann.token)
    assert unsourced["node"]["isFavorite"] is False
    assert unsourced["node"]["sourceImage"] is None
    # The asset outlives its image (and the image's project).
    await mutate_ok(db, "deleteShotImage", {"id": image_id}, "deletedId", token=ann.token)
    orphan = await gql(db, USAGE, {"id": asset_id}, token=ann.token)
    assert orphan["node"]["sourceImage"] is None
    assert orphan["node"]["isFavorite"] is False


# --- views --------------------------------------------------------------------------


async def views_of(db: Database, asset_id: str) -> int:
    row = await asset_row(db, asset_id)
    assert row is not None
    return row.views


async def test_opening_an_asset_counts_once_per_viewer_per_hour(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    stranger = await factories.account(db, name="Sam")
    team = await factories.team_with(db, ann, {"VIEWER": bob})
    asset_id = await factories.library_asset(db, ann, team_id=team)

    first = await gql(db, ASSET, {"id": asset_id}, token=ann.token)
    assert first["asset"]["views"] == 1
    second = await gql(db, ASSET, {"id": asset_id}, token=ann.token)
    assert second["asset"]["views"] == 1
    by_bob = await gql(db, ASSET, {"id": asset_id}, token=bob.token)
    assert by_bob["asset"]["views"] == 2
    # node(id) reads without counting; an asset one may not see counts nothing.
    for _ in range(2):
        await gql(db, USAGE, {"id": asset_id}, token=bob.token)
    assert (await gql(db, ASSET, {"id": asset_id}, token=stranger.token))["asset"] is None
    assert await views_of(db, asset_id) == 2
    async with db.session() as session:
        viewers = await session.exec(
            select(AssetViewRow.user_id).where(
                AssetViewRow.asset_id == ids.decode(asset_id, "Asset")
            )
        )
        assert sorted(viewers.all()) == sorted(ids.decode(a.user_id, "User") for a in (ann, bob))

    async def last_view_ago(minutes: int) -> None:
        async with db.transaction() as session:
            await session.exec(
                update(AssetViewRow)
                .where(
                    col(AssetViewRow.asset_id) == ids.decode(asset_id, "Asset"),
                    col(AssetViewRow.user_id) == ids.decode(ann.user_id, "User"),
                )
                .values(viewed_at=utcnow() - timedelta(minutes=minutes))
            )

    await last_view_ago(59)
    await gql(db, ASSET, {"id": asset_id}, token=ann.token)
    assert await views_of(db, asset_id) == 2
    await last_view_ago(61)
    again = await gql(db, ASSET, {"id": asset_id}, token=ann.token)
    assert again["asset"]["views"] == 3
    assert await views_of(db, asset_id) == 3


async def test_concurrent_opens_by_one_viewer_count_once(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    team = await factories.team_with(db, ann, {"EDITOR": bob})
    asset_id = await factories.library_asset(db, ann, team_id=team)
    await asyncio.gather(
        *[gql(db, ASSET, {"id": asset_id}, token=who.token) for who in [ann] * 8 + [bob] * 8]
    )
    assert await views_of(db, asset_id) == 2
    # Old views, opened concurrently again: each viewer counts once more.
    async with db.transaction() as session:
        await session.exec(
            update(AssetViewRow)
            .where(col(AssetViewRow.asset_id) == ids.decode(asset_id, "Asset"))
            .values(viewed_at=utcnow() - timedelta(hours=2))
        )
    await asyncio.gather(
        *[gql(db, ASSET, {"id": asset_id}, token=who.token) for who in [ann, bob] * 6]
    )
    assert await views_of(db, asset_id) == 4
