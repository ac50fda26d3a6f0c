"""The media library across its parts, on both engines: one share that expires checked in
every path at once, deleteAsset's effects on every part, who may turn duplication and
remixing off, and the statement count of the library's nested reads at any size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from api.graphql import build_context
from api.schema import schema
from schema import ids
from services.database import Database
from services.library.tables import AssetShareRow
from tests import factories
from tests.factories import (
    Account,
    account,
    library_asset,
    mutate,
    mutate_ok,
    resources,
    team_with,
)


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
        assert len(few) == len(many), f"{name} grows:\n{grows(few, many)}"


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
        assert codes(refused) == [("CANNOT_DUPLICATE", ["assetId"])]
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
        assert codes(refused) == [("CANNOT_REMIX", ["assetId"])]
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
