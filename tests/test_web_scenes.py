"""Scenes setup in real Chromium: scenes and shots created, edited and deleted through
the page; reordered by drag and drop and by keyboard, with the dense numbers the API
keeps; and two people on one project seeing each other's changes without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Page, expect

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

SCENES = """query($id: ID!) { project(id: $id) { scenes {
  id sceneNumber title description shots { id shotNumber description initialPrompt } } } }"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(tmp_path_factory.mktemp("web-scenes"), "web-scenes") as running:
        yield running


def new_project(base: str, person: Person, title: str, team_id: str | None = None) -> str:
    """A project made over the API (in `team_id`, else the personal team); its ID."""
    payload = mutation(
        base,
        "mutation($input: CreateProjectInput!) { createProject(input: $input) {"
        " project { id } userErrors { code field message } } }",
        {"input": {"title": title, "teamId": team_id}},
        token=person.token,
    )
    project_id: str = payload["project"]["id"]
    return project_id


def add_scene(base: str, person: Person, project_id: str, title: str, shots: list[str]) -> str:
    """A scene with shots (by description), made over the API; its ID."""
    payload = mutation(
        base,
        "mutation($input: CreateSceneInput!) { createScene(input: $input) {"
        " scene { id } userErrors { code field message } } }",
        {
            "input": {
                "projectId": project_id,
                "title": title,
                "shots": [{"description": d} for d in shots],
            }
        },
        token=person.token,
    )
    scene_id: str = payload["scene"]["id"]
    return scene_id


def scenes_of(base: str, person: Person, project_id: str) -> list[dict[str, Any]]:
    """The project's scenes and shots as the API has them, in its order."""
    scenes: list[dict[str, Any]] = graphql(base, SCENES, {"id": project_id}, token=person.token)[
        "project"
    ]["scenes"]
    return scenes


def order(scenes: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(s["sceneNumber"], s["title"]) for s in scenes]


def shot_order(scene: dict[str, Any]) -> list[tuple[int, str]]:
    return [(s["shotNumber"], s["description"]) for s in scene["shots"]]


async def open_scenes(chrome: Any, person: Person, project_id: str, height: int = 860) -> Page:
    page: Page = await chrome.open(
        person, f"/projects/{project_id}/scenes", viewport={"width": 1280, "height": height}
    )
    await page.get_by_role("heading", name="Scenes and shots").wait_for()
    return page


def scene_headings(page: Page) -> Any:
    return page.locator(".scene-item h3")


def shot_links(page: Page, scene_number: int) -> Any:
    return page.get_by_role("list", name=f"Shots of scene {scene_number}").locator(".shot-link")


async def test_scenes_and_shots_are_made_edited_and_deleted_on_the_page(
    server: StudioServer,
) -> None:
    base = server.base_url
    ada = sign_up(base, "Ada")
    project_id = new_project(base, ada, "Night market")
    async with editor_browser(base) as chrome:
        page = await open_scenes(chrome, ada, project_id)
        await expect(page.get_by_text("No scenes yet")).to_be_visible()
        await assert_accessible(page)
        await screenshot(page, "scenes-empty")

        for title, description in [("Opening", "The market wakes up."), ("Chase", "")]:
            await page.get_by_label("New scene title").fill(title)
            await page.get_by_label("New scene description").fill(description)
            await page.get_by_role("button", name="Add scene").click()
            await expect(page.get_by_label("New scene title")).to_have_value("")
        await expect(scene_headings(page)).to_have_text(["Scene 1: Opening", "Scene 2: Chase"])

        # A refusal is shown on its field, the text kept.
        await page.get_by_label("New scene title").fill("   ")
        await page.get_by_role("button", name="Add scene").click()
        await expect(page.get_by_text("The title cannot be blank.")).to_be_visible()

        for description, prompt in [("Wide street", "A wide shot of stalls"), ("Lantern", "")]:
            await page.get_by_role("button", name="Add a shot to scene 1").click()
            await page.get_by_label("Shot description").fill(description)
            await page.get_by_label("Initial prompt").fill(prompt)
            await page.get_by_role("button", name="Add shot").click()
        await expect(shot_links(page, 1)).to_have_text(
            ["Shot 1.1: Wide street", "Shot 1.2: Lantern"]
        )
        scenes = scenes_of(base, ada, project_id)
        assert order(scenes) == [(1, "Opening"), (2, "Chase")]
        assert scenes[0]["description"] == "The market wakes up."
        assert scenes[1]["description"] is None
        assert shot_order(scenes[0]) == [(1, "Wide street"), (2, "Lantern")]
        assert scenes[0]["shots"][0]["initialPrompt"] == "A wide shot of stalls"
        # Each shot links to its page in the iterator.
        first_shot = scenes[0]["shots"][0]["id"]
        await expect(shot_links(page, 1).first).to_have_attribute(
            "href", f"/projects/{project_id}/shots/{first_shot}"
        )
        await assert_accessible(page)
        await screenshot(page, "scenes-with-shots")

        # Edited in place.
        await page.get_by_role("button", name="Edit scene 2").click()
        await page.get_by_label("Scene title", exact=True).fill("The chase")
        await page.get_by_label("Scene description", exact=True).fill("Through the noodle stalls.")
        await page.get_by_role("button", name="Save scene").click()
        await expect(scene_headings(page).nth(1)).to_have_text("Scene 2: The chase")
        # The focus goes back where the edit began.
        await expect(page.get_by_role("button", name="Edit scene 2")).to_be_focused()
        await page.get_by_role("button", name="Edit shot 2 of scene 1").click()
        await page.get_by_label("Shot description").fill("Paper lantern")
        await page.get_by_label("Initial prompt").fill("A red paper lantern, close")
        await page.get_by_role("button", name="Save shot").click()
        await expect(shot_links(page, 1).nth(1)).to_have_text("Shot 1.2: Paper lantern")
        scenes = scenes_of(base, ada, project_id)
        assert (scenes[1]["title"], scenes[1]["description"]) == (
            "The chase",
            "Through the noodle stalls.",
        )
        assert scenes[0]["shots"][1]["initialPrompt"] == "A red paper lantern, close"

        # Deleted after a question that says what goes with it; numbers close up.
        await page.get_by_role("button", name="Delete shot 1 of scene 1").click()
        dialog = page.get_by_role("dialog", name="Delete shot 1.1?")
        await expect(dialog).to_contain_text("The shots after it in the scene move up one.")
        await assert_accessible(page)
        await dialog.get_by_role("button", name="Delete shot").click()
        await expect(shot_links(page, 1)).to_have_text(["Shot 1.1: Paper lantern"])
        await page.get_by_role("button", name="Delete scene 1").click()
        dialog = page.get_by_role("dialog", name="Delete scene 1?")
        await expect(dialog).to_contain_text("its 1 shot")
        await expect(dialog).to_contain_text("The scenes after it move up one.")
        await screenshot(page, "scenes-delete-question")
        await dialog.get_by_role("button", name="Delete scene").click()
        await expect(scene_headings(page)).to_have_text(["Scene 1: The chase"])
        await expect(page.get_by_role("heading", name="Scenes and shots")).to_be_focused()
        assert order(scenes_of(base, ada, project_id)) == [(1, "The chase")]


async def test_drag_and_drop_reorders_with_the_apis_numbers(server: StudioServer) -> None:
    base = server.base_url
    grace = sign_up(base, "Grace")
    project_id = new_project(base, grace, "Harbour")
    for title in ("Dawn", "Noon", "Dusk"):
        add_scene(
            base, grace, project_id, title, [f"{title} one", f"{title} two", f"{title} three"]
        )
    async with editor_browser(base) as chrome:
        # Tall enough that nothing scrolls between pressing on a handle and dropping it:
        # a scroll in between makes Chromium start the drag from whatever is then under
        # the pointer.
        page = await open_scenes(chrome, grace, project_id, height=1800)
        await expect(scene_headings(page)).to_have_text(
            ["Scene 1: Dawn", "Scene 2: Noon", "Scene 3: Dusk"]
        )
        # Scene 3 dropped on scene 1 takes its place.
        await page.get_by_role("button", name="Reorder scene 3").drag_to(
            page.locator(".scene-item").first.locator("h3")
        )
        await expect(scene_headings(page)).to_have_text(
            ["Scene 1: Dusk", "Scene 2: Dawn", "Scene 3: Noon"]
        )
        await expect(page.locator("[data-announcer]")).to_have_text("Scene 3 moved to position 1")
        assert order(scenes_of(base, grace, project_id)) == [
            (1, "Dusk"),
            (2, "Dawn"),
            (3, "Noon"),
        ]
        # Shot 1 of scene 2 dropped on its shot 3.
        await page.get_by_role("button", name="Reorder shot 1 of scene 2").drag_to(
            shot_links(page, 2).nth(2)
        )
        await expect(shot_links(page, 2)).to_have_text(
            ["Shot 2.1: Dawn two", "Shot 2.2: Dawn three", "Shot 2.3: Dawn one"]
        )
        # A shot cannot be dropped into another scene (the API cannot move it there).
        await page.get_by_role("button", name="Reorder shot 1 of scene 1").drag_to(
            shot_links(page, 2).first
        )
        await expect(shot_links(page, 1)).to_have_text(
            ["Shot 1.1: Dusk one", "Shot 1.2: Dusk two", "Shot 1.3: Dusk three"]
        )
        scenes = scenes_of(base, grace, project_id)
        assert shot_order(scenes[1]) == [(1, "Dawn two"), (2, "Dawn three"), (3, "Dawn one")]
        assert shot_order(scenes[0]) == [(1, "Dusk one"), (2, "Dusk two"), (3, "Dusk three")]
        await screenshot(page, "scenes-reordered")


async def test_the_keyboard_reorders_and_says_where_things_went(server: StudioServer) -> None:
    base = server.base_url
    linus = sign_up(base, "Linus")
    project_id = new_project(base, linus, "Lighthouse")
    for title in ("Storm", "Keeper", "Ship"):
        add_scene(base, linus, project_id, title, ["first", "second", "third"])
    async with editor_browser(base) as chrome:
        page = await open_scenes(chrome, linus, project_id)
        handle = page.get_by_role("button", name="Reorder scene 3")
        await handle.focus()
        await page.keyboard.press("Alt+ArrowUp")
        announcer = page.locator("[data-announcer]")
        await expect(announcer).to_have_text("Scene 3 moved to position 2")
        await expect(scene_headings(page)).to_have_text(
            ["Scene 1: Storm", "Scene 2: Ship", "Scene 3: Keeper"]
        )
        # The focus stays on the moved scene's handle, so moves can go on.
        await expect(page.get_by_role("button", name="Reorder scene 2")).to_be_focused()
        await page.keyboard.press("Alt+ArrowUp")
        await expect(announcer).to_have_text("Scene 2 moved to position 1")
        await page.keyboard.press("Alt+ArrowUp")  # already first: nothing happens
        assert order(scenes_of(base, linus, project_id)) == [
            (1, "Ship"),
            (2, "Storm"),
            (3, "Keeper"),
        ]
        # The Move buttons, by keyboard too.
        down = page.get_by_role("button", name="Move shot 1 of scene 3 down")
        await down.focus()
        await page.keyboard.press("Enter")
        await expect(announcer).to_have_text("Shot 1 of scene 3 moved to position 2")
        await expect(page.get_by_role("button", name="Move shot 2 of scene 3 down")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(announcer).to_have_text("Shot 2 of scene 3 moved to position 3")
        await expect(shot_links(page, 3)).to_have_text(
            ["Shot 3.1: second", "Shot 3.2: third", "Shot 3.3: first"]
        )
        keeper = scenes_of(base, linus, project_id)[2]
        assert shot_order(keeper) == [(1, "second"), (2, "third"), (3, "first")]
        await assert_accessible(page)
        await screenshot(page, "scenes-keyboard")


async def test_two_people_see_each_others_changes(server: StudioServer) -> None:
    base = server.base_url
    hedy = sign_up(base, "Hedy")
    alan = sign_up(base, "Alan")
    team = mutation(
        base,
        "mutation($input: CreateTeamInput!) { createTeam(input: $input) {"
        " team { id } userErrors { code field message } } }",
        {"input": {"name": "Night Unit"}},
        token=hedy.token,
    )["team"]["id"]
    code = mutation(
        base,
        "mutation($input: InviteTeamMemberInput!) { inviteTeamMember(input: $input) {"
        " code userErrors { code field message } } }",
        {"input": {"teamId": team, "role": "EDITOR"}},
        token=hedy.token,
    )["code"]
    mutation(
        base,
        "mutation($input: AcceptInvitationInput!) { acceptInvitation(input: $input) {"
        " team { id } userErrors { code field message } } }",
        {"input": {"code": code}},
        token=alan.token,
    )
    project_id = new_project(base, hedy, "Orchard", team)
    add_scene(base, hedy, project_id, "Blossom", ["Branches"])
    async with editor_browser(base) as chrome:
        hers = await open_scenes(chrome, hedy, project_id)
        his = await open_scenes(chrome, alan, project_id)
        await expect(scene_headings(his)).to_have_text(["Scene 1: Blossom"])

        await hers.get_by_label("New scene title").fill("Harvest")
        await hers.get_by_role("button", name="Add scene").click()
        await expect(scene_headings(his)).to_have_text(
            ["Scene 1: Blossom", "Scene 2: Harvest"], timeout=10_000
        )
        # He is writing a shot when her reorder arrives: his form stays as it is.
        await his.get_by_role("button", name="Add a shot to scene 1").click()
        await his.get_by_label("Shot description").fill("Bees")
        await hers.get_by_role("button", name="Move scene 2 up").click()
        await expect(scene_headings(his)).to_have_text(
            ["Scene 1: Harvest", "Scene 2: Blossom"], timeout=10_000
        )
        await expect(his.get_by_label("Shot description")).to_have_value("Bees")
        await his.get_by_role("button", name="Add shot").click()
        await expect(shot_links(hers, 2)).to_have_text(
            ["Shot 2.1: Branches", "Shot 2.2: Bees"], timeout=10_000
        )
        await his.get_by_role("button", name="Delete scene 1").click()
        await his.get_by_role("dialog").get_by_role("button", name="Delete scene").click()
        await expect(scene_headings(hers)).to_have_text(["Scene 1: Blossom"], timeout=10_000)
        await screenshot(hers, "scenes-live")
        assert order(scenes_of(base, hedy, project_id)) == [(1, "Blossom")]


async def test_saving_an_edit_keeps_a_teammates_change_to_the_other_fields(
    server: StudioServer,
) -> None:
    base = server.base_url
    zoe = sign_up(base, "Zoe")
    project_id = new_project(base, zoe, "Quay")
    scene_id = add_scene(base, zoe, project_id, "Old title", ["Gulls"])
    shot_id = scenes_of(base, zoe, project_id)[0]["shots"][0]["id"]
    async with editor_browser(base) as chrome:
        page = await open_scenes(chrome, zoe, project_id)
        await page.get_by_role("button", name="Edit scene 1").click()
        await page.get_by_role("button", name="Edit shot 1 of scene 1").click()
        # Meanwhile someone else writes the fields this person leaves alone.
        mutation(
            base,
            "mutation($input: UpdateSceneInput!) { updateScene(input: $input) {"
            " scene { id } userErrors { code message } } }",
            {"input": {"id": scene_id, "description": "Written by a teammate"}},
            token=zoe.token,
        )
        mutation(
            base,
            "mutation($input: UpdateShotInput!) { updateShot(input: $input) {"
            " shot { id } userErrors { code message } } }",
            {"input": {"id": shot_id, "description": "Their description"}},
            token=zoe.token,
        )
        await page.get_by_label("Scene title", exact=True).fill("New title")
        await page.get_by_role("button", name="Save scene").click()
        await page.get_by_label("Initial prompt").fill("gulls over the quay, dawn")
        await page.get_by_role("button", name="Save shot").click()
        await expect(page.get_by_label("Initial prompt")).to_have_count(0)
        await expect(scene_headings(page).first).to_contain_text("New title")
        scene = scenes_of(base, zoe, project_id)[0]
        assert scene["shots"][0]["initialPrompt"] == "gulls over the quay, dawn"
        assert scene["title"] == "New title"
        assert scene["description"] == "Written by a teammate"
        assert scene["shots"][0]["description"] == "Their description"
