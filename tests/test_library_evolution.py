"""duplicateAsset, remixAsset and regenerateAsset, on both engines.

Duplicates and remixes go through the schema; regenerations run a GenerationEngine
against the built-in emulator over real HTTP (as tests/test_generation.py does) and
are followed until the asset is READY or FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, update
from sqlmodel import col, select

from schema import ids
from services.database import Database
from services.library.evolution import child_name
from services.library.lineage_words import prompt_delta
from services.library.tables import AssetRow, AssetShareRow, EvolutionType
from services.replicate.signatures import sign
from tests import factories
from tests.factories import Account
from tests.test_generation import EMULATOR_SEED, Studio, running_studio

DEADLINE = 60.0
ASSET = """query($id: ID!) { asset(id: $id) { id status kind name prompt model generationParams
  version branchName evolutionType evolutionNote duplicateCount remixCount mimeType fileSize
  width height error canDuplicate canRemix promptDelta { added removed }
  parent { id } root { id } creator { id } fileUrl } }"""
DUPLICATE = "asset { id status version evolutionType branchName parent { id } root { id } }"


async def row_of(db: Database, asset_id: str) -> AssetRow:
    async with db.session() as session:
        row = await session.get(AssetRow, ids.decode(asset_id, "Asset"))
    assert row is not None
    return row


async def assets_in(db: Database, team_id: str) -> int:
    async with db.session() as session:
        count = await session.exec(
            select(func.count())
            .select_from(AssetRow)
            .where(col(AssetRow.team_id) == ids.decode(team_id, "Team"))
        )
        return int(count.one())


async def crew(db: Database) -> tuple[Account, Account, Account, str]:
    """Ann owns a team where Bob is an EDITOR and Vic a VIEWER: (ann, bob, vic, team)."""
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    vic = await factories.account(db, name="Vic")
    team = await factories.team_with(db, ann, {"EDITOR": bob, "VIEWER": vic})
    return ann, bob, vic, team


def codes(payload: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


def test_prompt_delta_lists_lower_case_words_in_order_of_first_appearance() -> None:
    assert prompt_delta("A red fox at dusk", "a fox at night, red sky, NIGHT") == {
        "added": ["night", "sky"],
        "removed": ["dusk"],
    }
    assert prompt_delta(None, "Don't stop") == {"added": ["don't", "stop"], "removed": []}
    assert prompt_delta("same words", "Words SAME") == {"added": [], "removed": []}
    assert prompt_delta("gone", None) == {"added": [], "removed": ["gone"]}
    assert prompt_delta("wide shot_of a café", "A close-up of a CAFÉ!") == {
        "added": ["close-up"],
        "removed": ["wide", "shot"],
    }


async def test_a_duplicate_shares_the_file_and_counts_on_its_original(db: Database) -> None:
    ann, bob, _, team = await crew(db)
    original = await factories.library_asset(
        db,
        ann,
        team_id=team,
        name="Harbour",
        prompt="a harbour at dawn",
        storage_key="images/1/harbour.png",
        thumbnail_key="thumbnails/harbour.webp",
        mime_type="image/png",
        file_size=1234,
        width=640,
        height=360,
        tags=["sea", "dawn"],
    )
    first = await factories.mutate_ok(
        db,
        "duplicateAsset",
        {"assetId": original, "branchName": " alt "},
        DUPLICATE,
        token=bob.token,
    )
    copy = first["asset"]
    assert copy["id"] != original
    assert copy == {
        "id": copy["id"],
        "status": "READY",
        "version": 2,
        "evolutionType": "DUPLICATE",
        "branchName": "alt",
        "parent": {"id": original},
        "root": {"id": original},
    }
    copy_row, source_row = await row_of(db, copy["id"]), await row_of(db, original)
    # The same file and thumbnail: nothing was uploaded again.
    assert copy_row.storage_key == source_row.storage_key == "images/1/harbour.png"
    assert copy_row.thumbnail_key == source_row.thumbnail_key == "thumbnails/harbour.webp"
    assert (copy_row.mime_type, copy_row.file_size, copy_row.width, copy_row.height) == (
        "image/png",
        1234,
        640,
        360,
    )
    assert copy_row.team_id == source_row.team_id
    assert copy_row.creator_id == ids.decode(bob.user_id, "User")
    assert copy_row.tags == ["sea", "dawn"]
    assert (source_row.duplicate_count, copy_row.duplicate_count) == (1, 0)

    # A copy of the copy: version 3 on the copy's branch, still of the same root.
    second = await factories.mutate_ok(
        db, "duplicateAsset", {"assetId": copy["id"]}, DUPLICATE, token=ann.token
    )
    assert second["asset"]["version"] == 3
    assert second["asset"]["branchName"] == "alt"
    assert second["asset"]["parent"] == {"id": copy["id"]}
    assert second["asset"]["root"] == {"id": original}
    seen = await factories.gql(db, ASSET, {"id": original}, token=ann.token)
    assert seen["asset"]["duplicateCount"] == 1
    assert (await row_of(db, copy["id"])).duplicate_count == 1


async def test_concurrent_duplicates_each_count(db: Database) -> None:
    ann, bob, _, team = await crew(db)
    original = await factories.library_asset(
        db, ann, team_id=team, storage_key="images/1/x.png", mime_type="image/png"
    )
    made = await asyncio.gather(
        *(
            factories.mutate(db, "duplicateAsset", {"assetId": original}, "asset { id }", token=t)
            for t in [ann.token, bob.token] * 4
        )
    )
    assert all(payload["userErrors"] == [] for payload in made)
    assert len({payload["asset"]["id"] for payload in made}) == 8
    assert (await row_of(db, original)).duplicate_count == 8


async def test_a_remix_is_a_draft_with_its_prompt_delta(db: Database) -> None:
    ann, bob, _, team = await crew(db)
    original = await factories.library_asset(
        db,
        ann,
        team_id=team,
        prompt="A red fox at dusk",
        model="black-forest-labs/flux-schnell",
        generation_params={"model": "black-forest-labs/flux-schnell", "aspect_ratio": "1:1"},
        storage_key="images/1/fox.png",
    )
    payload = await factories.mutate_ok(
        db,
        "remixAsset",
        {
            "assetId": original,
            "prompt": "a fox at night, red sky",
            "evolutionNote": "night version",
            "branchName": "night",
        },
        "asset { id }",
        token=bob.token,
    )
    remix_id = payload["asset"]["id"]
    remix = (await factories.gql(db, ASSET, {"id": remix_id}, token=bob.token))["asset"]
    assert remix["status"] == "DRAFT"
    assert remix["evolutionType"] == "REMIX"
    assert remix["evolutionNote"] == "night version"
    assert remix["branchName"] == "night"
    assert remix["version"] == 2
    assert remix["prompt"] == "a fox at night, red sky"
    assert remix["promptDelta"] == {"added": ["night", "sky"], "removed": ["dusk"]}
    assert remix["parent"] == {"id": original}
    assert remix["root"] == {"id": original}
    assert remix["creator"] == {"id": bob.user_id}
    assert remix["fileUrl"] is None, "a remix has no file until it is generated"
    assert remix["model"] == "black-forest-labs/flux-schnell"
    assert (await row_of(db, remix_id)).storage_key is None
    source = (await factories.gql(db, ASSET, {"id": original}, token=ann.token))["asset"]
    assert (source["remixCount"], source["duplicateCount"]) == (1, 0)


async def test_can_duplicate_and_can_remix_are_honoured_and_inherited(db: Database) -> None:
    ann, bob, _, team = await crew(db)
    locked = await factories.library_asset(
        db, ann, team_id=team, can_duplicate=False, storage_key="images/1/a.png"
    )
    no_remix = await factories.library_asset(
        db, ann, team_id=team, can_remix=False, prompt="p", storage_key="images/1/b.png"
    )
    before = await assets_in(db, team)
    refused = await factories.mutate(
        db, "duplicateAsset", {"assetId": locked}, "asset { id }", token=bob.token
    )
    assert codes(refused) == [("CANNOT_DUPLICATE", ["assetId"])]
    # The flag's, not a person's: anyone holding ADMIN on the asset may turn it on.
    assert "its `canDuplicate` is off" in refused["userErrors"][0]["message"]
    assert refused["asset"] is None
    refused = await factories.mutate(
        db, "remixAsset", {"assetId": no_remix, "prompt": "q"}, "asset { id }", token=ann.token
    )
    assert codes(refused) == [("CANNOT_REMIX", ["assetId"])]
    assert await assets_in(db, team) == before
    assert (await row_of(db, locked)).duplicate_count == 0
    assert (await row_of(db, no_remix)).remix_count == 0
    # A copy keeps its original's rule: duplicating never frees what it forbids.
    copy = await factories.mutate_ok(
        db, "duplicateAsset", {"assetId": no_remix}, "asset { id canRemix }", token=bob.token
    )
    assert copy["asset"]["canRemix"] is False
    again = await factories.mutate(
        db,
        "remixAsset",
        {"assetId": copy["asset"]["id"], "prompt": "q"},
        "asset { id }",
        token=bob.token,
    )
    assert codes(again) == [("CANNOT_REMIX", ["assetId"])]


async def test_who_may_duplicate_and_remix(db: Database) -> None:
    ann, bob, vic, team = await crew(db)
    stranger = await factories.account(db, name="Sam")
    asset = await factories.library_asset(db, ann, team_id=team, storage_key="images/1/c.png")
    private = await factories.library_asset(
        db, ann, team_id=team, share_level="PRIVATE", storage_key="images/1/d.png"
    )
    draft = await factories.library_asset(db, ann, team_id=team, status="DRAFT", prompt="p")
    before = await assets_in(db, team)
    cases: list[tuple[str, dict[str, Any], str, list[tuple[str, list[str] | None]]]] = [
        ("duplicateAsset", {"assetId": asset}, vic.token, [("FORBIDDEN", None)]),
        ("remixAsset", {"assetId": asset, "prompt": "x"}, vic.token, [("FORBIDDEN", None)]),
        ("duplicateAsset", {"assetId": asset}, stranger.token, [("NOT_FOUND", ["assetId"])]),
        (
            "remixAsset",
            {"assetId": asset, "prompt": "x"},
            stranger.token,
            [("NOT_FOUND", ["assetId"])],
        ),
        ("duplicateAsset", {"assetId": private}, bob.token, [("NOT_FOUND", ["assetId"])]),
        ("duplicateAsset", {"assetId": draft}, bob.token, [("ASSET_NOT_READY", ["assetId"])]),
        ("duplicateAsset", {"assetId": "nonsense"}, bob.token, [("INVALID_ID", ["assetId"])]),
        ("duplicateAsset", {"assetId": team}, bob.token, [("WRONG_ID_TYPE", ["assetId"])]),
        (
            "duplicateAsset",
            {"assetId": asset, "branchName": "b" * 101},
            bob.token,
            [("TOO_LONG", ["branchName"])],
        ),
        ("remixAsset", {"assetId": asset, "prompt": "  "}, bob.token, [("BLANK", ["prompt"])]),
        (
            "remixAsset",
            {"assetId": "nonsense", "prompt": ""},
            bob.token,
            [("INVALID_ID", ["assetId"]), ("BLANK", ["prompt"])],
        ),
    ]
    for name, given, token, expected in cases:
        payload = await factories.mutate(db, name, given, "asset { id }", token=token)
        assert sorted(codes(payload)) == sorted(expected), (name, given, payload)
        assert payload["asset"] is None
    assert await assets_in(db, team) == before
    assert (await row_of(db, asset)).duplicate_count == 0
    assert (await row_of(db, asset)).remix_count == 0


async def test_a_share_never_lets_an_outsider_make_copies_in_the_team(db: Database) -> None:
    ann = await factories.account(db)
    sam = await factories.account(db, name="Sam")
    asset = await factories.library_asset(
        db, ann, share_level="PRIVATE", storage_key="images/1/e.png", prompt="a fox"
    )
    async with db.transaction() as session:
        session.add(
            AssetShareRow(
                asset_id=ids.decode(asset, "Asset"),
                user_id=ids.decode(sam.user_id, "User"),
                permission="EDIT",
            )
        )
    before = await assets_in(db, ann.team_id)
    for name, extra in (
        ("duplicateAsset", {}),
        ("remixAsset", {"prompt": "a fox at night"}),
    ):
        payload = await factories.mutate(
            db, name, {"assetId": asset, **extra}, "asset { id }", token=sam.token
        )
        assert payload["asset"] is None
        assert [e["code"] for e in payload["userErrors"]] == ["TEAM_MEMBERS_ONLY"], name
    assert await assets_in(db, ann.team_id) == before


async def test_a_copy_gives_its_maker_edit_not_the_right_to_share_or_publish_it(
    db: Database,
) -> None:
    ann = await factories.account(db)
    ed = await factories.account(db, name="Ed")
    team = await factories.team_with(db, ann, {"EDITOR": ed})
    asset = await factories.library_asset(
        db, ann, team_id=team, share_level="TEAM", storage_key="images/1/f.png"
    )
    payload = await factories.mutate_ok(
        db, "duplicateAsset", {"assetId": asset}, "asset { id viewerPermission }", token=ed.token
    )
    copy = payload["asset"]
    assert copy["viewerPermission"] == "EDIT"
    published = await factories.mutate(
        db,
        "setShareLevel",
        {"assetId": copy["id"], "shareLevel": "PUBLIC"},
        "asset { id }",
        token=ed.token,
    )
    assert [e["code"] for e in published["userErrors"]] == ["FORBIDDEN"]
    shared = await factories.mutate(
        db,
        "shareAsset",
        {"assetId": copy["id"], "userId": ann.user_id, "permission": "VIEW"},
        "share { id }",
        token=ed.token,
    )
    assert [e["code"] for e in shared["userErrors"]] == ["FORBIDDEN"]
    # The team's owner may; and the copy's maker may still delete what they made.
    owner_view = await factories.gql(
        db,
        "query($id: ID!) { asset(id: $id) { viewerPermission } }",
        {"id": copy["id"]},
        token=ann.token,
    )
    assert owner_view["asset"]["viewerPermission"] == "ADMIN"
    await factories.mutate_ok(db, "deleteAsset", {"id": copy["id"]}, "deletedId", token=ed.token)


# --- regenerating, through the emulator


@contextlib.asynccontextmanager
async def settled_assets(db: Database) -> AsyncIterator[None]:
    """No asset generation is left for another test's engine on this shared database."""
    try:
        yield
    finally:
        async with db.transaction() as session:
            await session.exec(
                update(AssetRow)
                .where(col(AssetRow.generation_status).in_(["PENDING", "PROCESSING"]))
                .values(generation_status="CANCELED", status="FAILED")
            )


@pytest.fixture
async def studio(db: Database, tmp_path: Path) -> AsyncIterator[Studio]:
    async with (
        settled_assets(db),
        running_studio(
            db, tmp_path, latency_ms=150, seed=EMULATOR_SEED, retry_after_cap=0.05
        ) as made,
    ):
        yield made


REGENERATE = "asset { id status version evolutionType parent { id } }"


async def regenerate(studio: Studio, who: Account, asset_id: str, **extra: Any) -> dict[str, Any]:
    return await studio.mutate(
        "regenerateAsset", {"assetId": asset_id, **extra}, REGENERATE, who.token
    )


async def finished(studio: Studio, who: Account, asset_id: str) -> dict[str, Any]:
    """Poll the asset until its generation ends; the asset."""
    deadline = time.monotonic() + DEADLINE
    while True:
        asset: dict[str, Any] = (await studio.run(ASSET, {"id": asset_id}, who.token))["asset"]
        if asset["status"] not in ("GENERATING", "DRAFT"):
            return asset
        assert time.monotonic() < deadline, asset
        await asyncio.sleep(0.1)


async def sent_inputs(studio: Studio, model: str) -> list[dict[str, Any]]:
    """The inputs of every prediction the emulator received for `model`, oldest first."""
    async with httpx.AsyncClient(
        base_url=studio.generation_engine.gateway.base_url,
        headers={"Authorization": f"Bearer {studio.emulator.api_token}"},
    ) as client:
        listed = (await client.get("/v1/predictions")).json()["results"]
    return [p["input"] for p in reversed(listed) if p["model"] == model]


async def stored(studio: Studio, key: str | None) -> bytes:
    assert key is not None
    return b"".join([chunk async for chunk in studio.storage.read(key)])


FLUX = "black-forest-labs/flux-schnell"


async def test_a_draft_remix_is_generated_in_place_into_a_stored_image(studio: Studio) -> None:
    ann = await factories.account(studio.db)
    original = await factories.library_asset(
        studio.db,
        ann,
        prompt="a lighthouse at dusk",
        model=FLUX,
        # Stored metadata is never sent as it is: only what the catalog accepts for the
        # model goes out (an unknown name and a value out of range are left behind).
        generation_params={
            "model": FLUX,
            "seed": 5,
            "aspect_ratio": "1:1",
            "bogus": "x",
            "output_quality": 500,
        },
        storage_key="images/1/lighthouse.png",
    )
    remix = await factories.mutate_ok(
        studio.db,
        "remixAsset",
        {"assetId": original, "prompt": "a lighthouse in a storm"},
        "asset { id }",
        token=ann.token,
    )
    remix_id = remix["asset"]["id"]
    started = await regenerate(studio, ann, remix_id)
    assert started["userErrors"] == []
    assert started["asset"]["id"] == remix_id, "a DRAFT is generated in place"
    assert started["asset"]["status"] == "GENERATING"
    done = await finished(studio, ann, remix_id)
    assert done["status"] == "READY", done
    assert done["error"] is None
    assert done["mimeType"].startswith("image/")
    assert done["fileUrl"].startswith("http://testserver/media/assets/")
    row = await row_of(studio.db, remix_id)
    data = await stored(studio, row.storage_key)
    assert done["fileSize"] == len(data) > 0
    image = Image.open(io.BytesIO(data))
    assert (done["width"], done["height"]) == image.size
    assert row.generation_status == "COMPLETE"
    assert row.prediction_id
    (sent,) = await sent_inputs(studio, FLUX)
    assert sent["prompt"] == "a lighthouse in a storm"
    assert sent["aspect_ratio"] == "1:1"
    assert sent["output_quality"] == 90
    assert "bogus" not in sent
    assert sent["seed"] != 5, "a new image, not the old one again"
    assert done["generationParams"]["seed"] == sent["seed"]


async def test_a_ready_asset_gets_a_new_regenerate_version(studio: Studio) -> None:
    ann, bob, _, team = await crew(studio.db)
    original = await factories.library_asset(
        studio.db,
        ann,
        team_id=team,
        prompt="a quiet harbour",
        model=FLUX,
        storage_key="images/1/harbour.png",
        branch_name="blue",
    )
    started = await regenerate(studio, bob, original, params={"output_format": "png"})
    assert started["userErrors"] == []
    child = started["asset"]
    assert child["id"] != original
    assert child["evolutionType"] == "REGENERATE"
    assert child["version"] == 2
    assert child["parent"] == {"id": original}
    done = await finished(studio, bob, child["id"])
    assert done["status"] == "READY", done
    assert done["mimeType"] == "image/png"
    assert done["branchName"] == "blue"
    assert done["creator"] == {"id": bob.user_id}
    source = await row_of(studio.db, original)
    assert (source.status, source.storage_key) == ("READY", "images/1/harbour.png")
    assert source.generation_status is None
    data = await stored(studio, (await row_of(studio.db, child["id"])).storage_key)
    assert data.startswith(b"\x89PNG")


async def test_a_failed_generation_ends_failed_and_is_generated_again_in_place(
    studio: Studio,
) -> None:
    ann = await factories.account(studio.db)
    original = await factories.library_asset(
        studio.db, ann, prompt="a red kite", model=FLUX, storage_key="images/1/kite.png"
    )
    studio.emulator.failure_rate = 1.0
    started = await regenerate(studio, ann, original)
    child_id = started["asset"]["id"]
    done = await finished(studio, ann, child_id)
    assert done["status"] == "FAILED"
    assert done["error"]
    assert done["fileUrl"] is None
    studio.emulator.failure_rate = 0.0
    again = await regenerate(studio, ann, child_id)
    assert again["userErrors"] == []
    assert again["asset"]["id"] == child_id, "a FAILED asset is generated in place"
    done = await finished(studio, ann, child_id)
    assert done["status"] == "READY", done
    assert done["error"] is None


async def test_bad_input_to_regenerate_is_user_errors_and_starts_nothing(studio: Studio) -> None:
    ann, _, vic, team = await crew(studio.db)
    stranger = await factories.account(studio.db, name="Sam")
    original = await factories.library_asset(
        studio.db, ann, team_id=team, prompt="a kite", model=FLUX, storage_key="images/1/k.png"
    )
    no_prompt = await factories.library_asset(studio.db, ann, team_id=team, status="DRAFT")
    sound = await factories.library_asset(studio.db, ann, team_id=team, kind="AUDIO")
    clip = await factories.library_asset(studio.db, ann, team_id=team, kind="VIDEO", prompt="p")
    before = await assets_in(studio.db, team)
    cases: list[tuple[Account, dict[str, Any], list[tuple[str, list[str] | None]]]] = [
        (ann, {"params": {"aspect_ratio": "7:3"}}, [("INVALID_PARAM", ["params", "aspect_ratio"])]),
        (ann, {"params": {"steps": 4}}, [("INVALID_PARAM", ["params", "steps"])]),
        (ann, {"params": "wide"}, [("INVALID_PARAM", ["params"])]),
        (ann, {"model": "dall-e"}, [("UNKNOWN_MODEL", ["model"])]),
        (ann, {"model": "kling-v2.1"}, [("WRONG_MODEL_KIND", ["model"])]),
        (
            ann,
            {"model": "flux-dev", "params": {"guidance": 11}},
            [("INVALID_PARAM", ["params", "guidance"])],
        ),
        (vic, {}, [("FORBIDDEN", None)]),
        (stranger, {}, [("NOT_FOUND", ["assetId"])]),
        (ann, {"assetId": no_prompt}, [("PROMPT_REQUIRED", ["assetId"])]),
        (ann, {"assetId": sound}, [("CANNOT_REGENERATE", ["assetId"])]),
        (ann, {"assetId": clip}, [("SOURCE_IMAGE_GONE", ["assetId"])]),
        (ann, {"assetId": "nonsense"}, [("INVALID_ID", ["assetId"])]),
    ]
    for who, extra, expected in cases:
        payload = await studio.mutate(
            "regenerateAsset", {"assetId": original, **extra}, REGENERATE, who.token
        )
        assert codes(payload) == expected, (extra, payload)
        assert payload["asset"] is None
    assert await assets_in(studio.db, team) == before
    for asset_id in (original, no_prompt, sound, clip):
        row = await row_of(studio.db, asset_id)
        assert row.generation_status is None
        assert row.status in ("READY", "DRAFT")
    assert await sent_inputs(studio, FLUX) == []


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


KLING = "kwaivgi/kling-v2.1"


async def test_a_clip_is_regenerated_from_its_parent_images_stored_file(studio: Studio) -> None:
    ann = await factories.account(studio.db)
    key = "images/1/master.png"
    await studio.storage.put(key, png(320, 180), content_type="image/png")
    master = await factories.library_asset(
        studio.db, ann, prompt="a train at night", model=FLUX, storage_key=key
    )
    clip = await factories.library_asset(
        studio.db,
        ann,
        kind="VIDEO",
        prompt="the train pulls away",
        model=KLING,
        generation_params={"model": KLING, "duration": 10, "mode": "standard"},
        storage_key="videos/1/old.mp4",
        parent_id=ids.decode(master, "Asset"),
        root_id=ids.decode(master, "Asset"),
        version=2,
        evolution_type="ANIMATE",
    )
    started = await regenerate(studio, ann, clip, params={"duration": 5})
    assert started["userErrors"] == []
    child = started["asset"]
    assert child["version"] == 3
    assert child["parent"] == {"id": clip}
    done = await finished(studio, ann, child["id"])
    assert done["status"] == "READY", done
    assert done["kind"] == "VIDEO"
    assert done["mimeType"].startswith("video/")
    assert done["fileSize"] > 0
    (sent,) = await sent_inputs(studio, KLING)
    assert sent["prompt"] == "the train pulls away"
    assert sent["duration"] == 5
    assert sent["mode"] == "standard"
    assert sent["start_image"], "the parent image's stored file went as the start image"


async def test_a_signed_webhook_finishes_a_regeneration_once(db: Database, tmp_path: Path) -> None:
    """With polling out of the way, only the webhook can move the asset on: the engine finds
    it by its prediction id, copies its output, and ignores the same delivery again."""
    async with (
        settled_assets(db),
        running_studio(
            db, tmp_path, latency_ms=100, seed=EMULATOR_SEED, poll_interval=3600
        ) as studio,
    ):
        ann = await factories.account(db)
        original = await factories.library_asset(
            db, ann, prompt="a paper boat", model=FLUX, storage_key="images/1/boat.png"
        )
        started = await regenerate(studio, ann, original)
        asset_id = started["asset"]["id"]
        deadline = time.monotonic() + DEADLINE
        while not (prediction_id := (await row_of(db, asset_id)).prediction_id):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(
            base_url=studio.generation_engine.gateway.base_url,
            headers={"Authorization": f"Bearer {studio.emulator.api_token}"},
        ) as client:
            while (prediction := (await client.get(f"/v1/predictions/{prediction_id}")).json())[
                "status"
            ] != "succeeded":
                assert time.monotonic() < deadline, prediction
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert (await row_of(db, asset_id)).status == "GENERATING", "nothing polled it"

        body = json.dumps(prediction).encode()
        webhook_id, timestamp = f"msg_{secrets.token_hex(8)}", int(time.time())
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(studio.emulator.webhook_secret, webhook_id, timestamp, body),
        }
        assert await studio.generation_engine.receive_webhook(headers, body) is True
        done = await finished(studio, ann, asset_id)
        assert done["status"] == "READY", done
        assert done["fileSize"] > 0
        assert await studio.generation_engine.receive_webhook(headers, body) is False


def test_a_step_is_named_after_its_original_and_the_step() -> None:
    assert child_name("Harbour", EvolutionType.DUPLICATE, 2) == "Harbour · Copy v2"
    assert child_name("Harbour · Copy v2", EvolutionType.REMIX, 3) == "Harbour · Remix v3"
    assert child_name("Harbour · Remix v3", EvolutionType.REGENERATE, 4) == "Harbour · v4"
    long = child_name("n" * 200, EvolutionType.REMIX, 12)
    assert len(long) == 200
    assert long.endswith(" · Remix v12")


async def test_a_duplicate_and_a_remix_are_told_apart_by_name(db: Database) -> None:
    ann = await factories.account(db)
    asset = await factories.library_asset(
        db, ann, name="Lantern", storage_key="images/1/g.png", prompt="a lantern"
    )
    copy = await factories.mutate_ok(
        db, "duplicateAsset", {"assetId": asset}, "asset { name }", token=ann.token
    )
    remix = await factories.mutate_ok(
        db,
        "remixAsset",
        {"assetId": asset, "prompt": "a red lantern"},
        "asset { name }",
        token=ann.token,
    )
    assert (copy["asset"]["name"], remix["asset"]["name"]) == (
        "Lantern · Copy v2",
        "Lantern · Remix v2",
    )
