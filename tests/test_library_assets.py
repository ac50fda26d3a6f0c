"""Every stored shot image and animation becomes a library asset, with its copy.

Through the real generation path: a GenerationEngine against the built-in emulator
over real HTTP, driven by the GraphQL schema; thumbnails are read back through the
`/media` route by the URL the API gives.
"""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.routing import Route

from api.embedded import _QuietServer
from api.media import media
from api.ports import free_port
from api.state import AppState
from schema import ids
from services.database import Database
from services.generation.engine import EngineSettings, GenerationEngine
from services.library.lineage_words import prompt_delta
from services.library.tables import AssetRow
from services.outbound import AddressPolicy, Fetcher, FetchLimits, parse_allowed_hosts
from services.storyboard.projects import lock_project_row
from services.tables import ProjectRow, ShotImageRow, ShotRow, StoryboardSelectionRow
from tests import test_generation_e2e as e2e
from tests.emulator_harness import eventually
from tests.factories import Account, account, library_asset, mutate_ok
from tests.outbound_harness import FileHost
from tests.test_generation import (
    DEADLINE,
    EMULATOR_SEED,
    FlakyFiles,
    Studio,
    _image_awaiting_copy,
    generate,
    master_selection,
    new_shot,
    running_studio,
    wait_for_iteration,
)

ASSET = """query($id: ID!) { asset(id: $id) {
  id kind name status shareLevel mimeType fileSize width height duration fps
  prompt model generationParams version branchName evolutionType
  promptDelta { added removed } fileUrl thumbnailUrl
  parent { id } root { id } sourceProject { id } creator { id } team { id } } }"""


@pytest.fixture
async def studio(db: Database, tmp_path: Path) -> AsyncIterator[Studio]:
    async with running_studio(
        db, tmp_path, latency_ms=100, seed=EMULATOR_SEED, retry_after_cap=0.05
    ) as made:
        yield made


async def assets_of_images(db: Database, image_ids: Sequence[str]) -> list[AssetRow]:
    """The assets of these shot images (global IDs), in the same order; fails if one lacks one."""
    wanted = [ids.decode(i, "ShotImage") for i in image_ids]
    async with db.session() as session:
        rows = (
            await session.exec(select(AssetRow).where(col(AssetRow.shot_image_id).in_(wanted)))
        ).all()
    by_image = {row.shot_image_id: row for row in rows}
    assert set(by_image) == set(wanted), "every stored image has exactly one asset"
    return [by_image[i] for i in wanted]


async def read_url(studio: Studio, url: str) -> httpx.Response:
    """GET a signed `/media` URL the API gave, through the real media route."""
    app = Starlette(routes=[Route("/media/{key:path}", media, methods=["GET", "HEAD"])])
    app.state.studio = AppState(
        resources=studio.resources, storage=studio.storage, public_url="http://testserver"
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        return await client.get(url)


async def shown(studio: Studio, owner: Account, asset: AssetRow) -> dict[str, Any]:
    data = await studio.run(ASSET, {"id": ids.encode("Asset", asset.id)}, owner.token)
    found: dict[str, Any] = data["asset"]
    assert found is not None
    return found


async def test_a_generation_becomes_six_image_assets_with_thumbnails(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann, prompt="a night market under paper lanterns")
    started = await generate(studio, ann, shot_id, params={"aspect_ratio": "16:9"})
    assert started["userErrors"] == []
    done = await wait_for_iteration(studio, ann, shot_id, 0)
    assert done["status"] == "COMPLETE"
    images = done["images"]
    assets = await assets_of_images(studio.db, [i["id"] for i in images])
    async with studio.db.session() as session:
        image_rows = [await session.get(ShotImageRow, a.shot_image_id) for a in assets]
        project = (
            await session.exec(select(ProjectRow).where(ProjectRow.id == assets[0].project_id))
        ).one()
    for variant, (image, row, asset) in enumerate(zip(images, image_rows, assets, strict=True)):
        assert row is not None
        assert asset.storage_key == row.storage_key  # the same file, not a second copy
        view = await shown(studio, ann, asset)
        assert view["kind"] == "IMAGE"
        assert view["status"] == "READY"
        assert view["shareLevel"] == "TEAM"
        assert (
            view["name"] == f"{project.title} · Scene 1 · Shot 1 · Iteration 0 · Variant {variant}"
        )
        assert view["prompt"] == "a night market under paper lanterns"
        assert view["model"] == image["model"] == "black-forest-labs/flux-schnell"
        assert view["generationParams"] == image["metadata"]
        assert view["generationParams"]["aspect_ratio"] == "16:9"
        assert view["evolutionType"] == "ORIGINAL"
        assert view["version"] == 1
        assert view["parent"] is None
        assert view["sourceProject"] == {"id": ids.encode("Project", project.id)}
        assert view["creator"] == {"id": ann.user_id}
        assert view["team"] == {"id": ann.team_id}
        stored = await studio.storage.stat(row.storage_key or "")
        assert stored is not None
        assert view["fileSize"] == stored.size
        assert view["mimeType"] == stored.content_type
        picture = Image.open(io.BytesIO((await read_url(studio, view["fileUrl"])).content))
        assert (view["width"], view["height"]) == picture.size
        assert view["width"] > view["height"]  # 16:9
        assert view["duration"] is None
        thumbnail = await read_url(studio, view["thumbnailUrl"])
        assert thumbnail.status_code == 200
        assert thumbnail.headers["content-type"] == "image/webp"
        small = Image.open(io.BytesIO(thumbnail.content))
        assert small.format == "WEBP"
        assert max(small.size) == min(320, max(picture.size))
        assert abs(small.width / small.height - picture.width / picture.height) < 0.05
        assert asset.thumbnail_key is not None
        assert asset.thumbnail_key.startswith("thumbnails/")


async def test_a_refinement_becomes_evolve_children_of_its_parent(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann, prompt="A lighthouse at dusk")
    await generate(studio, ann, shot_id, variantCount=2)
    first = await wait_for_iteration(studio, ann, shot_id, 0)
    parent_image = first["images"][1]["id"]
    await generate(
        studio,
        ann,
        shot_id,
        parentImageId=parent_image,
        prompt="the same lighthouse in a storm, at dusk",
        variantCount=2,
        params={"prompt_strength": 0.5},
    )
    second = await wait_for_iteration(studio, ann, shot_id, 1)
    assert second["status"] == "COMPLETE"
    (parent,) = await assets_of_images(studio.db, [parent_image])
    children = await assets_of_images(studio.db, [i["id"] for i in second["images"]])
    delta = {"added": ["the", "same", "in", "storm"], "removed": []}
    for child in children:
        view = await shown(studio, ann, child)
        assert view["evolutionType"] == "EVOLVE"
        assert view["parent"] == {"id": ids.encode("Asset", parent.id)}
        assert view["root"] == {"id": ids.encode("Asset", parent.id)}
        assert view["version"] == 2
        assert view["branchName"] == "main"
        assert view["promptDelta"] == delta
        assert view["model"] == "black-forest-labs/flux-dev"
        assert view["generationParams"]["prompt_strength"] == 0.5
        assert view["name"].endswith(" · Iteration 1 · Variant " + str(children.index(child)))

    # A refinement of a refinement is version 3 on the same root.
    await generate(
        studio,
        ann,
        shot_id,
        parentImageId=second["images"][0]["id"],
        prompt="the same lighthouse in a storm at night",
        variantCount=1,
    )
    third = await wait_for_iteration(studio, ann, shot_id, 2)
    (grandchild,) = await assets_of_images(studio.db, [third["images"][0]["id"]])
    assert grandchild.parent_id == children[0].id
    assert grandchild.root_id == parent.id
    assert grandchild.version == 3
    assert grandchild.prompt_delta == {"added": ["night"], "removed": ["dusk"]}


async def test_an_animation_becomes_an_animate_child_with_duration_fps_and_a_poster(
    studio: Studio,
) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann, prompt="a tram crossing a bridge")
    selection_id = await master_selection(studio, ann, shot_id)
    started = await studio.mutate(
        "animateShot",
        {"selectionId": selection_id, "params": {"duration": 5}},
        "selection { animationStatus }",
        ann.token,
    )
    assert started["userErrors"] == []
    selection_key = ids.decode(selection_id, "StoryboardSelection")

    async def clip() -> AssetRow | None:
        async with studio.db.session() as session:
            return (
                await session.exec(select(AssetRow).where(AssetRow.selection_id == selection_key))
            ).first()

    video = await eventually(clip, within=60, what="the clip's asset")
    async with studio.db.session() as session:
        selection = await session.get(StoryboardSelectionRow, selection_key)
    assert selection is not None
    assert selection.animation_status == "COMPLETE"
    assert video.storage_key == selection.video_storage_key
    (master,) = await assets_of_images(
        studio.db, [ids.encode("ShotImage", selection.selected_image_id)]
    )
    view = await shown(studio, ann, video)
    assert view["kind"] == "VIDEO"
    assert view["mimeType"] == "video/mp4"
    assert view["name"].endswith(" · Scene 1 · Shot 1 · Animation")
    assert view["evolutionType"] == "ANIMATE"
    assert view["parent"] == {"id": ids.encode("Asset", master.id)}
    assert view["root"] == {"id": ids.encode("Asset", master.id)}
    assert view["version"] == 2
    assert view["model"] == "kwaivgi/kling-v2.1"
    assert view["generationParams"]["duration"] == 5
    assert view["prompt"] == "a tram crossing a bridge"  # the master's: the shot has no description
    assert view["promptDelta"] == {"added": [], "removed": []}
    assert view["duration"] is not None
    assert view["duration"] > 0.5
    assert view["fps"] is not None
    assert view["fps"] > 1
    assert view["width"] > 0
    assert view["height"] > 0
    poster = await read_url(studio, view["thumbnailUrl"])
    assert poster.status_code == 200
    picture = Image.open(io.BytesIO(poster.content))
    assert picture.format == "WEBP"
    assert max(picture.size) <= 320
    assert abs(picture.width / picture.height - view["width"] / view["height"]) < 0.05
    # The poster is the middle of the clip, not its black first frame (it fades in).
    brightest = picture.convert("L").getextrema()[1]
    assert isinstance(brightest, int)
    assert brightest > 40


async def test_a_failed_generation_makes_no_asset(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    studio.emulator.failure_rate = 1.0
    await generate(studio, ann, shot_id, variantCount=2)
    done = await wait_for_iteration(studio, ann, shot_id, 0)
    studio.emulator.failure_rate = 0.0
    assert done["status"] == "FAILED"
    wanted = [ids.decode(i["id"], "ShotImage") for i in done["images"]]
    async with studio.db.session() as session:
        found = (
            await session.exec(select(AssetRow).where(col(AssetRow.shot_image_id).in_(wanted)))
        ).all()
    assert found == []


async def test_an_imported_image_becomes_an_asset_when_its_copy_lands(
    db: Database, tmp_path: Path
) -> None:
    with FileHost() as host:
        fetcher = Fetcher(
            policy=AddressPolicy(allowed_hosts=parse_allowed_hosts([host.host_port])),
            limits=FetchLimits(connect_timeout=1.0, read_timeout=1.0, total_timeout=3.0),
        )
        async with running_studio(db, tmp_path, latency_ms=100, import_fetcher=fetcher) as studio:
            ann = await account(db)
            shot_id = await new_shot(studio, ann)
            payload = await studio.mutate(
                "addShotImages",
                {
                    "shotId": shot_id,
                    "iterationPrompt": "a photo from the scout",
                    "images": [
                        {
                            "variantNumber": 0,
                            "status": "COMPLETE",
                            "imageUrl": host.url_for("/png"),
                            "metadata": {"model": "camera", "iso": 400},
                        },
                        {"variantNumber": 1, "status": "FAILED"},
                    ],
                },
                "images { id }",
                ann.token,
            )
            assert payload["userErrors"] == []
            stored_id, failed_id = (i["id"] for i in payload["images"])

            async def copied() -> list[AssetRow] | None:
                async with db.session() as session:
                    row = await session.get(ShotImageRow, ids.decode(stored_id, "ShotImage"))
                if row is None or not row.storage_key:
                    return None
                return await assets_of_images(db, [stored_id])

            (asset,) = await eventually(copied, within=20, what="the import's copy")
            view = await shown(studio, ann, asset)
            assert view["kind"] == "IMAGE"
            assert view["prompt"] == "a photo from the scout"
            assert view["model"] == "camera"
            assert view["generationParams"] is None  # a client's metadata is no params
            assert view["mimeType"] == "image/png"
            assert (view["width"], view["height"]) == (32, 24)
            assert view["fileSize"] == len(host.png)
            thumbnail = await read_url(studio, view["thumbnailUrl"])
            assert Image.open(io.BytesIO(thumbnail.content)).size == (32, 24)  # never enlarged
            async with db.session() as session:
                none = (
                    await session.exec(
                        select(AssetRow).where(
                            AssetRow.shot_image_id == ids.decode(failed_id, "ShotImage")
                        )
                    )
                ).all()
            assert none == []
        await fetcher.aclose()


async def test_a_refinement_of_an_image_added_from_the_library_descends_from_that_asset(
    studio: Studio,
) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    await generate(studio, ann, shot_id, variantCount=1)
    first = await wait_for_iteration(studio, ann, shot_id, 0)
    image_key = ids.decode(first["images"][0]["id"], "ShotImage")
    # An image added from the library holds the asset it came from (`source_asset_id`)
    # and has no asset of its own: set that state up as addShotImages(assetId) leaves it.
    source = await library_asset(
        studio.db, ann, prompt="a lighthouse at dusk", version=4, branch_name="coast"
    )
    source_key = ids.decode(source, "Asset")
    async with studio.db.transaction() as session:
        own = (
            await session.exec(select(AssetRow).where(AssetRow.shot_image_id == image_key))
        ).one()
        await session.delete(own)
        image = await session.get(ShotImageRow, image_key)
        assert image is not None
        image.source_asset_id = source_key
    await generate(
        studio,
        ann,
        shot_id,
        parentImageId=first["images"][0]["id"],
        prompt="a lighthouse at dawn",
        variantCount=1,
    )
    second = await wait_for_iteration(studio, ann, shot_id, 1)
    (child,) = await assets_of_images(studio.db, [second["images"][0]["id"]])
    assert child.parent_id == source_key
    assert child.root_id == source_key
    assert child.version == 5
    assert child.branch_name == "coast"
    assert child.evolution_type == "EVOLVE"
    assert child.prompt_delta == prompt_delta("a lighthouse at dusk", "a lighthouse at dawn")


async def test_an_asset_outlives_its_shot_and_project(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    await generate(studio, ann, shot_id, variantCount=1)
    done = await wait_for_iteration(studio, ann, shot_id, 0)
    (asset,) = await assets_of_images(studio.db, [done["images"][0]["id"]])
    project_id = ids.encode("Project", asset.project_id)
    await mutate_ok(studio.db, "deleteProject", {"id": project_id}, "deletedId", token=ann.token)
    async with studio.db.session() as session:
        kept = await session.get(AssetRow, asset.id)
    assert kept is not None
    assert (kept.project_id, kept.shot_image_id, kept.selection_id) == (None, None, None)
    view = await shown(studio, ann, kept)
    assert view["sourceProject"] is None
    assert view["name"] == asset.name
    assert (await read_url(studio, view["thumbnailUrl"])).status_code == 200
    kept_file = await read_url(studio, view["fileUrl"])
    assert kept_file.status_code == 200
    assert Image.open(io.BytesIO(kept_file.content)).size == (kept.width, kept.height)


async def test_an_image_whose_thumbnail_cannot_be_stored_is_an_asset_without_one(
    studio: Studio, caplog: pytest.LogCaptureFixture
) -> None:
    # A file where the thumbnails' directory should be: storing any thumbnail fails.
    studio.storage.root.mkdir(parents=True, exist_ok=True)
    (studio.storage.root / "thumbnails").write_bytes(b"in the way")
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    with caplog.at_level("WARNING", logger="studio.library"):
        await generate(studio, ann, shot_id, variantCount=1)
        done = await wait_for_iteration(studio, ann, shot_id, 0)
    assert done["status"] == "COMPLETE"
    (asset,) = await assets_of_images(studio.db, [done["images"][0]["id"]])
    assert asset.thumbnail_key is None
    assert asset.width is not None  # measured all the same
    assert asset.status == "READY"
    assert any("could not be stored" in r.getMessage() for r in caplog.records)
    view = await shown(studio, ann, asset)
    assert view["thumbnailUrl"] is None
    assert view["fileUrl"] is not None


@pytest.mark.parametrize(
    ("old", "new", "added", "removed"),
    [
        ("A lighthouse at dusk", "a LIGHTHOUSE, at dusk!", [], []),
        ("a red door", "a blue door, a blue sky", ["blue", "sky"], ["red"]),
        (None, "It's a close-up", ["it's", "a", "close-up"], []),
        ("the old pier", "", [], ["the", "old", "pier"]),
        ("café au lait", "café noir", ["noir"], ["au", "lait"]),
    ],
)
def test_prompt_delta_counts_words_once_in_order(
    old: str | None, new: str, added: list[str], removed: list[str]
) -> None:
    assert prompt_delta(old, new) == {"added": added, "removed": removed}


async def test_a_copy_waits_for_a_writer_holding_the_project_without_deadlock(
    studio: Studio,
) -> None:
    """The copy locks the project before the image, as every writer does: a writer that
    holds the project and then changes the image never deadlocks with it (PostgreSQL;
    SQLite runs one writer at a time)."""
    if studio.db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: nothing can interleave")
    await studio.generation_engine.stop()
    picture = io.BytesIO()
    Image.new("RGB", (48, 32), (20, 120, 200)).save(picture, format="PNG")
    files = FlakyFiles(failures=0, body=picture.getvalue())
    port = free_port()
    server = _QuietServer(uvicorn.Config(files, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    engine = GenerationEngine(
        studio.db,
        studio.generation_engine.gateway,
        studio.storage,
        EngineSettings(output_hosts=(f"127.0.0.1:{port}",)),
    )
    try:
        ann = await account(studio.db)
        image_id = await _image_awaiting_copy(studio, ann, f"http://127.0.0.1:{port}/out.png")
        async with studio.db.session() as session:
            image = await session.get(ShotImageRow, image_id)
            assert image is not None
            shot = await session.get(ShotRow, image.shot_id)
            assert shot is not None
        async with studio.db.transaction() as writer:
            await lock_project_row(writer, shot.project_id)
            copying = asyncio.create_task(engine.copy_outputs([image_id]))
            await asyncio.sleep(1.0)  # fetched and measured: now it waits for the project
            assert not copying.done()
            held = await writer.get(ShotImageRow, image_id, with_for_update=True)
            assert held is not None
            held.is_favorite = True
        await asyncio.wait_for(copying, DEADLINE)
    finally:
        server.should_exit = True
        await serving
    async with studio.db.session() as session:
        done = await session.get(ShotImageRow, image_id)
        asset = (
            await session.exec(select(AssetRow).where(AssetRow.shot_image_id == image_id))
        ).one()
    assert done is not None
    assert (done.status, done.is_favorite, done.copy_attempts) == ("COMPLETE", True, 0)
    assert (asset.storage_key, asset.width, asset.height) == (done.storage_key, 48, 32)


@pytest.mark.e2e
def test_over_http_a_generation_and_its_refinement_become_assets_with_lineage(
    tmp_path: Path,
) -> None:
    """`studio serve` and `studio emulator` as real processes: the assets are read by
    `asset(id)` over HTTP and their thumbnails fetched by the URLs it gives."""
    with (
        e2e.emulator(tmp_path, latency_ms=100) as replicate,
        e2e.server(tmp_path, replicate, webhooks=False) as served,
    ):
        client = e2e.Client.signed_up(served.base_url)
        shot_id, first = client.shot_with_images(2)
        client.wait(shot_id, e2e.finished)
        refined = client.run(
            "mutation($s: ID!, $p: ID!) { generateShotImages(input: {shotId: $s, "
            'parentImageId: $p, prompt: "harbour at night in fog", variantCount: 1}) '
            "{ images { id } userErrors { code } } }",
            {"s": shot_id, "p": first[0]},
        )["generateShotImages"]
        assert refined["userErrors"] == []
        (child_image,) = (image["id"] for image in refined["images"])
        done = client.wait(shot_id, lambda images: len(images) == 3 and e2e.finished(images))
        assert [image["status"] for image in done] == ["COMPLETE"] * 3
        with sqlite3.connect(tmp_path / "studio.db") as connection:
            by_image = dict(connection.execute("SELECT shot_image_id, id FROM assets").fetchall())
        parent_asset = ids.encode("Asset", by_image[ids.decode(first[0], "ShotImage")])
        child_asset = ids.encode("Asset", by_image[ids.decode(child_image, "ShotImage")])
        view = client.run(ASSET, {"id": child_asset})["asset"]
        assert view["evolutionType"] == "EVOLVE"
        assert view["parent"] == {"id": parent_asset}
        assert view["version"] == 2
        assert view["promptDelta"] == {"added": ["in", "fog"], "removed": []}
        assert view["name"] == "Restart · Scene 1 · Shot 1 · Iteration 1 · Variant 0"
        thumbnail = httpx.get(view["thumbnailUrl"], timeout=10, trust_env=False)
        assert thumbnail.status_code == 200
        assert Image.open(io.BytesIO(thumbnail.content)).format == "WEBP"
        parent = client.run(ASSET, {"id": parent_asset})["asset"]
        assert (parent["evolutionType"], parent["version"]) == ("ORIGINAL", 1)
