"""Generation figures for `studio bench`: our overhead per iteration, and webhook ingestion.

The emulator runs in a separate process (`studio emulator`, no latency), so the
CPU time measured here is the server's own: mutations, submitting, following,
downloading and storing, not the provider's work of making images.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlmodel import func, select

import migrations
from api.bench.processes import (
    EMULATOR_READY,
    EMULATOR_TOKEN,
    post_webhook,
    studio_process,
)
from api.embedded import _QuietServer
from api.environment import studio_env
from api.graphql import build_context
from api.ports import free_port
from api.schema import schema
from schema import ids
from schema.context import Resources
from services.database import Database
from services.generation.engine import EngineSettings, GenerationEngine
from services.media.storage import LocalStorage, MediaLinks
from services.replicate.gateway import ReplicateGateway
from services.tables import GenerationStatus, ShotImageRow

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"bench webhook signing key, 32 b").decode()


@contextlib.contextmanager
def _emulator_process(directory: Path) -> Iterator[str]:
    env = studio_env(
        EMULATOR_LATENCY_MS="0",
        REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        REPLICATE_API_TOKEN=EMULATOR_TOKEN,
    )
    with studio_process("emulator", env, directory, EMULATOR_READY) as (base_url, _):
        yield base_url


async def _run(
    resources: Resources, token: str | None, query: str, variables: dict[str, Any]
) -> Any:
    result = await schema.execute(
        query, variables, context_value=await build_context(resources, token)
    )
    if result.errors:
        raise RuntimeError(result.errors[0].message)
    return result.data


@contextlib.asynccontextmanager
async def _studio(
    directory: Path, base_url: str
) -> AsyncIterator[tuple[Resources, GenerationEngine]]:
    db = Database(f"sqlite+aiosqlite:///{directory / 'bench.db'}")
    await migrations.upgrade_to_head(db)
    gateway = ReplicateGateway(api_token=EMULATOR_TOKEN, base_url=base_url)
    generation_engine = GenerationEngine(
        db,
        gateway,
        LocalStorage(directory / "media"),
        EngineSettings(webhook_secret=WEBHOOK_SECRET, poll_interval=0.05),
    )
    generation_engine.start()
    try:
        yield (
            Resources(
                db=db,
                media=MediaLinks(secrets.token_urlsafe(32), "http://bench"),
                generation_engine=generation_engine,
            ),
            generation_engine,
        )
    finally:
        await generation_engine.stop()
        await gateway.aclose()
        await db.dispose()


async def _shot(resources: Resources) -> tuple[str, str]:
    signed = await _run(
        resources,
        None,
        "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
        {
            "i": {
                "email": f"bench-{secrets.token_hex(4)}@example.com",
                "password": "bench password",
                "name": "B",
            }
        },
    )
    token = signed["signUp"]["token"]
    project = await _run(
        resources,
        token,
        'mutation { createProject(input: {title: "Bench"}) { project { id } } }',
        {},
    )
    scene = await _run(
        resources,
        token,
        'mutation($p: ID!) { createScene(input: {projectId: $p, title: "S", '
        'shots: [{initialPrompt: "bench"}]}) { scene { shots { id } } } }',
        {"p": project["createProject"]["project"]["id"]},
    )
    return token, scene["createScene"]["scene"]["shots"][0]["id"]


async def _iteration(resources: Resources, token: str, shot_id: str) -> None:
    """Start an iteration of 6 and wait, with a cheap query every 50 ms, until all are COMPLETE."""
    started = await _run(
        resources,
        token,
        "mutation($s: ID!) { generateShotImages(input: {shotId: $s}) "
        "{ iteration { iterationNumber } userErrors { message } } }",
        {"s": shot_id},
    )
    number = started["generateShotImages"]["iteration"]["iterationNumber"]
    shot_pk = ids.decode(shot_id, "Shot")
    waiting = (
        select(func.count())
        .select_from(ShotImageRow)
        .where(
            ShotImageRow.shot_id == shot_pk,
            ShotImageRow.iteration_number == number,
            ShotImageRow.status != GenerationStatus.COMPLETE,
        )
    )
    while True:
        async with resources.db.session() as session:
            if (await session.exec(waiting)).one() == 0:
                return
        await asyncio.sleep(0.05)


async def overhead_per_iteration(iterations: int = 10) -> list[str]:
    with tempfile.TemporaryDirectory() as name, _emulator_process(Path(name)) as base_url:
        async with _studio(Path(name), base_url) as (resources, _):
            token, shot_id = await _shot(resources)
            await _iteration(resources, token, shot_id)  # warm up
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(iterations):
                await _iteration(resources, token, shot_id)
            cpu = (time.process_time() - cpu) / iterations * 1000
            wall = (time.perf_counter() - wall) / iterations * 1000
    return [
        f"  {'server CPU per iteration of 6 (no provider)':<46} {cpu:7.1f} ms"
        "   (GraphQL, submit, follow, download, store)",
        f"  {'wall time per iteration of 6, 0 ms provider':<46} {wall:7.1f} ms   (n={iterations})",
    ]


async def webhook_ingestion(deliveries: int = 2000, concurrency: int = 32) -> list[str]:
    """Signed webhooks posted over HTTP to the app's endpoint, as fast as it takes them."""
    from api.app import create_app
    from api.settings import Settings

    with tempfile.TemporaryDirectory() as name, _emulator_process(Path(name)) as base_url:
        directory = Path(name)
        settings = Settings(
            database_url=f"sqlite+aiosqlite:///{directory / 'hooks.db'}",
            secret_key=secrets.token_urlsafe(48),
            replicate_base_url=base_url,
            replicate_api_token=EMULATOR_TOKEN,
            replicate_webhook_secret=WEBHOOK_SECRET,
            media_root=directory / "media",
            studio_data_dir=directory,
        )
        port = free_port()
        app = create_app(settings, port=port)
        server = _QuietServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.02)
        try:
            body = json.dumps(
                {"id": "bench-unknown", "status": "processing", "output": None}
            ).encode()
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(deliveries):
                queue.put_nowait(n)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

                async def worker() -> None:
                    while not queue.empty():
                        n = queue.get_nowait()
                        await post_webhook(
                            client, WEBHOOK_SECRET, f"msg_bench_{n}", int(time.time()), body
                        )

                start = time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(concurrency)))
                elapsed = time.perf_counter() - start
        finally:
            server.should_exit = True
            await task
    return [
        f"  {'webhook ingestion (verified, recorded, applied)':<46} {deliveries / elapsed:7.0f} /s"
        f"   ({deliveries} over HTTP, {concurrency} at a time, SQLite)"
    ]
