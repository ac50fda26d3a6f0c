"""The hot reads, compiled against field by field, side by side in one run.

On a throwaway database (SQLite, and PostgreSQL when an admin URL is given): one
project of 10 scenes x 8 shots x 12 images with a master per shot, 19 smaller
projects, and 100 library assets. Each read runs in process through the real
schema, alternately with compiled reads on and off (`Resources.compiled_reads`),
so both see the same machine at the same moment. Prints p50/p95 of each and the
ratio of the p50s, and the SQL statements of one run of each; asserts nothing.

    .venv/bin/python -m api.bench.hot_reads [postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from strawberry.types import ExecutionResult

import migrations
from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from services.database import Database, scratch_postgres_database
from services.library.tables import AssetRow
from services.media.storage import MediaLinks
from services.realtime.bus import EventBus

REPEAT = 30

# The web editor's own reads (web/static/app): the projects page, the iterator's master
# of a shot and its iterationStatus feed, the storyboard's animationStatus feed.
PROJECTS = """query($teamId: ID!) { projects(teamId: $teamId, first: 20) {
  totalCount pageInfo { hasNextPage endCursor }
  edges { node { id title status updatedAt owner { id name } team { id }
    progress { totalScenes totalShots shotsWithSelections shotsWithAnimations
      selectionProgress animationProgress } } } } }"""
PROJECTS_DEEP = """{ projects(first: 20) { edges { node { id title
  scenes { id title shots { id shotNumber selectedImage { id imageUrl } } } } } } }"""
MASTER = "selectedImage { id thumbnailUrl imageUrl iterationNumber variantNumber }"
NODE_SHOT = f"""query($id: ID!) {{ node(id: $id) {{ ... on Shot {{ id {MASTER} }} }} }}"""
NODE_PROJECT = """query($id: ID!) { node(id: $id) { id ... on Project { title status
  progress { totalShots selectionProgress } scenes { id sceneNumber title
    shots { id shotNumber selectedImage { id imageUrl }
      iterations { iterationNumber images { id variantNumber status imageUrl } } } } } } }"""
IMAGE = """id iterationNumber variantNumber status isFavorite error model updatedAt
  thumbnailUrl imageUrl parentImage { id }"""
ITERATION_STATUS = f"""subscription($id: ID!) {{ iterationStatus(shotId: $id) {{
  cursor shot {{ id }} iterations {{ iterationNumber prompt status
    parentImage {{ id iterationNumber variantNumber thumbnailUrl imageUrl }}
    images {{ {IMAGE} }} }} image {{ id status }} }} }}"""
ANIMATION_STATUS = """subscription($id: ID!) { animationStatus(projectId: $id) { cursor
  selections { ...StoryboardClip } } }
fragment StoryboardClip on StoryboardSelection {
  id animationStatus model error updatedAt animatedVideoUrl
  shot { id } selectedImage { id imageUrl } }"""
LIBRARY = """{ library(first: 100) { totalCount pageInfo { hasNextPage endCursor }
  nodes { id name kind status thumbnailUrl tags mood category sceneType duration views
    createdAt shareLevel } } }"""


class _Unmeasured(Exception):
    """A figure that could not be measured; its message says why."""


async def _execute(
    resources: Resources, token: str | None, query: str, variables: dict[str, Any]
) -> Any:
    context = await build_context(resources, token)
    if query.startswith("subscription"):
        stream = await schema.subscribe(query, variables, context_value=context)
        if isinstance(stream, ExecutionResult):
            raise _Unmeasured(str(stream.errors))
        try:
            result = await anext(stream)
        finally:
            await stream.aclose()
    else:
        result = await schema.execute(query, variables, context_value=context)
    if result.errors:
        raise _Unmeasured(result.errors[0].message)
    return result.data


async def _build(resources: Resources) -> tuple[str, str, str, str]:
    """The data; the token, the team's, the big project's and one of its shots' IDs."""

    async def run(token: str | None, query: str, variables: dict[str, Any]) -> Any:
        return await _execute(resources, token, query, variables)

    email = f"hot-{secrets.token_hex(4)}@example.com"
    signed = await run(
        None,
        "mutation($i: SignUpInput!) { signUp(input: $i) { token user { teams { id } } } }",
        {"i": {"email": email, "password": "bench password", "name": "Bench"}},
    )
    token = signed["signUp"]["token"]
    team_id = signed["signUp"]["user"]["teams"][0]["id"]
    team = ids.decode(team_id, "Team")
    big = ""
    first_shot = ""
    for p in range(20):
        scenes, shots, images = (10, 8, 12) if p == 0 else (2, 3, 6)
        made = await run(
            token,
            "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }",
            {"i": {"title": f"Project {p}", "prompt": "bench"}},
        )
        project_id = made["createProject"]["project"]["id"]
        big = big or project_id
        for _ in range(scenes):
            drafts = [{"description": f"Shot {n}"} for n in range(shots)]
            data = await run(
                token,
                "mutation($i: CreateSceneInput!) { createScene(input: $i) "
                "{ scene { shots { id } } } }",
                {"i": {"projectId": project_id, "title": "Scene", "shots": drafts}},
            )
            for shot in data["createScene"]["scene"]["shots"]:
                first_shot = first_shot or shot["id"]
                images_in: list[dict[str, Any]] = [
                    {"variantNumber": v, "status": "COMPLETE", "imageUrl": f"https://x/{v}.png"}
                    for v in range(images)
                ]
                added = await run(
                    token,
                    "mutation($i: AddShotImagesInput!) { addShotImages(input: $i) "
                    "{ images { id } } }",
                    {"i": {"shotId": shot["id"], "iterationPrompt": "bench", "images": images_in}},
                )
                await run(
                    token,
                    "mutation($i: SelectMasterShotInput!) { selectMasterShot(input: $i) "
                    "{ selection { id } } }",
                    {
                        "i": {
                            "shotId": shot["id"],
                            "imageId": added["addShotImages"]["images"][0]["id"],
                        }
                    },
                )
    viewer = await run(token, "{ viewer { id } }", {})
    creator = ids.decode(viewer["viewer"]["id"], "User")
    async with resources.db.transaction() as session:
        for n in range(100):
            session.add(
                AssetRow(
                    team_id=team,
                    creator_id=creator,
                    kind="IMAGE",
                    name=f"Asset {n}",
                    status="READY",
                    share_level="TEAM",
                    tags=["bench", f"t{n % 7}"],
                    category="location",
                    mood="calm",
                    duration=float(n % 5) or None,
                    storage_key=f"assets/{n}.png",
                    thumbnail_key=f"thumbs/{n}.webp",
                )
            )
    return token, team_id, big, first_shot


async def _side_by_side(
    compiled: Callable[[], Awaitable[Any]], plain: Callable[[], Awaitable[Any]]
) -> tuple[list[float], list[float]]:
    on: list[float] = []
    off: list[float] = []
    for _ in range(REPEAT):
        for action, samples in ((compiled, on), (plain, off)):
            start = time.perf_counter()
            await action()
            samples.append((time.perf_counter() - start) * 1000)
    return on, off


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[round(0.95 * (len(ordered) - 1))]


async def bench(url: str) -> list[str]:
    """The figures for the database at `url` (migrated here)."""
    db = Database(url)
    bus = EventBus("memory://", queue_size=64)
    await bus.start()
    try:
        await migrations.upgrade_to_head(db)
        media = MediaLinks(secrets.token_urlsafe(32), "http://bench")
        resources = Resources(db=db, media=media, bus=bus)
        token, team_id, big, shot = await _build(resources)
        plain_resources = replace(resources, compiled_reads=False)
        reads: list[tuple[str, str, dict[str, Any]]] = [
            ("projects page of 20 (the editor's)", PROJECTS, {"teamId": team_id}),
            ("projects, 20 with scenes and shots", PROJECTS_DEEP, {}),
            ("node(Shot), its master (the editor's)", NODE_SHOT, {"id": shot}),
            ("node(Project), 10x8x12", NODE_PROJECT, {"id": big}),
            ("iterationStatus snapshot, 12 images (editor's)", ITERATION_STATUS, {"id": shot}),
            ("animationStatus snapshot, 80 clips (editor's)", ANIMATION_STATUS, {"id": big}),
            ("library page of 100 assets", LIBRARY, {}),
        ]
        lines = [f"  {'read':<48} {'compiled p50/p95':>18} {'field by field':>18}  ratio  SQL"]
        for name, query, variables in reads:
            counts = []
            for res in (resources, plain_resources):
                sent: list[str] = []

                def note(*args: Any, sent: list[str] = sent) -> None:
                    sent.append(args[2])

                event.listen(db.engine.sync_engine, "before_cursor_execute", note)
                try:
                    await _execute(res, token, query, variables)
                finally:
                    event.remove(db.engine.sync_engine, "before_cursor_execute", note)
                counts.append(len(sent))
            on, off = await _side_by_side(
                partial(_execute, resources, token, query, variables),
                partial(_execute, plain_resources, token, query, variables),
            )
            (on50, on95), (off50, off95) = _stats(on), _stats(off)
            lines.append(
                f"  {name:<48} {on50:7.2f}/{on95:7.2f} ms {off50:7.2f}/{off95:7.2f} ms "
                f"{off50 / on50:5.1f}x  {counts[0]} vs {counts[1]}"
            )
        return lines
    except _Unmeasured as error:
        return [f"  hot reads: not measured ({error})"]
    finally:
        await bus.stop()
        await db.dispose()


async def run_all(postgres_admin_url: str | None) -> list[str]:
    """Figures on SQLite, then on PostgreSQL when an admin URL is given."""
    with tempfile.TemporaryDirectory() as directory:
        lines = ["SQLite:", *await bench(f"sqlite+aiosqlite:///{Path(directory) / 'hot.db'}")]
    if postgres_admin_url:
        try:
            async with scratch_postgres_database(postgres_admin_url, prefix="studio_hot") as url:
                lines += ["PostgreSQL:", *await bench(url)]
        except (OSError, asyncpg.PostgresError) as error:
            lines.append(f"  PostgreSQL: not measured ({error})")
    return lines


def main(argv: list[str] | None = None) -> None:
    """`python -m api.bench.hot_reads [ADMIN_URL]`: print the figures; exit 1 when one
    was not measured."""
    parser = argparse.ArgumentParser(
        prog="python -m api.bench.hot_reads",
        description="Time the hot reads, compiled against field by field, on SQLite "
        "(and on PostgreSQL with ADMIN_URL).",
    )
    parser.add_argument(
        "admin_url",
        nargs="?",
        metavar="ADMIN_URL",
        help="also measure on PostgreSQL, in a database made and dropped through this URL "
        "(postgresql+asyncpg://postgres@127.0.0.1:5432/postgres)",
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(run_all(args.admin_url))
    print("\n".join(figures))  # noqa: T201
    sys.exit(1 if any("not measured" in line for line in figures) else 0)


if __name__ == "__main__":
    main()
