"""`studio bench`: figures for the API's own cost, on a throwaway database.

Builds a storyboard of 10 scenes x 8 shots x 12 images through the real schema
and services, then times the operations a client makes most, and counts the
SQL statements of the nested storyboard query. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event

import migrations
from api.graphql import build_context
from api.schema import schema
from schema.context import Resources
from services.database import Database, scratch_postgres_database
from services.media.storage import MediaLinks

NESTED = """query($id: ID!) { project(id: $id) { title progress { selectionProgress }
  scenes { sceneNumber shots { shotNumber latestIterationNumber selectedImage { id }
    iterations { iterationNumber status images { id variantNumber status imageUrl } } } } } }"""


async def _run(db: Database, token: str | None, query: str, variables: dict[str, Any]) -> Any:
    resources = Resources(db=db, media=MediaLinks(secrets.token_urlsafe(32), "http://bench"))
    result = await schema.execute(
        query, variables, context_value=await build_context(resources, token)
    )
    if result.errors:
        raise RuntimeError(result.errors[0].message)
    return result.data


async def _timed(repeat: int, action: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for n in range(repeat):
        start = time.perf_counter()
        await action(n)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _report(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    p50 = statistics.median(ordered)
    return f"  {name:<46} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms   (n={len(ordered)})"


async def bench_storyboard(url: str) -> list[str]:
    db = Database(url)
    try:
        await migrations.upgrade_to_head(db)
        email = f"bench-{secrets.token_hex(4)}@example.com"
        signed = await _run(
            db,
            None,
            "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
            {"i": {"email": email, "password": "bench password", "name": "Bench"}},
        )
        token = signed["signUp"]["token"]
        made = await _run(
            db,
            token,
            "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }",
            {"i": {"title": "Bench"}},
        )
        project_id = made["createProject"]["project"]["id"]
        shots: list[str] = []

        async def create_scene(n: int) -> None:
            data = await _run(
                db,
                token,
                "mutation($i: CreateSceneInput!) "
                "{ createScene(input: $i) { scene { shots { id } } } }",
                {"i": {"projectId": project_id, "title": f"Scene {n}", "shots": [{}] * 8}},
            )
            shots.extend(s["id"] for s in data["createScene"]["scene"]["shots"])

        scene_ms = await _timed(10, create_scene)

        async def add_images(n: int) -> None:
            images = [
                {
                    "variantNumber": v,
                    "status": "COMPLETE",
                    "imageUrl": f"https://example.com/{n}/{v}.png",
                }
                for v in range(12)
            ]
            await _run(
                db,
                token,
                "mutation($i: AddShotImagesInput!) "
                "{ addShotImages(input: $i) { iteration { iterationNumber } } }",
                {"i": {"shotId": shots[n], "iterationPrompt": "bench", "images": images}},
            )

        images_ms = await _timed(len(shots), add_images)

        statements: list[str] = []

        def record(*args: Any) -> None:
            statements.append(args[2])

        event.listen(db.engine.sync_engine, "before_cursor_execute", record)
        await _run(db, token, NESTED, {"id": project_id})
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
        count = len(statements)
        nested_ms = await _timed(20, lambda _: _run(db, token, NESTED, {"id": project_id}))
        return [
            _report("createScene with 8 shots", scene_ms),
            _report("addShotImages, 12 images", images_ms),
            _report("nested query, 10 scenes x 8 shots x 12 images", nested_ms),
            f"  {'SQL statements of the nested query':<46} {count} (one run)",
        ]
    finally:
        await db.dispose()


async def _with_postgres(admin_url: str) -> list[str]:
    async with scratch_postgres_database(admin_url, prefix="studio_bench") as url:
        return await bench_storyboard(url)


async def run(postgres_admin_url: str | None) -> int:
    """Print every figure; the number of figures that could not be measured."""
    from api.bench import constellation as bench_constellation
    from api.bench import editor as bench_editor
    from api.bench import generation as bench_generation
    from api.bench import hot_reads as bench_hot_reads
    from api.bench import library as bench_library
    from api.bench import realtime as bench_realtime

    unmeasured = 0
    with tempfile.TemporaryDirectory() as directory:
        lines = await bench_storyboard(f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}")
    print("Storyboard API on SQLite (embedded default):")
    print("\n".join(lines), flush=True)
    print("Generation (emulator in its own process, so its work is not counted):")
    print("\n".join(await bench_generation.overhead_per_iteration()), flush=True)
    print("\n".join(await bench_generation.webhook_ingestion()), flush=True)
    if postgres_admin_url:
        try:
            lines = await _with_postgres(postgres_admin_url)
        except (OSError, asyncpg.PostgresError) as error:
            print(f"PostgreSQL: not measured ({error})")
            unmeasured += 1
        else:
            print("Storyboard API on PostgreSQL:")
            print("\n".join(lines))
    print("Hot reads, compiled against field by field (side by side, in process):")
    hot = await bench_hot_reads.run_all(postgres_admin_url)
    print("\n".join(hot), flush=True)
    unmeasured += sum("not measured" in line for line in hot)
    print("Constellation map (10,000 assets with realistic tags):")
    constellation = bench_constellation.layout_figures() + await bench_constellation.map_figures()
    print("\n".join(constellation), flush=True)
    unmeasured += sum("not measured" in line for line in constellation)
    print("Library search on PostgreSQL (1,000,000 assets, 100 teams):")
    library = await bench_library.run_all(postgres_admin_url)
    print("\n".join(library), flush=True)
    unmeasured += sum("not measured" in line for line in library)
    print("Web editor (headless Chromium, a real `studio serve`):")
    editor = await bench_editor.run_all()
    print("\n".join(editor), flush=True)
    unmeasured += sum("not measured" in line for line in editor)
    print("Realtime (subscriptions over WebSocket):")
    realtime = await bench_realtime.run_all()
    print("\n".join(realtime), flush=True)
    return unmeasured + sum("not measured" in line for line in realtime)


def main(postgres_admin_url: str | None) -> None:
    """Run the benches; exit 1 when a figure could not be measured, so a broken run
    never passes for a complete one."""
    unmeasured = asyncio.run(run(postgres_admin_url))
    if unmeasured:
        print(f"{unmeasured} figure(s) not measured: see above.", file=sys.stderr)
        sys.exit(1)
