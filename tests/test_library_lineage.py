"""lineage(assetId): ancestors and descendants as the viewer may see them, on both engines."""

from __future__ import annotations

from typing import Any

from schema import ids
from services.database import Database
from services.library.lineage import MAX_DEPTH
from services.library.tables import AssetRow
from tests import factories
from tests.factories import Account

NODE = """asset { id name } parentId evolutionType branchName version promptDelta { added removed }
  creator { id } createdAt"""
LINEAGE = f"""query($id: ID!) {{ lineage(assetId: $id) {{
  asset {{ id name }}
  ancestors {{ {NODE} children {{ asset {{ id }} }} }}
  tree {{ {NODE} children {{ {NODE} children {{ {NODE} children {{ {NODE}
    children {{ asset {{ id }} }} }} }} }} }}
  descendants {{ asset {{ name }} parentId children {{ asset {{ id }} }} }}
  truncated }} }}"""


async def child(db: Database, creator: Account, parent: str, team: str, **fields: Any) -> str:
    """A lineage child of `parent` made by `creator` in `team` (set-up, as stored rows are)."""
    pk = ids.decode(parent, "Asset")
    async with db.session() as session:
        row = await session.get(AssetRow, pk)
    assert row is not None
    return await factories.library_asset(
        db,
        creator,
        team_id=team,
        parent_id=pk,
        root_id=row.root_id or pk,
        version=row.version + 1,
        **fields,
    )


def names(nodes: list[dict[str, Any]]) -> list[str]:
    return [node["asset"]["name"] for node in nodes]


def shape(node: dict[str, Any]) -> dict[str, Any]:
    """A tree as {name: {child name: ...}}."""
    return {child["asset"]["name"]: shape(child) for child in node.get("children") or []}


async def family(db: Database) -> tuple[Account, Account, Account, str, dict[str, str]]:
    """Ann owns a team with the EDITORs Bob and Cai. The tree, made through the API where
    it can be (duplicate, remix) and by set-up rows where it needs a PRIVATE asset:

        root (Ann)
        +-- copy (Bob, DUPLICATE)
        +-- remix (Bob, REMIX "a fox at night")
        |   +-- secret (Cai, PRIVATE)
        |   |   +-- below (Cai, TEAM)  <- visible on its own, but under a hidden one
        |   +-- open (Cai, TEAM)
        +-- other (Cai, TEAM)
    """
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    cai = await factories.account(db, name="Cai")
    team = await factories.team_with(db, ann, {"EDITOR": bob, "EDITOR:2": cai})
    made: dict[str, str] = {}
    made["root"] = await factories.library_asset(
        db, ann, team_id=team, name="root", prompt="a fox at dusk", storage_key="images/1/f.png"
    )
    copied = await factories.mutate_ok(
        db, "duplicateAsset", {"assetId": made["root"]}, "asset { id }", token=bob.token
    )
    made["copy"] = copied["asset"]["id"]
    remixed = await factories.mutate_ok(
        db,
        "remixAsset",
        {"assetId": made["root"], "prompt": "a fox at night", "branchName": "night"},
        "asset { id }",
        token=bob.token,
    )
    made["remix"] = remixed["asset"]["id"]
    made["secret"] = await child(db, cai, made["remix"], team, name="secret", share_level="PRIVATE")
    made["below"] = await child(db, cai, made["secret"], team, name="below")
    made["open"] = await child(db, cai, made["remix"], team, name="open")
    made["other"] = await child(db, cai, made["root"], team, name="other")
    for key in ("copy", "remix"):
        async with db.transaction() as session:
            row = await session.get(AssetRow, ids.decode(made[key], "Asset"))
            assert row is not None
            row.name = key
    return ann, bob, cai, team, made


async def test_a_hidden_branch_is_cut_with_its_subtree(db: Database) -> None:
    ann, bob, cai, _, made = await family(db)

    seen_by_bob = (await factories.gql(db, LINEAGE, {"id": made["root"]}, token=bob.token))[
        "lineage"
    ]
    assert seen_by_bob["asset"] == {"id": made["root"], "name": "root"}
    assert seen_by_bob["ancestors"] == []
    assert seen_by_bob["truncated"] is False
    tree = seen_by_bob["tree"]
    assert shape(tree) == {"copy": {}, "remix": {"open": {}}, "other": {}}
    assert names(tree["children"]) == ["copy", "remix", "other"], "oldest first"
    assert tree["parentId"] is None
    # The same, flat and level by level, for trees deeper than a query may nest.
    assert [
        (n["asset"]["name"], n["parentId"], n["children"]) for n in seen_by_bob["descendants"]
    ] == [
        ("copy", made["root"], []),
        ("remix", made["root"], []),
        ("other", made["root"], []),
        ("open", made["remix"], []),
    ]
    assert (tree["evolutionType"], tree["version"], tree["branchName"]) == ("ORIGINAL", 1, "main")
    assert tree["creator"] == {"id": ann.user_id}
    remix = next(node for node in tree["children"] if node["asset"]["name"] == "remix")
    assert remix["evolutionType"] == "REMIX"
    assert remix["branchName"] == "night"
    assert remix["version"] == 2
    assert remix["promptDelta"] == {"added": ["night"], "removed": ["dusk"]}
    assert remix["creator"] == {"id": bob.user_id}
    assert remix["createdAt"]

    # Cai made the PRIVATE one: Cai sees it and what lies below it.
    seen_by_cai = (await factories.gql(db, LINEAGE, {"id": made["root"]}, token=cai.token))[
        "lineage"
    ]
    cai_remix = next(n for n in seen_by_cai["tree"]["children"] if n["asset"]["name"] == "remix")
    assert shape(cai_remix) == {"secret": {"below": {}}, "open": {}}
    # The team's owner does not: a PRIVATE asset is its creator's and its shares' only.
    seen_by_ann = (await factories.gql(db, LINEAGE, {"id": made["remix"]}, token=ann.token))[
        "lineage"
    ]
    assert shape(seen_by_ann["tree"]) == {"open": {}}
    assert names(seen_by_ann["ancestors"]) == ["root"]


async def test_ancestors_run_from_the_root_and_stop_below_a_hidden_one(db: Database) -> None:
    _, bob, cai, _, made = await family(db)
    # Cai sees the whole way up, root first.
    up = (await factories.gql(db, LINEAGE, {"id": made["below"]}, token=cai.token))["lineage"]
    assert names(up["ancestors"]) == ["root", "remix", "secret"]
    assert [n["parentId"] for n in up["ancestors"]] == [None, made["root"], made["remix"]]
    assert up["tree"]["parentId"] == made["secret"]
    assert [n["version"] for n in up["ancestors"]] == [1, 2, 3]
    assert all(n["children"] == [] for n in up["ancestors"])
    assert up["tree"]["version"] == 4
    # Bob sees `below` itself (a TEAM asset), but its parent is hidden, and so is all above.
    up = (await factories.gql(db, LINEAGE, {"id": made["below"]}, token=bob.token))["lineage"]
    assert up["asset"]["name"] == "below"
    assert up["ancestors"] == []
    assert up["tree"]["parentId"] is None, "not even the hidden parent's ID"
    up = (await factories.gql(db, LINEAGE, {"id": made["open"]}, token=bob.token))["lineage"]
    assert names(up["ancestors"]) == ["root", "remix"]


async def test_an_asset_you_may_not_see_has_no_lineage(db: Database) -> None:
    _, bob, _, _, made = await family(db)
    stranger = await factories.account(db, name="Sam")
    for who, asset_id in ((bob, made["secret"]), (stranger, made["root"])):
        data = await factories.gql(db, LINEAGE, {"id": asset_id}, token=who.token)
        assert data == {"lineage": None}
    result = await factories.execute(db, LINEAGE, {"id": "nonsense"}, token=bob.token)
    assert result.errors is not None


async def test_a_long_line_is_bounded_and_says_so(db: Database) -> None:
    ann = await factories.account(db)
    first = await factories.library_asset(db, ann, name="v1")
    line = [first]
    for number in range(2, MAX_DEPTH + 3):
        line.append(await child(db, ann, line[-1], ann.team_id, name=f"v{number}"))
    query = """query($id: ID!) { lineage(assetId: $id) { ancestors { version } truncated
      tree { version children { version } } } }"""
    down = (await factories.gql(db, query, {"id": first}, token=ann.token))["lineage"]
    assert down["truncated"] is True
    up = (await factories.gql(db, query, {"id": line[-1]}, token=ann.token))["lineage"]
    assert len(up["ancestors"]) == MAX_DEPTH
    assert up["ancestors"][-1]["version"] == len(line) - 1, "the nearest ones are kept"
    assert up["truncated"] is True
    whole = (await factories.gql(db, query, {"id": line[2]}, token=ann.token))["lineage"]
    assert [a["version"] for a in whole["ancestors"]] == [1, 2]
    assert whole["truncated"] is False, "49 levels below it: all there"
    short = (await factories.gql(db, query, {"id": line[-3]}, token=ann.token))["lineage"]
    assert short["truncated"] is False
    assert short["tree"]["children"] == [{"version": len(line) - 1}]
