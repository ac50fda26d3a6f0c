"""The media library end to end over real HTTP: `studio serve` and `studio emulator` as
real processes, every step through GraphQL as a client would take it."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from services.database import Database
from services.tables import utcnow
from tests import test_generation_e2e as e2e
from tests.factories import Account, library_asset
from tests.media_harness import media_server
from tests.realtime_harness import Api, Socket
from tests.test_library_crosscut import EVERY_PATH, what_is_seen
from tests.test_library_sharing import iso

DEADLINE = 90.0
# The paths of `what_is_seen` that show the asset or not.
SHOWN = (
    "asset",
    "node",
    "search",
    "everything",
    "shared with me",
    "lineage",
    "collection",
    "constellation",
)

ASSET_FIELDS = (
    "id kind status name prompt version evolutionType branchName fileUrl thumbnailUrl "
    "parent { id } root { id } sourceImage { id } duplicateCount remixCount "
    "promptDelta { added removed } viewerPermission"
)
ASSET = "query($id: ID!) { asset(id: $id) { " + ASSET_FIELDS + " } }"
SEARCH = (
    "query($text: String, $kinds: [AssetKind!], $after: String) { library(filter: "
    "{text: $text, kinds: $kinds}, sort: {field: CREATED, direction: ASC}, first: 24, "
    "after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { "
    + ASSET_FIELDS
    + " } } } }"
)
LINEAGE = (
    "query($id: ID!) { lineage(assetId: $id) { asset { id } ancestors { asset { id } } "
    "descendants { evolutionType version parentId asset { id kind } } "
    "tree { asset { id } children { evolutionType asset { id kind } } } } }"
)


def mutate(client: e2e.Client, name: str, input: dict[str, Any], selection: str) -> Any:
    """The mutation's payload; fails on any userErrors entry."""
    query = (
        f"mutation($input: {name[0].upper() + name[1:]}Input!) {{ {name}(input: $input) "
        f"{{ {selection} userErrors {{ code field message }} }} }}"
    )
    payload = client.run(query, {"input": input})[name]
    assert payload["userErrors"] == [], payload
    return payload


def waited(read: Callable[[], Any], done: Callable[[Any], bool], what: str) -> Any:
    """`read()` once `done` holds of it; fails after the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: {value}"
        time.sleep(0.2)


def fetched(url: str) -> bytes:
    response = httpx.get(url, timeout=10, trust_env=False)
    assert response.status_code == 200, url
    return response.content


@pytest.mark.e2e
def test_over_http_generate_refine_animate_then_search_lineage_copy_remix_collect_share(
    tmp_path: Path,
) -> None:
    with (
        e2e.emulator(tmp_path, latency_ms=100) as replicate,
        e2e.server(tmp_path, replicate, webhooks=False) as served,
    ):
        ann = e2e.Client.signed_up(served.base_url)
        bob = e2e.Client.signed_up(served.base_url)
        bob_id = bob.run("query { viewer { id } }")["viewer"]["id"]
        team_id = mutate(ann, "createTeam", {"name": "Harbour crew"}, "team { id }")["team"]["id"]
        code = mutate(ann, "inviteTeamMember", {"teamId": team_id, "role": "VIEWER"}, "code")
        mutate(bob, "acceptInvitation", {"code": code["code"]}, "team { id }")

        # Six images, one refined, the master animated.
        project = mutate(
            ann, "createProject", {"title": "Harbour", "teamId": team_id}, "project { id }"
        )["project"]["id"]
        shot_id = mutate(
            ann,
            "createScene",
            {
                "projectId": project,
                "title": "Arrival",
                "shots": [{"initialPrompt": "harbour at night"}],
            },
            "scene { shots { id } }",
        )["scene"]["shots"][0]["id"]
        first = [
            image["id"]
            for image in mutate(
                ann, "generateShotImages", {"shotId": shot_id, "variantCount": 6}, "images { id }"
            )["images"]
        ]
        images = ann.wait(shot_id, lambda found: len(found) == 6 and e2e.finished(found))
        assert [image["status"] for image in images] == ["COMPLETE"] * 6
        master_image = first[0]
        refined = mutate(
            ann,
            "generateShotImages",
            {
                "shotId": shot_id,
                "parentImageId": master_image,
                "prompt": "harbour at night in fog",
                "variantCount": 1,
            },
            "images { id }",
        )
        (refined_image,) = (image["id"] for image in refined["images"])
        ann.wait(shot_id, lambda found: len(found) == 7 and e2e.finished(found))
        selection = mutate(
            ann,
            "selectMasterShot",
            {"shotId": shot_id, "imageId": master_image},
            "selection { id }",
        )["selection"]["id"]
        mutate(
            ann,
            "animateShot",
            {"selectionId": selection, "params": {"duration": 5}},
            "selection { animationStatus }",
        )
        clip = waited(
            lambda: ann.run(
                "query($id: ID!) { node(id: $id) { ... on StoryboardSelection "
                "{ animationStatus animatedVideoUrl error } } }",
                {"id": selection},
            )["node"],
            lambda s: s["animationStatus"] not in ("PENDING", "PROCESSING"),
            "the animation",
        )
        assert clip["animationStatus"] == "COMPLETE", clip

        # The library finds them by text, through word forms.
        def search(**variables: Any) -> dict[str, Any]:
            found: dict[str, Any] = ann.run(SEARCH, {"text": None, "kinds": None, **variables})[
                "library"
            ]
            return found

        harbour = waited(
            lambda: search(text="harbours"),
            lambda found: found["totalCount"] == 8,
            "eight assets (six images, a refinement, a clip) found by text",
        )
        nodes = [edge["node"] for edge in harbour["edges"]]
        assert sorted(n["kind"] for n in nodes) == ["IMAGE"] * 7 + ["VIDEO"]
        assert all(n["status"] == "READY" for n in nodes)
        by_image = {n["sourceImage"]["id"]: n for n in nodes if n["kind"] == "IMAGE"}
        master = by_image[master_image]
        assert by_image[refined_image]["parent"] == {"id": master["id"]}
        (video,) = (n for n in nodes if n["kind"] == "VIDEO")
        assert video["parent"] == {"id": master["id"]}
        assert fetched(master["thumbnailUrl"])
        assert fetched(video["fileUrl"])
        fog = search(text="fog")
        assert [e["node"]["id"] for e in fog["edges"]] == [by_image[refined_image]["id"]]
        clips = search(text="harbour", kinds=["VIDEO"])
        assert [e["node"]["id"] for e in clips["edges"]] == [video["id"]]

        # Lineage: the refinement is an EVOLVE child, the clip an ANIMATE child.
        family = ann.run(LINEAGE, {"id": master["id"]})["lineage"]
        children = {
            (c["evolutionType"], c["asset"]["id"], c["asset"]["kind"])
            for c in family["tree"]["children"]
        }
        assert children == {
            ("EVOLVE", by_image[refined_image]["id"], "IMAGE"),
            ("ANIMATE", video["id"], "VIDEO"),
        }
        assert family["ancestors"] == []
        up = ann.run(LINEAGE, {"id": video["id"]})["lineage"]
        assert [a["asset"]["id"] for a in up["ancestors"]] == [master["id"]]

        # Duplicate and remix; the remix regenerated to READY through the emulator.
        copy = mutate(
            ann,
            "duplicateAsset",
            {"assetId": master["id"], "branchName": "alt"},
            "asset { " + ASSET_FIELDS + " }",
        )["asset"]
        assert (copy["evolutionType"], copy["status"], copy["version"]) == (
            "DUPLICATE",
            "READY",
            2,
        )
        assert copy["parent"] == {"id": master["id"]}
        assert fetched(copy["fileUrl"]) == fetched(master["fileUrl"])
        remix = mutate(
            ann,
            "remixAsset",
            {"assetId": master["id"], "prompt": "harbour at dawn with gulls"},
            "asset { " + ASSET_FIELDS + " }",
        )["asset"]
        assert (remix["evolutionType"], remix["status"], remix["fileUrl"]) == (
            "REMIX",
            "DRAFT",
            None,
        )
        assert set(remix["promptDelta"]["added"]) >= {"dawn", "gulls"}
        counts = ann.run(ASSET, {"id": master["id"]})["asset"]
        assert (counts["duplicateCount"], counts["remixCount"]) == (1, 1)
        started = mutate(ann, "regenerateAsset", {"assetId": remix["id"]}, "asset { id status }")
        assert started["asset"] == {"id": remix["id"], "status": "GENERATING"}
        remix = waited(
            lambda: ann.run(ASSET, {"id": remix["id"]})["asset"],
            lambda a: a["status"] not in ("DRAFT", "GENERATING"),
            "the remix's regeneration",
        )
        assert remix["status"] == "READY", remix
        assert fetched(remix["fileUrl"])
        assert fetched(remix["thumbnailUrl"])
        found = search(text="gulls")
        assert [e["node"]["id"] for e in found["edges"]] == [remix["id"]]

        # Into a collection; shared with a teammate, with an expiry.
        collection = mutate(
            ann,
            "createCollection",
            {"teamId": team_id, "name": "Harbour series", "type": "SERIES"},
            "collection { id }",
        )["collection"]["id"]
        mutate(
            ann,
            "addToCollection",
            {"collectionId": collection, "assetId": remix["id"], "notes": "the dawn one"},
            "item { position }",
        )
        held = ann.run(
            "query($id: ID!) { collection(id: $id) { itemCount items { edges { node { "
            "position notes asset { id } } } } } }",
            {"id": collection},
        )["collection"]
        assert held["itemCount"] == 1
        assert held["items"]["edges"][0]["node"] == {
            "position": 0,
            "notes": "the dawn one",
            "asset": {"id": remix["id"]},
        }
        expiry = (utcnow() + timedelta(hours=2)).isoformat()
        shared = mutate(
            ann,
            "shareAsset",
            {
                "assetId": remix["id"],
                "userId": bob_id,
                "permission": "EDIT",
                "expiresAt": expiry,
                "message": "dawn take",
            },
            "share { permission active expiresAt user { id } }",
        )["share"]
        assert shared["permission"] == "EDIT"
        assert shared["active"] is True
        assert shared["user"] == {"id": bob_id}
        listed = bob.run(
            "query { sharedWithMe { totalCount edges { node { id viewerPermission } "
            "share { message } } } }"
        )["sharedWithMe"]
        assert listed["totalCount"] == 1
        assert listed["edges"][0]["node"] == {"id": remix["id"], "viewerPermission": "EDIT"}
        assert listed["edges"][0]["share"] == {"message": "dawn take"}
        seen = bob.run(ASSET, {"id": remix["id"]})["asset"]
        assert fetched(seen["fileUrl"])


# --- one share that expires, over HTTP and a WebSocket against a running server ----------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(64)
FEED = """
subscription($teamId: ID!) {
  libraryEvents(teamId: $teamId) { sequence kind assetId changes asset { id name } }
}
"""


@pytest.mark.e2e
async def test_over_http_an_expiring_share_ends_in_every_path_and_the_feed(
    tmp_path: Path,
) -> None:
    server = media_server(
        tmp_path,
        "expiry",
        {"library/dusk.png": PNG, "library/dusk.webp": WEBP},
        secret_key=secrets.token_urlsafe(48),
    )
    with server:
        async with (
            Api(server.base_url) as ann,
            Api(server.base_url) as bob,
            httpx.AsyncClient(base_url=server.base_url, timeout=10.0, trust_env=False) as http,
        ):

            async def status_of(url: str) -> int:
                parts = urlsplit(url)
                return (await http.get(f"{parts.path}?{parts.query}")).status_code

            await ann.sign_up("Ann")
            await bob.sign_up("Bob")
            team = (await ann.mutate("createTeam", {"name": "Crew"}, "team { id }"))["team"]["id"]
            await bob.join(ann, team, "VIEWER")  # a member, but the asset is PRIVATE
            stored = Database(f"sqlite+aiosqlite:///{tmp_path / 'studio.db'}")
            try:
                owner = Account(ann.token, ann.user_id, team, ann.email)
                lighthouse = await library_asset(
                    stored,
                    owner,
                    team_id=team,
                    name="Lighthouse at dusk",
                    tags=["lighthouse", "coast"],
                    mood="calm",
                    share_level="PRIVATE",
                    storage_key="library/dusk.png",
                    thumbnail_key="library/dusk.webp",
                )
                harbour = await library_asset(
                    stored, owner, team_id=team, name="Harbour", tags=["coast"]
                )
            finally:
                await stored.dispose()
            collection = (
                await ann.mutate("createCollection", {"teamId": team}, "collection { id }")
            )["collection"]["id"]
            await ann.mutate(
                "addToCollection",
                {"collectionId": collection, "assetId": lighthouse},
                "item { id }",
            )
            share_input = {"assetId": lighthouse, "userId": bob.user_id}
            await ann.mutate(
                "shareAsset",
                {**share_input, "expiresAt": iso(utcnow() + timedelta(hours=1))},
                "share { id }",
            )
            variables = {"id": lighthouse, "teamId": team, "collectionId": collection}

            async with await Socket.open(server, bob.token) as socket:
                feed = await socket.subscribe(FEED, {"teamId": team})
                assert (await feed.next())["libraryEvents"]["kind"] == "SNAPSHOT"
                before = what_is_seen(await bob.data(EVERY_PATH, variables), lighthouse)
                assert all(before[path] is True for path in SHOWN), before
                assert (before["search total"], before["facets total"]) == (1, 2)
                assert (before["lighthouse tag"], before["shared total"]) == (1, 1)

                await ann.mutate("updateAsset", {"id": lighthouse, "name": "Night"}, "asset { id }")
                got = (await feed.next())["libraryEvents"]
                assert (got["kind"], got["assetId"], got["asset"]["name"]) == (
                    "ASSET_UPDATED",
                    lighthouse,
                    "Night",
                )

                expiry = utcnow() + timedelta(seconds=4)
                await ann.mutate(
                    "shareAsset", {**share_input, "expiresAt": iso(expiry)}, "share { id }"
                )
                got = (await feed.next())["libraryEvents"]
                assert (got["kind"], got["changes"]) == ("ASSET_SHARED", ["expiresAt"])
                asset = (await bob.data(EVERY_PATH, variables))["asset"]
                links = [asset["fileUrl"], asset["thumbnailUrl"]]
                assert [await status_of(link) for link in links] == [200, 200]
                own = (await ann.data(EVERY_PATH, variables))["asset"]["fileUrl"]

                await asyncio.sleep(max(0.0, (expiry - utcnow()).total_seconds()) + 0.3)

                after = what_is_seen(await bob.data(EVERY_PATH, variables), lighthouse)
                assert not any(after[path] for path in SHOWN), after
                assert (after["search total"], after["facets total"]) == (0, 1)
                assert (after["lighthouse tag"], after["shared total"]) == (0, 0)
                for link in links:
                    assert await status_of(link) in (403, 404)
                assert await status_of(own) == 200  # the team's own link goes on

                await ann.mutate(
                    "updateAsset", {"id": lighthouse, "name": "Unseen"}, "asset { id }"
                )
                await ann.mutate(
                    "updateAsset", {"id": harbour, "name": "Harbour, later"}, "asset { id }"
                )
                got = (await feed.next())["libraryEvents"]
                assert (got["kind"], got["assetId"], got["asset"]["name"]) == (
                    "ASSET_UPDATED",
                    harbour,
                    "Harbour, later",
                )
