"""Imported images and copies into storage, through the schema and a real engine.

`addShotImages` records finished work only; what a client writes never reaches
the provider; client-given URLs are copied in the background under the outbound
policy, with one error text whatever went wrong; an image without our copy is
never refined or animated; provider outputs are typed by their bytes, and a copy
that keeps failing is given up on without holding up the others.

The engine runs against the built-in emulator over real HTTP; `FileHost` is a
real file server on a loopback port, standing in for the hosts URLs point at.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema import ids
from services.database import Database
from services.generation.outputs import IMPORT_COPY_FAILED
from services.outbound import AddressPolicy, Fetcher, FetchLimits, parse_allowed_hosts
from services.replicate.gateway import Prediction
from services.tables import (
    GenerationStatus,
    ShotImageRow,
    StoryboardSelectionRow,
    utcnow,
)
from tests.emulator_harness import eventually
from tests.factories import Account, account
from tests.outbound_harness import FileHost
from tests.test_generation import (
    SHOT_IMAGES,
    Studio,
    new_shot,
    running_studio,
    wait_for_iteration,
)

TRIES = 3
QUICK = FetchLimits(connect_timeout=1.0, read_timeout=1.0, total_timeout=3.0)


@pytest.fixture(scope="module")
def host() -> Iterator[FileHost]:
    with FileHost() as server:
        yield server


@contextlib.asynccontextmanager
async def running(
    db: Database,
    tmp_path: Path,
    *,
    start: bool = True,
    import_fetcher: Fetcher | None = None,
    **settings: Any,
) -> AsyncIterator[Studio]:
    """A studio's engine on the built-in emulator; retries quick, tries bounded."""
    async with running_studio(
        db,
        tmp_path,
        latency_ms=100,
        start=start,
        import_fetcher=import_fetcher,
        **{
            "copy_max_tries": TRIES,
            "copy_retry_seconds": 0.05,
            "fetch_limits": QUICK,
            **settings,
        },
    ) as studio:
        yield studio


async def predictions(studio: Studio) -> list[dict[str, Any]]:
    """Every prediction the emulator was asked for, newest first."""
    token = studio.emulator.api_token
    async with httpx.AsyncClient(
        base_url=studio.generation_engine.gateway.base_url,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        response = await client.get("/v1/predictions")
        response.raise_for_status()
        results: list[dict[str, Any]] = response.json()["results"]
        return results


async def import_images(
    studio: Studio, owner: Account, shot_id: str, drafts: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return await studio.mutate(
        "addShotImages",
        {"shotId": shot_id, "iterationPrompt": "made elsewhere", "images": drafts, **extra},
        "images { id status imageUrl error metadata }",
        owner.token,
    )


async def image_row(studio: Studio, image_id: str) -> ShotImageRow:
    async with studio.db.session() as session:
        row = await session.get(ShotImageRow, ids.decode(image_id, "ShotImage"))
    assert row is not None
    return row


# --- item 2: imports are records, never generations ------------------------------------


ATTACK_METADATA = {
    "model": "black-forest-labs/flux-schnell",
    "num_outputs": 4,
    "disable_safety_checker": True,
}


@pytest.mark.parametrize("status", ["PENDING", "PROCESSING", "CANCELED"])
async def test_add_shot_images_takes_complete_and_failed_only(
    db: Database, tmp_path: Path, status: str
) -> None:
    async with running(db, tmp_path) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        payload = await import_images(
            studio,
            ann,
            shot_id,
            [{"variantNumber": 0, "status": status, "metadata": ATTACK_METADATA}],
        )
        assert payload["images"] is None
        [error] = payload["userErrors"]
        assert error["code"] == "INVALID_STATUS"
        assert error["field"] == ["images", "0", "status"]
        assert "generateShotImages" in error["message"]
        data = await studio.run(SHOT_IMAGES, {"id": shot_id}, ann.token)
        assert data["node"]["iterations"] == []
        await asyncio.sleep(0.5)  # a few sweeps
        assert await predictions(studio) == []


async def test_imported_metadata_never_becomes_a_prediction(db: Database, tmp_path: Path) -> None:
    async with running(db, tmp_path) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        payload = await import_images(
            studio,
            ann,
            shot_id,
            [
                {"variantNumber": 0, "status": "FAILED", "metadata": ATTACK_METADATA},
                {
                    "variantNumber": 1,
                    "status": "COMPLETE",
                    "imageUrl": "https://images.example.com/a.png",
                    "metadata": ATTACK_METADATA,
                },
            ],
        )
        assert payload["userErrors"] == []
        failed = payload["images"][0]
        assert payload["images"][0]["metadata"] == ATTACK_METADATA  # kept, for clients
        retried = await studio.mutate(
            "retryGeneration", {"id": failed["id"]}, "image { id }", ann.token
        )
        assert [e["code"] for e in retried["userErrors"]] == ["IMPORTED_IMAGE"]
        assert (await image_row(studio, failed["id"])).status == "FAILED"
        await asyncio.sleep(0.5)
        assert await predictions(studio) == []


async def test_an_imported_row_left_pending_is_failed_not_submitted(
    db: Database, tmp_path: Path
) -> None:
    """A PENDING import written before the rule existed (the migration marks them imported)."""
    async with running(db, tmp_path, start=False) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        async with db.transaction() as session:
            row = ShotImageRow(
                shot_id=ids.decode(shot_id, "Shot"),
                iteration_number=0,
                variant_number=0,
                status=GenerationStatus.PENDING,
                iteration_prompt="p",
                image_url="https://images.example.com/a.png",
                generation_metadata=ATTACK_METADATA,
                model="black-forest-labs/flux-schnell",
                imported=True,
            )
            session.add(row)
        await studio.generation_engine.dispatch_pending()
        async with db.session() as session:
            stored = await session.get(ShotImageRow, row.id)
        assert stored is not None
        assert stored.status == "FAILED"
        assert stored.prediction_id is None
        assert "never generated" in (stored.error or "")
        assert await predictions(studio) == []


async def test_provider_input_is_validated_params_and_our_own_fields(
    db: Database, tmp_path: Path
) -> None:
    async with running(db, tmp_path) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        started = await studio.mutate(
            "generateShotImages",
            {"shotId": shot_id, "variantCount": 1, "params": {"aspect_ratio": "1:1"}},
            "images { id metadata }",
            ann.token,
        )
        assert started["userErrors"] == []
        await wait_for_iteration(studio, ann, shot_id, 0)
        [made] = await predictions(studio)
        seed = started["images"][0]["metadata"]["seed"]
        assert made["input"] == {
            "prompt": "a lighthouse at dusk",
            "seed": seed,
            "aspect_ratio": "1:1",
            "output_format": "webp",
            "output_quality": 90,
            # Every listed parameter goes out, the rest at their listed defaults.
            "go_fast": True,
            "megapixels": "1",
            "num_inference_steps": 4,
            "num_outputs": 1,
        }

        # A stored row whose parameters are not (or no longer) valid is never sent:
        # neither unknown inputs nor ones that would override our fixed ones.
        await studio.generation_engine.stop()
        async with db.transaction() as session:
            row = ShotImageRow(
                shot_id=ids.decode(shot_id, "Shot"),
                iteration_number=1,
                variant_number=0,
                status=GenerationStatus.PENDING,
                iteration_prompt="p",
                generation_metadata={**ATTACK_METADATA, "seed": 5},
                model="black-forest-labs/flux-schnell",
            )
            session.add(row)
        await studio.generation_engine.dispatch_pending()
        async with db.session() as session:
            stored = await session.get(ShotImageRow, row.id)
        assert stored is not None
        assert stored.status == "FAILED"
        assert "num_outputs" in (stored.error or "")
        assert len(await predictions(studio)) == 1


# --- item 3: client-given URLs ---------------------------------------------------------


def inside_urls(host: FileHost) -> list[str]:
    """Client URLs that point inside: open and closed ports, by name, number and form."""
    return [
        host.url_for("/png"),  # an open port, serving a real PNG
        "http://127.0.0.1:9/missing.png",  # a closed port
        "http://localhost:6379/",  # Redis
        f"http://2130706433:{host.port}/png",
        f"http://[::1]:{host.port}/png",
        f"http://[::ffff:127.0.0.1]:{host.port}/png",
        "http://169.254.169.254/latest/meta-data/",
        f"http://0.0.0.0:{host.port}/png",
        host.url_for(f"/redirect?to=http://127.0.0.1:{host.port}/png"),
        "https://images.example.com/gone.png",  # does not resolve here
    ]


async def test_client_urls_inside_are_recorded_then_refused_with_one_message(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    async with running(db, tmp_path) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        urls = [*inside_urls(host), host.url_for("/slow?seconds=3")]
        before = len(host.seen())
        started = time.monotonic()
        payload = await import_images(
            studio,
            ann,
            shot_id,
            [
                {"variantNumber": n, "status": "COMPLETE", "imageUrl": url}
                for n, url in enumerate(urls)
            ],
        )
        assert time.monotonic() - started < 1.5, "the mutation never waits on a remote host"
        assert payload["userErrors"] == []
        images = payload["images"]
        assert [i["status"] for i in images] == ["COMPLETE"] * len(urls)
        assert [i["imageUrl"] for i in images] == urls  # the given URL, until copied
        assert all(i["error"] is None for i in images)

        async def settled() -> list[dict[str, Any]] | None:
            data = await studio.run(SHOT_IMAGES, {"id": shot_id}, ann.token)
            found: list[dict[str, Any]] = data["node"]["iterations"][0]["images"]
            return found if all(i["error"] for i in found) else None

        done = await eventually(settled, within=30, what="every copy to be refused")
        assert {i["error"] for i in done} == {IMPORT_COPY_FAILED}, "no port oracle"
        assert [i["imageUrl"] for i in done] == urls
        assert [i["status"] for i in done] == ["COMPLETE"] * len(urls)
        for image in done:
            assert (await image_row(studio, image["id"])).storage_key is None
        assert len(host.seen()) == before, "nothing inside was ever requested"


async def test_a_refused_copy_is_logged_without_the_secrets_of_its_url(
    db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A URL's query, fragment and user info can hold a secret (a signed link's signature,
    a client's token); the warning about a refused copy names the host and path only."""
    secret = "s3cr3t-7d1f"
    url = f"http://user:{secret}@127.0.0.1:9/still.png?token={secret}&signature={secret}#{secret}"
    with caplog.at_level(logging.WARNING, logger="studio.generation"):
        async with running(db, tmp_path) as studio:
            ann = await account(db)
            shot_id = await new_shot(studio, ann)
            payload = await import_images(
                studio, ann, shot_id, [{"variantNumber": 0, "status": "COMPLETE", "imageUrl": url}]
            )
            assert payload["userErrors"] == []
            image_id = payload["images"][0]["id"]

            async def refused() -> bool | None:
                return (await image_row(studio, image_id)).error == IMPORT_COPY_FAILED or None

            await eventually(refused, within=30, what="the copy to be refused")
    warnings = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert any("http://127.0.0.1:9/still.png" in line for line in warnings), warnings
    assert not [line for line in caplog.messages if secret in line]


async def test_an_image_without_our_copy_is_never_refined_or_animated(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    async with running(db, tmp_path) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        payload = await import_images(
            studio,
            ann,
            shot_id,
            [
                {"variantNumber": 0, "status": "COMPLETE", "imageUrl": url}
                for url in [host.url_for("/png")]
            ],
        )
        image_id = payload["images"][0]["id"]
        refined = await studio.mutate(
            "generateShotImages",
            {"shotId": shot_id, "parentImageId": image_id},
            "images { id }",
            ann.token,
        )
        assert refined["images"] is None
        assert [(e["code"], e["field"]) for e in refined["userErrors"]] == [
            ("IMAGE_NOT_STORED", ["parentImageId"])
        ]
        selected = await studio.mutate(
            "selectMasterShot",
            {"shotId": shot_id, "imageId": image_id},
            "selection { id }",
            ann.token,
        )
        assert selected["userErrors"] == []
        selection_id = selected["selection"]["id"]
        animated = await studio.mutate(
            "animateShot", {"selectionId": selection_id}, "selection { id }", ann.token
        )
        assert [(e["code"], e["field"]) for e in animated["userErrors"]] == [
            ("IMAGE_NOT_STORED", ["selectionId"])
        ]
        data = await studio.run(
            "query($id: ID!) { node(id: $id) { ... on Shot { project { id } } } }",
            {"id": shot_id},
            ann.token,
        )
        whole = await studio.mutate(
            "animateStoryboard",
            {"projectId": data["node"]["project"]["id"]},
            "selections { id }",
            ann.token,
        )
        assert [(e["code"], e["field"]) for e in whole["userErrors"]] == [
            ("IMAGE_NOT_STORED", ["projectId"])
        ]
        # It says which master: the storyboard's only shot.
        assert (
            "The master image of scene 1, shot 1 has no copy" in whole["userErrors"][0]["message"]
        )
        await asyncio.sleep(0.3)
        assert await predictions(studio) == []
        async with db.session() as session:
            selection = await session.get(
                StoryboardSelectionRow, ids.decode(selection_id, "StoryboardSelection")
            )
        assert selection is not None
        assert selection.animation_status is None


async def test_a_client_url_is_copied_typed_by_its_bytes_and_only_our_copy_is_sent(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    # Client URLs are public-only; a public file host cannot exist offline, so this
    # engine's import fetcher alone is allowed the file host (never configurable).
    fetcher = Fetcher(
        policy=AddressPolicy(allowed_hosts=parse_allowed_hosts([host.host_port])), limits=QUICK
    )
    async with running(db, tmp_path, import_fetcher=fetcher) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        photo = host.url_for("/photo.html?type=text/html")  # a PNG, whatever it claims
        before = len(host.seen("/photo.html"))
        payload = await import_images(
            studio,
            ann,
            shot_id,
            [
                {"variantNumber": 0, "status": "COMPLETE", "imageUrl": photo},
                {"variantNumber": 1, "status": "COMPLETE", "imageUrl": host.url_for("/fake.png")},
                {"variantNumber": 2, "status": "COMPLETE", "imageUrl": host.url_for("/huge")},
            ],
        )
        first, html, huge = (i["id"] for i in payload["images"])

        async def stored() -> ShotImageRow | None:
            row = await image_row(studio, first)
            return row if row.storage_key else None

        row = await eventually(stored, within=20, what="the copy")
        assert row.storage_key is not None
        assert row.storage_key.endswith(".png")
        stat = await studio.storage.stat(row.storage_key)
        assert stat is not None
        assert stat.content_type == "image/png"
        data = await studio.run(SHOT_IMAGES, {"id": shot_id}, ann.token)
        shown = data["node"]["iterations"][0]["images"]
        assert shown[0]["imageUrl"].startswith("http://testserver/media/images/")
        assert shown[0]["error"] is None

        async def refused() -> bool:
            return all([(await image_row(studio, i)).error for i in (html, huge)])

        await eventually(refused, within=20, what="HTML and a huge body to be refused")
        assert (await image_row(studio, html)).error == IMPORT_COPY_FAILED
        assert (await image_row(studio, huge)).storage_key is None

        refined = await studio.mutate(
            "generateShotImages",
            {"shotId": shot_id, "parentImageId": first, "variantCount": 1},
            "images { id }",
            ann.token,
        )
        assert refined["userErrors"] == []
        done = await wait_for_iteration(studio, ann, shot_id, 1)
        assert done["images"][0]["status"] == "COMPLETE", done
        [made] = await predictions(studio)
        base = studio.generation_engine.gateway.base_url
        assert made["input"]["image"].startswith(f"{base}/v1/files/"), made["input"]
        assert len(host.seen("/photo.html")) - before == 1, "only our copy was ever handed on"


# --- item 3 and 4(a): provider outputs --------------------------------------------------


async def awaiting_output(studio: Studio, owner: Account, *, count: int = 1) -> list[int]:
    """Shot images whose predictions are running (PROCESSING), as the engine leaves them."""
    shot_id = ids.decode(await new_shot(studio, owner), "Shot")
    made = []
    async with studio.db.transaction() as session:
        for variant in range(count):
            row = ShotImageRow(
                shot_id=shot_id,
                iteration_number=0,
                variant_number=variant,
                status=GenerationStatus.PROCESSING,
                iteration_prompt="p",
                model="black-forest-labs/flux-schnell",
            )
            session.add(row)
            made.append(row)
        await session.flush()
        for row in made:
            row.prediction_id = f"output-test-{row.id}"
            # Heard of "just now" for the next hour: the poller leaves it alone. Its
            # made-up prediction id is unknown to the emulator, and a prediction the
            # provider does not know is submitted again (a real one would race the test).
            row.checked_at = utcnow() + timedelta(hours=1)
    return [int(row.id or 0) for row in made]


async def finished(studio: Studio, row_ids: list[int]) -> list[ShotImageRow]:
    async def probe() -> list[ShotImageRow] | None:
        async with studio.db.session() as session:
            rows = [await session.get(ShotImageRow, i) for i in row_ids]
        done = [r for r in rows if r is not None and r.status in ("COMPLETE", "FAILED")]
        return done if len(done) == len(row_ids) else None

    return await eventually(probe, within=30, what="the outputs to be settled")


async def test_provider_outputs_are_checked_like_any_download(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    async with running(db, tmp_path, output_hosts=(host.host_port,)) as studio:
        ann = await account(db)
        outputs: dict[str, Any] = {
            "html": host.url_for("/page.html"),
            "html as png": host.url_for("/fake.png"),
            "huge": host.url_for("/huge"),
            "text model": ["Once", " upon", " a time"],
            "inside": "http://127.0.0.1:6379/",
            "metadata": "http://169.254.169.254/latest/meta-data/iam/",
            "redirect inside": host.url_for("/redirect?to=http://localhost:6379/"),
            "gone": host.url_for("/status/404"),
            "png": host.url_for("/photo.html?type=text/html"),
        }
        rows = await awaiting_output(studio, ann, count=len(outputs))
        started = time.monotonic()
        for row_id, output in zip(rows, outputs.values(), strict=True):
            await studio.generation_engine.apply(
                Prediction(id=f"output-test-{row_id}", status="succeeded", output=output)
            )
        settled = {
            name: row for name, row in zip(outputs, await finished(studio, rows), strict=True)
        }
        assert time.monotonic() - started < 15
        stored = settled.pop("png")
        assert stored.status == "COMPLETE"
        assert stored.storage_key is not None
        assert stored.storage_key.endswith(".png")
        assert settled.pop("gone").error == "The provider no longer has this output."
        for name, row in settled.items():
            assert row.status == "FAILED", name
            assert row.storage_key is None, name
            assert row.error is not None
            assert "could not be stored" in row.error, (name, row.error)
            assert row.copy_attempts == 1, (name, "refused at once, not retried")


async def test_a_failing_output_copy_is_given_up_after_bounded_tries(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    async with running(db, tmp_path, output_hosts=(host.host_port,)) as studio:
        ann = await account(db)
        [row_id] = await awaiting_output(studio, ann)
        before = len(host.seen("/status/503"))
        await studio.generation_engine.apply(
            Prediction(
                id=f"output-test-{row_id}", status="succeeded", output=[host.url_for("/status/503")]
            )
        )
        [row] = await finished(studio, [row_id])
        assert row.status == "FAILED"
        assert row.error == f"The provider's output could not be downloaded after {TRIES} tries."
        assert row.copy_attempts == TRIES
        await asyncio.sleep(0.5)  # more sweeps: it is not tried again
        assert len(host.seen("/status/503")) - before == TRIES

        # Retried, the new prediction's output gets all its tries again (and works).
        retried = await studio.mutate(
            "retryGeneration", {"id": ids.encode("ShotImage", row_id)}, "image { id }", ann.token
        )
        assert retried["userErrors"] == []
        async with db.session() as session:
            reset = await session.get(ShotImageRow, row_id)
        assert reset is not None
        assert reset.copy_attempts == 0
        [again] = await finished(studio, [row_id])
        assert again.status == "COMPLETE", again.error
        assert again.storage_key is not None


async def test_a_copy_that_fails_unexpectedly_counts_its_tries_too(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    """Not a download fault but ours (here storage cannot write): still bounded, never a loop."""
    (tmp_path / "media").write_text("a file where the media directory should be")
    async with running(db, tmp_path, output_hosts=(host.host_port,)) as studio:
        ann = await account(db)
        [row_id] = await awaiting_output(studio, ann)
        await studio.generation_engine.apply(
            Prediction(
                id=f"output-test-{row_id}", status="succeeded", output=[host.url_for("/png")]
            )
        )
        [row] = await finished(studio, [row_id])
        assert row.status == "FAILED"
        assert row.copy_attempts == TRIES
        assert row.error == f"The provider's output could not be downloaded after {TRIES} tries."


async def test_failing_copies_never_go_ahead_of_fresh_ones(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    async with running(
        db,
        tmp_path,
        start=False,
        output_hosts=(host.host_port,),
        batch=2,
        copy_retry_seconds=60.0,
    ) as studio:
        ann = await account(db)
        failing = await awaiting_output(studio, ann, count=4)
        [fresh] = await awaiting_output(studio, ann)
        async with db.transaction() as session:
            for row_id in failing:
                row = await session.get(ShotImageRow, row_id)
                assert row is not None
                row.provider_output = [host.url_for("/status/503")]
                row.copy_attempts = 1
                row.checked_at = utcnow() - timedelta(minutes=5)
            row = await session.get(ShotImageRow, fresh)
            assert row is not None
            row.provider_output = [host.url_for("/png")]
        before = len(host.seen("/status/503"))
        await studio.generation_engine.copy_outputs()  # one sweep's copying, a batch of two
        async with db.session() as session:
            copied = await session.get(ShotImageRow, fresh)
        assert copied is not None
        assert copied.status == "COMPLETE", "the fresh row was copied first"
        assert len(host.seen("/status/503")) - before == 1
        for _ in range(3):
            await studio.generation_engine.copy_outputs()
        # The others took their turns; each failed once and now waits out its pause.
        assert len(host.seen("/status/503")) - before == len(failing)


# --- the emulator -------------------------------------------------------------------------


async def test_the_emulator_fetches_no_input_from_inside(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    """Replicate fetches inputs from the internet; neither does the emulator reach inside."""
    async with running(db, tmp_path, start=False) as studio:
        before = len(host.seen())
        async with httpx.AsyncClient(
            base_url=studio.generation_engine.gateway.base_url,
            headers={"Authorization": f"Bearer {studio.emulator.api_token}"},
        ) as client:
            for url in inside_urls(host)[:-1]:
                response = await client.post(
                    "/v1/models/black-forest-labs/flux-dev/predictions",
                    json={"input": {"prompt": "x", "image": url}},
                )
                assert response.status_code == 422, (url, response.text)
                assert response.json()["invalid_fields"][0]["description"] == (
                    f"Could not fetch file: could not fetch {url}"
                ), "one message whatever the cause"
        assert len(host.seen()) == before


async def test_slow_client_urls_never_delay_generated_work(
    db: Database, tmp_path: Path, host: FileHost
) -> None:
    fetcher = Fetcher(
        policy=AddressPolicy(allowed_hosts=parse_allowed_hosts([host.host_port])), limits=QUICK
    )
    async with running(
        db, tmp_path, import_fetcher=fetcher, output_hosts=(host.host_port,), copy_concurrency=1
    ) as studio:
        ann = await account(db)
        shot_id = await new_shot(studio, ann)
        payload = await import_images(
            studio,
            ann,
            shot_id,
            [
                {"variantNumber": n, "status": "COMPLETE", "imageUrl": host.url_for("/slow")}
                for n in range(6)
            ],
        )
        assert payload["userErrors"] == []
        await asyncio.sleep(0.3)  # the sweep has started on the slow copies
        [row_id] = await awaiting_output(studio, ann)
        started = time.monotonic()
        await studio.generation_engine.apply(
            Prediction(id=f"output-test-{row_id}", status="succeeded", output=host.url_for("/png"))
        )
        [row] = await finished(studio, [row_id])
        assert row.status == "COMPLETE"
        assert time.monotonic() - started < 0.9, "an output copy never queues behind imports"
        # And the sweep itself goes on: a generation starts and completes meanwhile.
        other = await new_shot(studio, ann)
        started = time.monotonic()
        made = await studio.mutate(
            "generateShotImages", {"shotId": other, "variantCount": 1}, "images { id }", ann.token
        )
        assert made["userErrors"] == []
        done = await wait_for_iteration(studio, ann, other, 0)
        assert done["images"][0]["status"] == "COMPLETE"
        assert time.monotonic() - started < 2.5
