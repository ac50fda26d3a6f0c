"""The media library across its parts, on both engines: one share that expires checked in
every path at once, deleteAsset's effects on every part, who may turn duplication and
remixing off, and the statement count of the library's nested reads at any size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from api.graphql import build_context
from api.schema import schema
from schema import ids
from services.database import Database
from services.library.tables import AssetRow, AssetShareRow
from services.realtime.bus import EventBus
from services.tables import utcnow
from tests import factories
from tests.emulator_harness import eventually
from tests.factories import (
    Account,
    account,
    library_asset,
    mutate,
    mutate_ok,
    resources,
    team_with,
)
from tests.test_discarded_generations import (
    RUNNING_FOR_A_MINUTE,
    canceled_at_provider,
    cancels_sent,
    predictions_in,
)
from tests.test_generation import EMULATOR_SEED, Studio, running_studio
from tests.test_library_events import Feed, edit, following
from tests.test_library_evolution import FLUX, settled_assets
from tests.test_library_sharing import iso, link_lifetime, link_works

HOUR = timedelta(hours=1)


def pk(global_id: str, type_name: str) -> int:
    return ids.decode(global_id, type_name)


# --- N+1: the library's nested reads cost the same statements for 2 and for 24 ----------

ASSET_FIELDS = """
  id name thumbnailUrl fileUrl viewerPermission
  team { id name } creator { id name } sourceProject { id title }
  parent { id name } root { id name } usedInProjects isFavorite
  shares { id permission active user { id name } sharedBy { id } }
  constellationPosition { x y clusterId pinned }
  promptDelta { added removed } sourceImage { id imageUrl }
"""

LIBRARY = (
    "query($teamId: ID!) { library(filter: {teamId: $teamId}, first: 24) { totalCount "
    "edges { cursor node {" + ASSET_FIELDS + "} } } }"
)
COLLECTION = (
    "query($id: ID!) { collection(id: $id) { id itemCount totalDuration "
    "items(first: 24) { totalCount edges { node { id position notes addedBy { id name } "
    "asset {" + ASSET_FIELDS + "} } } } } }"
)
SHARED_WITH_ME = (
    "query { sharedWithMe(first: 24) { totalCount edges { share { id permission } "
    "node {" + ASSET_FIELDS + "} } } }"
)
LINEAGE = (
    "query($id: ID!) { lineage(assetId: $id) { truncated asset {" + ASSET_FIELDS + "} "
    "ancestors { asset { id } } descendants { evolutionType branchName version "
    "asset {" + ASSET_FIELDS + "} } tree { children { asset { id parent { id } } "
    "children { asset { id } } } } } }"
)


@contextmanager
def count_statements(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def counted(
    db: Database, who: Account, query: str, variables: dict[str, Any] | None = None
) -> tuple[list[str], dict[str, Any]]:
    """The statements one query sends (on an engine of its own) and its data."""
    reader = Database(db.url.render_as_string(hide_password=False))
    try:
        async with reader.session() as session:  # a new engine's first look, uncounted
            await session.connection()
        context = await build_context(resources(reader), who.token)
        with count_statements(reader) as statements:
            result = await schema.execute(query, variables or {}, context_value=context)
    finally:
        await reader.dispose()
    assert result.errors is None, result.errors
    assert result.data is not None
    return statements, result.data


class Library:
    """A team's library of `size` assets, each with every relation a grid shows."""

    def __init__(self, owner: Account, friend: Account, team_id: str) -> None:
        self.owner = owner
        self.friend = friend
        self.team_id = team_id
        self.root = ""
        self.assets: list[str] = []
        self.collection = ""


async def library_of(db: Database, size: int) -> Library:
    """`size` assets under one root (made from a shot image of a project used in a
    storyboard), each shared with a teammate, and all in one collection."""
    owner = await account(db, name="Owner")
    friend = await account(db, name="Friend")
    team_id = await team_with(db, owner, {"EDITOR": friend})
    made = Library(owner, friend, team_id)
    # The project is in the owner's own team, so its imports' assets stay out of this one.
    project_id = await factories.project(db, owner, title=f"Library {size}")
    (shot,) = (await factories.scene(db, owner, project_id, shots=1))["shots"]
    images: list[dict[str, Any]] = []
    while len(images) < size:  # an iteration holds at most 12
        count = min(12, size - len(images))
        images += (await factories.iteration(db, owner, shot["id"], count=count))["images"]
    await mutate_ok(
        db,
        "selectMasterShot",
        {"shotId": shot["id"], "imageId": images[0]["id"]},
        "selection { id }",
        token=owner.token,
    )
    made.root = await library_asset(
        db, owner, team_id=team_id, name="Root", tags=["harbour"], prompt="a harbour"
    )
    root_pk = pk(made.root, "Asset")
    for n, image in enumerate(images[: size - 1]):
        made.assets.append(
            await library_asset(
                db,
                owner,
                team_id=team_id,
                name=f"Child {n}",
                tags=["harbour", f"t{n % 3}"],
                prompt=f"a harbour at dusk {n}",
                parent_id=root_pk,
                root_id=root_pk,
                version=2,
                evolution_type="REMIX",
                prompt_delta={"added": ["dusk"], "removed": []},
                project_id=pk(project_id, "Project"),
                shot_image_id=pk(image["id"], "ShotImage"),
                storage_key=f"library/{size}-{n}.png",
                thumbnail_key=f"library/{size}-{n}.webp",
                constellation_x=float(n),
                constellation_y=1.0,
                share_level="PRIVATE",
            )
        )
    made.assets.insert(0, made.root)
    made.collection = (
        await mutate_ok(
            db, "createCollection", {"teamId": team_id}, "collection { id }", token=owner.token
        )
    )["collection"]["id"]
    for asset_id in made.assets:
        await mutate_ok(
            db,
            "shareAsset",
            {"assetId": asset_id, "userId": friend.user_id, "permission": "VIEW"},
            "share { id }",
            token=owner.token,
        )
        await mutate_ok(
            db,
            "addToCollection",
            {"collectionId": made.collection, "assetId": asset_id, "notes": "kept"},
            "item { id }",
            token=owner.token,
        )
    return made


def grows(small: list[str], large: list[str]) -> str:
    """The statements the larger read sends more often than the smaller, for a message."""
    seen: dict[str, int] = {}
    for statement in large:
        seen[statement] = seen.get(statement, 0) + 1
    for statement in small:
        seen[statement] = seen.get(statement, 0) - 1
    return "\n---\n".join(s for s, n in seen.items() if n > 0)


async def test_the_librarys_nested_reads_cost_the_same_statements_for_2_and_24_assets(
    db: Database,
) -> None:
    small = await library_of(db, 2)
    large = await library_of(db, 24)

    def reads(lib: Library) -> list[tuple[str, Account, str, dict[str, Any]]]:
        return [
            ("library", lib.owner, LIBRARY, {"teamId": lib.team_id}),
            ("collection", lib.owner, COLLECTION, {"id": lib.collection}),
            ("sharedWithMe", lib.friend, SHARED_WITH_ME, {}),
            ("lineage", lib.owner, LINEAGE, {"id": lib.root}),
        ]

    for (name, s_who, s_query, s_vars), (_, l_who, l_query, l_vars) in zip(
        reads(small), reads(large), strict=True
    ):
        few, few_data = await counted(db, s_who, s_query, s_vars)
        many, many_data = await counted(db, l_who, l_query, l_vars)
        if name == "library":
            nodes = [e["node"] for e in many_data["library"]["edges"]]
            assert many_data["library"]["totalCount"] == 24
            child = next(n for n in nodes if n["parent"] is not None)
            assert child["root"]["id"] == large.root
            assert child["sourceProject"] is not None
            assert child["sourceImage"] is not None
            assert child["usedInProjects"] in (0, 1)
            assert child["shares"][0]["user"]["id"] == large.friend.user_id
            assert child["constellationPosition"] is not None
            assert child["promptDelta"] == {"added": ["dusk"], "removed": []}
            assert child["thumbnailUrl"]
            assert child["fileUrl"]
        if name == "collection":
            assert len(many_data["collection"]["items"]["edges"]) == 24
        if name == "sharedWithMe":
            assert many_data["sharedWithMe"]["totalCount"] == 24
            assert len(few_data["sharedWithMe"]["edges"]) == 2
        if name == "lineage":
            assert len(many_data["lineage"]["descendants"]) == 23
        print(f"\n{name}: 2 -> {len(few)}, 24 -> {len(many)}")
        # Loaders batch what is asked in one turn of the event loop; on a busy machine two
        # loads of one kind (a share's user and its sharer) may fall in two turns and cost
        # one statement more, at either size. A per-asset read would add about 22.
        assert abs(len(few) - len(many)) <= 1, f"{name} grows:\n{grows(few, many)}"


# --- updateAsset's canDuplicate / canRemix: ADMIN's, and honoured at once ----------------

RULES = "query($id: ID!) { asset(id: $id) { name canDuplicate canRemix } }"
UPDATE = "asset { id name canDuplicate canRemix }"


def codes(payload: dict[str, Any]) -> list[tuple[str, list[str] | None]]:
    return [(e["code"], e["field"]) for e in payload["userErrors"]]


async def test_only_an_admin_turns_duplication_and_remixing_off_and_then_both_are_refused(
    db: Database,
) -> None:
    ann = await account(db, name="Ann")
    adam = await account(db, name="Adam")
    eve = await account(db, name="Eve")
    sam = await account(db, name="Sam")  # outside the team, with an EDIT share
    team = await team_with(db, ann, {"ADMIN": adam, "EDITOR": eve})
    asset = await library_asset(
        db, ann, team_id=team, name="Lantern", prompt="a lantern", storage_key="library/l.png"
    )
    async with db.transaction() as session:
        session.add(
            AssetShareRow(
                asset_id=pk(asset, "Asset"), user_id=pk(sam.user_id, "User"), permission="EDIT"
            )
        )
    before = (await factories.gql(db, RULES, {"id": asset}, token=ann.token))["asset"]
    assert before == {"name": "Lantern", "canDuplicate": True, "canRemix": True}

    for who in (eve, sam):  # EDIT on it, through the team or a share: not enough
        for change in (
            {"canDuplicate": False},
            {"canRemix": False},
            {"name": "Renamed", "canDuplicate": False, "canRemix": False},
        ):
            refused = await mutate(
                db, "updateAsset", {"id": asset, **change}, UPDATE, token=who.token
            )
            field = "canDuplicate" if "canDuplicate" in change else "canRemix"
            assert codes(refused) == [("FORBIDDEN", [field])], refused
            assert "duplicating and remixing" in refused["userErrors"][0]["message"]
            assert refused["asset"] is None
        # Their EDIT still changes metadata, and null leaves the rules as they are.
        ok = await mutate_ok(
            db,
            "updateAsset",
            {"id": asset, "name": "Lantern", "canDuplicate": None, "canRemix": None},
            UPDATE,
            token=who.token,
        )
        assert (ok["asset"]["canDuplicate"], ok["asset"]["canRemix"]) == (True, True)
    assert (await factories.gql(db, RULES, {"id": asset}, token=ann.token))["asset"] == before

    # Before: the editor may duplicate and remix.
    await mutate_ok(db, "duplicateAsset", {"assetId": asset}, "asset { id }", token=eve.token)
    await mutate_ok(
        db,
        "remixAsset",
        {"assetId": asset, "prompt": "a red lantern"},
        "asset { id }",
        token=eve.token,
    )

    off = await mutate_ok(
        db, "updateAsset", {"id": asset, "canDuplicate": False}, UPDATE, token=adam.token
    )
    assert (off["asset"]["canDuplicate"], off["asset"]["canRemix"]) == (False, True)
    for who in (eve, sam, adam, ann):  # nobody, not even its creator, copies it now
        refused = await mutate(
            db, "duplicateAsset", {"assetId": asset}, "asset { id }", token=who.token
        )
        # (Sam, outside the team, never could: copies are made in the asset's team.)
        expected = "TEAM_MEMBERS_ONLY" if who is sam else "CANNOT_DUPLICATE"
        assert codes(refused) == [(expected, ["assetId"])]
    await mutate_ok(
        db,
        "remixAsset",
        {"assetId": asset, "prompt": "a blue lantern"},
        "asset { id }",
        token=eve.token,
    )

    off = await mutate_ok(
        db, "updateAsset", {"id": asset, "canRemix": False}, UPDATE, token=ann.token
    )
    assert (off["asset"]["canDuplicate"], off["asset"]["canRemix"]) == (False, False)
    for who in (eve, sam, adam, ann):
        refused = await mutate(
            db,
            "remixAsset",
            {"assetId": asset, "prompt": "a green lantern"},
            "asset { id }",
            token=who.token,
        )
        expected = "TEAM_MEMBERS_ONLY" if who is sam else "CANNOT_REMIX"
        assert codes(refused) == [(expected, ["assetId"])]
    counts = "query($id: ID!) { asset(id: $id) { duplicateCount remixCount } }"
    seen = (await factories.gql(db, counts, {"id": asset}, token=ann.token))["asset"]
    assert seen == {"duplicateCount": 1, "remixCount": 2}

    on = await mutate_ok(
        db,
        "updateAsset",
        {"id": asset, "canDuplicate": True, "canRemix": True},
        UPDATE,
        token=adam.token,
    )
    assert (on["asset"]["canDuplicate"], on["asset"]["canRemix"]) == (True, True)
    await mutate_ok(db, "duplicateAsset", {"assetId": asset}, "asset { id }", token=eve.token)


# --- deleteAsset, seen from every part ---------------------------------------------------


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    instance = EventBus("memory://", queue_size=64)
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def live_db(db: Database, bus: EventBus) -> AsyncIterator[Database]:
    """The test database, publishing on a memory bus as a server does."""
    database = Database(db.url, bus=bus)
    yield database
    await database.dispose()


async def until(feed: Feed, sentinel: str) -> list[dict[str, Any]]:
    """Every event the feed sends up to and including the sentinel asset's creation."""
    got: list[dict[str, Any]] = []
    while not got or got[-1]["assetId"] != sentinel:
        got.append(await feed.next())
    return got


ITEMS = (
    "query($id: ID!) { collection(id: $id) { itemCount "
    "items(first: 50) { edges { node { position asset { id } } } } } }"
)
SEARCH = (
    "query($teamId: ID!, $text: String) { library(filter: {teamId: $teamId, text: $text}) "
    "{ totalCount edges { node { id } } } }"
)
MAP = (
    "query($teamId: ID!) { constellation(teamId: $teamId) { nodes { id } "
    "edges { sourceId targetId evolutionType } clusters { size } } }"
)
FAMILY = (
    "query($id: ID!) { asset(id: $id) { id parent { id } root { id } version } "
    "lineage(assetId: $id) { ancestors { asset { id } } descendants { asset { id } } } }"
)


async def collection_with(db: Database, owner: Account, team: str, assets: list[str]) -> str:
    made = await mutate_ok(
        db, "createCollection", {"teamId": team}, "collection { id }", token=owner.token
    )
    collection_id: str = made["collection"]["id"]
    for asset_id in assets:
        await mutate_ok(
            db,
            "addToCollection",
            {"collectionId": collection_id, "assetId": asset_id},
            "item { id }",
            token=owner.token,
        )
    return collection_id


async def test_deleting_an_asset_is_seen_in_every_part(live_db: Database, bus: EventBus) -> None:
    db = live_db
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    team = await team_with(db, ann, {"VIEWER": bob})
    doomed = await library_asset(
        db,
        ann,
        team_id=team,
        name="Beacon tower",
        tags=["beacon", "coast"],
        share_level="PRIVATE",
        storage_key="library/beacon.png",
    )
    child = await library_asset(
        db,
        ann,
        team_id=team,
        name="Beacon tower in fog",
        tags=["beacon", "fog"],
        parent_id=pk(doomed, "Asset"),
        root_id=pk(doomed, "Asset"),
        version=2,
        evolution_type="REMIX",
    )
    grandchild = await library_asset(
        db,
        ann,
        team_id=team,
        name="Beacon tower in rain",
        tags=["beacon"],
        parent_id=pk(child, "Asset"),
        root_id=pk(doomed, "Asset"),
        version=3,
        evolution_type="DUPLICATE",
    )
    others = [await library_asset(db, ann, team_id=team, tags=["coast"]) for _ in range(2)]
    await mutate_ok(
        db,
        "shareAsset",
        {"assetId": doomed, "userId": bob.user_id},
        "share { id }",
        token=ann.token,
    )
    first = await collection_with(db, ann, team, [others[0], doomed, others[1], child])
    second = await collection_with(db, ann, team, [doomed, child])

    # Before: every part holds it.
    found = await factories.gql(db, SEARCH, {"teamId": team, "text": "beacon"}, token=ann.token)
    assert found["library"]["totalCount"] == 3
    assert (await factories.gql(db, SEARCH, {"teamId": team, "text": "beacon"}, token=bob.token))[
        "library"
    ]["totalCount"] == 3
    placed = (await factories.gql(db, MAP, {"teamId": team}, token=ann.token))["constellation"]
    assert doomed in {n["id"] for n in placed["nodes"]}
    assert (doomed, child) in {(e["sourceId"], e["targetId"]) for e in placed["edges"]}
    family = await factories.gql(db, FAMILY, {"id": grandchild}, token=ann.token)
    assert family["asset"]["root"] == {"id": doomed}
    assert [a["asset"]["id"] for a in family["lineage"]["ancestors"]] == [doomed, child]

    async with following(db, bus, bob, team) as feed:
        await feed.next()  # the snapshot
        await mutate_ok(db, "deleteAsset", {"id": doomed}, "deletedId", token=ann.token)
        sentinel = await library_asset(db, ann, team_id=team)
        heard = await until(feed, sentinel)
    # The share's recipient hears of it once: its share ended (he may no longer see it,
    # so the deletion itself, an event of an asset he does not see, is not his).
    about = [(e["kind"], e["recipientId"], e["asset"]) for e in heard if e["assetId"] == doomed]
    assert about == [("ASSET_SHARED", bob.user_id, None)], heard

    # Collections stay dense.
    for collection_id, expected in ((first, [others[0], others[1], child]), (second, [child])):
        items = (await factories.gql(db, ITEMS, {"id": collection_id}, token=ann.token))[
            "collection"
        ]
        nodes = [e["node"] for e in items["items"]["edges"]]
        assert [n["asset"]["id"] for n in nodes] == expected
        assert [n["position"] for n in nodes] == list(range(len(expected)))
        assert items["itemCount"] == len(expected)
    # Its lineage children live on, without the link.
    for who in (ann, bob):
        family = await factories.gql(db, FAMILY, {"id": child}, token=who.token)
        assert family["asset"] == {"id": child, "parent": None, "root": None, "version": 2}
        assert family["lineage"]["ancestors"] == []
        assert [d["asset"]["id"] for d in family["lineage"]["descendants"]] == [grandchild]
    family = await factories.gql(db, FAMILY, {"id": grandchild}, token=ann.token)
    assert family["asset"]["parent"] == {"id": child}
    assert family["asset"]["root"] == {"id": child}  # the line's new root
    # Search, facets and the map no longer find it.
    for who in (ann, bob):
        found = await factories.gql(db, SEARCH, {"teamId": team, "text": "beacon"}, token=who.token)
        assert found["library"]["totalCount"] == 2
        assert doomed not in {e["node"]["id"] for e in found["library"]["edges"]}
        every = await factories.gql(db, SEARCH, {"teamId": team, "text": None}, token=who.token)
        assert doomed not in {e["node"]["id"] for e in every["library"]["edges"]}
    facets = await factories.gql(
        db,
        "query($teamId: ID!) { libraryFilters(teamId: $teamId) { totalCount "
        "tags { value count } } }",
        {"teamId": team},
        token=ann.token,
    )
    assert facets["libraryFilters"]["totalCount"] == 5
    tags = {t["value"]: t["count"] for t in facets["libraryFilters"]["tags"]}
    assert (tags["beacon"], tags["coast"]) == (2, 2)
    placed = (await factories.gql(db, MAP, {"teamId": team}, token=ann.token))["constellation"]
    assert doomed not in {n["id"] for n in placed["nodes"]}
    assert all(doomed not in (e["sourceId"], e["targetId"]) for e in placed["edges"])
    assert sum(c["size"] for c in placed["clusters"]) == len(placed["nodes"]) == 5
    # And it is gone for everybody, with its share.
    for who in (ann, bob):
        seen = await factories.gql(
            db,
            "query($id: ID!) { asset(id: $id) { id } node(id: $id) { id } }",
            {"id": doomed},
            token=who.token,
        )
        assert seen == {"asset": None, "node": None}
    shared = await factories.gql(db, "query { sharedWithMe { totalCount } }", token=bob.token)
    assert shared["sharedWithMe"]["totalCount"] == 0


@pytest.fixture
async def studio(db: Database, tmp_path: Path) -> AsyncIterator[Studio]:
    async with (
        settled_assets(db),
        running_studio(
            db, tmp_path, latency_ms=150, seed=EMULATOR_SEED, retry_after_cap=0.05
        ) as made,
    ):
        yield made


async def running_regeneration(studio: Studio, owner: Account, *, held: bool) -> tuple[str, str]:
    """A DRAFT remix being generated in place, its prediction running for a minute (with
    `held`, its create's answer still on its way back): (asset ID, prediction id)."""
    original = await library_asset(
        studio.db, owner, prompt="a quiet harbour", model=FLUX, storage_key="images/1/h.png"
    )
    remix = await mutate_ok(
        studio.db,
        "remixAsset",
        {"assetId": original, "prompt": "a harbour in a storm"},
        "asset { id }",
        token=owner.token,
    )
    asset_id: str = remix["asset"]["id"]
    studio.emulator.latency_ms = RUNNING_FOR_A_MINUTE
    studio.emulator.create_response_delay_ms = 3000 if held else 0
    started = await studio.mutate(
        "regenerateAsset", {"assetId": asset_id}, "asset { id status }", owner.token
    )
    assert started["userErrors"] == []
    assert started["asset"] == {"id": asset_id, "status": "GENERATING"}

    async def sent() -> str | None:
        running = await predictions_in(studio, "starting", "processing")
        return next(iter(running), None)

    prediction_id = await eventually(sent, what="the regeneration to reach the provider")
    if not held:

        async def recorded() -> bool:
            async with studio.db.session() as session:
                row = await session.get(AssetRow, pk(asset_id, "Asset"))
            return row is not None and row.prediction_id == prediction_id

        await eventually(recorded, what="the prediction to be recorded on the asset")
    return asset_id, prediction_id


@pytest.mark.parametrize("held", [False, True], ids=["recorded", "on-its-way"])
async def test_deleting_an_asset_cancels_its_running_regeneration(
    studio: Studio, held: bool
) -> None:
    ann = await account(studio.db, name="Ann")
    asset_id, prediction_id = await running_regeneration(studio, ann, held=held)
    deleted = await studio.mutate("deleteAsset", {"id": asset_id}, "deletedId", ann.token)
    assert deleted == {"deletedId": asset_id, "userErrors": []}
    studio.emulator.create_response_delay_ms = 0
    await canceled_at_provider(studio, {prediction_id})
    assert await cancels_sent(studio) == 1
    async with studio.db.session() as session:
        assert await session.get(AssetRow, pk(asset_id, "Asset")) is None


# --- one share that expires, checked in every path at once --------------------------------

EVERY_PATH = """
query($id: ID!, $teamId: ID!, $collectionId: ID!) {
  asset(id: $id) { id viewerPermission fileUrl thumbnailUrl }
  node(id: $id) { id }
  library(filter: {teamId: $teamId, text: "lighthouse"}) { totalCount edges { node { id } } }
  everything: library(filter: {teamId: $teamId}) { totalCount edges { node { id } } }
  libraryFilters(teamId: $teamId) { totalCount tags { value count } moods { value count } }
  sharedWithMe { totalCount edges { node { id } } }
  lineage(assetId: $id) { asset { id } }
  collection(id: $collectionId) { itemCount items { edges { node { asset { id } } } } }
  constellation(teamId: $teamId) { nodes { id } }
}
"""


def what_is_seen(data: dict[str, Any], asset_id: str) -> dict[str, Any]:
    """Whether each path shows the asset, and the counts that include it."""
    tags = {t["value"]: t["count"] for t in data["libraryFilters"]["tags"]}
    moods = {m["value"]: m["count"] for m in data["libraryFilters"]["moods"]}
    return {
        "asset": data["asset"] is not None,
        "node": data["node"] is not None,
        "search": [e["node"]["id"] for e in data["library"]["edges"]] == [asset_id],
        "search total": data["library"]["totalCount"],
        "everything": asset_id in {e["node"]["id"] for e in data["everything"]["edges"]},
        "everything total": data["everything"]["totalCount"],
        "facets total": data["libraryFilters"]["totalCount"],
        "lighthouse tag": tags.get("lighthouse", 0),
        "calm mood": moods.get("calm", 0),
        "shared with me": [e["node"]["id"] for e in data["sharedWithMe"]["edges"]] == [asset_id],
        "shared total": data["sharedWithMe"]["totalCount"],
        "lineage": data["lineage"] is not None,
        "collection": asset_id
        in {e["node"]["asset"]["id"] for e in data["collection"]["items"]["edges"]},
        "collection count": data["collection"]["itemCount"],
        "constellation": asset_id in {n["id"] for n in data["constellation"]["nodes"]},
    }


async def test_a_share_that_expires_mid_test_ends_in_every_path_at_once(
    live_db: Database, bus: EventBus
) -> None:
    db = live_db
    ann = await account(db, name="Ann")
    bob = await account(db, name="Bob")
    team = await team_with(db, ann, {"VIEWER": bob})  # in the team, but the asset is PRIVATE
    lighthouse = await library_asset(
        db,
        ann,
        team_id=team,
        name="Lighthouse at dusk",
        tags=["lighthouse", "coast"],
        mood="calm",
        share_level="PRIVATE",
        storage_key="library/lighthouse.png",
        thumbnail_key="library/lighthouse.webp",
    )
    await library_asset(db, ann, team_id=team, name="Harbour", tags=["coast"])  # a TEAM asset
    collection = await collection_with(db, ann, team, [lighthouse])
    await mutate_ok(
        db,
        "shareAsset",
        {"assetId": lighthouse, "userId": bob.user_id, "expiresAt": iso(utcnow() + HOUR)},
        "share { id }",
        token=ann.token,
    )
    variables = {"id": lighthouse, "teamId": team, "collectionId": collection}

    async with following(db, bus, bob, team) as feed:
        await feed.next()  # the snapshot
        before = what_is_seen(
            await factories.gql(db, EVERY_PATH, variables, token=bob.token), lighthouse
        )
        assert before == {
            "asset": True,
            "node": True,
            "search": True,
            "search total": 1,
            "everything": True,
            "everything total": 2,
            "facets total": 2,
            "lighthouse tag": 1,
            "calm mood": 1,
            "shared with me": True,
            "shared total": 1,
            "lineage": True,
            "collection": True,
            "collection count": 1,
            "constellation": True,
        }
        await edit(db, lighthouse, name="Lighthouse at night")
        heard = await feed.next()
        assert (heard["kind"], heard["assetId"], heard["asset"]["name"]) == (
            "ASSET_UPDATED",
            lighthouse,
            "Lighthouse at night",
        )

        # Now it expires a moment from now; no job runs from here on.
        expiry = utcnow() + timedelta(seconds=3)
        await mutate_ok(
            db,
            "shareAsset",
            {"assetId": lighthouse, "userId": bob.user_id, "expiresAt": iso(expiry)},
            "share { id }",
            token=ann.token,
        )
        changed = await feed.next()
        assert (changed["kind"], changed["changes"]) == ("ASSET_SHARED", ["expiresAt"])
        links = (await factories.gql(db, EVERY_PATH, variables, token=bob.token))["asset"]
        for link in (links["fileUrl"], links["thumbnailUrl"]):
            assert link_works(link)
            assert link_lifetime(link) <= (expiry - utcnow()).total_seconds() + 1

        await asyncio.sleep(max(0.0, (expiry - utcnow()).total_seconds()) + 0.2)

        after = what_is_seen(
            await factories.gql(db, EVERY_PATH, variables, token=bob.token), lighthouse
        )
        assert after == {
            "asset": False,
            "node": False,
            "search": False,
            "search total": 0,
            "everything": False,
            "everything total": 1,
            "facets total": 1,
            "lighthouse tag": 0,
            "calm mood": 0,
            "shared with me": False,
            "shared total": 0,
            "lineage": False,
            "collection": False,
            "collection count": 0,
            "constellation": False,
        }
        for link in (links["fileUrl"], links["thumbnailUrl"]):
            assert not link_works(link)
        # Its events no longer reach him: the next he hears is the next TEAM asset's.
        await edit(db, lighthouse, name="Lighthouse, unseen")
        sentinel = await library_asset(db, ann, team_id=team)
        assert [(e["kind"], e["assetId"]) for e in [await feed.next()]] == [
            ("ASSET_CREATED", sentinel)
        ]
    # Ann, whose team access it is, still sees everything.
    mine = what_is_seen(await factories.gql(db, EVERY_PATH, variables, token=ann.token), lighthouse)
    assert (mine["asset"], mine["search"], mine["collection"], mine["constellation"]) == (
        True,
        True,
        True,
        True,
    )


ROOTS = "query($id: ID!) { asset(id: $id) { id parent { id } root { id } } }"


async def test_deleting_an_asset_mid_line_makes_its_child_the_root_of_what_is_below(
    db: Database,
) -> None:
    """R -> X -> C -> G; deleting X leaves C without a parent, so C starts a line of its
    own: C's root is none (as any root's), G's root is C, and copies of G descend from C;
    R and its other children keep theirs."""
    ann = await account(db, name="Ann")

    async def child_of(parent: str, root: str, **fields: Any) -> str:
        return await library_asset(
            db,
            ann,
            parent_id=pk(parent, "Asset"),
            root_id=pk(root, "Asset"),
            evolution_type="DUPLICATE",
            storage_key="library/line.png",
            **fields,
        )

    r = await library_asset(db, ann, name="R", storage_key="library/line.png")
    x = await child_of(r, r, name="X", version=2)
    sibling = await child_of(r, r, name="S", version=2)
    c = await child_of(x, r, name="C", version=3)
    g = await child_of(c, r, name="G", version=4)
    await mutate_ok(db, "deleteAsset", {"id": x}, "deletedId", token=ann.token)

    async def seen(asset_id: str) -> dict[str, Any]:
        data = await factories.gql(db, ROOTS, {"id": asset_id}, token=ann.token)
        found: dict[str, Any] = data["asset"]
        return found

    assert await seen(c) == {"id": c, "parent": None, "root": None}
    assert await seen(g) == {"id": g, "parent": {"id": c}, "root": {"id": c}}
    assert await seen(sibling) == {"id": sibling, "parent": {"id": r}, "root": {"id": r}}
    copy = await mutate_ok(
        db, "duplicateAsset", {"assetId": g}, "asset { id root { id } }", token=ann.token
    )
    assert copy["asset"]["root"] == {"id": c}
    # And when the root itself goes, its child roots what was below it.
    await mutate_ok(db, "deleteAsset", {"id": r}, "deletedId", token=ann.token)
    assert await seen(sibling) == {"id": sibling, "parent": None, "root": None}


OUTSIDER = """
query($id: ID!, $teamId: ID!, $collectionId: ID!) {
  asset(id: $id) { viewerPermission }
  library(filter: {teamId: $teamId}) { totalCount edges { node { id } } }
  libraryFilters(teamId: $teamId) { totalCount tags { value count } }
  collection(id: $collectionId) { coverImage { id } itemCount }
  constellation(teamId: $teamId) { nodes { id } }
}
"""


async def test_an_outsiders_expiring_edit_share_over_a_public_asset_and_a_members_over_team(
    db: Database,
) -> None:
    """Someone outside the team with an EDIT share of a PUBLIC asset finds it in a search
    of that team and its facets while the share lasts; after it, it is PUBLIC to them:
    VIEW, and only when the search asks for public assets. A member with an EDIT share
    of a TEAM asset falls back to their role's VIEW, and may no longer edit."""
    ann = await account(db, name="Ann")
    vic = await account(db, name="Vic")  # a VIEWER of the team
    sam = await account(db, name="Sam")  # outside it
    team = await team_with(db, ann, {"VIEWER": vic})
    public = await library_asset(
        db, ann, team_id=team, tags=["beacon"], share_level="PUBLIC", name="Beacon"
    )
    await library_asset(db, ann, team_id=team, tags=["beacon"])  # TEAM: never Sam's
    collection = (
        await mutate_ok(
            db,
            "createCollection",
            {"teamId": team, "shareLevel": "PUBLIC"},
            "collection { id }",
            token=ann.token,
        )
    )["collection"]["id"]
    await mutate_ok(
        db,
        "updateCollection",
        {"id": collection, "coverAssetId": public},
        "collection { id }",
        token=ann.token,
    )
    await mutate_ok(
        db,
        "addToCollection",
        {"collectionId": collection, "assetId": public},
        "item { id }",
        token=ann.token,
    )
    expiry = utcnow() + timedelta(seconds=3)
    for who in (sam, vic):
        await mutate_ok(
            db,
            "shareAsset",
            {
                "assetId": public,
                "userId": who.user_id,
                "permission": "EDIT",
                "expiresAt": iso(expiry),
            },
            "share { id }",
            token=ann.token,
        )
    variables = {"id": public, "teamId": team, "collectionId": collection}
    sams = await factories.gql(db, OUTSIDER, variables, token=sam.token)
    assert sams["asset"] == {"viewerPermission": "EDIT"}
    assert [e["node"]["id"] for e in sams["library"]["edges"]] == [public]
    assert sams["libraryFilters"]["totalCount"] == 1
    assert sams["libraryFilters"]["tags"] == [{"value": "beacon", "count": 1}]
    assert sams["collection"] == {"coverImage": {"id": public}, "itemCount": 1}
    assert sams["constellation"] is None  # a team's map is its members'
    vics = await factories.gql(db, OUTSIDER, variables, token=vic.token)
    assert vics["asset"] == {"viewerPermission": "EDIT"}
    await mutate_ok(
        db, "updateAsset", {"id": public, "mood": "calm"}, "asset { id }", token=vic.token
    )

    await asyncio.sleep(max(0.0, (expiry - utcnow()).total_seconds()) + 0.2)

    sams = await factories.gql(db, OUTSIDER, variables, token=sam.token)
    assert sams["asset"] == {"viewerPermission": "VIEW"}  # PUBLIC: every signed-in user
    assert sams["library"] == {"totalCount": 0, "edges": []}  # not asked for public ones
    assert sams["libraryFilters"]["totalCount"] == 0
    assert sams["collection"] == {"coverImage": {"id": public}, "itemCount": 1}
    public_search = await factories.gql(
        db,
        "query($teamId: ID!) { library(filter: {teamId: $teamId, includePublic: true}) "
        "{ totalCount } libraryFilters(teamId: $teamId, includePublic: true) { totalCount } }",
        {"teamId": team},
        token=sam.token,
    )
    assert public_search == {"library": {"totalCount": 1}, "libraryFilters": {"totalCount": 1}}
    vics = await factories.gql(db, OUTSIDER, variables, token=vic.token)
    assert vics["asset"] == {"viewerPermission": "VIEW"}
    refused = await mutate(
        db, "updateAsset", {"id": public, "mood": "wild"}, UPDATE, token=vic.token
    )
    assert codes(refused) == [("FORBIDDEN", None)]


DELETE_ASSET = (
    "mutation($i: DeleteInput!) { deleteAsset(input: $i) { deletedId userErrors { code } } }"
)
COPY = {
    "duplicateAsset": "mutation($i: DuplicateAssetInput!) { duplicateAsset(input: $i) "
    "{ asset { id } userErrors { code } } }",
    "remixAsset": "mutation($i: RemixAssetInput!) { remixAsset(input: $i) "
    "{ asset { id } userErrors { code } } }",
}


async def test_copies_made_below_an_asset_while_it_is_deleted_neither_fail_nor_keep_its_root(
    db: Database,
) -> None:
    """A delete of a line's root and a copy of an asset two steps below it, at once: both
    succeed (no deadlock: the copy locks the root before its source, as the delete does),
    and the copy ends with the root the line has after the delete."""
    ann = await account(db, name="Ann")
    for round_ in range(6):
        r = await library_asset(db, ann, storage_key="library/x.png", prompt="a quay")
        c = await library_asset(
            db,
            ann,
            parent_id=pk(r, "Asset"),
            root_id=pk(r, "Asset"),
            version=2,
            evolution_type="DUPLICATE",
            storage_key="library/x.png",
            prompt="a quay",
        )
        g = await library_asset(
            db,
            ann,
            parent_id=pk(c, "Asset"),
            root_id=pk(r, "Asset"),
            version=3,
            evolution_type="DUPLICATE",
            storage_key="library/x.png",
            prompt="a quay",
        )
        name = "duplicateAsset" if round_ % 2 == 0 else "remixAsset"
        copy_input: dict[str, Any] = {"assetId": g}
        if name == "remixAsset":
            copy_input["prompt"] = "a quay at night"
        deleted, copied = await asyncio.gather(
            factories.execute(db, DELETE_ASSET, {"i": {"id": r}}, token=ann.token),
            factories.execute(db, COPY[name], {"i": copy_input}, token=ann.token),
        )
        assert deleted.errors is None, deleted.errors
        assert copied.errors is None, copied.errors
        assert deleted.data == {"deleteAsset": {"deletedId": r, "userErrors": []}}
        assert copied.data is not None
        assert copied.data[name]["userErrors"] == []
        copy = copied.data[name]["asset"]["id"]
        async with db.session() as session:
            row = await session.get(AssetRow, pk(copy, "Asset"))
            assert row is not None
            assert (row.parent_id, row.root_id) == (pk(g, "Asset"), pk(c, "Asset")), name
            below = await session.get(AssetRow, pk(g, "Asset"))
            assert below is not None
            assert below.root_id == pk(c, "Asset")


async def test_two_deletes_in_one_line_at_once_both_succeed(db: Database) -> None:
    """Deleting a line's root and the asset below it at once: both go, and what was
    below them is a line of its own."""
    ann = await account(db, name="Ann")
    for _ in range(6):
        r = await library_asset(db, ann, storage_key="library/x.png")
        line = [r]
        for version in (2, 3, 4):
            line.append(
                await library_asset(
                    db,
                    ann,
                    parent_id=pk(line[-1], "Asset"),
                    root_id=pk(r, "Asset"),
                    version=version,
                    evolution_type="DUPLICATE",
                    storage_key="library/x.png",
                )
            )
        _, c, g, h = line
        results = await asyncio.gather(
            factories.execute(db, DELETE_ASSET, {"i": {"id": r}}, token=ann.token),
            factories.execute(db, DELETE_ASSET, {"i": {"id": c}}, token=ann.token),
        )
        for result, asset_id in zip(results, (r, c), strict=True):
            assert result.errors is None, result.errors
            assert result.data == {"deleteAsset": {"deletedId": asset_id, "userErrors": []}}
        async with db.session() as session:
            below = await session.get(AssetRow, pk(g, "Asset"))
            last = await session.get(AssetRow, pk(h, "Asset"))
            assert below is not None
            assert last is not None
            assert (below.parent_id, below.root_id) == (None, None)
            assert (last.parent_id, last.root_id) == (pk(g, "Asset"), pk(g, "Asset"))
