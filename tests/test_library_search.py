"""Library search and facets on both engines: every filter and sort, keyset paging through
ties, word forms, facet counts, visibility (teams, PUBLIC, shares, expiry) and bad input."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from schema import ids
from services.database import Database
from services.library.tables import AssetShareRow, CollectionItemRow, CollectionRow
from tests import factories

SEARCH = """query($f: LibraryFilter, $s: LibrarySort, $first: Int, $after: String) {
  library(filter: $f, sort: $s, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id name viewerPermission } }
  } }"""

FACETS = """query($t: ID!, $p: Boolean) { libraryFilters(teamId: $t, includePublic: $p) {
  totalCount
  tags { value count } categories { value count } moods { value count }
  sceneTypes { value count } kinds { value count } models { value count }
  creators { value label count } projects { value label count } shareLevels { value count }
  durationRange { min max } createdRange { earliest latest } } }"""

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def word() -> str:
    """A word no other test's asset holds (letters only, so it is one token)."""
    return "zq" + "".join(secrets.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))


async def search(
    db: Database,
    who: factories.Account,
    filter: dict[str, Any] | None = None,
    sort: dict[str, Any] | None = None,
    *,
    first: int = 50,
    after: str | None = None,
) -> dict[str, Any]:
    data = await factories.gql(
        db, SEARCH, {"f": filter, "s": sort, "first": first, "after": after}, token=who.token
    )
    found: dict[str, Any] = data["library"]
    return found


async def names(
    db: Database, who: factories.Account, filter: dict[str, Any], **kw: Any
) -> set[str]:
    found = await search(db, who, filter, **kw)
    assert found["totalCount"] == len(found["edges"]), "use a page that holds every match"
    return {edge["node"]["name"] for edge in found["edges"]}


async def error_of(
    db: Database, who: factories.Account, query: str, variables: dict[str, Any]
) -> str:
    result = await factories.execute(db, query, variables, token=who.token)
    assert result.errors, result.data
    assert result.errors[0].extensions == {"code": "BAD_USER_INPUT"}, result.errors[0].formatted
    return result.errors[0].message


async def test_text_search_is_tolerant_of_word_forms_and_ranked(db: Database) -> None:
    ann = await factories.account(db)
    team = ann.team_id
    tag = word()
    await factories.library_asset(db, ann, name="Running horse", tags=[tag])
    await factories.library_asset(db, ann, name="Still life", description="a horse runs by")
    await factories.library_asset(db, ann, name="Harbour", prompt="ships running aground")
    await factories.library_asset(db, ann, name="Lantern", tags=["festival", tag])
    await factories.library_asset(db, ann, name="Desert", prompt="dunes at noon")

    base = {"teamId": team}
    assert await names(db, ann, {**base, "text": "run"}) == {
        "Running horse",
        "Still life",
        "Harbour",
    }
    assert await names(db, ann, {**base, "text": "RUNNING"}) == {
        "Running horse",
        "Still life",
        "Harbour",
    }
    assert await names(db, ann, {**base, "text": "festivals"}) == {"Lantern"}  # a tag
    assert await names(db, ann, {**base, "text": tag}) == {"Running horse", "Lantern"}
    assert await names(db, ann, {**base, "text": "running horses"}) == {
        "Running horse",
        "Still life",
    }  # every word must match, in any field
    assert await names(db, ann, {**base, "text": "??"}) == set()  # no word: nothing matches
    ranked = await search(
        db, ann, {**base, "text": "horse"}, {"field": "RELEVANCE", "direction": "DESC"}
    )
    # A match in the name outranks one in the description, on both engines.
    assert [e["node"]["name"] for e in ranked["edges"]] == ["Running horse", "Still life"]


async def test_search_follows_changes_to_an_asset(db: Database) -> None:
    ann = await factories.account(db)
    old, new = word(), word()
    asset_id = await factories.library_asset(db, ann, name=f"Poster {old}")
    assert await names(db, ann, {"teamId": ann.team_id, "text": old}) == {f"Poster {old}"}
    from sqlalchemy import delete, update

    from services.library.tables import AssetRow

    pk = ids.decode(asset_id, "Asset")
    async with db.transaction() as session:
        await session.exec(update(AssetRow).where(AssetRow.id == pk).values(name=f"Poster {new}"))  # type: ignore[arg-type]
    assert await names(db, ann, {"teamId": ann.team_id, "text": old}) == set()
    assert await names(db, ann, {"teamId": ann.team_id, "text": new}) == {f"Poster {new}"}
    async with db.transaction() as session:
        await session.exec(delete(AssetRow).where(AssetRow.id == pk))  # type: ignore[arg-type]
    assert await names(db, ann, {"teamId": ann.team_id, "text": new}) == set()


async def _favorite_image(db: Database, ann: factories.Account) -> tuple[int, int]:
    project = await factories.project(db, ann)
    scene = await factories.scene(db, ann, project, shots=1)
    made = await factories.iteration(db, ann, scene["shots"][0]["id"], count=2)
    image_id = made["images"][0]["id"]
    await factories.mutate_ok(
        db,
        "setImageFavorite",
        {"imageId": image_id, "isFavorite": True},
        "image { id }",
        token=ann.token,
    )
    return ids.decode(made["images"][1]["id"], "ShotImage"), ids.decode(image_id, "ShotImage")


async def test_every_filter(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    team = await factories.team_with(db, ann, {"EDITOR": bob})
    project = await factories.project(db, ann, team_id=team)
    plain_image, starred_image = await _favorite_image(db, ann)
    pk_project = ids.decode(project, "Project")
    a = await factories.library_asset(
        db,
        ann,
        team_id=team,
        name="A",
        tags=["night", "rain"],
        category="street",
        mood="calm",
        scene_type="WIDE",
        kind="IMAGE",
        model="flux-schnell",
        project_id=pk_project,
        created_at=T0,
        duration=None,
        shot_image_id=starred_image,
    )
    b = await factories.library_asset(
        db,
        bob,
        team_id=team,
        name="B",
        tags=["night"],
        category="portrait",
        mood="tense",
        scene_type="CLOSE_UP",
        kind="VIDEO",
        model="kling-v2.1",
        created_at=T0 + timedelta(days=1),
        duration=5.0,
        share_level="PUBLIC",
        shot_image_id=plain_image,
    )
    c = await factories.library_asset(
        db,
        bob,
        team_id=team,
        name="C",
        tags=["rain", "neon"],
        category="street",
        mood="calm",
        scene_type="AERIAL",
        kind="VIDEO",
        model="kling-v2.1",
        created_at=T0 + timedelta(days=2),
        duration=10.0,
        parent_id=ids.decode(b, "Asset"),
    )
    await factories.library_asset(
        db,
        ann,
        team_id=team,
        name="D",
        tags=[],
        kind="AUDIO",
        created_at=T0 + timedelta(days=3),
        duration=2.5,
        share_level="PRIVATE",
    )
    collection = await _collection(db, team, [a, c])
    everything = {"A", "B", "C", "D"}
    f = {"teamId": team}
    assert await names(db, ann, f) == everything
    assert await names(db, bob, f) == {"A", "B", "C"}  # D is ann's PRIVATE asset
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"tags": ["night", "NEON"]}, {"A", "B", "C"}),
        ({"tags": ["night", "rain"], "tagsMatch": "ALL"}, {"A"}),
        ({"tags": ["rain"], "tagsMatch": "ALL"}, {"A", "C"}),
        ({"categories": ["street"]}, {"A", "C"}),
        ({"categories": ["street", "portrait"]}, {"A", "B", "C"}),
        ({"moods": ["tense"]}, {"B"}),
        ({"sceneTypes": ["WIDE", "AERIAL"]}, {"A", "C"}),
        ({"kinds": ["VIDEO"]}, {"B", "C"}),
        ({"kinds": ["AUDIO", "IMAGE"]}, {"A", "D"}),
        ({"models": ["kling-v2.1"]}, {"B", "C"}),
        ({"creatorIds": [bob.user_id]}, {"B", "C"}),
        ({"creatorIds": [bob.user_id, ann.user_id]}, everything),
        ({"projectIds": [project]}, {"A"}),
        ({"collectionId": collection}, {"A", "C"}),
        ({"shareLevels": ["PUBLIC", "PRIVATE"]}, {"B", "D"}),
        ({"createdAfter": (T0 + timedelta(days=1)).isoformat()}, {"B", "C", "D"}),
        ({"createdBefore": (T0 + timedelta(days=1)).isoformat()}, {"A"}),
        (
            {
                "createdAfter": (T0 + timedelta(days=1)).isoformat(),
                "createdBefore": (T0 + timedelta(days=3)).isoformat(),
            },
            {"B", "C"},
        ),
        ({"minDuration": 5.0}, {"B", "C"}),
        ({"maxDuration": 5.0}, {"B", "D"}),
        ({"minDuration": 3, "maxDuration": 9.5}, {"B"}),
        ({"hasLineage": True}, {"B", "C"}),
        ({"hasLineage": False}, {"A", "D"}),
        ({"favoritesOnly": True}, {"A"}),
        ({"kinds": ["VIDEO"], "moods": ["calm"], "tags": ["neon"], "minDuration": 1}, {"C"}),
        ({"kinds": ["VIDEO"], "moods": ["tense"], "tags": ["neon"]}, set()),
    ]
    for extra, expected in cases:
        assert await names(db, ann, {**f, **extra}) == expected, extra


async def _collection(db: Database, team: str, assets: list[str]) -> str:
    async with db.transaction() as session:
        row = CollectionRow(team_id=ids.decode(team, "Team"), name="Picks")
        session.add(row)
        await session.flush()
        assert row.id is not None
        for position, asset in enumerate(assets):
            session.add(
                CollectionItemRow(
                    collection_id=row.id, asset_id=ids.decode(asset, "Asset"), position=position
                )
            )
        collection_id = row.id
    return ids.encode("Collection", collection_id)


SORTS = ["CREATED", "NAME", "DURATION", "VIEWS"]


@pytest.mark.parametrize("field", SORTS)
async def test_sorting_pages_through_ties_without_duplicates_or_gaps(
    db: Database, field: str
) -> None:
    ann = await factories.account(db)
    # Three values, each shared by several assets (and some with no duration).
    made: list[tuple[str, Any]] = []
    for n in range(9):
        value = n % 3
        by_field: dict[str, dict[str, Any]] = {
            "CREATED": {"created_at": T0 + timedelta(hours=value)},
            "NAME": {},
            "DURATION": {"duration": None if value == 0 else float(value)},
            "VIEWS": {"views": value},
        }
        # Every asset of one value has the same name (NAME ties), creation time otherwise now.
        fields = {"name": f"Shot {value}", **by_field[field]}
        asset_id = await factories.library_asset(db, ann, **fields)
        made.append((asset_id, value))
    for direction in ("ASC", "DESC"):
        descending = direction == "DESC"

        def order(item: tuple[str, Any], descending: bool = descending) -> tuple[Any, ...]:
            asset_id, value = item
            pk = ids.decode(asset_id, "Asset")
            if field == "DURATION":  # no duration: last, whichever the direction
                nulls = 1 if value == 0 else 0
                return (nulls, -value if descending else value, -pk if descending else pk)
            return (-value if descending else value, -pk if descending else pk)

        expected = [asset_id for asset_id, _ in sorted(made, key=order)]
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            page = await search(
                db,
                ann,
                {"teamId": ann.team_id},
                {"field": field, "direction": direction},
                first=2,
                after=after,
            )
            assert page["totalCount"] == 9
            assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
            seen.extend(edge["node"]["id"] for edge in page["edges"])
            pages += 1
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
            assert after == page["edges"][-1]["cursor"]
        assert seen == expected, (field, direction)
        assert pages == 5


async def test_relevance_pages_through_equal_ranks(db: Database) -> None:
    ann = await factories.account(db)
    tag = word()
    made = [await factories.library_asset(db, ann, name=f"Same {tag}") for _ in range(5)]
    seen: list[str] = []
    after = None
    while True:
        page = await search(
            db,
            ann,
            {"teamId": ann.team_id, "text": tag},
            {"field": "RELEVANCE"},
            first=2,
            after=after,
        )
        seen.extend(edge["node"]["id"] for edge in page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == sorted(made, key=lambda i: -ids.decode(i, "Asset"))  # equal ranks: by id


async def test_facets_count_every_value_as_a_search_would(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    team = await factories.team_with(db, ann, {"VIEWER": bob})
    project = await factories.project(db, ann, team_id=team, title="Night Market")
    first = await factories.library_asset(
        db,
        ann,
        team_id=team,
        tags=["night", "rain"],
        category="street",
        mood="calm",
        scene_type="WIDE",
        model="flux-schnell",
        project_id=ids.decode(project, "Project"),
        created_at=T0,
        duration=None,
    )
    await factories.library_asset(
        db,
        ann,
        team_id=team,
        tags=["night"],
        category="street",
        mood="tense",
        kind="VIDEO",
        scene_type="WIDE",
        model="kling-v2.1",
        created_at=T0 + timedelta(days=2),
        duration=4.0,
        parent_id=ids.decode(first, "Asset"),
    )
    await factories.library_asset(
        db,
        ann,
        team_id=team,
        tags=["rain"],
        kind="VIDEO",
        duration=9.5,
        share_level="PUBLIC",
        created_at=T0 + timedelta(days=1),
    )
    await factories.library_asset(  # ann's own PRIVATE asset: ann counts it, bob does not
        db,
        ann,
        team_id=team,
        tags=["secret"],
        category="hidden",
        share_level="PRIVATE",
        created_at=T0 + timedelta(days=5),
    )
    data = (await factories.gql(db, FACETS, {"t": team}, token=bob.token))["libraryFilters"]
    assert data["totalCount"] == 3
    assert data["tags"] == [{"value": "night", "count": 2}, {"value": "rain", "count": 2}]
    assert data["categories"] == [{"value": "street", "count": 2}]
    assert data["moods"] == [{"value": "calm", "count": 1}, {"value": "tense", "count": 1}]
    assert data["sceneTypes"] == [{"value": "WIDE", "count": 2}]
    assert data["kinds"] == [{"value": "VIDEO", "count": 2}, {"value": "IMAGE", "count": 1}]
    assert data["models"] == [
        {"value": "flux-schnell", "count": 1},
        {"value": "kling-v2.1", "count": 1},
    ]
    assert data["creators"] == [{"value": ann.user_id, "label": "Ann", "count": 3}]
    assert data["projects"] == [{"value": project, "label": "Night Market", "count": 1}]
    assert data["shareLevels"] == [
        {"value": "TEAM", "count": 2},
        {"value": "PUBLIC", "count": 1},
    ]
    assert data["durationRange"] == {"min": 4.0, "max": 9.5}
    assert data["createdRange"]["earliest"].startswith("2026-01-01T12:00:00")
    assert data["createdRange"]["latest"].startswith("2026-01-03T12:00:00")
    # Each count is what a search on that value finds.
    for tag in data["tags"]:
        found = await search(db, bob, {"teamId": team, "tags": [tag["value"]]}, first=0)
        assert found["totalCount"] == tag["count"]
    mine = (await factories.gql(db, FACETS, {"t": team}, token=ann.token))["libraryFilters"]
    assert mine["totalCount"] == 4
    assert {"value": "secret", "count": 1} in mine["tags"]
    # A team you cannot see anything of has empty facets, whether or not it exists.
    carl = await factories.account(db, name="Carl")
    theirs = (await factories.gql(db, FACETS, {"t": team}, token=carl.token))["libraryFilters"]
    assert theirs["totalCount"] == 0
    assert theirs["tags"] == []
    assert theirs["durationRange"] is None


async def _share(db: Database, asset: str, to: factories.Account, expires: datetime | None) -> None:
    async with db.transaction() as session:
        session.add(
            AssetShareRow(
                asset_id=ids.decode(asset, "Asset"),
                user_id=ids.decode(to.user_id, "User"),
                permission="VIEW",
                expires_at=expires,
            )
        )


async def test_visibility_other_teams_public_and_shares(db: Database) -> None:
    ann = await factories.account(db)
    bob = await factories.account(db, name="Bob")
    tag = word()
    await factories.library_asset(db, bob, name="Bob team", tags=[tag])
    await factories.library_asset(db, bob, name="Bob public", tags=[tag], share_level="PUBLIC")
    shared = await factories.library_asset(
        db, bob, name="Bob shared", tags=[tag], share_level="PRIVATE"
    )
    expired = await factories.library_asset(
        db, bob, name="Bob expired", tags=[tag], share_level="PRIVATE"
    )
    await factories.library_asset(db, ann, name="Ann own", tags=[tag], share_level="PRIVATE")
    await _share(db, shared, ann, datetime.now(UTC) + timedelta(hours=1))
    await _share(db, expired, ann, datetime.now(UTC) - timedelta(seconds=1))

    assert await names(db, ann, {"text": tag}) == {"Ann own", "Bob shared"}
    assert await names(db, ann, {"text": tag, "includePublic": True}) == {
        "Ann own",
        "Bob shared",
        "Bob public",
    }
    assert await names(db, ann, {"teamId": bob.team_id, "text": tag}) == {"Bob shared"}
    assert await names(db, ann, {"teamId": bob.team_id, "includePublic": True}) == {
        "Bob shared",
        "Bob public",
    }
    assert await names(db, ann, {"tags": [tag], "shareLevels": ["PRIVATE"]}) == {
        "Ann own",
        "Bob shared",
    }
    assert await names(db, bob, {"text": tag}) == {
        "Bob team",
        "Bob public",
        "Bob shared",
        "Bob expired",
    }
    facets = (await factories.gql(db, FACETS, {"t": bob.team_id}, token=ann.token))[
        "libraryFilters"
    ]
    assert facets["totalCount"] == 1  # the share counts, the expired share does not
    assert facets["tags"] == [{"value": tag, "count": 1}]
    assert facets["creators"] == [{"value": bob.user_id, "label": None, "count": 1}]
    public = (await factories.gql(db, FACETS, {"t": bob.team_id, "p": True}, token=ann.token))[
        "libraryFilters"
    ]
    assert public["totalCount"] == 2
    page = await search(db, ann, {"text": tag})
    assert {e["node"]["viewerPermission"] for e in page["edges"]} == {"ADMIN", "VIEW"}
    # Another team's collection holds nothing for you, even of what you may see in it.
    theirs = await _collection(db, bob.team_id, [shared])
    assert await names(db, ann, {"collectionId": theirs}) == set()
    assert await names(db, bob, {"collectionId": theirs}) == {"Bob shared"}


async def test_bad_input_is_a_clean_error(db: Database) -> None:
    ann = await factories.account(db)
    await factories.library_asset(db, ann, name="One")
    await factories.library_asset(db, ann, name="Two")
    page = await search(db, ann, {"teamId": ann.team_id}, first=1)
    cursor = page["pageInfo"]["endCursor"]
    team = {"teamId": ann.team_id}

    def variables(**kw: Any) -> dict[str, Any]:
        return {"f": team, "s": None, "first": 10, "after": None, **kw}

    assert "cursor" in await error_of(db, ann, SEARCH, variables(after="not a cursor!"))
    assert "cursor" in await error_of(db, ann, SEARCH, variables(after="bGlicmFyeQ"))
    assert "another sort" in await error_of(
        db, ann, SEARCH, variables(after=cursor, s={"field": "NAME"})
    )
    assert "another filter" in await error_of(
        db, ann, SEARCH, variables(after=cursor, f={**team, "moods": ["calm"]})
    )
    assert "first" in await error_of(db, ann, SEARCH, variables(first=-1))
    assert "first" in await error_of(db, ann, SEARCH, variables(first=101))
    assert "RELEVANCE" in await error_of(db, ann, SEARCH, variables(s={"field": "RELEVANCE"}))
    assert "Team" in await error_of(db, ann, SEARCH, variables(f={"teamId": ann.user_id}))
    assert "valid ID" in await error_of(db, ann, SEARCH, variables(f={"teamId": "nope"}))
    assert "User" in await error_of(db, ann, SEARCH, variables(f={"creatorIds": [ann.team_id]}))
    assert "maxDuration" in await error_of(
        db, ann, SEARCH, variables(f={"minDuration": 5, "maxDuration": 1})
    )
    assert "200" in await error_of(db, ann, SEARCH, variables(f={"text": "x" * 201}))
    assert "Team" in await error_of(db, ann, FACETS, {"t": ann.user_id})
    # A well-formed cursor naming an id beyond any key is refused, not sent to the database.
    from services import cursors

    forged = cursors.encode('["library","CREATED",true,0,99999999999999999999,"x"]', padded=False)
    assert "cursor" in await error_of(db, ann, SEARCH, variables(after=forged))
    assert (await search(db, ann, team, first=0))["totalCount"] == 2
