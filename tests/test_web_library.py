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
from urllib.parse import parse_qs, quote, urlsplit

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
THUMBS = "thumbnails/thousand"
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


async def seed(
    served: Served, person: Person, assets: list[dict[str, Any]], *, team_id: str | None = None
) -> list[str]:
    """Writes `assets` (AssetRow fields) into `person`'s team `team_id` (default: their
    personal team), made by them, straight into the
    running server's SQLite file, in one transaction, each with a stored thumbnail and
    file (one thumbnail for all unless they name their own `thumbnail_key`); their global
    IDs, in order. Set-up only: the API makes assets from generations."""
    media = served.data / "media"
    thumb = image_bytes((32, 18), "WEBP")
    files = {FILE_KEY: image_bytes((640, 360), "PNG"), THUMB_KEY: thumb}
    files |= {fields["thumbnail_key"]: thumb for fields in assets if "thumbnail_key" in fields}
    for key, data in files.items():
        (media / key).parent.mkdir(parents=True, exist_ok=True)
        (media / key).write_bytes(data)
    team = ids.decode(team_id or person.team_id, "Team")
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
            made = [str(ids.encode("Asset", row.id)) for row in rows]
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


HARBOUR: list[dict[str, Any]] = [
    {
        "name": "Harbour at dawn",
        "tags": ["sea", "boats"],
        "mood": "calm",
        "prompt": "boats running home",
    },
    {"name": "Harbour at night", "tags": ["sea", "night"], "mood": "dark", "views": 5},
    {
        "name": "Harbour storm",
        "tags": ["sea"],
        "mood": "dark",
        "kind": "VIDEO",
        "duration": 5.0,
        "views": 9,
        "model": "kling-v2.1",
        "category": "weather",
        "scene_type": "WIDE",
    },
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
        await expect(
            page.get_by_role("group", name="Kind").get_by_role("checkbox", name="Video (1)")
        ).to_be_visible()
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
        await expect(page.get_by_role("searchbox", name="Search the library")).to_have_value(
            "harbour"
        )
        await expect(
            page.get_by_role("group", name="Mood").get_by_role("checkbox", name="dark (3)")
        ).to_be_checked()
        await expect(page.get_by_label("Sort by")).to_have_value("NAME")
        await expect(page.get_by_label("Order")).to_have_value("ASC")
        await expect(page.get_by_role("button", name="List")).to_have_attribute(
            "aria-pressed", "true"
        )
        await expect(page.locator(".asset-grid .asset-row")).to_have_count(2)
        await screenshot(page, "library-list")
        await assert_accessible(page)

        await (
            page.get_by_role("group", name="Kind").get_by_role("checkbox", name="Video (1)").check()
        )
        await shows(page, ["Harbour storm"])
        query = parse_qs(urlsplit(page.url).query)
        assert query["kind"] == ["VIDEO"]
        assert query["mood"] == ["dark"]
        await page.go_back()
        await shows(page, ["Harbour at night", "Harbour storm"])
        await expect(
            page.get_by_role("group", name="Kind").get_by_role("checkbox", name="Video (1)")
        ).not_to_be_checked()
        # Clearing the words is one more step Back undoes.
        await page.get_by_role("searchbox", name="Search the library").fill("")
        await expect(page.locator(".asset-grid .asset-row")).to_have_count(3)
        await page.go_back()
        await expect(page.get_by_role("searchbox", name="Search the library")).to_have_value(
            "harbour"
        )
        await shows(page, ["Harbour at night", "Harbour storm"])


COLLECT = """mutation($input: CreateCollectionInput!) {
  createCollection(input: $input) { collection { id } userErrors { code message } }
}"""
ADD = """mutation($input: AddToCollectionInput!) {
  addToCollection(input: $input) { item { id } userErrors { code message } }
}"""


async def test_every_filter_of_the_api_is_a_control_the_url_sets(served: Served) -> None:
    ada = sign_up(served.base, "Ada")
    made = await seed(served, ada, HARBOUR)
    storm = made[2]
    collection = mutation(
        served.base, COLLECT, {"input": {"teamId": ada.team_id, "name": "Storms"}}, token=ada.token
    )["collection"]["id"]
    mutation(
        served.base, ADD, {"input": {"collectionId": collection, "assetId": storm}}, token=ada.token
    )
    today = datetime.now(UTC).date()
    start, end = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
    query = (
        f"kind=VIDEO&tag=sea&category=weather&mood=dark&scene=WIDE&model=kling-v2.1"
        f"&creator={quote(ada.user_id)}&level=TEAM&collection={quote(collection)}"
        f"&from={start}&to={end}&minDur=1&maxDur=10&lineage=no&sort=DURATION&dir=ASC"
    )
    api_filter = {
        "teamId": ada.team_id,
        "kinds": ["VIDEO"],
        "tags": ["sea"],
        "categories": ["weather"],
        "moods": ["dark"],
        "sceneTypes": ["WIDE"],
        "models": ["kling-v2.1"],
        "creatorIds": [ada.user_id],
        "shareLevels": ["TEAM"],
        "collectionId": collection,
        "createdAfter": f"{start}T00:00:00Z",
        "createdBefore": f"{end}T00:00:00Z",
        "minDuration": 1,
        "maxDuration": 10,
        "hasLineage": False,
    }
    sort = {"field": "DURATION", "direction": "ASC"}
    found = graphql(
        served.base, LIBRARY, {"filter": api_filter, "sort": sort, "first": 10}, token=ada.token
    )["library"]
    assert [n["name"] for n in found["nodes"]] == ["Harbour storm"]
    async with editor_browser(served.base) as chrome:
        page = await chrome.open(ada, f"/library?{query}")
        await shows(page, ["Harbour storm"])
        for group, value in [
            ("Kind", "Video (1)"),
            ("Tags", "sea (3)"),
            ("Category", "weather (1)"),
            ("Scene type", "Wide (1)"),
            ("Model", "kling-v2.1 (1)"),
            ("Made by", "Ada (5)"),
            ("Who sees it", "Team (5)"),
        ]:
            checkbox = page.get_by_role("group", name=group).get_by_role("checkbox", name=value)
            await expect(checkbox).to_be_checked()
        await expect(page.get_by_label("In collection")).to_have_value(collection)
        await expect(page.get_by_label("From (day)")).to_have_value(start)
        await expect(page.get_by_label("To (day, included)")).to_have_value(end)
        await expect(page.get_by_label("At least", exact=True)).to_have_value("1")
        await expect(page.get_by_label("At most", exact=True)).to_have_value("10")
        await expect(page.get_by_role("combobox", name="Lineage")).to_have_value("no")
        await expect(page.get_by_label("Sort by")).to_have_value("DURATION")
        # Starred only: the storm's has no starred source image, as the API says.
        await page.get_by_label("Starred images only").check()
        await expect(page.get_by_text("Nothing matches this search.")).to_be_visible()
        starred = {**api_filter, "favoritesOnly": True}
        none = graphql(
            served.base, LIBRARY, {"filter": starred, "sort": sort, "first": 10}, token=ada.token
        )
        assert none["library"]["totalCount"] == 0
        # Clearing every filter keeps the sort; all my teams and shares: the five again.
        await page.get_by_role("button", name="Clear all filters").click()
        await page.get_by_label("Search in").select_option("all")
        await expect(page.locator(CARD)).to_have_count(5)
        assert parse_qs(urlsplit(page.url).query) == {
            "sort": ["DURATION"],
            "dir": ["ASC"],
            "scope": ["all"],
        }


DUPLICATE = "mutation($input: DuplicateAssetInput!) { duplicateAsset(input: $input) { asset { id name } userErrors { code message } } }"
UPDATE = "mutation($input: UpdateAssetInput!) { updateAsset(input: $input) { asset { id } userErrors { code message } } }"
DELETE = "mutation($input: DeleteInput!) { deleteAsset(input: $input) { deletedId userErrors { code message } } }"


async def test_the_grid_follows_the_library_feed_without_a_reload(served: Served) -> None:
    ada = sign_up(served.base, "Ada")
    dawn, night, *_ = await seed(served, ada, HARBOUR)
    async with editor_browser(served.base) as chrome:
        page = await chrome.open(ada, "/library?q=harbour")
        await expect(page.locator(CARD)).to_have_count(3)
        await page.evaluate("window.notReloaded = true")
        # Made: appears, as it matches the words.
        copy = mutation(served.base, DUPLICATE, {"input": {"assetId": dawn}}, token=ada.token)
        await expect(page.locator(f'[data-asset-id="{copy["asset"]["id"]}"]')).to_have_text(
            re.compile(re.escape(copy["asset"]["name"]))
        )
        await expect(page.locator(CARD)).to_have_count(4)
        # Changed: redrawn; changed so it no longer matches: leaves.
        mutation(
            served.base,
            UPDATE,
            {"input": {"id": night, "name": "Harbour by moonlight"}},
            token=ada.token,
        )
        await expect(page.locator(f'[data-asset-id="{night}"] .asset-link')).to_have_text(
            "Harbour by moonlight"
        )
        mutation(
            served.base, UPDATE, {"input": {"id": night, "name": "Moonlight"}}, token=ada.token
        )
        await expect(page.locator(f'[data-asset-id="{night}"]')).to_have_count(0)
        # Deleted: leaves.
        mutation(served.base, DELETE, {"input": {"id": dawn}}, token=ada.token)
        await expect(page.locator(f'[data-asset-id="{dawn}"]')).to_have_count(0)
        await expect(page.locator(CARD)).to_have_count(2)
        await expect(page.get_by_role("status").filter(has_text="2 assets")).to_be_visible()
        # The facet counts follow too (one image less of the four).
        await expect(
            page.get_by_role("group", name="Kind").get_by_role("checkbox", name="Image (4)")
        ).to_be_visible()
        assert await page.evaluate("window.notReloaded") is True

        # On a tablet the filters fold behind a button.
        tablet = await chrome.open(ada, "/library", viewport={"width": 820, "height": 1180})
        await expect(tablet.locator(CARD)).to_have_count(5)
        await expect(tablet.get_by_role("heading", name="Filters")).to_be_hidden()
        await tablet.get_by_role("button", name="Show filters").click()
        await expect(tablet.get_by_role("heading", name="Filters")).to_be_visible()
        await screenshot(tablet, "library-tablet")
        await assert_accessible(tablet)


async def test_a_thousand_assets_draw_only_what_shows_and_load_thumbnails_only(
    served: Served,
) -> None:
    ada = sign_up(served.base, "Ada")
    # Each its own thumbnail, so the requests say which cards were drawn.
    thousand = [
        {"name": f"Seeded {n:04d}", "thumbnail_key": f"{THUMBS}/{n:04d}.webp"}
        for n in range(1, 1001)
    ]
    await seed(served, ada, thousand)
    media: list[str] = []
    async with editor_browser(served.base) as chrome:
        context = await chrome.context(ada)
        context.on(
            "request",
            lambda request: media.append(request.url) if "/media/" in request.url else None,
        )
        page = await chrome.new_page(context, "/library?sort=NAME&dir=ASC")
        await expect(page.get_by_role("status").filter(has_text="1000 assets")).to_be_visible()
        await expect(page.locator(CARD).first).to_be_visible()
        drawn = await page.locator(CARD).count()
        assert 0 < drawn <= 60, drawn
        # Only the thumbnails of the cards drawn were asked for.
        await page.wait_for_load_state("networkidle")
        first = {urlsplit(url).path for url in media}
        assert 0 < len(first) <= drawn, (len(first), drawn)
        grid = page.locator(".asset-grid .virtual-grid")
        last = page.locator(".asset-link", has_text="Seeded 1000")
        # Scroll to the end, page after page: each time the next page makes the grid longer.
        for _ in range(30):
            if await last.count():
                break
            height = await grid.evaluate(
                "(g) => { g.scrollTop = g.scrollHeight; return g.scrollHeight; }"
            )
            await page.wait_for_function(
                "(height) => document.querySelector('.asset-grid .virtual-grid').scrollHeight > height"
                " || [...document.querySelectorAll('.asset-link')].some((a) => a.textContent === 'Seeded 1000')",
                arg=height,
                timeout=10_000,
            )
        await expect(last).to_be_visible()
        assert await page.locator(CARD).count() <= 60
        await expect(grid.locator("[role=listitem]").last).to_have_attribute("aria-setsize", "1000")
        await screenshot(page, "library-thousand-end")
    # Thumbnails only (never the files), of the first cards and the last; the cards
    # scrolled past between two pages were never drawn, so theirs were never loaded.
    loaded = {urlsplit(url).path.removeprefix("/media/") for url in media}
    assert all(key.startswith(f"{THUMBS}/") for key in loaded), sorted(loaded)[:3]
    assert f"{THUMBS}/0001.webp" in loaded
    assert f"{THUMBS}/1000.webp" in loaded
    assert len(loaded) < 1000, len(loaded)


async def test_cards_drag_as_assets_and_the_keyboard_moves_and_opens(served: Served) -> None:
    ada = sign_up(served.base, "Ada")
    made = await seed(served, ada, HARBOUR)
    async with editor_browser(served.base) as chrome:
        chrome.allow_problem(r"asset\.js|404")  # the asset page is built elsewhere
        page = await chrome.open(ada, "/library?sort=NAME&dir=ASC")
        await shows(page, sorted(a["name"] for a in HARBOUR))
        dragged = await page.locator(CARD).first.evaluate(
            "(card) => { const data = new DataTransfer();"
            " card.dispatchEvent(new DragEvent('dragstart', {dataTransfer: data, bubbles: true}));"
            " return data.getData('application/x-studio-asset'); }"
        )
        assert dragged == f'{{"id":"{made[4]}","name":"Forest path"}}'
        assert await page.locator("#library-aside").count() == 1
        # From the grid (a stop of its own, to scroll it), Tab reaches the first card;
        # arrows move, Enter opens.
        await page.locator(".asset-grid .virtual-grid").focus()
        await page.keyboard.press("Tab")
        focused = page.locator(".asset-link:focus")
        await expect(focused).to_have_text("Forest path")
        await page.keyboard.press("ArrowRight")
        await expect(focused).to_have_text("Harbour at dawn")
        await page.keyboard.press("ArrowDown")
        columns = await page.locator(".asset-grid").evaluate(
            "(g) => new Set([...g.querySelectorAll('[role=listitem]')].map((c) => c.getBoundingClientRect().top)).size"
        )
        assert columns >= 1
        await page.keyboard.press("End")
        await expect(focused).to_have_text("Market in rain")
        await page.keyboard.press("Home")
        await expect(focused).to_have_text("Forest path")
        # One card is a Tab stop: Tab leaves the grid, Shift+Tab comes back to that card.
        await page.keyboard.press("ArrowRight")
        await page.keyboard.press("Tab")
        await expect(focused).to_have_count(0)
        await page.keyboard.press("Shift+Tab")
        await expect(focused).to_have_text("Harbour at dawn")
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"**/library/assets/{quote(made[0], safe='')}")


SHARE = """mutation($input: ShareAssetInput!) {
  shareAsset(input: $input) { share { id } userErrors { code message } }
}"""


NEW_TEAM = "mutation($input: CreateTeamInput!) { createTeam(input: $input) { team { id } userErrors { code message } } }"
INVITE = "mutation($input: InviteTeamMemberInput!) { inviteTeamMember(input: $input) { code userErrors { code message } } }"
ACCEPT = "mutation($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { userErrors { code message } } }"


async def test_shared_with_me_shows_each_share_with_its_permission_and_end(served: Served) -> None:
    ada = sign_up(served.base, "Ada")
    bob = sign_up(served.base, "Bob")
    dawn, night, *_ = await seed(served, ada, HARBOUR)
    ends = datetime.now(UTC) + timedelta(days=3)
    mutation(
        served.base,
        SHARE,
        {
            "input": {
                "assetId": dawn,
                "userId": bob.user_id,
                "permission": "EDIT",
                "message": "For the pitch deck",
                "expiresAt": ends.isoformat(),
            }
        },
        token=ada.token,
    )
    mutation(
        served.base, SHARE, {"input": {"assetId": night, "userId": bob.user_id}}, token=ada.token
    )
    async with editor_browser(served.base) as chrome:
        page = await chrome.open(bob, "/shared")
        await page.get_by_role("heading", name="Shared with me").wait_for()
        await expect(page.locator(CARD)).to_have_count(2)
        card = page.locator(f'[data-asset-id="{dawn}"]')
        await expect(card).to_contain_text("Can edit")
        await expect(card).to_contain_text("For the pitch deck")
        await expect(card).to_contain_text(re.compile(r"ends in (3 days|2 days|72 hours)"))
        other = page.locator(f'[data-asset-id="{night}"]')
        await expect(other).to_contain_text("Can view")
        await expect(other).to_contain_text("No end date")
        await expect(
            page.get_by_role("status").filter(has_text="2 assets are shared with you")
        ).to_be_visible()
        await screenshot(page, "shared-with-me")
        await assert_accessible(page)

        # Live: in a team with Bob, Ada shares a private asset; it appears without a reload.
        crew = mutation(served.base, NEW_TEAM, {"input": {"name": "Crew"}}, token=ada.token)
        crew_id = crew["team"]["id"]
        code = mutation(
            served.base, INVITE, {"input": {"teamId": crew_id, "role": "VIEWER"}}, token=ada.token
        )["code"]
        mutation(served.base, ACCEPT, {"input": {"code": code}}, token=bob.token)
        (secret,) = await seed(
            served, ada, [{"name": "Crew secret", "share_level": "PRIVATE"}], team_id=crew_id
        )
        await page.reload()  # Bob's teams are read when the editor starts
        await expect(page.locator(CARD)).to_have_count(2)
        await page.evaluate("window.notReloaded = true")
        mutation(
            served.base,
            SHARE,
            {"input": {"assetId": secret, "userId": bob.user_id}},
            token=ada.token,
        )
        await expect(page.locator(f'[data-asset-id="{secret}"]')).to_contain_text("Crew secret")
        await expect(page.locator(CARD)).to_have_count(3)
        assert await page.evaluate("window.notReloaded") is True
