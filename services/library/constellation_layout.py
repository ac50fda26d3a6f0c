"""The constellation map's layout: clusters from shared tags, positions by force, pure CPU.

`compute(assets, clusters)` takes what is stored of a team's map and returns what
to store next. It reads no database and holds no state, so the same input always
gives the same output (bit for bit, on one machine):

1. Clusters. The team's tags form a weighted graph: one vertex per tag, an edge
   between two tags as heavy as the number of assets carrying both (never a graph
   of every pair of assets: 10,000 assets of 5 tags make at most 100,000 edge
   increments). Leiden community detection (modularity, igraph's RNG seeded) groups
   the tags; a community is named by its most frequent tag, its *anchor*. An asset
   belongs to the community holding most of its tags, and its cluster is that
   community within its category: the stored cluster it continues (the one holding
   most placed assets of that community and category), or a new one keyed by
   `founded_key` (never by tags, which some viewers may not see).
2. Regions. Each category is a horizontal band of the plane. Categories are taken
   in name order; a band already on the map keeps its place, a new one goes below
   everything drawn so far. A new cluster is placed in its category's band, to the
   right of that band's clusters, largest first; a stored cluster never moves
   (its centre is its anchor for later members, and a pinned one is where a person
   put it).
3. Positions. Within a cluster, assets are laid out by igraph's compiled
   Fruchterman-Reingold on the graph of the cluster's assets and their tags (an
   asset pulls towards its tags, so assets sharing tags sit together), started
   from seeded random positions. Assets already placed stay where they are (fixed
   vertices); only unplaced ones move. The result is scaled to a disc of radius
   `cluster_radius(size)` around the cluster's centre.

Only assets that need it are placed: those without a position, or whose tags or
category changed since (their `basis` no longer matches). Pinned assets never get a
new position; a pinned asset without a cluster gets one. Coordinates are map units
(an asset needs about `SPACING` of them), rounded to 1/1000.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import combinations

import igraph

SEED = 20261130
SPACING = 12.0  # map units between neighbouring assets
GAP = 3 * SPACING  # between clusters, and between category bands
ITERATIONS = 200  # Fruchterman-Reingold steps per cluster
MOST_FIXED = 500  # placed members of a cluster kept as fixed vertices of its layout
LABEL_TAGS = 3  # tags in a cluster's label
UNTAGGED = ""  # the anchor of assets without tags

# igraph's random number generator is process-wide: one layout at a time.
_IGRAPH = threading.Lock()


@dataclass(frozen=True)
class LayoutAsset:
    """What the layout reads of one asset. `x`/`y` None: not placed yet; `basis`: the
    digest stored with its position (see `basis_of`)."""

    id: int
    tags: tuple[str, ...]
    category: str | None
    x: float | None = None
    y: float | None = None
    cluster: str | None = None
    pinned: bool = False
    basis: str | None = None

    @cached_property
    def current_basis(self) -> str:
        """The digest of its tags and category as they are now."""
        return basis_of(self.tags, self.category)

    @property
    def placed(self) -> bool:
        """Whether it has a position computed from its current tags and category."""
        return self.x is not None and self.y is not None and self.basis == self.current_basis

    @cached_property
    def needs_layout(self) -> bool:
        """Whether the next layout must place it (or, pinned, give it a cluster)."""
        if self.pinned:
            return self.cluster is None or self.basis != self.current_basis
        return not self.placed or self.cluster is None


@dataclass(frozen=True)
class LayoutCluster:
    """A stored cluster: its key, centre (map units) and whether a person pinned it."""

    key: str
    x: float
    y: float
    pinned: bool = False


@dataclass(frozen=True)
class Placement:
    """Where an asset goes: position (None for a pinned asset: it keeps its own), cluster
    and the basis to store with them."""

    x: float | None
    y: float | None
    cluster: str
    basis: str


@dataclass
class Layout:
    """What to store: `placements` by asset id; `new_clusters` (key -> centre) to create;
    `labels` (key -> label from the dominant tags of all the team's assets in it, for the
    clusters not pinned: bookkeeping, never shown, since a viewer's label comes from what
    they may see); `empty` the keys of unpinned stored clusters with no assets left."""

    placements: dict[int, Placement] = field(default_factory=dict)
    new_clusters: dict[str, tuple[float, float]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    empty: set[str] = field(default_factory=set)


def basis_of(tags: Iterable[str], category: str | None) -> str:
    """A 16-hex-digit digest of an asset's tags (as a set) and category."""
    # NUL cannot occur in stored text (services.validation.storable); at worst a collision
    # would leave a changed asset where it was.
    marked = "N" if category is None else "C" + category
    text = "\x00".join(sorted(set(tags))) + "\x00\x00" + marked
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def founded_key(first_asset_id: int, taken: Iterable[str] = ()) -> str:
    """The key of a new cluster whose first asset (smallest id) is `first_asset_id`: 16 hex
    digits of a digest, not in `taken`. Never made from tags, which some viewers of the
    map may not be allowed to see; a stored cluster keeps its key for good."""
    used = set(taken)
    attempt = 0
    while True:
        key = hashlib.sha256(f"cluster:{first_asset_id}:{attempt}".encode()).hexdigest()[:16]
        if key not in used:
            return key
        attempt += 1


def cluster_radius(size: int) -> float:
    """The radius (map units) of the disc a cluster of `size` assets is drawn in."""
    return SPACING * (1.0 + math.sqrt(max(size, 0)))


def dominant_tags(tag_lists: Iterable[Iterable[str]], most: int = LABEL_TAGS) -> list[str]:
    """The `most` tags carried by the most of these assets, ties by name."""
    counts = Counter(tag for tags in tag_lists for tag in set(tags))
    return [tag for tag, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:most]]


def label_of(tags: Sequence[str]) -> str:
    """A cluster's label from its dominant tags ("untagged" when it has none)."""
    return " · ".join(tags) if tags else "untagged"


def compute(assets: Sequence[LayoutAsset], clusters: Sequence[LayoutCluster]) -> Layout:
    """The next layout of a team's map (see the module). `assets`: all of the team's;
    `clusters`: its stored clusters. Deterministic; CPU only (run it in a thread)."""
    ordered = sorted(assets, key=lambda a: a.id)
    with _IGRAPH:
        igraph.set_random_number_generator(random.Random(SEED))  # noqa: S311 - a layout
        anchors = _tag_anchors(ordered)
        return _place(ordered, {c.key: c for c in clusters}, anchors)


def _tag_anchors(assets: Sequence[LayoutAsset]) -> dict[str, str]:
    """Each tag's community, named by its anchor (the community's most frequent tag)."""
    frequency = Counter(tag for a in assets for tag in set(a.tags))
    tags = sorted(frequency)
    if not tags:
        return {}
    index = {tag: n for n, tag in enumerate(tags)}
    pairs: Counter[tuple[int, int]] = Counter()
    for a in assets:
        pairs.update(combinations(sorted(index[t] for t in set(a.tags)), 2))
    edges = sorted(pairs)
    graph = igraph.Graph(n=len(tags), edges=edges)
    graph.es["weight"] = [pairs[e] for e in edges]
    membership = graph.community_leiden(
        objective_function="modularity", weights="weight", n_iterations=-1
    ).membership
    members: dict[int, list[str]] = defaultdict(list)
    for tag, community in zip(tags, membership, strict=True):
        members[community].append(tag)
    anchors: dict[str, str] = {}
    for group in members.values():
        anchor = min(group, key=lambda t: (-frequency[t], t))
        anchors.update(dict.fromkeys(group, anchor))
    return anchors


def _community_of(asset: LayoutAsset, anchors: dict[str, str]) -> str:
    """The anchor of the community holding most of the asset's tags (ties by name)."""
    counts = Counter(anchors[t] for t in set(asset.tags))
    if not counts:
        return UNTAGGED
    return min(counts, key=lambda anchor: (-counts[anchor], anchor))


def _place(
    assets: Sequence[LayoutAsset], stored: dict[str, LayoutCluster], anchors: dict[str, str]
) -> Layout:
    layout = Layout()
    community = {a.id: _community_of(a, anchors) for a in assets}
    key_of: dict[int, str] = {}
    category_of_key: dict[str, str | None] = {}
    # Which stored cluster each (category, community) continues: the one holding most of
    # its placed assets. A new asset joins it, so a community whose anchor changed (new
    # tags tipped the count) does not split into a second cluster.
    # Ties and orders go by asset ids (their order, the same in any database holding the
    # same data), never by keys, which differ between databases.
    votes: Counter[tuple[str | None, str, str]] = Counter()
    first: dict[str, int] = {}
    for a in assets:
        if not a.needs_layout and a.cluster is not None:
            key_of[a.id] = a.cluster
            category_of_key.setdefault(a.cluster, a.category)
            first.setdefault(a.cluster, a.id)
            votes[(a.category, community[a.id], a.cluster)] += 1
    continued: dict[tuple[str | None, str], str] = {}
    for (category, anchor, key), _ in sorted(
        votes.items(), key=lambda kv: (-kv[1], first[kv[0][2]])
    ):
        continued.setdefault((category, anchor), key)
    founding: dict[tuple[str | None, str], list[LayoutAsset]] = defaultdict(list)
    for a in assets:
        if a.id not in key_of:
            place = (a.category, community[a.id])
            if place in continued:
                key_of[a.id] = continued[place]
            else:
                founding[place].append(a)
    taken = set(stored) | set(key_of.values())
    for group in sorted(founding.values(), key=lambda g: g[0].id):
        key = founded_key(group[0].id, taken)
        taken.add(key)
        category_of_key[key] = group[0].category
        key_of.update((a.id, key) for a in group)
    members: dict[str, list[LayoutAsset]] = defaultdict(list)
    for a in assets:
        members[key_of[a.id]].append(a)
    centres = {key: (c.x, c.y) for key, c in stored.items()}
    _new_centres(members, category_of_key, stored, centres, layout)
    for key, group in sorted(members.items(), key=lambda kv: kv[1][0].id):
        if key not in stored or not stored[key].pinned:
            layout.labels[key] = label_of(dominant_tags(a.tags for a in group))
        moving = [a for a in group if a.needs_layout]
        if not moving:
            continue
        free = [a for a in moving if not a.pinned]
        positions = _positions(group, free, centres[key]) if free else {}
        for a in moving:
            x, y = positions.get(a.id, (None, None))
            layout.placements[a.id] = Placement(x, y, key, a.current_basis)
    layout.empty = {key for key, c in stored.items() if not c.pinned and key not in members}
    return layout


def _new_centres(
    members: dict[str, list[LayoutAsset]],
    category_of_key: dict[str, str | None],
    stored: dict[str, LayoutCluster],
    centres: dict[str, tuple[float, float]],
    layout: Layout,
) -> None:
    """Centres for the clusters not stored yet, in their categories' bands (see module)."""
    new = [key for key in members if key not in stored]
    if not new:
        return
    # Where each category's band is, from its stored clusters that still have assets.
    band: dict[str | None, float] = {}
    right: dict[str | None, float] = {}
    bottom = -GAP
    for key in sorted((k for k in members if k in stored), key=lambda k: members[k][0].id):
        x, y = stored[key].x, stored[key].y
        radius = cluster_radius(len(members[key]))
        category = category_of_key[key]
        band.setdefault(category, y)
        right[category] = max(right.get(category, -math.inf), x + radius)
        bottom = max(bottom, y + radius)
    by_category: dict[str | None, list[str]] = defaultdict(list)
    for key in new:
        by_category[category_of_key[key]].append(key)
    for category in sorted(by_category, key=lambda c: (c is not None, c or "")):
        keys = sorted(by_category[category], key=lambda k: (-len(members[k]), members[k][0].id))
        tallest = max(cluster_radius(len(members[k])) for k in keys)
        if category not in band:
            band[category] = bottom + GAP + tallest
            bottom = band[category] + tallest
        else:
            bottom = max(bottom, band[category] + tallest)
        cursor = right.get(category, -GAP)
        for key in keys:
            radius = cluster_radius(len(members[key]))
            centre = (round(cursor + GAP + radius, 3), round(band[category], 3))
            cursor = centre[0] + radius
            centres[key] = centre
            layout.new_clusters[key] = centre
        right[category] = cursor


def _positions(
    group: Sequence[LayoutAsset], free: Sequence[LayoutAsset], centre: tuple[float, float]
) -> dict[int, tuple[float, float]]:
    """Positions (map units) for the `free` assets of one cluster `group`, by
    Fruchterman-Reingold on assets and tags, its placed assets fixed."""
    # Each cluster from the same seed: its layout depends on its own assets alone.
    igraph.set_random_number_generator(random.Random(SEED))  # noqa: S311 - a layout
    radius = cluster_radius(len(group))
    moving = {a.id for a in free}
    fixed = [a for a in group if a.id not in moving and a.x is not None and a.y is not None]
    fixed = fixed[:MOST_FIXED]
    vertices: list[LayoutAsset] = [*fixed, *free]
    tags = sorted({t for a in vertices for t in a.tags})
    tag_index = {t: len(vertices) + n for n, t in enumerate(tags)}
    hub = len(vertices) + len(tags)  # what untagged assets hold on to
    edges = [(n, tag_index[t]) for n, a in enumerate(vertices) for t in sorted(set(a.tags))]
    edges += [(n, hub) for n, a in enumerate(vertices) if not a.tags]
    count = hub + 1
    graph = igraph.Graph(n=count, edges=edges)
    if not fixed:
        coords = graph.layout_fruchterman_reingold(niter=ITERATIONS, grid=True).coords
        return _fitted(coords[: len(free)], free, centre, radius)
    # FR's own scale: about sqrt(n)/3 from the centre to the rim.
    natural = math.sqrt(count) / 3
    scale = natural / radius
    rng = random.Random(SEED)  # noqa: S311 - a layout's start, not a secret
    start = [[rng.uniform(-natural, natural), rng.uniform(-natural, natural)] for _ in range(count)]
    inf = float("inf")
    lows_x, highs_x, lows_y, highs_y = [-inf] * count, [inf] * count, [-inf] * count, [inf] * count
    for n, a in enumerate(fixed):
        assert a.x is not None
        assert a.y is not None
        lx, ly = (a.x - centre[0]) * scale, (a.y - centre[1]) * scale
        start[n] = [lx, ly]
        lows_x[n] = highs_x[n] = lx
        lows_y[n] = highs_y[n] = ly
    for n in range(len(fixed), count):
        lows_x[n], highs_x[n] = -1.5 * natural, 1.5 * natural
        lows_y[n], highs_y[n] = -1.5 * natural, 1.5 * natural
    coords = graph.layout_fruchterman_reingold(
        seed=start,
        niter=ITERATIONS // 2,
        grid=True,
        minx=lows_x,
        maxx=highs_x,
        miny=lows_y,
        maxy=highs_y,
    ).coords
    return {
        a.id: (
            round(centre[0] + coords[n][0] / scale, 3),
            round(centre[1] + coords[n][1] / scale, 3),
        )
        for n, a in enumerate(free, start=len(fixed))
    }


def _fitted(
    coords: Sequence[Sequence[float]],
    free: Sequence[LayoutAsset],
    centre: tuple[float, float],
    radius: float,
) -> dict[int, tuple[float, float]]:
    """FR's coordinates moved to `centre` and scaled to fill a disc of `radius`."""
    mean_x = sum(c[0] for c in coords) / len(coords)
    mean_y = sum(c[1] for c in coords) / len(coords)
    reach = max(math.hypot(c[0] - mean_x, c[1] - mean_y) for c in coords) or 1.0
    factor = radius / reach
    return {
        a.id: (
            round(centre[0] + (c[0] - mean_x) * factor, 3),
            round(centre[1] + (c[1] - mean_y) * factor, 3),
        )
        for a, c in zip(free, coords, strict=True)
    }
