"""Running work that stops being wanted: never recorded on the row, always canceled.

A generation is discarded when a new master image replaces the one an animation is
made from, or when its project, scene, shot or image is deleted. Each test runs the
engine against the built-in emulator over real HTTP and reads what reached the
provider from the emulator itself: its predictions (`GET /v1/predictions`, with
their status) and the requests it received (`GET /_emulator/requests`).

A create is held on its way by the emulator's `create_response_delay_ms` (the
prediction is made at once, its answer comes later), which opens the window in
which the master changes; a long `latency_ms` keeps predictions running.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schema import ids
from services.database import Database
from services.tables import ShotImageRow, StoryboardSelectionRow
from tests.emulator_harness import eventually
from tests.factories import Account, account, project, scene, team_with
from tests.test_generation import (
    EMULATOR_SEED,
    Studio,
    generate,
    master_selection,
    new_shot,
    running_studio,
    wait_for_iteration,
)

CANCEL_ROUTE = "POST /v1/predictions/{id}/cancel"
KLING = "kwaivgi/kling-v2.1"
RUNNING_FOR_A_MINUTE = 60_000
QUICK = 150


@pytest.fixture
async def studio(db: Database, tmp_path: Path) -> AsyncIterator[Studio]:
    async with running_studio(
        db, tmp_path, latency_ms=QUICK, seed=EMULATOR_SEED, retry_after_cap=0.05
    ) as made:
        yield made


async def provider_get(studio: Studio, path: str) -> Any:
    """A GET of the emulator's API (with its token); the decoded JSON answer."""
    async with httpx.AsyncClient(
        base_url=studio.generation_engine.gateway.base_url,
        headers={"Authorization": f"Bearer {studio.emulator.api_token}"},
        trust_env=False,
    ) as client:
        response = await client.get(path)
        response.raise_for_status()
        return response.json()


async def provider_predictions(studio: Studio) -> dict[str, dict[str, Any]]:
    """Every prediction the emulator holds, by id (a test makes far fewer than a page)."""
    page = await provider_get(studio, "/v1/predictions")
    assert page["next"] is None
    return {prediction["id"]: prediction for prediction in page["results"]}


async def predictions_in(studio: Studio, *statuses: str) -> set[str]:
    """The ids of the emulator's predictions in one of the statuses."""
    held = await provider_predictions(studio)
    return {p for p, prediction in held.items() if prediction["status"] in statuses}


async def cancels_sent(studio: Studio) -> int:
    """How many cancel requests the emulator has received."""
    counts = (await provider_get(studio, "/_emulator/requests"))["by_route"]
    return int(counts.get(CANCEL_ROUTE, 0))


async def canceled_at_provider(studio: Studio, prediction_ids: set[str]) -> None:
    """Wait until every one of the predictions is canceled at the provider."""

    async def probe() -> bool:
        held = await provider_predictions(studio)
        return all(held[p]["status"] == "canceled" for p in prediction_ids)

    await eventually(probe, within=20.0, what=f"predictions {sorted(prediction_ids)} canceled")


async def selection_row(studio: Studio, selection_id: str) -> StoryboardSelectionRow:
    async with studio.db.session() as session:
        row = await session.get(
            StoryboardSelectionRow, ids.decode(selection_id, "StoryboardSelection")
        )
    assert row is not None
    return row


async def two_images(studio: Studio, owner: Account) -> tuple[str, str, str]:
    """A shot with a finished iteration of two images: (shot, image A, image B) IDs."""
    shot_id = await new_shot(studio, owner)
    await generate(studio, owner, shot_id, variantCount=2)
    done = await wait_for_iteration(studio, owner, shot_id, 0)
    first, second = (image["id"] for image in done["images"])
    return shot_id, first, second


async def select(studio: Studio, owner: Account, shot_id: str, image_id: str) -> dict[str, Any]:
    chosen = await studio.mutate(
        "selectMasterShot",
        {"shotId": shot_id, "imageId": image_id},
        "selection { id animationStatus animatedVideoUrl predictionId }",
        owner.token,
    )
    assert chosen["userErrors"] == [], chosen
    selection: dict[str, Any] = chosen["selection"]
    return selection


async def animate(studio: Studio, owner: Account, selection_id: str) -> None:
    started = await studio.mutate(
        "animateShot",
        {"selectionId": selection_id, "params": {"duration": 5}},
        "selection { animationStatus }",
        owner.token,
    )
    assert started["userErrors"] == [], started
    assert started["selection"] == {"animationStatus": "PENDING"}


async def animation_held_on_its_way(studio: Studio, owner: Account, selection_id: str) -> str:
    """Animate the selection with its create's answer held back for 3 s and its
    prediction running for a minute; once the prediction exists at the provider
    (its answer not yet back), let later creates through quickly. The held
    prediction's id."""
    studio.emulator.latency_ms = RUNNING_FOR_A_MINUTE
    studio.emulator.create_response_delay_ms = 3000
    await animate(studio, owner, selection_id)

    async def held() -> str | None:
        clips = [p for p in (await provider_predictions(studio)).values() if p["model"] == KLING]
        return clips[0]["id"] if clips else None

    prediction_id = await eventually(held, what="the animation's create to reach the provider")
    studio.emulator.create_response_delay_ms = 0
    studio.emulator.latency_ms = QUICK
    waiting = await selection_row(studio, selection_id)
    # On its way: sent, its answer not recorded yet.
    assert waiting.animation_status == "PENDING"
    assert waiting.submitted_at is not None
    assert waiting.prediction_id is None
    return prediction_id


async def test_a_create_answered_after_the_master_changed_is_canceled_not_recorded(
    studio: Studio,
) -> None:
    ann = await account(studio.db)
    shot_id, image_a, image_b = await two_images(studio, ann)
    selection_id = (await select(studio, ann, shot_id, image_a))["id"]
    stale = await animation_held_on_its_way(studio, ann, selection_id)

    changed = await select(studio, ann, shot_id, image_b)
    assert changed["animationStatus"] is None

    await canceled_at_provider(studio, {stale})
    row = await selection_row(studio, selection_id)
    assert row.selected_image_id == ids.decode(image_b, "ShotImage")
    assert row.animation_status is None
    assert row.prediction_id is None
    assert row.video_storage_key is None
    assert row.provider_output is None
    assert row.submitted_at is None
    assert await cancels_sent(studio) == 1


async def test_animating_the_new_master_while_the_old_create_is_on_its_way_animates_it(
    studio: Studio,
) -> None:
    ann = await account(studio.db)
    shot_id, image_a, image_b = await two_images(studio, ann)
    selection_id = (await select(studio, ann, shot_id, image_a))["id"]
    stale = await animation_held_on_its_way(studio, ann, selection_id)

    await select(studio, ann, shot_id, image_b)
    await animate(studio, ann, selection_id)  # inside the window: the old answer is not back

    async def finished() -> StoryboardSelectionRow | None:
        row = await selection_row(studio, selection_id)
        return row if row.animation_status not in ("PENDING", "PROCESSING") else None

    row = await eventually(finished, within=60.0, what="the new master's animation")
    assert row.animation_status == "COMPLETE", row.error
    assert row.video_storage_key is not None
    assert row.prediction_id is not None
    assert row.prediction_id != stale
    await canceled_at_provider(studio, {stale})

    # The clip that was kept is the one made from B: the image its prediction was
    # given is B's stored file, byte for byte.
    made = (await provider_predictions(studio))[row.prediction_id]
    assert made["model"] == KLING
    assert made["status"] == "succeeded"
    uploaded = await provider_get(studio, httpx.URL(made["input"]["start_image"]).path)
    assert uploaded["checksums"]["sha256"] == await stored_sha256(studio, image_b)
    assert uploaded["checksums"]["sha256"] != await stored_sha256(studio, image_a)
    assert await cancels_sent(studio) == 1


async def stored_sha256(studio: Studio, image_id: str) -> str:
    async with studio.db.session() as session:
        image = await session.get(ShotImageRow, ids.decode(image_id, "ShotImage"))
    assert image is not None
    assert image.storage_key is not None
    data = b"".join([chunk async for chunk in studio.storage.read(image.storage_key)])
    return hashlib.sha256(data).hexdigest()


async def test_a_new_master_cancels_the_running_animation_of_the_old_one(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id, image_a, image_b = await two_images(studio, ann)
    selection_id = (await select(studio, ann, shot_id, image_a))["id"]
    studio.emulator.latency_ms = RUNNING_FOR_A_MINUTE
    await animate(studio, ann, selection_id)

    async def recorded() -> str | None:
        return (await selection_row(studio, selection_id)).prediction_id

    running = await eventually(recorded, what="the animation's prediction to be recorded")
    # Selecting the same master again changes nothing and stops nothing.
    assert (await select(studio, ann, shot_id, image_a))["predictionId"] == running
    changed = await select(studio, ann, shot_id, image_b)
    assert changed["animationStatus"] is None
    assert changed["predictionId"] is None

    await canceled_at_provider(studio, {running})
    assert await cancels_sent(studio) == 1
    row = await selection_row(studio, selection_id)
    assert row.animation_status is None
    assert row.prediction_id is None


async def running_images(
    studio: Studio, owner: Account, shot_id: str, count: int
) -> list[tuple[str, str]]:
    """`count` images generated on the shot, waited for until each has its prediction
    (running for a minute): (image ID, prediction id) each."""
    started = await generate(studio, owner, shot_id, variantCount=count)
    assert started["userErrors"] == [], started
    image_ids = [image["id"] for image in started["images"]]

    async def recorded() -> list[tuple[str, str]] | None:
        async with studio.db.session() as session:
            rows = [
                await session.get(ShotImageRow, ids.decode(image_id, "ShotImage"))
                for image_id in image_ids
            ]
        found = [(i, r.prediction_id) for i, r in zip(image_ids, rows, strict=True) if r]
        if len(found) < count or not all(p for _, p in found):
            return None
        return [(i, str(p)) for i, p in found]

    return await eventually(recorded, what="the images' predictions to be recorded")


async def test_deleting_cancels_the_running_predictions_of_what_it_deletes(
    studio: Studio,
) -> None:
    ann = await account(studio.db)
    bob = await account(studio.db, name="Bob")
    team_id = await team_with(studio.db, ann, {"EDITOR": bob})
    pid = await project(studio.db, ann, team_id=team_id)
    first = await scene(studio.db, ann, pid, shots=3)
    second = await scene(studio.db, ann, pid, title="Departure", shots=1)
    shot_x, shot_y, shot_w = (shot["id"] for shot in first["shots"])
    shot_z = second["shots"][0]["id"]
    selection_w = await master_selection(studio, ann, shot_w)

    studio.emulator.latency_ms = RUNNING_FOR_A_MINUTE
    await animate(studio, ann, selection_w)
    x_images = await running_images(studio, ann, shot_x, 2)
    ((_, y_prediction),) = await running_images(studio, ann, shot_y, 1)
    ((_, z_prediction),) = await running_images(studio, ann, shot_z, 1)

    async def animation_recorded() -> str | None:
        return (await selection_row(studio, selection_w)).prediction_id

    w_prediction = await eventually(animation_recorded, what="the animation's prediction")
    everything = {p for _, p in x_images} | {y_prediction, z_prediction, w_prediction}
    assert everything <= await predictions_in(studio, "starting", "processing")

    async def delete(name: str, node_id: str, token: str) -> list[dict[str, Any]]:
        payload = await studio.mutate(name, {"id": node_id}, "deletedId", token)
        errors: list[dict[str, Any]] = payload["userErrors"]
        return errors

    (doomed_image, doomed_prediction), (_, kept_prediction) = x_images
    assert await delete("deleteShotImage", doomed_image, ann.token) == []
    await canceled_at_provider(studio, {doomed_prediction})
    assert await delete("deleteShot", shot_y, ann.token) == []
    await canceled_at_provider(studio, {y_prediction})
    assert await delete("deleteScene", second["id"], ann.token) == []
    await canceled_at_provider(studio, {z_prediction})
    assert await cancels_sent(studio) == 3

    # A delete that is refused (an editor may not delete the owner's project) rolls
    # back, and cancels nothing.
    refused = await delete("deleteProject", pid, bob.token)
    assert [error["code"] for error in refused] == ["FORBIDDEN"], refused
    held = await provider_predictions(studio)
    assert held[kept_prediction]["status"] != "canceled"
    assert held[w_prediction]["status"] != "canceled"

    assert await delete("deleteProject", pid, ann.token) == []
    await canceled_at_provider(studio, {kept_prediction, w_prediction})
    assert await cancels_sent(studio) == 5
    assert await predictions_in(studio, "canceled") == everything


async def test_a_retry_while_the_canceled_create_is_on_its_way_runs_as_a_new_attempt(
    studio: Studio,
) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    studio.emulator.latency_ms = RUNNING_FOR_A_MINUTE
    studio.emulator.create_response_delay_ms = 3000
    started = await generate(studio, ann, shot_id, variantCount=1)
    image_id = started["images"][0]["id"]

    async def held() -> str | None:
        sent = list(await provider_predictions(studio))
        return sent[0] if sent else None

    stale = await eventually(held, what="the image's create to reach the provider")
    studio.emulator.create_response_delay_ms = 0
    studio.emulator.latency_ms = QUICK
    for name, status in (("cancelGeneration", "CANCELED"), ("retryGeneration", "PENDING")):
        payload = await studio.mutate(name, {"id": image_id}, "image { status }", ann.token)
        assert payload["userErrors"] == [], payload
        assert payload["image"] == {"status": status}

    done = (await wait_for_iteration(studio, ann, shot_id, 0))["images"][0]
    assert done["status"] == "COMPLETE", done
    assert done["predictionId"] not in (None, stale)
    await canceled_at_provider(studio, {stale})
    assert await cancels_sent(studio) == 1
