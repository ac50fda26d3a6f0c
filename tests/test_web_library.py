"""The library pages in real Chromium against a real `studio serve`: search with text, a
facet and a sort narrows the grid exactly as the API does; the search is a deep link
and Back restores it; the grid follows `libraryEvents`; 1,000 assets draw only what
is on screen, page in as the grid scrolls, and load thumbnails only; cards are
draggable and keyboard operable; "Shared with me" shows a share with its terms."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from playwright.async_api import Page, expect

from schema import ids
from services.database import Database
from services.library.tables import AssetRow
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

THUMB_KEY = "thumbnails/seeded/thumb.webp"
FILE_KEY = "images/seeded/full.png"
CARD = ".asset-grid .asset-card"


@dataclass
class Served:
    """The running server and where its SQLite file and media live."""

    server: StudioServer
    data: Path

    @property
    def base(self) -> str:
        return self.server.base_url


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("web-library")
    with editor_server(directory, "web-library") as running:
        yield Served(running, directory / "data")


def image_bytes(size: tuple[int, int], fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (70, 90, 160)).save(buffer, format=fmt)
    return buffer.getvalue()


async def seed(served: Served, person: Person, assets: list[dict[str, Any]]) -> list[str]:
    """Writes `assets` (AssetRow fields) into `person`'s personal team straight into the
    running server's SQLite file, in one transaction, each with a stored thumbnail and
    file; their global IDs, in order. Set-up only: the API makes assets from generations."""
    media = served.data / "media"
    for key, data in ((THUMB_KEY, image_bytes((32, 18), "WEBP")), (FILE_KEY, image_bytes((640, 360), "PNG"))):
        (media / key).parent.mkdir(parents=True, exist_ok=True)
        (media / key).write_bytes(data)
    team = ids.decode(person.team_id, "Team")
    creator = ids.decode(person.user_id, "User")
    database = Database(f"sqlite+aiosqlite:///{served.data / 'studio.db'}")
    try:
        async with database.transaction() as session:
            rows = [
                AssetRow(
                    **{
                        "team_id": team,
                        "creator_id": creator,
                        "kind": "IMAGE",
                        "status": "READY",
                        "share_level": "TEAM",
                        "storage_key": FILE_KEY,
                        "thumbnail_key": THUMB_KEY,
                        "mime_type": "image/png",
                        "tags": [],
                        **fields,
                    }
                )
                for fields in assets
            ]
            session.add_all(rows)
            await session.flush()
            made = [ids.encode("Asset", row.id) for row in rows]
    finally:
        await database.dispose()
    return made


LIBRARY = """query($filter: LibraryFilter, $sort: LibrarySort, $first: Int!) {
  library(filter: $filter, sort: $sort, first: $first) { totalCount nodes { id name } }
}"""


async def card_names(page: Page) -> list[str]:
    """The names of the cards drawn, in the grid's order."""
    names: list[str] = await page.eval_on_selector_all(
        ".asset-grid [role=listitem]",
        "(items) => items.sort((a, b) => a.getAttribute('aria-posinset') - b.getAttribute('aria-posinset'))"
        ".map((item) => item.querySelector('.asset-link').textContent)",
    )
    return names


async def shows(page: Page, names: list[str]) -> None:
    """Waits until the grid shows exactly `names`, in order."""
    await page.wait_for_function(
        "(names) => { const items = [...document.querySelectorAll('.asset-grid [role=listitem]')];"
        " items.sort((a, b) => a.getAttribute('aria-posinset') - b.getAttribute('aria-posinset'));"
        " return JSON.stringify(items.map((i) => i.querySelector('.asset-link').textContent))"
        " === JSON.stringify(names); }",
        arg=names,
        timeout=10_000,
    )


HARBOUR = [
    {"name": "Harbour at dawn", "tags": ["sea", "boats"], "mood": "calm", "prompt": "boats running home"},
    {"name": "Harbour at night", "tags": ["sea", "night"], "mood": "dark", "views": 5},
    {"name": "Harbour storm", "tags": ["sea"], "mood": "dark", "kind": "VIDEO", "duration": 5.0, "views": 9},
    {"name": "Market in rain", "tags": ["night", "neon"], "mood": "calm"},
    {"name": "Forest path", "tags": ["forest"], "mood": "dark"},
]


async def test_search_a_facet_and_a_sort_narrow_the_grid_as_the_api_does(served: Served) -> None:
    ada = sign_up(served.base, "Ada")
    await seed(served, ada, HARBOUR)
    async with editor_browser(served.base) as chrome:
        page = await chrome.open(ada, "/library")
        await page.get_by_role("heading", name="Library", exact=True).wait_for()
        await expect(page.locator(CARD)).to_have_count(5)
        # The facets come with their counts.
        moods = page.get_by_role("group", name="Mood")
        await expect(moods.get_by_role("checkbox", name="dark (3)")).to_be_visible()
        await expect(page.get_by_role("group", name="Kind").get_by_role("checkbox", name="Video (1)")).to_be_visible()
        await screenshot(page, "library")
        await assert_accessible(page)

        await page.get_by_role("searchbox", name="Search the library").fill("harbour")
        await page.wait_for_url(re.compile(r"q=harbour"))
        await expect(page.locator(CARD)).to_have_count(3)
        await moods.get_by_role("checkbox", name="dark (3)").check()
        await page.wait_for_url(re.compile(r"mood=dark"))
        await page.get_by_label("Sort by").select_option("NAME")
        await page.get_by_label("Order").select_option("ASC")
        await page.wait_for_url(re.compile(r"dir=ASC"))
        expected = graphql(
            served.base,
            LIBRARY,
            {
                "filter": {"teamId": ada.team_id, "text": "harbour", "moods": ["dark"]},
                "sort": {"field": "NAME", "direction": "ASC"},
                "first": 100,
            },
            token=ada.token,
        )["library"]
        assert [n["name"] for n in expected["nodes"]] == ["Harbour at night", "Harbour storm"]
        await shows(page, [n["name"] for n in expected["nodes"]])
        await expect(page.get_by_role("status").filter(has_text="2 assets")).to_be_visible()
        # Most viewed first: the order follows the sort.
        await page.get_by_label("Sort by").select_option("VIEWS")
        await page.get_by_label("Order").select_option("DESC")
        await shows(page, ["Harbour storm", "Harbour at night"])
        # A chip removes its filter.
        await page.get_by_role("button", name="Remove filter Mood: dark").click()
        await expect(page.locator(CARD)).to_have_count(3)
        await screenshot(page, "library-searched")


async def test_a_search_is_a_deep_link_and_back_restores_the_one_before(served: Served) -> None:
    ada = sign_up(served.base, "Ada")
    await seed(served, ada, HARBOUR)
    path = "/library?q=harbour&mood=dark&sort=NAME&dir=ASC&view=list"
    async with editor_browser(served.base) as chrome:
        page = await chrome.open(ada, path)
        await shows(page, ["Harbour at night", "Harbour storm"])
        # Every control says what the URL says.
        await expect(page.get_by_role("searchbox", name="Search the library")).to_have_value("harbour")
        await expect(page.get_by_role("group", name="Mood").get_by_role("checkbox", name="dark (3)")).to_be_checked()
        await expect(page.get_by_label("Sort by")).to_have_value("NAME")
        await expect(page.get_by_label("Order")).to_have_value("ASC")
        await expect(page.get_by_role("button", name="List")).to_have_attribute("aria-pressed", "true")
        await expect(page.locator(".asset-grid .asset-row")).to_have_count(2)
        await screenshot(page, "library-list")
        await assert_accessible(page)

        await page.get_by_role("group", name="Kind").get_by_role("checkbox", name="Video (1)").check()
        await shows(page, ["Harbour storm"])
        query = parse_qs(urlsplit(page.url).query)
        assert query["kind"] == ["VIDEO"] and query["mood"] == ["dark"]
        await page.go_back()
        await shows(page, ["Harbour at night", "Harbour storm"])
        await expect(page.get_by_role("group", name="Kind").get_by_role("checkbox", name="Video (1)")).not_to_be_checked()
        # Clearing the words is one more step Back undoes.
        await page.get_by_role("searchbox", name="Search the library").fill("")
        await expect(page.locator(".asset-grid .asset-row")).to_have_count(3)
        await page.go_back()
        await expect(page.get_by_role("searchbox", name="Search the library")).to_have_value("harbour")
        await shows(page, ["Harbour at night", "Harbour storm"])
