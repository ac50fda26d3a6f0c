"""Collections on both engines: each mutation, dense order, counts and durations derived
for each viewer, who sees and changes what, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import delete, update
from sqlmodel import col, select

from api.graphql import build_context
from api.schema import schema
from schema import ids
from services.database import Database
from services.library import collections as collection_service
from services.library.tables import AssetRow, AssetShareRow, CollectionItemRow
from tests import factories
from tests.factories import Account

COLLECTION = """
    id name description type tags category shareLevel viewerPermission
    itemCount totalDuration createdAt updatedAt
    team { id } creator { id } coverImage { id }
    items(first: 100) {
        totalCount
        edges { cursor node { id position notes addedAt addedBy { id } asset { id } } }
    }
"""
READ = f"query($id: ID!) {{ collection(id: $id) {{ {COLLECTION} }} }}"
LIST = """query($team: ID!, $first: Int!, $after: String) {
    collections(teamId: $team, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { node { id name } }
    }
}"""


@dataclass
class Crew:
    """A team with an OWNER (ann), an EDITOR (ed) and a VIEWER (vi), and bob outside it."""

    team: str
    ann: Account
    ed: Account
    vi: Account
    bob: Account


@pytest.fixture
async def crew(db: Database) -> Crew:
    ann = await factories.account(db, name="Ann")
    ed = await factories.account(db, name="Ed")
    vi = await factories.account(db, name="Vi")
    bob = await factories.account(db, name="Bob")
    team = await factories.team_with(db, ann, {"EDITOR": ed, "VIEWER": vi})
    return Crew(team=team, ann=ann, ed=ed, vi=vi, bob=bob)


async def create(db: Database, who: Account, team: str, **fields: Any) -> dict[str, Any]:
    payload = await factories.mutate_ok(
        db,
        "createCollection",
        {"teamId": team, **fields},
        f"collection {{ {COLLECTION} }}",
        token=who.token,
    )
    result: dict[str, Any] = payload["collection"]
    return result


async def add(
    db: Database, who: Account, collection: str, asset: str, **extra: Any
) -> dict[str, Any]:
    return await factories.mutate(
        db,
        "addToCollection",
        {"collectionId": collection, "assetId": asset, **extra},
        "item { id position notes asset { id } addedBy { id } } collection { itemCount }",
        token=who.token,
    )


async def read(db: Database, who: Account, collection: str) -> dict[str, Any] | None:
    data = await factories.gql(db, READ, {"id": collection}, token=who.token)
    result: dict[str, Any] | None = data["collection"]
    return result


async def order(db: Database, who: Account, collection: str) -> list[tuple[str, int]]:
    """(asset id, position) of the items `who` sees, in order."""
    shown = await read(db, who, collection)
    assert shown is not None
    return [
        (edge["node"]["asset"]["id"], edge["node"]["position"]) for edge in shown["items"]["edges"]
    ]


async def stored_positions(db: Database, collection: str) -> list[int]:
    """Every item's stored position, whoever may see it."""
    pk = ids.decode(collection, "Collection")
    async with db.session() as session:
        found = await session.exec(
            select(CollectionItemRow.position)
            .where(col(CollectionItemRow.collection_id) == pk)
            .order_by(col(CollectionItemRow.position))
        )
        return list(found.all())


async def set_asset_level(db: Database, asset: str, level: str) -> None:
    async with db.transaction() as session:
        await session.exec(
            update(AssetRow)
            .where(col(AssetRow.id) == ids.decode(asset, "Asset"))
            .values(share_level=level)
        )


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["code"] for error in payload["userErrors"]]


# --- create, update, delete ------------------------------------------------------------


async def test_create_has_defaults_and_cleans_its_fields(db: Database, crew: Crew) -> None:
    plain = await create(db, crew.ed, crew.team)
    assert plain["name"] == "Untitled Collection"
    assert (plain["type"], plain["shareLevel"], plain["viewerPermission"]) == (
        "CAMPAIGN",
        "TEAM",
        "ADMIN",
    )
    assert (plain["itemCount"], plain["totalDuration"], plain["tags"]) == (0, 0.0, [])
    assert plain["team"]["id"] == crew.team
    assert plain["creator"]["id"] == crew.ed.user_id
    assert plain["coverImage"] is None
    assert plain["items"]["edges"] == []

    cover = await factories.library_asset(db, crew.ann, team_id=crew.team)
    full = await create(
        db,
        crew.ed,
        crew.team,
        name="  Neon Nights ",
        description="Rain, signs, reflections",
        type="SERIES",
        tags=["Night", " night ", "City", "CITY"],
        category="urban",
        shareLevel="PUBLIC",
        coverAssetId=cover,
    )
    assert full["name"] == "Neon Nights"
    assert full["tags"] == ["night", "city"]
    assert (full["type"], full["category"], full["shareLevel"]) == ("SERIES", "urban", "PUBLIC")
    assert full["coverImage"] == {"id": cover}
    # Bob, outside the team, sees a PUBLIC collection but not its team.
    seen = await read(db, crew.bob, full["id"])
    assert seen is not None
    assert (seen["viewerPermission"], seen["team"], seen["coverImage"]) == ("VIEW", None, None)


async def test_update_changes_only_what_is_given(db: Database, crew: Crew) -> None:
    cover = await factories.library_asset(db, crew.ann, team_id=crew.team)
    made = await create(
        db, crew.ann, crew.team, name="Kit", tags=["a"], category="brand", coverAssetId=cover
    )
    payload = await factories.mutate_ok(
        db,
        "updateCollection",
        {"id": made["id"], "name": "Brand kit", "type": "BRAND_KIT", "tags": ["Logo", "logo"]},
        "collection { name type tags category coverImage { id } updatedAt }",
        token=crew.ed.token,  # an EDITOR edits a TEAM collection
    )
    shown = payload["collection"]
    assert (shown["name"], shown["type"], shown["tags"]) == ("Brand kit", "BRAND_KIT", ["logo"])
    assert shown["category"] == "brand"
    assert shown["coverImage"] == {"id": cover}
    assert shown["updatedAt"] > made["updatedAt"]
    cleared = await factories.mutate_ok(
        db,
        "updateCollection",
        {"id": made["id"], "coverAssetId": None, "category": None, "description": None},
        "collection { category description coverImage { id } }",
        token=crew.ed.token,
    )
    assert cleared["collection"] == {"category": None, "description": None, "coverImage": None}
    # Giving the level it has already is no change of level: an EDITOR may send it.
    same = await factories.mutate_ok(
        db,
        "updateCollection",
        {"id": made["id"], "shareLevel": "TEAM", "name": "Brand kit 2"},
        "collection { name shareLevel }",
        token=crew.ed.token,
    )
    assert same["collection"] == {"name": "Brand kit 2", "shareLevel": "TEAM"}
    # The owner changes its level.
    level = await factories.mutate_ok(
        db,
        "updateCollection",
        {"id": made["id"], "shareLevel": "PUBLIC"},
        "collection { shareLevel }",
        token=crew.ann.token,
    )
    assert level["collection"]["shareLevel"] == "PUBLIC"


async def test_delete_takes_the_collection_and_its_items_not_the_assets(
    db: Database, crew: Crew
) -> None:
    made = await create(db, crew.ed, crew.team)
    asset = await factories.library_asset(db, crew.ed, team_id=crew.team)
    await add(db, crew.ed, made["id"], asset)
    # Another EDITOR may edit a TEAM collection but not delete it.
    other = await create(db, crew.ann, crew.team)
    refused = await factories.mutate(
        db, "deleteCollection", {"id": other["id"]}, "deletedId", token=crew.ed.token
    )
    assert codes(refused) == ["FORBIDDEN"]
    assert refused["deletedId"] is None
    assert await read(db, crew.ann, other["id"]) is not None

    done = await factories.mutate_ok(
        db, "deleteCollection", {"id": made["id"]}, "deletedId", token=crew.ed.token
    )
    assert done["deletedId"] == made["id"]
    assert await read(db, crew.ed, made["id"]) is None
    assert await stored_positions(db, made["id"]) == []
    data = await factories.gql(
        db, "query($id: ID!) { asset(id: $id) { id } }", {"id": asset}, token=crew.ed.token
    )
    assert data["asset"] == {"id": asset}
    # The team's OWNER deletes a collection someone else made.
    owner = await factories.mutate_ok(
        db, "deleteCollection", {"id": other["id"]}, "deletedId", token=crew.ann.token
    )
    assert owner["deletedId"] == other["id"]


# --- items and their order ---------------------------------------------------------------


async def test_inserts_removals_and_reorders_keep_a_dense_order(db: Database, crew: Crew) -> None:
    made = await create(db, crew.ed, crew.team)
    coll = made["id"]
    a, b, c, d, e = [
        await factories.library_asset(db, crew.ann, team_id=crew.team) for _ in range(5)
    ]
    for asset in (a, b, c):
        payload = await add(db, crew.ed, coll, asset)
        assert codes(payload) == []
    assert await order(db, crew.ed, coll) == [(a, 0), (b, 1), (c, 2)]

    inserted = await add(db, crew.ed, coll, d, position=1, notes="  the turn  ")
    assert codes(inserted) == []
    assert inserted["item"]["position"] == 1
    assert inserted["item"]["notes"] == "the turn"
    assert inserted["item"]["addedBy"] == {"id": crew.ed.user_id}
    assert inserted["collection"]["itemCount"] == 4
    assert await order(db, crew.ed, coll) == [(a, 0), (d, 1), (b, 2), (c, 3)]
    assert codes(await add(db, crew.ed, coll, e, position=0)) == []
    assert await order(db, crew.ed, coll) == [(e, 0), (a, 1), (d, 2), (b, 3), (c, 4)]

    removed = await factories.mutate_ok(
        db,
        "removeFromCollection",
        {"collectionId": coll, "assetId": d},
        "removedItemId collection { itemCount }",
        token=crew.ed.token,
    )
    assert removed["collection"]["itemCount"] == 4
    assert ids.parse(removed["removedItemId"]) is not None
    assert await order(db, crew.ed, coll) == [(e, 0), (a, 1), (b, 2), (c, 3)]

    shown = await read(db, crew.ed, coll)
    assert shown is not None
    item_of = {edge["node"]["asset"]["id"]: edge["node"]["id"] for edge in shown["items"]["edges"]}
    reordered = await factories.mutate_ok(
        db,
        "reorderCollection",
        {"collectionId": coll, "itemIds": [item_of[x] for x in (c, a, e, b)]},
        "collection { id }",
        token=crew.ed.token,
    )
    assert reordered["collection"]["id"] == coll
    assert await order(db, crew.ed, coll) == [(c, 0), (a, 1), (e, 2), (b, 3)]
    assert await stored_positions(db, coll) == [0, 1, 2, 3]


async def test_adding_the_same_asset_twice_is_a_user_error(db: Database, crew: Crew) -> None:
    coll = (await create(db, crew.ed, crew.team))["id"]
    asset = await factories.library_asset(db, crew.ed, team_id=crew.team)
    assert codes(await add(db, crew.ed, coll, asset)) == []
    again = await add(db, crew.ed, coll, asset, position=0)
    assert codes(again) == ["ALREADY_IN_COLLECTION"]
    assert again["item"] is None
    assert again["collection"] is None
    assert await order(db, crew.ed, coll) == [(asset, 0)]


async def test_items_page_in_position_order(db: Database, crew: Crew) -> None:
    coll = (await create(db, crew.ed, crew.team))["id"]
    assets = [await factories.library_asset(db, crew.ed, team_id=crew.team) for _ in range(5)]
    for asset in assets:
        await add(db, crew.ed, coll, asset)
    query = """query($id: ID!, $after: String) { collection(id: $id) {
        items(first: 2, after: $after) {
            totalCount pageInfo { hasNextPage endCursor } nodes { asset { id } position }
        } } }"""
    seen: list[str] = []
    after = None
    for _ in range(3):
        data = await factories.gql(db, query, {"id": coll, "after": after}, token=crew.vi.token)
        page = data["collection"]["items"]
        assert page["totalCount"] == 5
        seen += [node["asset"]["id"] for node in page["nodes"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert seen == assets


# --- derived counts and visibility -------------------------------------------------------


async def test_counts_and_durations_follow_items_and_visibility(db: Database, crew: Crew) -> None:
    coll = (await create(db, crew.ann, crew.team))["id"]
    clip = await factories.library_asset(
        db, crew.ann, team_id=crew.team, kind="VIDEO", duration=4.5
    )
    short = await factories.library_asset(db, crew.ann, team_id=crew.team, kind="VIDEO", duration=3)
    still = await factories.library_asset(db, crew.ann, team_id=crew.team)
    for asset in (clip, short, still):
        await add(db, crew.ann, coll, asset)
    shown = await read(db, crew.vi, coll)
    assert shown is not None
    assert (shown["itemCount"], shown["totalDuration"]) == (3, 7.5)

    # Ed adds a PRIVATE clip of his: he sees and counts it, no one else does.
    secret = await factories.library_asset(
        db, crew.ed, team_id=crew.team, kind="VIDEO", duration=10, share_level="PRIVATE"
    )
    assert codes(await add(db, crew.ed, coll, secret, position=1)) == []
    mine = await read(db, crew.ed, coll)
    theirs = await read(db, crew.ann, coll)
    assert mine is not None
    assert theirs is not None
    assert (mine["itemCount"], mine["totalDuration"]) == (4, 17.5)
    assert (theirs["itemCount"], theirs["totalDuration"]) == (3, 7.5)
    assert theirs["items"]["totalCount"] == 3
    assert await order(db, crew.ann, coll) == [(clip, 0), (short, 2), (still, 3)]

    # Made TEAM, it counts for everyone at once: nothing stored had to change.
    await set_asset_level(db, secret, "TEAM")
    again = await read(db, crew.ann, coll)
    assert again is not None
    assert (again["itemCount"], again["totalDuration"]) == (4, 17.5)

    await factories.mutate_ok(
        db,
        "removeFromCollection",
        {"collectionId": coll, "assetId": clip},
        "collection { id }",
        token=crew.ed.token,
    )
    after = await read(db, crew.vi, coll)
    assert after is not None
    assert (after["itemCount"], after["totalDuration"]) == (3, 13.0)


async def test_reorder_leaves_items_hidden_from_the_editor_in_place(
    db: Database, crew: Crew
) -> None:
    coll = (await create(db, crew.ann, crew.team))["id"]
    a = await factories.library_asset(db, crew.ann, team_id=crew.team)
    hidden = await factories.library_asset(db, crew.ann, team_id=crew.team, share_level="PRIVATE")
    b = await factories.library_asset(db, crew.ann, team_id=crew.team)
    for asset in (a, hidden, b):
        await add(db, crew.ann, coll, asset)
    shown = await read(db, crew.ed, coll)
    assert shown is not None
    items = {edge["node"]["asset"]["id"]: edge["node"]["id"] for edge in shown["items"]["edges"]}
    assert set(items) == {a, b}
    # Listing only what he sees is the whole list for him; the hidden item keeps its slot.
    await factories.mutate_ok(
        db,
        "reorderCollection",
        {"collectionId": coll, "itemIds": [items[b], items[a]]},
        "collection { id }",
        token=crew.ed.token,
    )
    assert await order(db, crew.ann, coll) == [(b, 0), (hidden, 1), (a, 2)]


async def test_share_levels_decide_who_sees_a_collection(db: Database, crew: Crew) -> None:
    private = (await create(db, crew.ed, crew.team, name="Mine", shareLevel="PRIVATE"))["id"]
    team = (await create(db, crew.ed, crew.team, name="Ours"))["id"]
    public = (await create(db, crew.ed, crew.team, name="Everyone's", shareLevel="PUBLIC"))["id"]
    team_asset = await factories.library_asset(db, crew.ed, team_id=crew.team)
    public_asset = await factories.library_asset(
        db, crew.ed, team_id=crew.team, share_level="PUBLIC"
    )
    for asset in (team_asset, public_asset):
        await add(db, crew.ed, public, asset)

    async def names(who: Account) -> tuple[int, list[str]]:
        data = await factories.gql(db, LIST, {"team": crew.team, "first": 10}, token=who.token)
        page = data["collections"]
        return page["totalCount"], [edge["node"]["name"] for edge in page["edges"]]

    assert await names(crew.ed) == (3, ["Everyone's", "Ours", "Mine"])
    assert await names(crew.ann) == (2, ["Everyone's", "Ours"])  # PRIVATE is its creator's
    assert await names(crew.vi) == (2, ["Everyone's", "Ours"])
    assert await names(crew.bob) == (1, ["Everyone's"])
    assert await read(db, crew.ann, private) is None
    assert await read(db, crew.bob, team) is None
    outside = await read(db, crew.bob, public)
    assert outside is not None
    assert (outside["itemCount"], outside["creator"]) == (1, None)
    assert [edge["node"]["asset"]["id"] for edge in outside["items"]["edges"]] == [public_asset]
    viewer = await read(db, crew.vi, team)
    assert viewer is not None
    assert viewer["viewerPermission"] == "VIEW"


async def test_collections_page_through_with_keyset_cursors(db: Database, crew: Crew) -> None:
    made = [(await create(db, crew.ed, crew.team, name=f"C{n}"))["id"] for n in range(5)]
    seen: list[str] = []
    after = None
    while True:
        data = await factories.gql(
            db, LIST, {"team": crew.team, "first": 2, "after": after}, token=crew.vi.token
        )
        page = data["collections"]
        assert page["totalCount"] == 5
        seen += [edge["node"]["id"] for edge in page["edges"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert len(seen) == len(set(seen))
    assert [x for x in seen if x in made] == list(reversed(made))  # newest first


async def test_node_resolves_collections_and_items(db: Database, crew: Crew) -> None:
    coll = (await create(db, crew.ed, crew.team))["id"]
    open_asset = await factories.library_asset(db, crew.ed, team_id=crew.team)
    secret = await factories.library_asset(db, crew.ed, team_id=crew.team, share_level="PRIVATE")
    first = (await add(db, crew.ed, coll, open_asset))["item"]["id"]
    second = (await add(db, crew.ed, coll, secret))["item"]["id"]
    query = """query($id: ID!) { node(id: $id) { id __typename
        ... on CollectionItem { position collection { id } asset { id } }
        ... on Collection { itemCount } } }"""

    async def node(who: Account, node_id: str) -> Any:
        return (await factories.gql(db, query, {"id": node_id}, token=who.token))["node"]

    assert (await node(crew.vi, coll))["itemCount"] == 1
    assert await node(crew.vi, first) == {
        "id": first,
        "__typename": "CollectionItem",
        "position": 0,
        "collection": {"id": coll},
        "asset": {"id": open_asset},
    }
    assert await node(crew.vi, second) is None  # its asset is Ed's alone
    assert (await node(crew.ed, second))["position"] == 1
    assert await node(crew.bob, coll) is None
    assert await node(crew.bob, first) is None


NESTED = """query($team: ID!) { collections(teamId: $team, first: 50) { totalCount edges { node {
    name itemCount totalDuration coverImage { id } creator { name } team { name }
    items(first: 10) { totalCount nodes { position asset { id name fileUrl } addedBy { name } } }
} } } }"""


async def _statements_for_list(db: Database, who: Account, team: str) -> tuple[int, Any]:
    """The statements one list of a team's collections costs, counted on an engine of its own."""
    reader = Database(db.url.render_as_string(hide_password=False))
    try:
        async with reader.session() as session:
            await session.connection()  # a new engine's first connection asks about the server
        context = await build_context(factories.resources(reader), who.token)
        with factories.statements(reader) as statements:
            result = await schema.execute(NESTED, {"team": team}, context_value=context)
    finally:
        await reader.dispose()
    assert result.errors is None, result.errors
    return len(statements), result.data


async def test_a_list_of_collections_costs_the_same_statements_at_any_size(
    db: Database, crew: Crew
) -> None:
    # The same shape at two sizes: Ann's collections with her cover, items Ed added.
    small_team = await factories.team_with(db, crew.ann, {"EDITOR": crew.ed}, name="Small")
    small_cover = await factories.library_asset(db, crew.ann, team_id=small_team)
    coll = (await create(db, crew.ann, small_team, coverAssetId=small_cover))["id"]
    await add(db, crew.ed, coll, await factories.library_asset(db, crew.ann, team_id=small_team))
    for n in range(6):
        cover = await factories.library_asset(db, crew.ann, team_id=crew.team)
        big = (await create(db, crew.ann, crew.team, name=f"Big {n}", coverAssetId=cover))["id"]
        for _ in range(5):
            asset = await factories.library_asset(
                db, crew.ann, team_id=crew.team, kind="VIDEO", duration=2
            )
            await add(db, crew.ed, big, asset)
    small_count, small = await _statements_for_list(db, crew.ed, small_team)
    large_count, large = await _statements_for_list(db, crew.ed, crew.team)
    assert small["collections"]["totalCount"] == 1
    assert large["collections"]["totalCount"] == 6
    assert all(
        edge["node"]["itemCount"] == 5 and len(edge["node"]["items"]["nodes"]) == 5
        for edge in large["collections"]["edges"]
    )
    assert small_count == large_count


# --- concurrency and deleted assets ---------------------------------------------------------


async def test_concurrent_appends_get_distinct_dense_positions(db: Database, crew: Crew) -> None:
    coll = (await create(db, crew.ed, crew.team))["id"]
    assets = [await factories.library_asset(db, crew.ed, team_id=crew.team) for _ in range(8)]
    payloads = await asyncio.gather(*(add(db, crew.ed, coll, asset) for asset in assets))
    assert [codes(p) for p in payloads] == [[]] * 8
    assert sorted(p["item"]["position"] for p in payloads) == list(range(8))
    assert await stored_positions(db, coll) == list(range(8))
    assert {asset for asset, _ in await order(db, crew.ed, coll)} == set(assets)


async def test_a_deleted_asset_leaves_the_order_dense(db: Database, crew: Crew) -> None:
    coll = (await create(db, crew.ed, crew.team))["id"]
    a, b, c, d = [await factories.library_asset(db, crew.ed, team_id=crew.team) for _ in range(4)]
    for asset in (a, b, c, d):
        await add(db, crew.ed, coll, asset)
    # The way a delete should go: forget_asset first, then the row.
    async with db.transaction() as session:
        await collection_service.forget_asset(session, ids.decode(b, "Asset"))
        await session.exec(delete(AssetRow).where(col(AssetRow.id) == ids.decode(b, "Asset")))
    assert await order(db, crew.ed, coll) == [(a, 0), (c, 1), (d, 2)]
    # A delete that skips it leaves a gap, closed by the collection's next write.
    async with db.transaction() as session:
        await session.exec(delete(AssetRow).where(col(AssetRow.id) == ids.decode(c, "Asset")))
    assert await stored_positions(db, coll) == [0, 2]
    e = await factories.library_asset(db, crew.ed, team_id=crew.team)
    assert codes(await add(db, crew.ed, coll, e)) == []
    assert await order(db, crew.ed, coll) == [(a, 0), (d, 1), (e, 2)]


# --- bad input changes nothing ---------------------------------------------------------------


@dataclass
class Scene:
    """A TEAM collection of Ann's with three items, a spare asset of the team, and assets
    of Bob's team: a PUBLIC one, one shared with Ed, one Ed cannot see."""

    crew: Crew
    coll: str
    items: list[str]
    assets: list[str]
    spare: str
    foreign_public: str
    foreign_shared: str
    foreign_hidden: str


@pytest.fixture
async def scene(db: Database, crew: Crew) -> Scene:
    coll = (await create(db, crew.ann, crew.team, name="Stable", tags=["keep"]))["id"]
    assets = [await factories.library_asset(db, crew.ann, team_id=crew.team) for _ in range(3)]
    items = [(await add(db, crew.ann, coll, asset))["item"]["id"] for asset in assets]
    spare = await factories.library_asset(db, crew.ann, team_id=crew.team)
    # Ed may see the first two (PUBLIC, and shared with him), but they are another team's.
    foreign_public = await factories.library_asset(db, crew.bob, share_level="PUBLIC")
    foreign_shared = await factories.library_asset(db, crew.bob)
    async with db.transaction() as session:
        session.add(
            AssetShareRow(
                asset_id=ids.decode(foreign_shared, "Asset"),
                user_id=ids.decode(crew.ed.user_id, "User"),
                permission="EDIT",
            )
        )
    foreign_hidden = await factories.library_asset(db, crew.bob)
    return Scene(crew, coll, items, assets, spare, foreign_public, foreign_shared, foreign_hidden)


async def _state(db: Database, scene: Scene) -> Any:
    shown = await read(db, scene.crew.ann, scene.coll)
    listed = await factories.gql(
        db, LIST, {"team": scene.crew.team, "first": 100}, token=scene.crew.ann.token
    )
    return shown, listed, await stored_positions(db, scene.coll)


# Each case: who (a Crew attribute), the mutation, its input, the codes it must answer.
Case = tuple[str, str, dict[str, Any], list[str]]
CASES: dict[str, Callable[[Scene], Case]] = {
    "unknown collection": lambda s: (
        "ed", "addToCollection",
        {"collectionId": ids.encode("Collection", 999_999), "assetId": s.assets[0]},
        ["NOT_FOUND"],
    ),
    "unknown asset": lambda s: (
        "ed", "addToCollection",
        {"collectionId": s.coll, "assetId": ids.encode("Asset", 999_999)}, ["NOT_FOUND"],
    ),
    "wrong ID type": lambda s: (
        "ed", "addToCollection", {"collectionId": s.assets[0], "assetId": s.assets[0]},
        ["WRONG_ID_TYPE"],
    ),
    "malformed ID": lambda s: (
        "ed", "updateCollection", {"id": "not-an-id", "name": "x"}, ["INVALID_ID"],
    ),
    "empty name on create": lambda s: (
        "ed", "createCollection", {"teamId": s.crew.team, "name": "  "}, ["BLANK"],
    ),
    "empty name on update": lambda s: (
        "ed", "updateCollection", {"id": s.coll, "name": ""}, ["BLANK"],
    ),
    "overlong tag": lambda s: (
        "ed", "updateCollection", {"id": s.coll, "tags": ["ok", "x" * 51]}, ["TOO_LONG"],
    ),
    "too many tags": lambda s: (
        "ed", "createCollection", {"teamId": s.crew.team, "tags": [f"t{n}" for n in range(31)]},
        ["TOO_MANY_TAGS"],
    ),
    "several problems at once": lambda s: (
        "ed", "createCollection",
        {"teamId": s.crew.team, "name": "", "tags": [""], "coverAssetId": "nope"},
        ["INVALID_ID", "BLANK", "BLANK"],
    ),
    "another team's PUBLIC asset": lambda s: (
        "ed", "addToCollection", {"collectionId": s.coll, "assetId": s.foreign_public},
        ["ASSET_OF_ANOTHER_TEAM"],
    ),
    "another team's asset shared with the actor": lambda s: (
        "ed", "addToCollection", {"collectionId": s.coll, "assetId": s.foreign_shared},
        ["ASSET_OF_ANOTHER_TEAM"],
    ),
    "another team's asset as cover": lambda s: (
        "ed", "updateCollection", {"id": s.coll, "coverAssetId": s.foreign_public},
        ["ASSET_OF_ANOTHER_TEAM"],
    ),
    "another team's asset the actor cannot see": lambda s: (
        "ed", "addToCollection", {"collectionId": s.coll, "assetId": s.foreign_hidden},
        ["NOT_FOUND"],
    ),
    "a team the actor is not in": lambda s: (
        "ed", "createCollection", {"teamId": s.crew.bob.team_id}, ["NOT_FOUND"],
    ),
    "position past the end": lambda s: (
        "ann", "addToCollection",
        {"collectionId": s.coll, "assetId": s.foreign_public, "position": 9},
        ["ASSET_OF_ANOTHER_TEAM", "OUT_OF_RANGE"],
    ),
    "negative position": lambda s: (
        "ann", "addToCollection",
        {"collectionId": s.coll, "assetId": s.spare, "position": -1}, ["OUT_OF_RANGE"],
    ),
    "reorder missing an item": lambda s: (
        "ed", "reorderCollection", {"collectionId": s.coll, "itemIds": s.items[:2]},
        ["INVALID_ORDER"],
    ),
    "reorder repeating an item": lambda s: (
        "ed", "reorderCollection", {"collectionId": s.coll, "itemIds": [s.items[0], *s.items]},
        ["INVALID_ORDER"],
    ),
    "reorder with an asset ID": lambda s: (
        "ed", "reorderCollection",
        {"collectionId": s.coll, "itemIds": [s.assets[0], *s.items[1:]]}, ["WRONG_ID_TYPE"],
    ),
    "remove an asset not in it": lambda s: (
        "ed", "removeFromCollection", {"collectionId": s.coll, "assetId": s.spare},
        ["NOT_IN_COLLECTION"],
    ),
    "a VIEWER updating": lambda s: (
        "vi", "updateCollection", {"id": s.coll, "name": "Mine now"}, ["FORBIDDEN"],
    ),
    "a VIEWER adding": lambda s: (
        "vi", "addToCollection", {"collectionId": s.coll, "assetId": s.spare}, ["FORBIDDEN"],
    ),
    "a VIEWER removing": lambda s: (
        "vi", "removeFromCollection", {"collectionId": s.coll, "assetId": s.assets[0]},
        ["FORBIDDEN"],
    ),
    "a VIEWER reordering": lambda s: (
        "vi", "reorderCollection", {"collectionId": s.coll, "itemIds": s.items[::-1]},
        ["FORBIDDEN"],
    ),
    "a VIEWER creating": lambda s: ("vi", "createCollection", {"teamId": s.crew.team}, ["FORBIDDEN"]),
    "a VIEWER deleting": lambda s: ("vi", "deleteCollection", {"id": s.coll}, ["FORBIDDEN"]),
    "an EDITOR changing the level": lambda s: (
        "ed", "updateCollection", {"id": s.coll, "shareLevel": "PRIVATE", "name": "Hidden"},
        ["FORBIDDEN"],
    ),
    "an outsider updating": lambda s: (
        "bob", "updateCollection", {"id": s.coll, "name": "x"}, ["NOT_FOUND"],
    ),
}  # fmt: skip

SELECTIONS = {
    "createCollection": "collection { id }",
    "updateCollection": "collection { id }",
    "deleteCollection": "deletedId",
    "addToCollection": "item { id } collection { id }",
    "removeFromCollection": "removedItemId collection { id }",
    "reorderCollection": "collection { id }",
}


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_a_user_error_that_changes_nothing(
    db: Database, scene: Scene, case: str
) -> None:
    who, mutation, payload_input, expected = CASES[case](scene)
    before = await _state(db, scene)
    payload = await factories.mutate(
        db, mutation, payload_input, SELECTIONS[mutation], token=getattr(scene.crew, who).token
    )
    assert codes(payload) == expected, payload["userErrors"]
    assert all(value is None for key, value in payload.items() if key != "userErrors")
    assert await _state(db, scene) == before
