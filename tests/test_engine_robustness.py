"""The generation engine under bad rows, busy teams and a provider that forgets.

Each test runs its own GenerationEngine against the built-in emulator over real
HTTP (a fresh one per test, so the emulator sees only that test's predictions)
and drives the API through the GraphQL schema.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from api.embedded import embedded_emulator
from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from services.database import Database
from services.generation.catalog import Param
from services.generation.engine import EngineSettings, GenerationEngine
from services.media.storage import LocalStorage
from services.replicate.emulator import EmulatorConfig
from services.tables import ShotImageRow
from services.validation import Checks
from tests.emulator_harness import quick_gateway
from tests.factories import (
    MEDIA,
    account,
    input_type,
    mutate_ok,
    project,
    scene,
    settle_generations,
)

DEADLINE = 30.0


class Provider:
    """An embedded emulator that can be restarted: a new one knows no predictions."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.stack = stack
        self.base_url = ""
        self.config: EmulatorConfig | None = None

    async def start(self, latency_ms: int) -> None:
        self.base_url, self.config = await self.stack.enter_async_context(
            embedded_emulator(latency_ms=latency_ms)
        )

    async def predictions(self) -> list[dict[str, Any]]:
        """Every prediction it has, oldest first (it runs on this event loop: ask async)."""
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.base_url}/v1/predictions"
        assert self.config is not None
        headers = {"Authorization": f"Bearer {self.config.api_token}"}
        async with httpx.AsyncClient(timeout=5, trust_env=False, headers=headers) as http:
            while url:
                page = (await http.get(url)).json()
                found.extend(page["results"])
                url = page["next"]
        return found[::-1]


def generation_engine_for(
    db: Database, provider: Provider, media: Path, **settings: Any
) -> GenerationEngine:
    assert provider.config is not None
    # The embedded emulator, like Replicate, answers only with its token.
    gateway = quick_gateway(provider.base_url, provider.config.api_token, call_timeout=5.0)
    return GenerationEngine(
        db, gateway, LocalStorage(media), EngineSettings(poll_interval=0.1, **settings)
    )


@pytest.fixture
async def stack(db: Database) -> AsyncIterator[AsyncExitStack]:
    await settle_generations(db)
    async with AsyncExitStack() as exits:
        yield exits
    await settle_generations(db)


async def mutation(
    db: Database, generation_engine: GenerationEngine, name: str, input: dict[str, Any], token: str
) -> dict[str, Any]:
    """Run `name(input:)` with generation available; return its payload."""
    query = (
        f"mutation($input: {input_type(name)}!) {{ {name}(input: $input) "
        "{ userErrors { code field message } } }"
    )
    context = await build_context(
        Resources(db=db, media=MEDIA, generation_engine=generation_engine), token
    )
    result = await schema.execute(query, variable_values={"input": input}, context_value=context)
    assert result.errors is None, [e.formatted for e in result.errors]
    assert result.data is not None
    payload: dict[str, Any] = result.data[name]
    return payload


async def new_shot(db: Database, token_owner: Any) -> str:
    pid = await project(db, token_owner)
    made = await scene(db, token_owner, pid, shots=[{"initialPrompt": "a harbour at dawn"}])
    shot_id: str = made["shots"][0]["id"]
    return shot_id


async def queue_images(
    db: Database,
    generation_engine: GenerationEngine,
    owner: Any,
    count: int,
    *,
    iterations: int = 1,
) -> list[int]:
    """`iterations` iterations of `count` PENDING images on a new shot; their row ids."""
    shot_id = await new_shot(db, owner)
    for _ in range(iterations):
        started = await mutation(
            db,
            generation_engine,
            "generateShotImages",
            {"shotId": shot_id, "variantCount": count},
            owner.token,
        )
        assert started["userErrors"] == [], started
    shot = ids.decode(shot_id, "Shot")
    async with db.session() as session:
        rows = await session.exec(
            select(ShotImageRow.id)
            .where(ShotImageRow.shot_id == shot)
            .order_by(col(ShotImageRow.id))
        )
        return [int(row_id or 0) for row_id in rows]


async def row(db: Database, row_id: int) -> ShotImageRow:
    async with db.session() as session:
        found = await session.get(ShotImageRow, row_id)
        assert found is not None
        return found


async def until(
    probe: Callable[[], Awaitable[bool]], *, within: float = DEADLINE, what: str
) -> float:
    """Wait until `probe` is true; return the seconds it took."""
    began = time.monotonic()
    while not await probe():
        assert time.monotonic() - began < within, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


# --- one bad row ----------------------------------------------------------------


async def test_a_poisoned_row_fails_alone_and_never_holds_up_another_team(
    db: Database, stack: AsyncExitStack, tmp_path: Path
) -> None:
    provider = Provider(stack)
    await provider.start(latency_ms=150)
    generation_engine = generation_engine_for(db, provider, tmp_path / "media", max_tries=3)
    stack.push_async_callback(generation_engine.gateway.aclose)
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    (poisoned,) = await queue_images(db, generation_engine, ann, 1)
    (healthy,) = await queue_images(db, generation_engine, bob, 1)
    # A row stored before parameters were checked as they are now: on SQLite the
    # reported NaN (PostgreSQL's JSONB cannot even hold one), on PostgreSQL
    # metadata that is not an object. Either makes its submission raise.
    poison: Any = {"prompt_strength": math.nan} if db.is_sqlite else ["not", "an", "object"]
    async with db.transaction() as session:
        stored = await session.get(ShotImageRow, poisoned)
        assert stored is not None
        stored.generation_metadata = (
            {**(stored.generation_metadata or {}), **poison} if db.is_sqlite else poison
        )

    generation_engine.start()
    stack.push_async_callback(generation_engine.stop)
    took = await until(
        _status_of(db, healthy, "COMPLETE"), within=15.0, what="the other team's image"
    )
    assert took < 15.0
    await until(_status_of(db, poisoned, "FAILED"), what="the poisoned row to fail")
    failed = await row(db, poisoned)
    # Stored parameters are checked again at submission (services.generation.catalog.provider_input):
    # ones that are not valid now fail the row at once, no try wasted on the provider.
    assert failed.failed_tries == 0
    assert failed.prediction_id is None
    assert failed.error is not None
    assert "stored parameters are not valid" in failed.error, failed.error
    healthy_seed = ((await row(db, healthy)).generation_metadata or {})["seed"]
    sent = await provider.predictions()  # only the healthy row ever reached the provider
    assert [p["input"]["seed"] for p in sent] == [healthy_seed]


def _status_of(db: Database, row_id: int, status: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return (await row(db, row_id)).status == status

    return probe


# --- fair shares ----------------------------------------------------------------


async def test_one_teams_queue_never_delays_another_teams_image(
    db: Database, stack: AsyncExitStack, tmp_path: Path
) -> None:
    provider = Provider(stack)
    await provider.start(latency_ms=60_000)  # nothing finishes: only the order matters
    generation_engine = generation_engine_for(db, provider, tmp_path / "media", batch=4)
    stack.push_async_callback(generation_engine.gateway.aclose)
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    busy = await queue_images(db, generation_engine, ann, 12, iterations=2)  # 24 queued first
    (single,) = await queue_images(db, generation_engine, bob, 1)

    await generation_engine.dispatch_pending()
    created = [p["id"] for p in await provider.predictions()]
    assert len(created) == 25
    bob_prediction = (await row(db, single)).prediction_id
    # Bob's one image went out in the first batch of four, not after Ann's 24.
    assert bob_prediction in created[:4], (created.index(bob_prediction or ""), busy[:1])


async def test_many_teams_of_one_user_share_one_fair_share(
    db: Database, stack: AsyncExitStack, tmp_path: Path
) -> None:
    """Fair shares go by who owns the work, not by team: anyone can create teams, so a
    user with forty teams would otherwise take forty turns before anyone else's one."""
    provider = Provider(stack)
    await provider.start(latency_ms=60_000)
    generation_engine = generation_engine_for(db, provider, tmp_path / "media", batch=4)
    stack.push_async_callback(generation_engine.gateway.aclose)
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    for n in range(8):  # one image in each of eight teams of Ann's, all queued first
        made = await mutate_ok(db, "createTeam", {"name": f"T{n}"}, "team { id }", token=ann.token)
        pid = await project(db, ann, team_id=made["team"]["id"])
        shot_id = (await scene(db, ann, pid, shots=[{"initialPrompt": "a lighthouse"}]))["shots"][
            0
        ]["id"]
        started = await mutation(
            db,
            generation_engine,
            "generateShotImages",
            {"shotId": shot_id, "variantCount": 1},
            ann.token,
        )
        assert started["userErrors"] == [], started
    (single,) = await queue_images(db, generation_engine, bob, 1)

    await generation_engine.dispatch_pending()
    created = [p["id"] for p in await provider.predictions()]
    assert len(created) == 9
    bob_prediction = (await row(db, single)).prediction_id
    assert bob_prediction in created[:4], created.index(bob_prediction or "")


# --- a provider that forgets ---------------------------------------------------------


async def test_a_lost_prediction_is_submitted_again_once_then_failed(
    db: Database, stack: AsyncExitStack, tmp_path: Path
) -> None:
    first = Provider(stack)
    await first.start(latency_ms=60_000)
    generation_engine = generation_engine_for(db, first, tmp_path / "media")
    ann = await account(db, name="Ann")
    images = await queue_images(db, generation_engine, ann, 2)
    await generation_engine.sweep()
    original = [(await row(db, image)).prediction_id for image in images]
    assert all(original)
    await generation_engine.gateway.aclose()

    # The provider restarts and knows nothing: the next poll submits each once more.
    second = Provider(stack)
    await second.start(latency_ms=60_000)
    generation_engine = generation_engine_for(db, second, tmp_path / "media")
    await asyncio.sleep(0.2)  # past the poll interval (0.1 s): both predictions are due
    await generation_engine.poll_running()
    for image in images:
        lost_once = await row(db, image)
        assert lost_once.status == "PENDING"
        assert lost_once.prediction_id is None
        assert lost_once.resubmissions == 1
    await generation_engine.sweep()
    again = [(await row(db, image)).prediction_id for image in images]
    assert all(again)
    assert {p["id"] for p in await second.predictions()} == set(again)
    await generation_engine.gateway.aclose()

    # Lost a second time: FAILED with a clear error, and polled no more.
    third = Provider(stack)
    await third.start(latency_ms=100)
    generation_engine = generation_engine_for(db, third, tmp_path / "media")
    stack.push_async_callback(generation_engine.gateway.aclose)
    await asyncio.sleep(0.2)  # past the poll interval, as above
    await generation_engine.poll_running()
    for image in images:
        failed = await row(db, image)
        assert failed.status == "FAILED"
        assert failed.error is not None
        assert "lost this generation twice" in failed.error
    await generation_engine.sweep()
    assert await third.predictions() == []  # neither polled forever nor submitted a third time

    # Retryable: a retry starts afresh and completes.
    for image in images:
        retried = await mutation(
            db,
            generation_engine,
            "retryGeneration",
            {"id": ids.encode("ShotImage", image)},
            ann.token,
        )
        assert retried["userErrors"] == [], retried
    generation_engine.start()
    stack.push_async_callback(generation_engine.stop)
    for image in images:
        await until(_status_of(db, image, "COMPLETE"), what="the retry")


# --- parameters ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
async def test_non_finite_params_are_refused_before_anything_is_stored(
    db: Database, stack: AsyncExitStack, tmp_path: Path, value: float
) -> None:
    """The JSON scalar refuses them first; the model's own check is the next line of defence
    (test_every_float_param_refuses_non_finite_numbers)."""
    provider = Provider(stack)
    await provider.start(latency_ms=100)
    generation_engine = generation_engine_for(db, provider, tmp_path / "media")
    stack.push_async_callback(generation_engine.gateway.aclose)
    ann = await account(db, name="Ann")
    shot_id = await new_shot(db, ann)
    name = "generateShotImages"
    query = (
        f"mutation($input: {input_type(name)}!) {{ {name}(input: $input) "
        "{ userErrors { code field message } } }"
    )
    context = await build_context(
        Resources(db=db, media=MEDIA, generation_engine=generation_engine), ann.token
    )
    input = {"shotId": shot_id, "model": "flux-dev", "params": {"prompt_strength": value}}
    result = await schema.execute(query, variable_values={"input": input}, context_value=context)
    assert result.data is None
    [error] = result.errors or []
    assert (error.extensions or {}).get("code") == "BAD_USER_INPUT"
    assert "params" in error.message
    assert "NaN and Infinity" in error.message
    async with db.session() as session:
        shot = ids.decode(shot_id, "Shot")
        stored = (
            await session.exec(select(ShotImageRow).where(ShotImageRow.shot_id == shot))
        ).all()
    assert stored == []


def test_every_float_param_refuses_non_finite_numbers() -> None:
    for value in (math.nan, math.inf, -math.inf):
        checks = Checks()
        unbounded = Param.number("weight", 1.0, "A weight with no bounds.")
        assert unbounded.check(checks, value, ("params", "weight")) is None
        assert [error.code for error in checks.errors] == ["INVALID_PARAM"]


# --- a create whose answer never came -------------------------------------------------


async def test_a_create_whose_answer_was_lost_is_adopted_not_duplicated(
    db: Database, stack: AsyncExitStack, tmp_path: Path
) -> None:
    provider = Provider(stack)
    await provider.start(latency_ms=300)
    assert provider.config is not None
    generation_engine = generation_engine_for(db, provider, tmp_path / "media")
    stack.push_async_callback(generation_engine.gateway.aclose)
    generation_engine.gateway.call_timeout = 1.0
    ann = await account(db, name="Ann")
    (image,) = await queue_images(db, generation_engine, ann, 1)

    # The provider makes the prediction but answers after the call's budget is spent.
    provider.config.create_response_delay_ms = 3000
    await generation_engine.dispatch_pending()
    waiting = await row(db, image)
    assert waiting.status == "PENDING"
    assert waiting.prediction_id is None
    assert waiting.submitted_at is not None  # a create went out; its answer never came
    (orphan,) = await provider.predictions()

    provider.config.create_response_delay_ms = 0
    await generation_engine.dispatch_pending()
    adopted = await row(db, image)
    assert adopted.prediction_id == orphan["id"]
    assert adopted.submitted_at is None
    assert [p["id"] for p in await provider.predictions()] == [orphan["id"]]  # no second one
    generation_engine.start()
    stack.push_async_callback(generation_engine.stop)
    await until(_status_of(db, image, "COMPLETE"), what="the adopted prediction")


async def test_a_prediction_that_cannot_be_followed_fails_after_bounded_polls(
    db: Database, stack: AsyncExitStack, tmp_path: Path
) -> None:
    provider = Provider(stack)
    await provider.start(latency_ms=60_000)
    assert provider.config is not None
    generation_engine = generation_engine_for(db, provider, tmp_path / "media", max_tries=3)
    stack.push_async_callback(generation_engine.gateway.aclose)
    ann = await account(db, name="Ann")
    (image,) = await queue_images(db, generation_engine, ann, 1)
    await generation_engine.dispatch_pending()
    running = await row(db, image)
    assert running.prediction_id is not None

    # From now on the provider refuses our reads (401): every poll is a failed try.
    provider.config.api_token = "a token we do not have"
    for _ in range(3):
        await asyncio.sleep(0.15)  # older than the poll interval: due for a poll
        await generation_engine.poll_running()
    failed = await row(db, image)
    assert failed.status == "FAILED"
    assert failed.failed_tries == 3
    assert failed.error is not None
    assert "could not be followed after 3 tries" in failed.error, failed.error
    await asyncio.sleep(0.15)
    await generation_engine.poll_running()  # no longer asked about
    assert (await row(db, image)).failed_tries == 3
