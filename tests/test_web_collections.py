"""Collections in the editor, in real Chromium against a real `studio serve`: a collection
made, filled by drag and drop from the library picker and from the collections panel,
reordered by drag and drop and by keyboard, given a cover, edited and deleted, with the
API confirming each step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Locator, Page

from tests.servers import StudioServer
from tests.web_harness import (
    Person,
    assert_accessible,
    editor_browser,
    editor_server,
    graphql,
    mutation,
    screenshot,
    sign_up,
)

pytestmark = pytest.mark.e2e

SEED_DEADLINE = 60.0
LIBRARY = (
    "query($teamId: ID!) { library(filter: {teamId: $teamId}, first: 50, "
    "sort: {field: CREATED, direction: ASC}) { totalCount nodes { id status } } }"
)
ITEMS = (
    "query($id: ID!) { collection(id: $id) { name description type shareLevel "
    "coverImage { id } items(first: 50) { nodes { position asset { id name } } } } }"
)


@dataclass
class Library:
    """A person and the assets seeded in their personal team's library, by name."""

    person: Person
    assets: dict[str, str]


def _run(base: str, name: str, input: dict[str, Any], selection: str, token: str) -> Any:
    kind = name[0].upper() + name[1:]
    return mutation(
        base,
        f"mutation($input: {kind}Input!) {{ {name}(input: $input) "
        f"{{ {selection} userErrors {{ code field message }} }} }}",
        {"input": input},
        token=token,
    )


def seed_library(
    base: str, who: str, looks: list[tuple[str, list[str], str]], *, lineage: bool = False
) -> Library:
    """Signs `who` up and fills their team's library through the API: one generation of
    len(`looks`) images (the built-in emulator), each asset then named, tagged and
    categorised as `looks` says ((name, tags, category) each); with `lineage`, the first is
    duplicated too (an asset named "<first> copy", its lineage child)."""
    person = sign_up(base, who)
    project = _run(
        base,
        "createProject",
        {"title": f"{who}'s shoot", "teamId": person.team_id},
        "project { id }",
        person.token,
    )["project"]["id"]
    shot = _run(
        base,
        "createScene",
        {"projectId": project, "title": "Opening", "shots": [{"initialPrompt": "a quiet harbour"}]},
        "scene { shots { id } }",
        person.token,
    )["scene"]["shots"][0]["id"]
    _run(
        base,
        "generateShotImages",
        {"shotId": shot, "variantCount": len(looks)},
        "images { id }",
        person.token,
    )
    deadline = time.monotonic() + SEED_DEADLINE
    while True:
        found = graphql(base, LIBRARY, {"teamId": person.team_id}, token=person.token)["library"]
        ready = [node["id"] for node in found["nodes"] if node["status"] == "READY"]
        if len(ready) == len(looks):
            break
        assert time.monotonic() < deadline, f"the library has {found} after a minute"
        time.sleep(0.25)
    assets = {}
    for asset_id, (name, tags, category) in zip(ready, looks, strict=True):
        _run(
            base,
            "updateAsset",
            {"id": asset_id, "name": name, "tags": tags, "category": category},
            "asset { id }",
            person.token,
        )
        assets[name] = asset_id
    if lineage:
        first = looks[0][0]
        copy = _run(
            base, "duplicateAsset", {"assetId": assets[first]}, "asset { id }", person.token
        )["asset"]["id"]
        _run(
            base, "updateAsset", {"id": copy, "name": f"{first} copy"}, "asset { id }", person.token
        )
        assets[f"{first} copy"] = copy
    return Library(person, assets)


LOOKS = [
    ("Harbour dusk", ["harbour", "night"], "exterior"),
    ("Lighthouse", ["harbour", "coast"], "exterior"),
    ("Fog bank", ["harbour", "fog"], "exterior"),
    ("Market", ["crowd", "day"], "interior"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(
        tmp_path_factory.mktemp("web-collections"),
        "web-collections",
        EMULATOR_LATENCY_MS="50",
        GENERATION_POLL_SECONDS="0.2",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def library(server: StudioServer) -> Library:
    return seed_library(server.base_url, "Ada", LOOKS)


async def drag(
    page: Page, source: Locator, target: Locator, at: dict[str, float] | None = None
) -> None:
    """Drags `source` onto `target` (at `at` inside it, else its centre) with the mouse,
    in steps, as a person does: the drag starts, passes over the target, and drops."""
    await source.hover()
    await page.mouse.down()
    box = await target.bounding_box()
    assert box is not None
    x = box["x"] + (at["x"] if at else box["width"] / 2)
    y = box["y"] + (at["y"] if at else box["height"] / 2)
    await page.mouse.move(x, y, steps=8)
    await page.mouse.move(x, y + 1)
    await page.mouse.up()


def order(base: str, collection_id: str, token: str) -> list[str]:
    """The collection's item names in position order, as the API has them."""
    found = graphql(base, ITEMS, {"id": collection_id}, token=token)["collection"]
    nodes = found["items"]["nodes"]
    assert [node["position"] for node in nodes] == list(range(len(nodes)))
    return [node["asset"]["name"] for node in nodes]


async def item_names(page: Page) -> list[str]:
    return await page.locator(".item-list > li .item-text a").all_inner_texts()


async def wait_for_names(page: Page, names: list[str]) -> None:
    await page.wait_for_function(
        "(names) => JSON.stringify([...document.querySelectorAll('.item-list > li .item-text a')]"
        ".map((a) => a.textContent)) === JSON.stringify(names)",
        arg=names,
        timeout=10_000,
    )


def row(page: Page, name: str) -> Locator:
    return page.locator(".item-list > li").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )


async def test_a_collection_is_built_filled_reordered_and_covered(
    server: StudioServer, library: Library
) -> None:
    base = server.base_url
    person = library.person
    async with editor_browser(base) as chrome:
        page = await chrome.open(person, "/collections")
        await page.get_by_text("No collections yet").wait_for()
        await assert_accessible(page)
        await screenshot(page, "collections-empty")

        # Made through the dialog; a refusal is shown with the form kept.
        await page.get_by_role("button", name="New collection").click()
        dialog = page.get_by_role("dialog", name="New collection")
        await dialog.get_by_label("Name").fill("Harbour campaign")
        await dialog.get_by_label("Tags").fill(", ".join(f"tag{n}" for n in range(31)))
        await dialog.get_by_role("button", name="Create collection").click()
        await dialog.locator(".field-error").first.wait_for()
        assert "tag" in (await dialog.locator(".field-error").first.inner_text()).lower()
        assert await dialog.get_by_label("Name").input_value() == "Harbour campaign"
        await dialog.get_by_label("Description").fill("Boards for the harbour launch")
        await dialog.get_by_label("Type").select_option(label="Series")
        await dialog.get_by_label("Visibility").select_option(label="Private: only you")
        await dialog.get_by_label("Tags").fill("Harbour, launch")
        await assert_accessible(page)
        await dialog.get_by_role("button", name="Create collection").click()
        await page.get_by_role("heading", name="Harbour campaign", level=1).wait_for()
        collection_id = page.url.rsplit("/", 1)[1]
        made = graphql(base, ITEMS, {"id": collection_id}, token=person.token)["collection"]
        assert (made["description"], made["type"], made["shareLevel"]) == (
            "Boards for the harbour launch",
            "SERIES",
            "PRIVATE",
        )

        # Two assets dragged from the picker: the second dropped above the first.
        picker = page.get_by_role("region", name="Add from library")
        drop_zone = page.locator(".items-drop")
        await picker.get_by_text("Lighthouse").wait_for()
        await drag(page, picker.locator("li", has_text="Lighthouse"), drop_zone)
        await wait_for_names(page, ["Lighthouse"])
        first_row = row(page, "Lighthouse")
        await drag(
            page, picker.locator("li", has_text="Harbour dusk"), first_row, {"x": 200, "y": 4}
        )
        await wait_for_names(page, ["Harbour dusk", "Lighthouse"])
        # The picker searches, and says what is already in.
        await picker.get_by_label("Search the library").fill("fog")
        await picker.locator("li").filter(has_text="Lighthouse").wait_for(state="detached")
        await picker.get_by_label("Search the library").fill("")
        await picker.locator("li", has_text="Lighthouse").get_by_text("In collection").wait_for()

        # One dragged onto this collection in the collections panel.
        panel = page.get_by_role("complementary", name="Collections")
        target = panel.locator("li", has_text="Harbour campaign")
        await drag(page, picker.locator("li", has_text="Fog bank"), target)
        await page.get_by_text("Added “Fog bank” to “Harbour campaign”.").wait_for()
        await wait_for_names(page, ["Harbour dusk", "Lighthouse", "Fog bank"])
        assert order(base, collection_id, person.token) == [
            "Harbour dusk",
            "Lighthouse",
            "Fog bank",
        ]
        # Dropping it again is refused with a reason.
        await picker.get_by_label("Search the library").fill("market")
        await picker.get_by_role("button", name="Add Market").click()
        await wait_for_names(page, ["Harbour dusk", "Lighthouse", "Fog bank", "Market"])
        await picker.get_by_label("Search the library").fill("")
        # The whole library listed again first: the picker growing back mid-drag moved
        # the panel from under the drop.
        await picker.locator("li", has_text="Lighthouse").get_by_text("In collection").wait_for()
        await drag(page, row(page, "Market"), target)
        await page.get_by_text("“Market” is already in “Harbour campaign”.").wait_for()
        await screenshot(page, "collection-filled")

        # Reordered by drag and drop: Fog bank to the top.
        await drag(page, row(page, "Fog bank"), row(page, "Harbour dusk"), {"x": 300, "y": 3})
        await wait_for_names(page, ["Fog bank", "Harbour dusk", "Lighthouse", "Market"])
        await expect_order(
            base, collection_id, person.token, ["Fog bank", "Harbour dusk", "Lighthouse", "Market"]
        )

        # And by keyboard: Market picked up, moved up twice, dropped; announced.
        handle = page.get_by_role("button", name="Move Market", exact=True)
        await handle.focus()
        await page.keyboard.press("Space")
        announcer = page.get_by_test_id("announcer")
        assert "Picked up Market, position 4 of 4" in await announcer.inner_text()
        await page.keyboard.press("ArrowUp")
        await page.keyboard.press("ArrowUp")
        assert "Market: position 2 of 4" in await announcer.inner_text()
        # Escape puts it back; the order on the server never changed.
        await page.keyboard.press("Escape")
        await wait_for_names(page, ["Fog bank", "Harbour dusk", "Lighthouse", "Market"])
        await page.keyboard.press("Space")
        await page.keyboard.press("ArrowUp")
        await page.keyboard.press("ArrowUp")
        await page.keyboard.press("Space")
        await (
            page.get_by_test_id("announcer")
            .get_by_text("Market dropped at position 2 of 4.")
            .wait_for()
        )
        await expect_order(
            base, collection_id, person.token, ["Fog bank", "Market", "Harbour dusk", "Lighthouse"]
        )
        assert (
            await page.evaluate("document.activeElement.getAttribute('aria-label')")
            == "Move Market"
        )

        # The cover, then an item removed (its asset stays in the library).
        await page.get_by_role("button", name="Make cover: Lighthouse").click()
        await page.get_by_test_id("cover-name").get_by_text("Lighthouse").wait_for()
        found = graphql(base, ITEMS, {"id": collection_id}, token=person.token)["collection"]
        assert found["coverImage"] == {"id": library.assets["Lighthouse"]}
        await page.get_by_role("button", name="Remove Harbour dusk from the collection").click()
        await wait_for_names(page, ["Fog bank", "Market", "Lighthouse"])
        await expect_order(base, collection_id, person.token, ["Fog bank", "Market", "Lighthouse"])
        await assert_accessible(page)
        await screenshot(page, "collection")
        # Live: an asset renamed elsewhere is renamed here, without a reload.
        _run(
            base,
            "updateAsset",
            {"id": library.assets["Market"], "name": "Night market"},
            "asset { id }",
            person.token,
        )
        await wait_for_names(page, ["Fog bank", "Night market", "Lighthouse"])

        # Edited from the list, then deleted there.
        await page.get_by_role("link", name="Collections", exact=True).first.click()
        await page.get_by_role("heading", name="Collections", level=1).wait_for()
        card = page.locator(".collection-card", has_text="Harbour campaign")
        await card.get_by_text("3 items").wait_for()
        await assert_accessible(page)
        await screenshot(page, "collections")
        await card.get_by_role("button", name="Edit Harbour campaign").click()
        dialog = page.get_by_role("dialog", name="Edit “Harbour campaign”")
        await dialog.get_by_label("Name").fill("Harbour launch")
        await dialog.get_by_label("Description").fill("")
        await dialog.get_by_role("button", name="Save changes").click()
        await page.get_by_role("link", name="Harbour launch").wait_for()
        edited = graphql(base, ITEMS, {"id": collection_id}, token=person.token)["collection"]
        assert (edited["name"], edited["description"], edited["coverImage"]) == (
            "Harbour launch",
            None,
            {"id": library.assets["Lighthouse"]},
        )
        await page.get_by_role("button", name="Delete Harbour launch").click()
        confirm = page.get_by_role("dialog", name="Delete “Harbour launch”?")
        await confirm.get_by_text("Its 3 assets stay in the library").wait_for()
        await confirm.get_by_role("button", name="Delete collection").click()
        await page.get_by_text("No collections yet").wait_for()
        gone = graphql(base, ITEMS, {"id": collection_id}, token=person.token)
        assert gone["collection"] is None
        still = graphql(base, LIBRARY, {"teamId": person.team_id}, token=person.token)
        assert still["library"]["totalCount"] == len(LOOKS)


async def expect_order(base: str, collection_id: str, token: str, names: list[str]) -> None:
    """The API's order becomes `names` (saving follows the screen's change; a shared
    machine's SQLite may keep the write waiting a while)."""
    deadline = time.monotonic() + 30
    while (found := order(base, collection_id, token)) != names:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.1)


async def test_a_viewer_of_a_collection_sees_it_without_the_editing_tools(
    server: StudioServer, library: Library
) -> None:
    base = server.base_url
    owner = library.person
    made = _run(
        base,
        "createCollection",
        {"teamId": owner.team_id, "name": "Open boards", "shareLevel": "PUBLIC"},
        "collection { id }",
        owner.token,
    )["collection"]["id"]
    for name in ("Lighthouse", "Harbour dusk"):
        _run(
            base,
            "setShareLevel",
            {"assetId": library.assets[name], "shareLevel": "PUBLIC"},
            "asset { id }",
            owner.token,
        )
        _run(
            base,
            "addToCollection",
            {"collectionId": made, "assetId": library.assets[name]},
            "item { id }",
            owner.token,
        )
    stranger = sign_up(base, "Linus")
    async with editor_browser(base) as chrome:
        page = await chrome.open(stranger, f"/collections/{made}")
        await page.get_by_role("heading", name="Open boards", level=1).wait_for()
        await page.get_by_role("link", name="Harbour dusk").wait_for()
        assert await page.get_by_role("button", name="Edit details").count() == 0
        assert await page.get_by_role("button", name="Move Lighthouse", exact=True).count() == 0
        assert await page.get_by_role("region", name="Add from library").count() == 0
        await assert_accessible(page)
        # A collection that is not there says so, with the way back.
        await page.goto(f"{base}/collections/Q29sbGVjdGlvbjo5OTk5")
        await page.get_by_role("heading", name="Collection not found").wait_for()
        await page.get_by_role("link", name="Back to collections").wait_for()
