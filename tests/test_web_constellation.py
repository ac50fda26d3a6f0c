"""The constellation map in real Chromium against a real `studio serve`: the team's assets
drawn on a canvas where the API placed them, clusters coloured and listed in a legend,
a hover label, click-through to an asset, a drag that pins it, and the same map as a
list of links for keyboard and screen-reader users."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.async_api import Page

from tests.servers import StudioServer
from tests.test_web_collections import seed_library
from tests.web_harness import (
    Chrome,
    assert_accessible,
    editor_browser,
    editor_server,
    graphql,
    screenshot,
)

pytestmark = pytest.mark.e2e

PAGES = Path(__file__).resolve().parent.parent / "web" / "static" / "app" / "pages"
MAP = (
    "query($teamId: ID!) { constellation(teamId: $teamId) { nodes { id name x y clusterId "
    "pinned } edges { sourceId targetId } clusters { id label size } } }"
)
LOOKS = [
    ("Harbour dusk", ["harbour", "night"], "exterior"),
    ("Lighthouse", ["harbour", "night", "coast"], "exterior"),
    ("Market", ["crowd", "day"], "interior"),
    ("Bakery", ["crowd", "day", "bread"], "interior"),
]
PAINTED = """() => {
  const canvas = document.querySelector('.constellation-canvas canvas');
  const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted += 1;
  return painted;
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(
        tmp_path_factory.mktemp("web-constellation"),
        "web-constellation",
        EMULATOR_LATENCY_MS="50",
        GENERATION_POLL_SECONDS="0.2",
    ) as running:
        yield running


def allow_missing_asset_page(chrome: Chrome) -> None:
    """The asset page is another part of the editor: until it is there, opening one logs
    the failed load of its module (and nothing else may fail)."""
    if not (PAGES / "asset.js").is_file():
        chrome.allow_problem(r"(pages/asset\.js|status of 404)")


def asset_page(asset_id: str) -> str:
    """The URL pattern of an asset's page (its ID escaped in the path)."""
    return f"**/library/assets/{quote(asset_id, safe='')}"


async def node_on_screen(page: Page, asset_id: str) -> dict[str, float]:
    at: dict[str, float] = await page.evaluate(
        "(id) => window.studioConstellation.screenOf(id)", asset_id
    )
    return at


async def test_the_map_is_drawn_opens_assets_and_pins_what_is_dragged(server: StudioServer) -> None:
    base = server.base_url
    library = seed_library(base, "Vera", LOOKS, lineage=True)
    person, assets = library.person, library.assets
    drawn: dict[str, Any] = graphql(base, MAP, {"teamId": person.team_id}, token=person.token)[
        "constellation"
    ]
    labels = sorted(cluster["label"] for cluster in drawn["clusters"])
    assert len(labels) >= 2, labels
    assert drawn["edges"] == [
        {"sourceId": assets["Harbour dusk"], "targetId": assets["Harbour dusk copy"]}
    ]
    async with editor_browser(base) as chrome:
        allow_missing_asset_page(chrome)
        page = await chrome.open(person, "/constellation")
        await page.locator(".constellation-canvas[data-ready='true'] canvas").wait_for()
        # Drawn: the canvas has paint on it, and the legend names every cluster.
        await page.wait_for_function(f"({PAINTED})() > 200", timeout=10_000)
        legend = page.locator(".legend-list li button")
        assert sorted(await legend.all_inner_texts()) == labels
        await assert_accessible(page)
        await screenshot(page, "constellation")

        # The list below is the map as links, by cluster.
        listing = page.get_by_role("region", name="Assets by cluster")
        for name in assets:
            await listing.get_by_role("link", name=name, exact=True).wait_for()
        await listing.get_by_text("duplicate of Harbour dusk").wait_for()

        # Hovering a node names it; clicking it opens the asset.
        market = await node_on_screen(page, assets["Market"])
        await page.mouse.move(market["x"], market["y"])
        await page.locator(".float-tooltip-kap", has_text="Market").wait_for()
        await page.mouse.click(market["x"], market["y"])
        await page.wait_for_url(asset_page(assets["Market"]))
        await page.go_back()
        await page.locator(".constellation-canvas[data-ready='true'] canvas").wait_for()

        # A keyboard user opens an asset from the list.
        link = page.get_by_role("region", name="Assets by cluster").get_by_role(
            "link", name="Lighthouse", exact=True
        )
        await link.focus()
        await page.keyboard.press("Enter")
        await page.wait_for_url(asset_page(assets["Lighthouse"]))
        await page.go_back()
        await page.locator(".constellation-canvas[data-ready='true'] canvas").wait_for()

        # Dragging a node pins it where it was dropped.
        before = {node["id"]: node for node in drawn["nodes"]}[assets["Bakery"]]
        assert before["pinned"] is False
        start = await node_on_screen(page, assets["Bakery"])
        await page.mouse.move(start["x"], start["y"])
        # The map finds what is under the pointer on its next frame: hovered, it names it.
        await page.locator(".float-tooltip-kap", has_text="Bakery").wait_for()
        await page.mouse.down()
        for step in range(1, 11):
            await page.mouse.move(start["x"] + 8 * step, start["y"] + 5 * step)
        await page.mouse.up()
        await page.get_by_text("Pinned “Bakery” where you put it").wait_for()
        pinned = await pinned_node(base, person.team_id, assets["Bakery"], person.token)
        assert (pinned["x"], pinned["y"]) != (before["x"], before["y"])
        # It stayed under the pointer: the map shows the position the API stored.
        end = await node_on_screen(page, assets["Bakery"])
        assert abs(end["x"] - (start["x"] + 80)) < 2
        assert abs(end["y"] - (start["y"] + 50)) < 2
        shown = await page.evaluate(
            "(id) => window.studioConstellation.positionOf(id)", assets["Bakery"]
        )
        assert pinned["x"] == pytest.approx(shown["x"], abs=0.001)
        assert pinned["y"] == pytest.approx(shown["y"], abs=0.001)
        await page.reload()
        await page.locator(".constellation-canvas[data-ready='true'] canvas").wait_for()
        await (
            page.get_by_role("region", name="Assets by cluster")
            .locator("li", has_text="Bakery")
            .get_by_text("pinned")
            .wait_for()
        )
        again = await page.evaluate(
            "(id) => window.studioConstellation.positionOf(id)", assets["Bakery"]
        )
        assert (again["x"], again["y"]) == (pinned["x"], pinned["y"])

        # Live: an asset renamed elsewhere is renamed on the map, without a reload.
        graphql(
            base,
            "mutation($input: UpdateAssetInput!) { updateAsset(input: $input) { userErrors { code } } }",
            {"input": {"id": assets["Market"], "name": "Night market"}},
            token=person.token,
        )
        await listing.get_by_role("link", name="Night market", exact=True).wait_for()


async def pinned_node(base: str, team_id: str, asset_id: str, token: str) -> dict[str, Any]:
    """The node once the API has it pinned (the page saves after the drop)."""
    deadline = time.monotonic() + 30
    while True:
        nodes = graphql(base, MAP, {"teamId": team_id}, token=token)["constellation"]["nodes"]
        node: dict[str, Any] = next(n for n in nodes if n["id"] == asset_id)
        if node["pinned"]:
            return node
        assert time.monotonic() < deadline, node
        await asyncio.sleep(0.2)


async def test_a_team_without_assets_says_so(server: StudioServer) -> None:
    from tests.web_harness import sign_up

    person = sign_up(server.base_url, "Noor")
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(person, "/constellation")
        await page.get_by_text("No assets yet").wait_for()
        await assert_accessible(page)
