"""Generation on Replicate, through the built-in emulator over real HTTP.

Each test runs a GenerationEngine (the same one a server runs) against an
emulator on a loopback port, and drives everything through the GraphQL schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest
from PIL import Image

from api.embedded import embedded_emulator
from api.graphql import build_context
from api.ports import free_port
from api.schema import schema
from schema.context import Resources
from services.database import Database
from services.generation.engine import EngineSettings, GenerationEngine
from services.media.storage import LocalStorage
from services.outbound import Fetcher
from services.replicate.emulator import EmulatorConfig
from services.tables import GenerationStatus, ShotImageRow, StoryboardSelectionRow
from tests.emulator_harness import quick_gateway
from tests.factories import (
    MEDIA,
    Account,
    account,
    input_type,
    project,
    scene,
    settle_generations,
)

DEADLINE = 60.0
EMULATOR_SEED = 9  # the emulator's faults fall the same way on every run


@dataclass
class Studio:
    db: Database
    generation_engine: GenerationEngine
    storage: LocalStorage
    emulator: EmulatorConfig
    resources: Resources

    async def run(self, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
        context = await build_context(self.resources, token)
        result = await schema.execute(query, variables, context_value=context)
        assert result.errors is None, [e.formatted for e in result.errors]
        assert result.data is not None
        return result.data

    async def mutate(
        self, name: str, input: dict[str, Any], selection: str, token: str
    ) -> dict[str, Any]:
        query = (
            f"mutation($input: {input_type(name)}!) {{ {name}(input: $input) "
            f"{{ {selection} userErrors {{ code field message }} }} }}"
        )
        payload: dict[str, Any] = (await self.run(query, {"input": input}, token))[name]
        return payload


@contextlib.asynccontextmanager
async def running_studio(
    db: Database,
    tmp_path: Path,
    *,
    latency_ms: int,
    seed: int | None = None,
    retry_after_cap: float | None = None,
    start: bool = True,
    import_fetcher: Fetcher | None = None,
    **settings: Any,
) -> AsyncIterator[Studio]:
    """A studio whose GenerationEngine runs against the built-in emulator over real HTTP.

    The emulator answers after `latency_ms` (its faults seeded by `seed`); the gateway
    is `quick_gateway`'s, waiting at most `retry_after_cap` seconds on a throttle when
    given; media go under `tmp_path`; `settings` are `EngineSettings` (polling every
    0.1 s unless they say else); `start=False` leaves the engine stopped. Work left on
    the shared database (`settle_generations`) is settled before the engine is built
    and again after it (and one a test put in its place) has stopped, so no other
    test's engine picks it up; `import_fetcher`, given, is the engine's and is closed
    on the way out.
    """
    async with embedded_emulator(latency_ms=latency_ms, seed=seed) as (base_url, emulator):
        gateway = quick_gateway(
            base_url,
            emulator.api_token,
            **({} if retry_after_cap is None else {"retry_after_cap": retry_after_cap}),
        )
        storage = LocalStorage(tmp_path / "media")
        generation_engine = GenerationEngine(
            db,
            gateway,
            storage,
            EngineSettings(**{"poll_interval": 0.1, **settings}),
            import_fetcher=import_fetcher,
        )
        await settle_generations(db)
        if start:
            generation_engine.start()
        made = Studio(
            db,
            generation_engine,
            storage,
            emulator,
            Resources(db=db, media=MEDIA, generation_engine=generation_engine),
        )
        try:
            yield made
        finally:
            # A test may have put an engine of its own in place of the first.
            await made.generation_engine.stop()
            await generation_engine.stop()
            await gateway.aclose()
            if import_fetcher is not None:
                await import_fetcher.aclose()
            await settle_generations(db)


@pytest.fixture
async def studio(db: Database, tmp_path: Path) -> AsyncIterator[Studio]:
    # The emulator's throttle asks for a second; waiting that out is the gateway's
    # test, and would make a storm here take ten seconds.
    async with running_studio(
        db, tmp_path, latency_ms=150, seed=EMULATOR_SEED, retry_after_cap=0.05
    ) as made:
        yield made


SHOT_IMAGES = """query($id: ID!) { node(id: $id) { ... on Shot {
  latestIterationNumber
  iterations { iterationNumber status prompt parentImage { id }
    images { id variantNumber status imageUrl model metadata error predictionId } } } } }"""


async def wait_for_iteration(
    studio: Studio, owner: Account, shot_id: str, number: int
) -> dict[str, Any]:
    """Poll until the iteration's images are all finished; return the iteration."""
    deadline = time.monotonic() + DEADLINE
    while True:
        data = await studio.run(SHOT_IMAGES, {"id": shot_id}, owner.token)
        iteration: dict[str, Any] = next(
            i for i in data["node"]["iterations"] if i["iterationNumber"] == number
        )
        if all(image["status"] not in ("PENDING", "PROCESSING") for image in iteration["images"]):
            return iteration
        assert time.monotonic() < deadline, iteration
        await asyncio.sleep(0.1)


async def stored_image(studio: Studio, image_id: str) -> Image.Image:
    from schema import ids

    async with studio.db.session() as session:
        row = await session.get(ShotImageRow, ids.decode(image_id, "ShotImage"))
    assert row is not None
    assert row.storage_key is not None
    data = b"".join([chunk async for chunk in studio.storage.read(row.storage_key)])
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def new_shot(studio: Studio, owner: Account, *, prompt: str = "a lighthouse at dusk") -> str:
    pid = await project(studio.db, owner)
    made = await scene(studio.db, owner, pid, shots=[{"initialPrompt": prompt}])
    shot_id: str = made["shots"][0]["id"]
    return shot_id


async def generate(studio: Studio, owner: Account, shot_id: str, **extra: Any) -> dict[str, Any]:
    return await studio.mutate(
        "generateShotImages",
        {"shotId": shot_id, **extra},
        "iteration { iterationNumber status } images { id status variantNumber metadata }",
        owner.token,
    )


async def master_selection(studio: Studio, owner: Account, shot_id: str) -> str:
    """The ID of the shot's master selection: a one-image iteration generated, waited
    for, and its image selected as the master shot."""
    await generate(studio, owner, shot_id, variantCount=1)
    first = await wait_for_iteration(studio, owner, shot_id, 0)
    chosen = await studio.mutate(
        "selectMasterShot",
        {"shotId": shot_id, "imageId": first["images"][0]["id"]},
        "selection { id }",
        owner.token,
    )
    selection_id: str = chosen["selection"]["id"]
    return selection_id


async def test_an_iteration_of_six_completes_with_real_images_in_storage(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    started = await generate(studio, ann, shot_id)
    assert started["userErrors"] == []
    assert started["iteration"] == {"iterationNumber": 0, "status": "PENDING"}
    assert [i["status"] for i in started["images"]] == ["PENDING"] * 6
    assert [i["variantNumber"] for i in started["images"]] == [0, 1, 2, 3, 4, 5]
    seeds = [i["metadata"]["seed"] for i in started["images"]]
    assert len(set(seeds)) == 6

    done = await wait_for_iteration(studio, ann, shot_id, 0)
    assert done["status"] == "COMPLETE"
    assert done["prompt"] == "a lighthouse at dusk"
    pixels = []
    for image in done["images"]:
        assert image["status"] == "COMPLETE", image
        assert image["model"] == "black-forest-labs/flux-schnell"
        assert image["predictionId"]
        assert image["imageUrl"].startswith("http://testserver/media/images/")
        decoded = await stored_image(studio, image["id"])
        assert decoded.width > 0
        assert decoded.height > 0
        pixels.append(decoded.convert("RGB").resize((16, 16)).tobytes())
    assert len(set(pixels)) == 6, "every variant is a different image"


async def test_img2img_refines_a_parent_and_records_it(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    await generate(studio, ann, shot_id, variantCount=2)
    first = await wait_for_iteration(studio, ann, shot_id, 0)
    parent_id = first["images"][1]["id"]
    refined = await generate(
        studio,
        ann,
        shot_id,
        parentImageId=parent_id,
        prompt="the same lighthouse in a storm",
        variantCount=3,
        params={"prompt_strength": 0.4},
    )
    assert refined["userErrors"] == []
    assert refined["iteration"]["iterationNumber"] == 1
    done = await wait_for_iteration(studio, ann, shot_id, 1)
    assert done["status"] == "COMPLETE"
    assert done["parentImage"] == {"id": parent_id}
    assert done["prompt"] == "the same lighthouse in a storm"
    for image in done["images"]:
        assert image["model"] == "black-forest-labs/flux-dev"
        assert image["metadata"]["prompt_strength"] == 0.4
        await stored_image(studio, image["id"])


async def test_a_master_image_animates_into_a_playable_clip(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    selection_id = await master_selection(studio, ann, shot_id)
    started = await studio.mutate(
        "animateShot",
        {"selectionId": selection_id, "params": {"duration": 5}},
        "selection { animationStatus model }",
        ann.token,
    )
    assert started["userErrors"] == []
    assert started["selection"] == {"animationStatus": "PENDING", "model": "kwaivgi/kling-v2.1"}

    deadline = time.monotonic() + DEADLINE
    while True:
        data = await studio.run(
            """query($id: ID!) { node(id: $id) { ... on StoryboardSelection {
                animationStatus animatedVideoUrl error project { status progress { isAnimationComplete } } } } }""",
            {"id": selection_id},
            ann.token,
        )
        selection = data["node"]
        if selection["animationStatus"] not in ("PENDING", "PROCESSING"):
            break
        assert time.monotonic() < deadline, selection
        await asyncio.sleep(0.1)
    assert selection["animationStatus"] == "COMPLETE", selection
    assert selection["animatedVideoUrl"].startswith("http://testserver/media/videos/")
    assert selection["project"]["status"] == "ANIMATION_COMPLETE"
    assert selection["project"]["progress"]["isAnimationComplete"] is True

    async with studio.db.session() as session:
        from schema import ids

        row = await session.get(
            StoryboardSelectionRow, ids.decode(selection_id, "StoryboardSelection")
        )
    assert row is not None
    assert row.video_storage_key is not None
    path = studio.storage.root / row.video_storage_key
    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    count = sum(1 for _ in frames)
    assert meta["size"][0] > 0, meta
    assert count > 1, count


PROJECT_STATE = """query($id: ID!) { project(id: $id) { status
  progress { animationProgress isSelectionComplete isAnimationComplete }
  storyboard { animationStatus } } }"""


async def test_an_empty_scene_keeps_a_project_from_animation_complete(studio: Studio) -> None:
    ann = await account(studio.db)
    pid = await project(studio.db, ann)
    made = await scene(studio.db, ann, pid, shots=[{"initialPrompt": "a lighthouse"}])
    shot_id = made["shots"][0]["id"]
    selection_id = await master_selection(studio, ann, shot_id)
    assert (await studio.run(PROJECT_STATE, {"id": pid}, ann.token))["project"][
        "status"
    ] == "STORYBOARD_FINAL"
    # A scene without shots arrives: the project stays where it is, but is not complete.
    empty = await scene(studio.db, ann, pid, title="Later")

    started = await studio.mutate(
        "animateShot",
        {"selectionId": selection_id, "params": {"duration": 5}},
        "selection { animationStatus }",
        ann.token,
    )
    assert started["userErrors"] == []
    deadline = time.monotonic() + DEADLINE
    while True:
        state = (await studio.run(PROJECT_STATE, {"id": pid}, ann.token))["project"]
        if state["storyboard"][0]["animationStatus"] not in ("PENDING", "PROCESSING"):
            break
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    assert state == {
        "status": "STORYBOARD_FINAL",
        "progress": {
            "animationProgress": 100.0,
            "isSelectionComplete": False,
            "isAnimationComplete": False,
        },
        "storyboard": [{"animationStatus": "COMPLETE"}],
    }

    await studio.mutate("deleteScene", {"id": empty["id"]}, "deletedId", ann.token)
    state = (await studio.run(PROJECT_STATE, {"id": pid}, ann.token))["project"]
    assert state["status"] == "ANIMATION_COMPLETE"
    assert state["progress"]["isAnimationComplete"] is True


async def test_bad_params_are_user_errors_and_start_nothing(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    cases: list[tuple[dict[str, Any], list[tuple[str, list[str] | None]]]] = [
        ({"params": {"aspect_ratio": "7:3"}}, [("INVALID_PARAM", ["params", "aspect_ratio"])]),
        ({"params": {"steps": 4}}, [("INVALID_PARAM", ["params", "steps"])]),
        ({"params": "wide"}, [("INVALID_PARAM", ["params"])]),
        ({"variantCount": 13}, [("OUT_OF_RANGE", ["variantCount"])]),
        ({"variantCount": 0}, [("OUT_OF_RANGE", ["variantCount"])]),
        ({"model": "dall-e"}, [("UNKNOWN_MODEL", ["model"])]),
        ({"model": "kling-v2.1"}, [("WRONG_MODEL_KIND", ["model"])]),
        (
            {"model": "flux-dev", "params": {"prompt_strength": 1.5}},
            [("INVALID_PARAM", ["params", "prompt_strength"])],
        ),
    ]
    for extra, expected in cases:
        payload = await generate(studio, ann, shot_id, **extra)
        assert [(e["code"], e["field"]) for e in payload["userErrors"]] == expected, extra
        assert payload["iteration"] is None
    data = await studio.run(SHOT_IMAGES, {"id": shot_id}, ann.token)
    assert data["node"]["iterations"] == []


async def test_params_are_refused_as_generation_models_lists_them(studio: Studio) -> None:
    """Every listed parameter of every model, given a value its listing rules out, is an
    INVALID_PARAM user error at `params.<name>`, and nothing starts."""
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    selection_id = await master_selection(studio, ann, shot_id)
    listed = await studio.run(
        "{ generationModels { key kinds parameters { name type default minimum maximum choices "
        "maxLength } } }",
        {},
        ann.token,
    )
    tried: set[str] = set()
    for model in listed["generationModels"]:
        if "IMAGE_TO_VIDEO" in model["kinds"]:
            name, target = "animateShot", {"selectionId": selection_id}
            selection = "selection { id }"
        elif "TEXT_TO_IMAGE" in model["kinds"]:
            name, target = "generateShotImages", {"shotId": shot_id}
            selection = "iteration { iterationNumber }"
        else:
            continue  # no mutation takes a text model
        cases = [(param["name"], value) for param in model["parameters"] for value in bad(param)]
        cases.append(("strength", 0.5))  # not a parameter of any model
        for param_name, value in cases:
            payload = await studio.mutate(
                name,
                {**target, "model": model["key"], "params": {param_name: value}},
                selection,
                ann.token,
            )
            errors = payload.pop("userErrors")
            assert [(e["code"], e["field"]) for e in errors] == [
                ("INVALID_PARAM", ["params", param_name])
            ], (model["key"], param_name, value, errors)
            assert f"`{param_name}`" in errors[0]["message"]
            assert all(v is None for v in payload.values())
            tried.add(model["key"])
    assert tried == {"flux-schnell", "flux-dev", "kling-v2.1", "minimax-video-01", "wan-2.1-i2v"}
    data = await studio.run(SHOT_IMAGES, {"id": shot_id}, ann.token)
    assert data["node"]["latestIterationNumber"] == 0, "no iteration was started"
    node = await studio.run(
        "query($id: ID!) { node(id: $id) { ... on StoryboardSelection { animationStatus } } }",
        {"id": selection_id},
        ann.token,
    )
    assert node["node"]["animationStatus"] is None, "no animation was started"


def bad(param: dict[str, Any]) -> list[Any]:
    """Values a parameter's listing rules out: another JSON type, just past a limit, a
    string where a number is listed, a value that is not one of the choices."""
    low, high = param["minimum"], param["maximum"]
    match param["type"]:
        case "INT":
            values: list[Any] = [param["default"] + 0.5, str(param["default"]), True]
        case "FLOAT":
            values = [str(param["default"]), False]
        case "STRING":
            values = [7, "x" * (param["maxLength"] + 1)]
        case "BOOLEAN":
            values = ["true", 1]
        case _:
            values = ["no such choice"] + [
                str(choice) for choice in param["choices"] if isinstance(choice, int)
            ]
    if low is not None:
        values.append(low - (1 if param["type"] == "INT" else 0.25))
    if high is not None:
        values.append(high + (1 if param["type"] == "INT" else 0.25))
    return values


async def test_a_wan_clip_with_its_parameters(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    selection_id = await master_selection(studio, ann, shot_id)
    params = {"aspect_ratio": "9:16", "fast_mode": "Fast", "sample_steps": 12}
    started = await studio.mutate(
        "animateShot",
        {"selectionId": selection_id, "model": "wan-2.1-i2v", "params": params},
        "selection { animationStatus model }",
        ann.token,
    )
    assert started["userErrors"] == []
    assert started["selection"]["model"] == "wavespeedai/wan-2.1-i2v-480p"
    deadline = time.monotonic() + DEADLINE
    while True:
        data = await studio.run(
            "query($id: ID!) { node(id: $id) { ... on StoryboardSelection { animationStatus "
            "error } } }",
            {"id": selection_id},
            ann.token,
        )
        if data["node"]["animationStatus"] not in ("PENDING", "PROCESSING"):
            break
        assert time.monotonic() < deadline, data
        await asyncio.sleep(0.1)
    assert data["node"] == {"animationStatus": "COMPLETE", "error": None}
    token = studio.emulator.api_token
    async with httpx.AsyncClient(
        base_url=studio.generation_engine.gateway.base_url,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        listed = (await client.get("/v1/predictions")).json()["results"]
    (sent,) = [p for p in listed if p["model"] == "wavespeedai/wan-2.1-i2v-480p"]
    assert {key: sent["input"][key] for key in params} == params
    # Every listed parameter went out, with its default where none was given.
    assert sent["input"]["sample_guide_scale"] == 5.0
    assert sent["input"]["negative_prompt"] == ""


async def test_cancel_then_retry(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    studio.emulator.latency_ms = 5000  # slow enough to cancel while it runs
    started = await generate(studio, ann, shot_id, variantCount=1)
    image_id = started["images"][0]["id"]
    canceled = await studio.mutate(
        "cancelGeneration", {"id": image_id}, "image { status }", ann.token
    )
    assert canceled["userErrors"] == []
    assert canceled["image"]["status"] == "CANCELED"
    again = await studio.mutate("cancelGeneration", {"id": image_id}, "image { status }", ann.token)
    assert [e["code"] for e in again["userErrors"]] == ["NOT_RUNNING"]

    studio.emulator.latency_ms = 100
    retried = await studio.mutate(
        "retryGeneration", {"id": image_id}, "image { status }", ann.token
    )
    assert retried["userErrors"] == []
    assert retried["image"]["status"] == "PENDING"
    done = await wait_for_iteration(studio, ann, shot_id, 0)
    assert done["images"][0]["status"] == "COMPLETE"
    twice = await studio.mutate("retryGeneration", {"id": image_id}, "image { status }", ann.token)
    assert [e["code"] for e in twice["userErrors"]] == ["NOT_RETRYABLE"]


async def test_failures_at_the_provider_are_reported_and_retryable(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    studio.emulator.failure_rate = 1.0
    await generate(studio, ann, shot_id, variantCount=2)
    done = await wait_for_iteration(studio, ann, shot_id, 0)
    assert done["status"] == "FAILED"
    assert all(image["error"] for image in done["images"])
    studio.emulator.failure_rate = 0.0
    for image in done["images"]:
        payload = await studio.mutate(
            "retryGeneration", {"id": image["id"]}, "image { status }", ann.token
        )
        assert payload["userErrors"] == []
    assert (await wait_for_iteration(studio, ann, shot_id, 0))["status"] == "COMPLETE"


async def test_a_storm_of_429s_still_completes(
    studio: Studio, caplog: pytest.LogCaptureFixture
) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    studio.emulator.throttle_rate = 0.6
    with caplog.at_level(logging.INFO, logger="studio.replicate"):
        await generate(studio, ann, shot_id, variantCount=6)
        done = await wait_for_iteration(studio, ann, shot_id, 0)
    studio.emulator.throttle_rate = 0.0
    assert [image["status"] for image in done["images"]] == ["COMPLETE"] * 6
    retried = [r for r in caplog.records if "answered 429" in r.getMessage()]
    assert len(retried) >= 6, "no storm: fewer 429s than images"


async def test_a_provider_that_is_down_opens_the_circuit_with_a_clear_error(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    studio.emulator.down = True
    first = await generate(studio, ann, shot_id, variantCount=3)
    assert first["userErrors"] == []  # accepted: nothing had failed yet
    deadline = time.monotonic() + DEADLINE
    while studio.generation_engine.provider_available():
        assert time.monotonic() < deadline, "the circuit never opened"
        await asyncio.sleep(0.05)
    refused = await generate(studio, ann, shot_id)
    assert [e["code"] for e in refused["userErrors"]] == ["PROVIDER_UNAVAILABLE"]
    assert refused["iteration"] is None

    studio.emulator.down = False  # back: after the cooldown one trial call closes the circuit
    done = await wait_for_iteration(studio, ann, shot_id, 0)
    assert [image["status"] for image in done["images"]] == ["COMPLETE"] * 3
    assert studio.generation_engine.provider_available()


async def test_generation_models_lists_defaults_and_parameters(studio: Studio) -> None:
    ann = await account(studio.db)
    data = await studio.run(
        "{ generationModels { key replicateModel kinds defaultFor parameters { name type default choices } } }",
        {},
        ann.token,
    )
    models = {m["key"]: m for m in data["generationModels"]}
    assert models["flux-schnell"]["defaultFor"] == ["TEXT_TO_IMAGE"]
    assert models["flux-dev"]["defaultFor"] == ["IMAGE_TO_IMAGE"]
    assert models["kling-v2.1"]["defaultFor"] == ["IMAGE_TO_VIDEO"]
    strength = next(p for p in models["flux-dev"]["parameters"] if p["name"] == "prompt_strength")
    assert strength == {"name": "prompt_strength", "type": "FLOAT", "default": 0.8, "choices": None}


async def test_refining_needs_a_complete_image_of_the_same_shot_of_your_team(
    studio: Studio,
) -> None:
    ann = await account(studio.db)
    bob = await account(studio.db, name="Bob")
    shot_id = await new_shot(studio, ann)
    other_shot = await new_shot(studio, ann, prompt="a different shot")
    foreign_shot = await new_shot(studio, bob, prompt="bob's shot")
    await generate(studio, ann, other_shot, variantCount=1)
    await generate(studio, bob, foreign_shot, variantCount=1)
    mine = (await wait_for_iteration(studio, ann, other_shot, 0))["images"][0]["id"]
    theirs = (await wait_for_iteration(studio, bob, foreign_shot, 0))["images"][0]["id"]
    studio.emulator.failure_rate = 1.0
    await generate(studio, ann, shot_id, variantCount=1)
    failed = (await wait_for_iteration(studio, ann, shot_id, 0))["images"][0]
    studio.emulator.failure_rate = 0.0
    assert failed["status"] == "FAILED"

    wrong_shot = await generate(studio, ann, shot_id, parentImageId=mine)
    assert [e["code"] for e in wrong_shot["userErrors"]] == ["PARENT_IMAGE_NOT_IN_SHOT"]
    foreign = await generate(studio, ann, shot_id, parentImageId=theirs)
    assert [(e["code"], e["field"]) for e in foreign["userErrors"]] == [
        ("NOT_FOUND", ["parentImageId"])
    ]
    not_ready = await generate(studio, ann, shot_id, parentImageId=failed["id"])
    assert [e["code"] for e in not_ready["userErrors"]] == ["IMAGE_NOT_READY"]
    data = await studio.run(SHOT_IMAGES, {"id": shot_id}, ann.token)
    assert data["node"]["latestIterationNumber"] == 0, "nothing was started"


async def test_concurrent_iterations_never_share_a_number(studio: Studio) -> None:
    ann = await account(studio.db)
    shot_id = await new_shot(studio, ann)
    started = await asyncio.gather(
        *(generate(studio, ann, shot_id, variantCount=2) for _ in range(4))
    )
    assert all(payload["userErrors"] == [] for payload in started)
    assert sorted(p["iteration"]["iterationNumber"] for p in started) == [0, 1, 2, 3]
    for number in range(4):
        done = await wait_for_iteration(studio, ann, shot_id, number)
        assert [image["variantNumber"] for image in done["images"]] == [0, 1]


async def test_the_webhook_secret_is_fetched_from_the_provider_when_not_configured(
    studio: Studio,
) -> None:
    assert studio.generation_engine.settings.webhook_secret is None
    assert await studio.generation_engine.secret() == studio.emulator.webhook_secret


@dataclass
class FlakyFiles:
    """A file server that fails the first `failures` requests, like a CDN having a bad minute."""

    failures: int
    body: bytes
    calls: int = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        self.calls += 1
        gone = scope["path"].startswith("/gone")
        status = 404 if gone else (503 if self.calls <= self.failures else 200)
        body = self.body if status == 200 else b"no"
        headers = [(b"content-type", b"image/png" if status == 200 else b"text/plain")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _image_awaiting_copy(studio: Studio, owner: Account, url: str) -> int:
    """A shot image whose prediction succeeded, with its output still at `url`.

    It is written PROCESSING from the start: a PENDING row would be claimed and
    submitted by the running engine before the test could fill it in.
    """
    from schema import ids

    shot_id = await new_shot(studio, owner)
    async with studio.db.transaction() as session:
        row = ShotImageRow(
            shot_id=ids.decode(shot_id, "Shot"),
            iteration_number=0,
            variant_number=0,
            status=GenerationStatus.PROCESSING,
            iteration_prompt="p",
            provider_output=[url],
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        row.prediction_id = f"copy-test-{row.id}"
        image_id: int = row.id
    return image_id


async def test_an_output_copy_that_fails_is_retried_until_it_succeeds(studio: Studio) -> None:
    import uvicorn

    from api.embedded import _QuietServer

    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(png, format="PNG")
    files = FlakyFiles(failures=4, body=png.getvalue())
    port = free_port()
    server = _QuietServer(uvicorn.Config(files, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.02)
    # The file host is allowed by name, as an emulator's would be; failed copies
    # are tried again after a short pause.
    await studio.generation_engine.stop()
    studio.generation_engine = GenerationEngine(
        studio.db,
        studio.generation_engine.gateway,
        studio.storage,
        EngineSettings(
            poll_interval=0.1, output_hosts=(f"127.0.0.1:{port}",), copy_retry_seconds=0.05
        ),
    )
    studio.generation_engine.start()
    try:
        ann = await account(studio.db)
        flaky = await _image_awaiting_copy(studio, ann, f"http://127.0.0.1:{port}/out.png")
        gone = await _image_awaiting_copy(studio, ann, f"http://127.0.0.1:{port}/gone/out.png")
        deadline = time.monotonic() + DEADLINE
        while True:
            async with studio.db.session() as session:
                rows = [
                    await session.get(ShotImageRow, flaky),
                    await session.get(ShotImageRow, gone),
                ]
            statuses = [row.status if row else None for row in rows]
            if all(status in ("COMPLETE", "FAILED") for status in statuses):
                break
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.05)
    finally:
        await studio.generation_engine.stop()
        server.should_exit = True
        await task
    copied, expired = rows
    assert copied is not None
    assert expired is not None
    assert copied.status == "COMPLETE"
    assert files.calls >= 5, "the first attempts failed and later sweeps tried again"
    assert copied.storage_key is not None
    assert copied.provider_output is None
    assert await studio.storage.stat(copied.storage_key) is not None
    assert expired.status == "FAILED"
    assert expired.error == "The provider no longer has this output."


async def test_one_dispatch_submits_more_than_a_batch(studio: Studio) -> None:
    await studio.generation_engine.stop()  # only the engine below submits
    owner = await account(studio.db)
    shot_id = await new_shot(studio, owner)
    started = await generate(studio, owner, shot_id, variantCount=6)
    assert started["userErrors"] == []
    generation_engine = GenerationEngine(
        studio.db, studio.generation_engine.gateway, studio.storage, EngineSettings(batch=2)
    )
    await generation_engine.dispatch_pending()  # one call: three full batches and an empty one
    data = await studio.run(SHOT_IMAGES, {"id": shot_id}, owner.token)
    images = data["node"]["iterations"][0]["images"]
    assert len(images) == 6
    assert all(image["predictionId"] for image in images), images


async def test_a_finished_animation_never_overwrites_a_concurrent_status_change(
    studio: Studio,
) -> None:
    """The engine advances a project's status under the project's lock, as every writer does.

    A person sets the status to ANIMATION_COMPLETE in a transaction that holds the
    project while one of two animations finishes. Unlocked, the engine read the old
    status (SHOT_ITERATION), waited only to write, and put back STORYBOARD_FINAL over
    the person's change; locked, it reads the status after the change, and leaves it.
    """
    from sqlalchemy import text

    from schema import ids
    from services.accounts.access import Actor
    from services.storyboard.projects import update_project
    from services.tables import TeamRole, WorkflowStatus

    if studio.db.is_sqlite:
        pytest.skip("SQLite runs one writer at a time: nothing can interleave")
    ann = await account(studio.db)
    pid = await project(studio.db, ann)
    made = await scene(studio.db, ann, pid, shots=2)
    selections = []
    for shot in made["shots"]:
        selections.append(await master_selection(studio, ann, shot["id"]))
    moved = await studio.mutate(
        "updateProject", {"id": pid, "status": "SHOT_ITERATION"}, "project { status }", ann.token
    )
    assert moved["project"] == {"status": "SHOT_ITERATION"}

    # No engine runs while the animation is asked for and the project is locked.
    await studio.generation_engine.stop()
    started = await studio.mutate(
        "animateShot",
        {"selectionId": selections[0], "params": {"duration": 5}},
        "selection { animationStatus }",
        ann.token,
    )
    assert started["userErrors"] == []
    actor = Actor(
        ids.decode(ann.user_id, "User"), {ids.decode(ann.team_id, "Team"): TeamRole.OWNER}
    )

    async def waiting_for_a_lock() -> int:
        async with studio.db.engine.connect() as connection:
            found = await connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return int(found or 0)

    async with studio.db.transaction() as session:
        await update_project(
            session,
            actor,
            project_id=ids.decode(pid, "Project"),
            status=WorkflowStatus.ANIMATION_COMPLETE,
        )
        await session.flush()
        studio.generation_engine = GenerationEngine(
            studio.db,
            studio.generation_engine.gateway,
            studio.storage,
            EngineSettings(poll_interval=0.1),
        )
        studio.generation_engine.start()
        # The engine finishes the animation and stops at the project's lock.
        deadline = time.monotonic() + DEADLINE
        while await waiting_for_a_lock() == 0:
            assert time.monotonic() < deadline, "the engine never reached the project"
            await asyncio.sleep(0.05)

    deadline = time.monotonic() + DEADLINE
    while True:
        state = (await studio.run(PROJECT_STATE, {"id": pid}, ann.token))["project"]
        if state["storyboard"][0]["animationStatus"] not in ("PENDING", "PROCESSING"):
            break
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.1)
    assert state["storyboard"][0]["animationStatus"] == "COMPLETE"
    assert state["status"] == "ANIMATION_COMPLETE", "the person's change was overwritten"
