"""The constellation map: stable layouts, pinning, clusters by tags, and what a viewer sees."""

from __future__ import annotations

import asyncio
import math
import random
from typing import Any

import pytest
from sqlmodel import col, select

import migrations
from schema import ids
from schema.cluster_ids import decode_cluster, encode_cluster
from services.accounts import accounts
from services.database import Database
from services.errors import InvalidInput
from services.library import constellation
from services.library.constellation_layout import LayoutAsset, compute
from services.library.tables import AssetRow, ConstellationClusterRow
from tests import factories

MAP = """query($t: ID!) { constellation(teamId: $t) {
  teamId
  nodes { id name kind tags category mood sceneType x y clusterId hasLineage pinned thumbnailUrl }
  edges { sourceId targetId evolutionType }
  clusters { id label tags size x y pinned category } } }"""

PIN = "node { id x y pinned clusterId } cluster { id label size x y pinned }"

# Two themes in one category, and one of them again in another category.
LIBRARY: list[dict[str, Any]] = [
    {"tags": ["neon", "rain", "night"], "category": "environments"},
    {"tags": ["neon", "night", "alley"], "category": "environments"},
    {"tags": ["rain", "night", "umbrella"], "category": "environments"},
    {"tags": ["neon", "rain", "night", "crowd"], "category": "environments"},
    {"tags": ["desert", "dunes", "sunset"], "category": "environments"},
    {"tags": ["desert", "dunes", "convoy"], "category": "environments"},
    {"tags": ["dunes", "sunset", "heat"], "category": "environments"},
    {"tags": ["neon", "night", "sign"], "category": "props"},
    {"tags": ["neon", "rain", "sign"], "category": "props"},
    {"tags": [], "category": None},
]


async def _map(db: Database, account: factories.Account, team_id: str) -> dict[str, Any]:
    data = await factories.gql(db, MAP, {"t": team_id}, token=account.token)
    result: dict[str, Any] = data["constellation"]
    return result


async def _library(db: Database, owner: factories.Account, team_id: str | None = None) -> list[str]:
    return [
        await factories.library_asset(db, owner, team_id=team_id, name=f"Item {n}", **fields)
        for n, fields in enumerate(LIBRARY)
    ]


def _shape(found: dict[str, Any], asset_ids: list[str]) -> list[tuple[Any, ...]]:
    """Each asset's position and its cluster's label, in creation order (IDs differ between
    databases and teams; everything else must not)."""
    by_id = {node["id"]: node for node in found["nodes"]}
    labels = {cluster["id"]: cluster["label"] for cluster in found["clusters"]}
    return [
        (by_id[a]["x"], by_id[a]["y"], labels[by_id[a]["clusterId"]], by_id[a]["category"])
        for a in asset_ids
    ]


def _positions(found: dict[str, Any]) -> dict[str, tuple[float, float]]:
    return {node["id"]: (node["x"], node["y"]) for node in found["nodes"]}


async def _set_tags(db: Database, asset_id: str, tags: list[str]) -> None:
    async with db.transaction() as session:
        row = await session.get(AssetRow, ids.decode(asset_id, "Asset"))
        assert row is not None
        row.tags = tags
        session.add(row)


# --- stability ---------------------------------------------------------------------------


def test_the_layout_is_a_function_of_the_data_not_of_the_run_or_input_order() -> None:
    rng = random.Random(3)  # noqa: S311 - sample data
    words = ["neon", "rain", "night", "desert", "dunes", "forest", "moss", "fog", "snow"]
    assets = [
        LayoutAsset(id=n, tags=tuple(rng.sample(words, 3)), category=rng.choice(["a", "b", None]))
        for n in range(1, 301)
    ]
    first = compute(assets, [])
    shuffled = list(assets)
    rng.shuffle(shuffled)
    again = compute(shuffled, [])
    assert first.placements == again.placements
    assert first.new_clusters == again.new_clusters
    assert len(first.placements) == 300
    assert all(
        p.x is not None and p.y is not None and math.isfinite(p.x) and math.isfinite(p.y)
        for p in first.placements.values()
    )


def test_cluster_keys_carry_nothing_of_the_tags() -> None:
    """A cluster's ID must not let a viewer confirm a guess at a tag they may not see."""
    rng = random.Random(5)  # noqa: S311 - sample data
    words = ["neon", "rain", "night", "desert", "dunes", "forest", "moss"]
    assets = [
        LayoutAsset(id=n, tags=tuple(rng.sample(words, 2)), category="c") for n in range(1, 80)
    ]
    renamed = [
        LayoutAsset(id=a.id, tags=tuple("secret-" + t for t in a.tags), category="c")
        for a in assets
    ]
    first, second = compute(assets, []), compute(renamed, [])
    assert {k: p.cluster for k, p in first.placements.items()} == {
        k: p.cluster for k, p in second.placements.items()
    }
    assert first.new_clusters == second.new_clusters


async def test_the_same_data_gives_the_same_map_across_teams_runs_and_a_fresh_database(
    db: Database, empty_database_url: str
) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    ann_assets = await _library(db, ann)
    bob_assets = await _library(db, bob)
    first = await _map(db, ann, ann.team_id)
    assert all(node["x"] is not None for node in first["nodes"])
    assert await _map(db, ann, ann.team_id) == first  # read again: nothing moves
    assert _shape(await _map(db, bob, bob.team_id), bob_assets) == _shape(first, ann_assets)

    fresh = Database(empty_database_url)
    try:
        await migrations.upgrade_to_head(fresh)
        cat = await factories.account(fresh, name="Cat")
        cat_assets = await _library(fresh, cat)
        elsewhere = await _map(fresh, cat, cat.team_id)
    finally:
        await fresh.dispose()
    assert _shape(elsewhere, cat_assets) == _shape(first, ann_assets)


async def test_concurrent_readers_compute_one_layout(db: Database) -> None:
    ann = await factories.account(db)
    await _library(db, ann)
    team = ids.decode(ann.team_id, "Team")
    ran = await asyncio.gather(*(constellation.ensure_layout(db, team) for _ in range(3)))
    assert sorted(ran) == [False, False, True]
    assert await constellation.ensure_layout(db, team) is False


# --- clusters ----------------------------------------------------------------------------


async def test_clusters_gather_shared_tags_by_category_and_are_labelled_by_dominant_tags(
    db: Database,
) -> None:
    ann = await factories.account(db)
    assets = await _library(db, ann)
    found = await _map(db, ann, ann.team_id)
    by_id = {node["id"]: node for node in found["nodes"]}
    clusters = {cluster["id"]: cluster for cluster in found["clusters"]}
    cluster_of = [by_id[a]["clusterId"] for a in assets]
    assert len(set(cluster_of[0:4])) == 1  # the rainy neon nights
    assert len(set(cluster_of[4:7])) == 1  # the desert
    assert len(set(cluster_of[7:9])) == 1  # neon props
    assert len({cluster_of[0], cluster_of[4], cluster_of[7], cluster_of[9]}) == 4
    night, desert, props = clusters[cluster_of[0]], clusters[cluster_of[4]], clusters[cluster_of[7]]
    assert night["tags"] == ["night", "neon", "rain"]
    assert night["label"] == "night · neon · rain"
    assert (night["size"], night["category"]) == (4, "environments")
    assert desert["tags"] == ["dunes", "desert", "sunset"]
    assert props["tags"][:2] == ["neon", "sign"]
    assert props["category"] == "props"
    assert clusters[cluster_of[9]]["label"] == "untagged"
    # Categories are regions: bands of their own; a cluster's centre is its nodes' mean.
    assert night["y"] == desert["y"] != props["y"]
    members = [by_id[a] for a in assets[0:4]]
    assert night["x"] == pytest.approx(sum(n["x"] for n in members) / 4, abs=0.01)
    assert not night["pinned"]


async def test_lineage_edges_are_typed(db: Database) -> None:
    ann = await factories.account(db)
    parent = await factories.library_asset(db, ann, tags=["moss"])
    child = await factories.library_asset(
        db,
        ann,
        tags=["moss", "fog"],
        parent_id=ids.decode(parent, "Asset"),
        root_id=ids.decode(parent, "Asset"),
        version=2,
        evolution_type="EVOLVE",
    )
    found = await _map(db, ann, ann.team_id)
    assert found["edges"] == [{"sourceId": parent, "targetId": child, "evolutionType": "EVOLVE"}]
    assert {node["id"]: node["hasLineage"] for node in found["nodes"]} == {
        parent: True,
        child: True,
    }


# --- updates and pins --------------------------------------------------------------------


async def test_new_assets_are_placed_without_moving_placed_or_pinned_ones(db: Database) -> None:
    ann = await factories.account(db)
    assets = await _library(db, ann)
    before = _positions(await _map(db, ann, ann.team_id))
    pinned = await factories.mutate_ok(
        db,
        "setConstellationPosition",
        {"assetId": assets[0], "x": 500.5, "y": -250},
        PIN,
        token=ann.token,
    )
    assert pinned["node"] == {
        "id": assets[0],
        "x": 500.5,
        "y": -250.0,
        "pinned": True,
        "clusterId": pinned["node"]["clusterId"],
    }
    assert pinned["cluster"] is None
    before[assets[0]] = (500.5, -250.0)
    seen = await factories.gql(
        db,
        "query($id: ID!) { asset(id: $id) { constellationPosition { x y clusterId pinned } } }",
        {"id": assets[0]},
        token=ann.token,
    )
    assert seen["asset"]["constellationPosition"] == {
        "x": 500.5,
        "y": -250.0,
        "clusterId": pinned["node"]["clusterId"],
        "pinned": True,
    }
    # New assets: some of known themes, some of a new one in a new category.
    added = [
        await factories.library_asset(db, ann, tags=["neon", "rain"], category="environments"),
        await factories.library_asset(db, ann, tags=["forest", "moss"], category="creatures"),
        await factories.library_asset(db, ann, tags=["desert", "heat"], category="environments"),
    ]
    # The pinned asset's tags change too: it keeps its place all the same.
    await _set_tags(db, assets[0], ["snow", "cabin"])
    after = await _map(db, ann, ann.team_id)
    positions = _positions(after)
    assert {a: positions[a] for a in assets} == before
    assert all(positions[a][0] is not None for a in added)
    assert len(set(positions.values())) == len(positions)  # no two on the same spot
    node = {n["id"]: n for n in after["nodes"]}
    assert node[assets[0]]["pinned"]
    assert node[assets[0]]["tags"] == ["snow", "cabin"]
    assert node[added[0]]["clusterId"] == node[assets[1]]["clusterId"]  # joins the neon nights
    assert node[added[2]]["clusterId"] == node[assets[4]]["clusterId"]  # joins the desert


async def test_a_layout_stored_after_a_pin_leaves_the_pinned_asset_where_it_was_put(
    db: Database,
) -> None:
    ann = await factories.account(db)
    assets = await _library(db, ann)
    team = ids.decode(ann.team_id, "Team")
    async with db.session() as session:
        stored = await constellation._layout_input(session, team)
    layout = compute(*stored)  # computed before the pin below, stored after it
    await factories.mutate_ok(
        db,
        "setConstellationPosition",
        {"assetId": assets[2], "x": 7, "y": 8},
        PIN,
        token=ann.token,
    )
    async with db.transaction() as session:
        await constellation._store(session, team, layout)
    found = {n["id"]: n for n in (await _map(db, ann, ann.team_id))["nodes"]}
    assert (found[assets[2]]["x"], found[assets[2]]["y"], found[assets[2]]["pinned"]) == (
        7.0,
        8.0,
        True,
    )
    assert found[assets[3]]["x"] == layout.placements[ids.decode(assets[3], "Asset")].x


async def test_an_asset_whose_tags_change_is_placed_again(db: Database) -> None:
    ann = await factories.account(db)
    assets = await _library(db, ann)
    before = {n["id"]: n for n in (await _map(db, ann, ann.team_id))["nodes"]}
    await _set_tags(db, assets[1], ["desert", "dunes", "sunset"])
    after = {n["id"]: n for n in (await _map(db, ann, ann.team_id))["nodes"]}
    assert after[assets[1]]["clusterId"] == before[assets[4]]["clusterId"]
    assert (after[assets[1]]["x"], after[assets[1]]["y"]) != (
        before[assets[1]]["x"],
        before[assets[1]]["y"],
    )
    unchanged = [a for a in assets if a != assets[1]]
    assert [(after[a]["x"], after[a]["y"]) for a in unchanged] == [
        (before[a]["x"], before[a]["y"]) for a in unchanged
    ]


async def test_a_pinned_cluster_moves_its_unpinned_nodes_and_keeps_its_centre(
    db: Database,
) -> None:
    ann = await factories.account(db)
    assets = await _library(db, ann)
    found = await _map(db, ann, ann.team_id)
    node = {n["id"]: n for n in found["nodes"]}
    cluster_id = node[assets[0]]["clusterId"]
    await factories.mutate_ok(
        db,
        "setConstellationPosition",
        {"assetId": assets[1], "x": -40, "y": -40},
        PIN,
        token=ann.token,
    )
    cluster = next(c for c in found["clusters"] if c["id"] == cluster_id)
    anchor = await _stored_centre(db, cluster_id)
    payload = await factories.mutate_ok(
        db,
        "setConstellationPosition",
        {"clusterId": cluster_id, "x": 1000, "y": 2000},
        PIN,
        token=ann.token,
    )
    assert payload["cluster"] == {
        "id": cluster_id,
        "label": cluster["label"],
        "size": 4,
        "x": 1000.0,
        "y": 2000.0,
        "pinned": True,
    }
    dx, dy = 1000 - anchor[0], 2000 - anchor[1]
    moved = {n["id"]: n for n in (await _map(db, ann, ann.team_id))["nodes"]}
    for a in (assets[0], assets[2], assets[3]):
        assert moved[a]["x"] == pytest.approx(node[a]["x"] + dx, abs=0.01)
        assert moved[a]["y"] == pytest.approx(node[a]["y"] + dy, abs=0.01)
    assert (moved[assets[1]]["x"], moved[assets[1]]["y"]) == (-40.0, -40.0)  # pinned itself
    newcomer = await factories.library_asset(
        db, ann, tags=["neon", "rain", "night"], category="environments"
    )
    later = await _map(db, ann, ann.team_id)
    same = next(c for c in later["clusters"] if c["id"] == cluster_id)
    assert (same["x"], same["y"], same["pinned"], same["size"]) == (1000.0, 2000.0, True, 5)
    placed = next(n for n in later["nodes"] if n["id"] == newcomer)
    assert placed["clusterId"] == cluster_id
    assert math.hypot(placed["x"] - 1000, placed["y"] - 2000) < 200


async def _stored_centre(db: Database, cluster_id: str) -> tuple[float, float]:
    team_id, key = decode_cluster(cluster_id)
    async with db.session() as session:
        row = await session.get(ConstellationClusterRow, (team_id, key))
    assert row is not None
    return row.x, row.y


# --- visibility --------------------------------------------------------------------------


async def test_a_viewer_sees_only_what_they_may_and_nothing_of_the_rest(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    carl = await factories.account(db, name="Carl")
    team = await factories.team_with(db, ann, {"EDITOR": bob})
    shown = [
        await factories.library_asset(db, ann, team_id=team, tags=["forest", "moss"])
        for _ in range(2)
    ]
    hidden = [
        await factories.library_asset(
            db, ann, team_id=team, tags=["forest", "secretword"], share_level="PRIVATE"
        )
        for _ in range(3)
    ]
    child = await factories.library_asset(
        db,
        ann,
        team_id=team,
        tags=["forest", "moss"],
        parent_id=ids.decode(hidden[0], "Asset"),
        evolution_type="REMIX",
        version=2,
    )
    await factories.library_asset(db, carl, tags=["forest", "moss"], share_level="PUBLIC")

    owner_view = await _map(db, ann, team)
    assert {n["id"] for n in owner_view["nodes"]} == {*shown, *hidden, child}
    assert len(owner_view["edges"]) == 1
    assert any("secretword" in c["tags"] for c in owner_view["clusters"])

    member_view = await _map(db, bob, team)
    assert {n["id"] for n in member_view["nodes"]} == {*shown, child}
    assert member_view["edges"] == []
    assert all("secretword" not in c["label"] for c in member_view["clusters"])
    assert all("secretword" not in c["tags"] for c in member_view["clusters"])
    assert sum(c["size"] for c in member_view["clusters"]) == 3
    by_id = {n["id"]: n for n in member_view["nodes"]}
    visible_nodes = [by_id[a] for a in (*shown, child)]
    for cluster in member_view["clusters"]:
        members = [n for n in visible_nodes if n["clusterId"] == cluster["id"]]
        assert cluster["x"] == pytest.approx(sum(n["x"] for n in members) / len(members), abs=0.01)
    # Another team's map, even with PUBLIC assets in it, is not one you may read.
    assert await _map(db, bob, carl.team_id) is None
    assert await _map(db, carl, team) is None


# --- bad input ---------------------------------------------------------------------------


async def test_bad_pins_are_user_errors_that_change_nothing(db: Database) -> None:
    ann = await factories.account(db)
    vic = await factories.account(db, name="Vic")
    carl = await factories.account(db, name="Carl")
    team = await factories.team_with(db, ann, {"VIEWER": vic})
    assets = await _library(db, ann, team_id=team)
    theirs = await factories.library_asset(db, carl, tags=["neon"])
    carl_cluster = (await _map(db, carl, carl.team_id))["clusters"][0]["id"]
    before = await _map(db, ann, team)
    cluster_id = before["clusters"][0]["id"]
    team_pk = ids.decode(team, "Team")

    async def refused(input: dict[str, Any], token: str) -> list[tuple[str, Any]]:
        payload = await factories.mutate(db, "setConstellationPosition", input, PIN, token=token)
        assert payload["node"] is None
        assert payload["cluster"] is None
        return [(e["code"], e["field"]) for e in payload["userErrors"]]

    unknown = ids.encode("Asset", 2**62)
    cases = [
        ({"assetId": unknown, "x": 1, "y": 1}, ann.token, [("NOT_FOUND", ["assetId"])]),
        ({"assetId": "nonsense", "x": 1, "y": 1}, ann.token, [("INVALID_ID", ["assetId"])]),
        ({"assetId": theirs, "x": 1, "y": 1}, ann.token, [("NOT_FOUND", ["assetId"])]),
        ({"assetId": assets[0], "x": 1, "y": 1}, vic.token, [("FORBIDDEN", None)]),
        (
            {"assetId": assets[0], "x": 1e300, "y": -1e7},
            ann.token,
            [
                ("OUT_OF_RANGE", ["x"]),
                ("OUT_OF_RANGE", ["y"]),
            ],
        ),
        (
            {"assetId": assets[0], "clusterId": cluster_id, "x": 1, "y": 1},
            ann.token,
            [("INVALID_INPUT", None)],
        ),
        ({"x": 1, "y": 1}, ann.token, [("INVALID_INPUT", None)]),
        ({"clusterId": cluster_id, "x": 1, "y": 1}, vic.token, [("FORBIDDEN", None)]),
        ({"clusterId": carl_cluster, "x": 1, "y": 1}, ann.token, [("NOT_FOUND", ["clusterId"])]),
        (
            {"clusterId": encode_cluster(team_pk, "0" * 16), "x": 1, "y": 1},
            ann.token,
            [("NOT_FOUND", ["clusterId"])],
        ),
        ({"clusterId": assets[0], "x": 1, "y": 1}, ann.token, [("INVALID_ID", ["clusterId"])]),
    ]
    for input, token, expected in cases:
        assert await refused(input, token) == expected, input
    # Non-finite numbers never get past GraphQL's Float; the service refuses them too.
    async with db.transaction() as session:
        actor = await accounts.load_actor(session, ids.decode(ann.user_id, "User"))
        for x, y in ((math.nan, 0.0), (0.0, math.inf), (-math.inf, 1.0)):
            with pytest.raises(InvalidInput):
                await constellation.pin_asset(
                    session, actor, asset_id=ids.decode(assets[0], "Asset"), x=x, y=y
                )
    assert await _map(db, ann, team) == before
    async with db.session() as session:
        pinned = await session.exec(
            select(AssetRow.id).where(
                col(AssetRow.team_id) == team_pk, col(AssetRow.position_pinned)
            )
        )
        assert pinned.all() == []
