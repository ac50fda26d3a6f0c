"""The constellation bench for `studio bench`: the layout time of 10,000 assets.

The assets carry realistic tags: a studio's library is made of themes (a night
market, a desert chase, a product shoot...), each with its own vocabulary, and
every asset takes 3 to 6 tags mostly from its theme plus a style word shared by
all themes, in one of six categories. The figure is `compute` from nothing placed
(the first map of a team: the most work a layout ever does), median of a few runs,
and the time to place 50 new assets on that map (what an update costs).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from services.library.constellation_layout import LayoutAsset, LayoutCluster, compute

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


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


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
    update = _seconds(lambda: compute([*placed, *extra], clusters))
    median = statistics.median(samples)
    verdict = "within" if median < GOAL_SECONDS else "OVER"
    return [
        f"  {'layout of 10,000 assets (nothing placed yet)':<46} {median:7.3f} s "
        f"(median of {RUNS}; goal < {GOAL_SECONDS:.0f} s: {verdict}); "
        f"{len(layout.new_clusters)} clusters",
        f"  {'layout update: 50 new assets on that map':<46} {update:7.3f} s",
    ]
