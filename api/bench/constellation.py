"""The constellation bench for `studio bench`: the layout time of 10,000 assets.

The assets carry realistic tags: a studio's library is made of themes (a night
market, a desert chase, a product shoot...), each with its own vocabulary, and
every asset takes 3 to 6 tags mostly from its theme plus a style word shared by
all themes, in one of six categories. The figure is `compute` from nothing placed
(the first map of a team: the most work a layout ever does), median of a few runs,
and the time to place 50 new assets on that map (what an update costs); then the
whole path on SQLite: the first `constellation(teamId)` read of such a team (layout,
one write, read, GraphQL) and a later read.
"""

from __future__ import annotations

import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert

import migrations
from api.graphql import build_context
from api.schema import schema
from schema import ids
from schema.context import Resources
from services.database import Database
from services.library.constellation_layout import LayoutAsset, LayoutCluster, compute
from services.library.tables import AssetRow
from services.media.storage import MediaLinks

ASSETS = 10_000
GOAL_SECONDS = 2.0
RUNS = 3
THEMES = {
    "night market": "neon rain lanterns street-food crowd umbrellas steam alley signage "
    "reflections vendors noodles",
    "desert chase": "dunes motorbike dust sunset convoy heat-haze canyon goggles wreck "
    "chase sand storm",
    "product shoot": "bottle studio softbox white-sweep macro packshot gloss label hero "
    "turntable shadow",
    "fantasy forest": "elves moss fog ancient-tree glowing-mushrooms stream ruins owl "
    "moonlight path",
    "space station": "airlock zero-g astronaut earthrise corridor console hologram "
    "spacewalk module docking",
    "city skyline": "skyscrapers dusk traffic rooftop bridge drone-shot timelapse windows "
    "harbour lights",
    "kitchen drama": "chef flames knives plating steam-pan sous-chef pass argument tasting orders",
    "underwater": "reef diver shark bubbles kelp wreck-dive bioluminescence manta coral sunbeams",
    "winter village": "snow cabin chimney sleigh frost lanterns-glow pines skaters market carols",
    "sports final": "stadium crowd-roar goal slow-motion trophy sweat scoreboard "
    "floodlights rain-pitch celebration",
}
STYLES = ["cinematic", "moody", "vibrant", "noir", "pastel", "documentary", "35mm", "anamorphic"]
CATEGORIES = ["characters", "environments", "props", "vehicles", "effects", "storyboards"]


def realistic_assets(count: int, *, seed: int = 7) -> list[LayoutAsset]:
    """`count` unplaced assets with themed tags (see the module), ids 1..count."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not a secret
    themes = [words.split() for words in THEMES.values()]
    assets = []
    for n in range(1, count + 1):
        words = themes[rng.randrange(len(themes))]
        picked = set(rng.sample(words, rng.randint(2, 5)))
        if rng.random() < 0.15:  # a crossover: one word of another theme
            picked.add(rng.choice(themes[rng.randrange(len(themes))]))
        picked.add(rng.choice(STYLES))
        category = rng.choice(CATEGORIES) if rng.random() < 0.95 else None
        assets.append(LayoutAsset(id=n, tags=tuple(sorted(picked)), category=category))
    return assets


def _seconds(action: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call (CPU: this process's, unaffected by how busy
    the rest of the machine is)."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - wall, time.process_time() - cpu


def layout_figures() -> list[str]:
    """The bench's lines: full layout of ASSETS assets (median of RUNS), and 50 more."""
    assets = realistic_assets(ASSETS)
    samples = [_seconds(lambda: compute(assets, [])) for _ in range(RUNS)]
    layout = compute(assets, [])
    if len(layout.placements) != ASSETS:
        return [f"  layout of 10,000 assets: not measured (placed {len(layout.placements)})"]
    placed = [
        LayoutAsset(
            id=a.id,
            tags=a.tags,
            category=a.category,
            x=layout.placements[a.id].x,
            y=layout.placements[a.id].y,
            cluster=layout.placements[a.id].cluster,
            basis=layout.placements[a.id].basis,
        )
        for a in assets
    ]
    clusters = [LayoutCluster(key, x, y) for key, (x, y) in layout.new_clusters.items()]
    extra = [
        LayoutAsset(id=ASSETS + a.id, tags=a.tags, category=a.category)
        for a in realistic_assets(50, seed=8)
    ]
    update_wall, update_cpu = _seconds(lambda: compute([*placed, *extra], clusters))
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    verdict = "within" if wall < GOAL_SECONDS else "OVER"
    return [
        f"  {'layout of 10,000 assets (nothing placed yet)':<46} {wall:7.3f} s "
        f"(CPU {cpu:.3f} s; median of {RUNS}; goal < {GOAL_SECONDS:.0f} s: {verdict}); "
        f"{len(layout.new_clusters)} clusters",
        f"  {'layout update: 50 new assets on that map':<46} {update_wall:7.3f} s "
        f"(CPU {update_cpu:.3f} s)",
    ]


MAP_QUERY = """query($t: ID!) { constellation(teamId: $t) {
  nodes { id x y clusterId } edges { sourceId } clusters { id label size x y } } }"""


async def map_figures() -> list[str]:
    """The whole path on SQLite for a team of ASSETS assets: the first `constellation` read
    (layout, stored in one write, then read) and a later one (read only), through the schema."""
    with tempfile.TemporaryDirectory() as directory:
        db = Database(f"sqlite+aiosqlite:///{Path(directory) / 'constellation.db'}")
        try:
            await migrations.upgrade_to_head(db)
            resources = Resources(db=db, media=MediaLinks(secrets.token_urlsafe(32), "http://b"))

            async def run(query: str, variables: dict[str, Any], token: str | None) -> Any:
                context = await build_context(resources, token)
                result = await schema.execute(query, variables, context_value=context)
                if result.errors:
                    raise RuntimeError(result.errors[0].message)
                return result.data

            signed = await run(
                "mutation($i: SignUpInput!) { signUp(input: $i) "
                "{ token user { id teams { id } } } }",
                {"i": {"email": "bench@example.com", "password": "bench password", "name": "B"}},
                None,
            )
            token = signed["signUp"]["token"]
            team_id = signed["signUp"]["user"]["teams"][0]["id"]
            user = ids.decode(signed["signUp"]["user"]["id"], "User")
            team = ids.decode(team_id, "Team")
            async with db.transaction() as session:
                await session.exec(
                    insert(AssetRow),
                    params=[
                        {
                            "team_id": team,
                            "creator_id": user,
                            "kind": "IMAGE",
                            "name": f"Asset {a.id}",
                            "tags": list(a.tags),
                            "category": a.category,
                        }
                        for a in realistic_assets(ASSETS)
                    ],
                )
            first, _ = await _timed_async(run(MAP_QUERY, {"t": team_id}, token))
            again, data = await _timed_async(run(MAP_QUERY, {"t": team_id}, token))
            nodes = len(data["constellation"]["nodes"])
        finally:
            await db.dispose()
    if nodes != ASSETS:
        return [f"  constellation(teamId) of 10,000 assets: not measured ({nodes} nodes)"]
    return [
        f"  {'constellation(teamId), first read (layout)':<46} {first:7.3f} s  (SQLite)",
        f"  {'constellation(teamId), later read':<46} {again:7.3f} s  (SQLite)",
    ]


async def _timed_async(action: Awaitable[Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = await action
    return time.perf_counter() - start, result
