"""The prompt planner in real Chromium: the title, prompt and brain dump are saved as
they are typed (and survive a reload, a failed save and leaving the page), someone
else's change shows at once without overwriting the field being typed in, and the
next step moves the project on to scenes setup."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

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

PROJECT = "project(id: $id) { id title prompt promptPlannerData status updatedAt }"
UPDATE = (
    "mutation($input: UpdateProjectInput!) { updateProject(input: $input) {"
    " project { id } userErrors { code field message } } }"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(tmp_path_factory.mktemp("web-planner"), "web-planner") as running:
        yield running


def new_project(base: str, person: Person, title: str, **fields: Any) -> str:
    """A project of `person`'s personal team, made over the API; its ID."""
    payload = mutation(
        base,
        "mutation($input: CreateProjectInput!) { createProject(input: $input) {"
        " project { id } userErrors { code field message } } }",
        {"input": {"title": title, **fields}},
        token=person.token,
    )
    project_id: str = payload["project"]["id"]
    return project_id


def read_project(base: str, person: Person, project_id: str) -> dict[str, Any]:
    """The project as the API has it now."""
    data = graphql(base, f"query($id: ID!) {{ {PROJECT} }}", {"id": project_id}, token=person.token)
    project: dict[str, Any] = data["project"]
    return project


def brain_dump(project: dict[str, Any]) -> str:
    """The brain dump the editor keeps in `promptPlannerData` (JSON, version 1)."""
    stored = json.loads(project["promptPlannerData"])
    assert stored["version"] == 1
    text: str = stored["brainDump"]
    return text


async def open_planner(chrome: Any, person: Person, project_id: str) -> Page:
    page: Page = await chrome.open(person, f"/projects/{project_id}")
    await page.get_by_role("heading", name="Prompt planner").wait_for()
    return page


def save_status(page: Page) -> Any:
    return page.locator(".save-status")


async def test_typing_is_saved_and_survives_a_reload(server: StudioServer) -> None:
    base = server.base_url
    ada = sign_up(base, "Ada")
    project_id = new_project(base, ada, "Night market")
    async with editor_browser(base) as chrome:
        page = await open_planner(chrome, ada, project_id)
        await expect(page.get_by_label("Title")).to_have_value("Night market")
        await expect(page.get_by_role("list", name="Workflow")).to_be_visible()
        await assert_accessible(page)

        prompt = page.get_by_label("Prompt", exact=True)
        await prompt.press_sequentially("A lantern-lit market at midnight ", delay=5)
        await expect(save_status(page)).to_have_text("Saved", timeout=10_000)
        # Trailing spaces are the server's to strip, not a reason to save forever.
        assert read_project(base, ada, project_id)["prompt"] == "A lantern-lit market at midnight"
        assert await prompt.input_value() == "A lantern-lit market at midnight "

        title = page.get_by_label("Title")
        await title.fill("Night market, take two")
        # The header follows through the project's feed.
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Night market, take two", timeout=10_000
        )

        # Typed and reloaded at once, before the pause that saves: nothing is lost.
        dump = page.get_by_label("Brain dump")
        await dump.click()
        await dump.press_sequentially("Steam, neon, a cat on a crate.", delay=5)
        await page.reload()
        await page.get_by_role("heading", name="Prompt planner").wait_for()
        await expect(page.get_by_label("Brain dump")).to_have_value(
            "Steam, neon, a cat on a crate."
        )
        await expect(save_status(page)).to_have_text("Saved", timeout=10_000)
        stored = read_project(base, ada, project_id)
        assert brain_dump(stored) == "Steam, neon, a cat on a crate."
        assert stored["title"] == "Night market, take two"
        assert await page.evaluate(f"localStorage.getItem('studio.planner.{project_id}')") is None
        await screenshot(page, "planner-saved")


async def test_a_failed_save_says_so_keeps_the_text_and_retries(server: StudioServer) -> None:
    base = server.base_url
    grace = sign_up(base, "Grace")
    project_id = new_project(base, grace, "Harbour")
    async with editor_browser(base) as chrome:
        chrome.allow_problem("Failed to load resource")
        page = await open_planner(chrome, grace, project_id)

        async def refuse_saves(route: Route) -> None:
            if "SavePlanner" in (route.request.post_data or ""):
                await route.abort("connectionrefused")
            else:
                await route.fallback()

        await page.route("**/graphql", refuse_saves)
        await page.get_by_label("Brain dump").fill("Gulls over the cranes at dawn.")
        await expect(save_status(page)).to_have_text(
            re.compile(r"^Not saved: .+ — retrying$"), timeout=10_000
        )
        await screenshot(page, "planner-not-saved")
        # Until the server has it, this browser keeps a copy.
        draft = json.loads(
            await page.evaluate(f"localStorage.getItem('studio.planner.{project_id}')")
        )
        assert draft["values"]["brainDump"] == "Gulls over the cranes at dawn."
        assert read_project(base, grace, project_id)["promptPlannerData"] is None
        await page.unroute("**/graphql", refuse_saves)
        await expect(save_status(page)).to_have_text("Saved", timeout=20_000)
        assert brain_dump(read_project(base, grace, project_id)) == "Gulls over the cranes at dawn."
        assert await page.evaluate(f"localStorage.getItem('studio.planner.{project_id}')") is None

        # A title the server would refuse is not sent; the rest still is.
        await page.get_by_label("Title").fill("   ")
        await page.get_by_label("Prompt", exact=True).fill("Fog")
        await expect(save_status(page)).to_have_text(
            re.compile(r"^Not saved: A project needs a title"), timeout=10_000
        )
        await expect(page.get_by_label("Title")).to_have_attribute("aria-invalid", "true")
        stored = read_project(base, grace, project_id)
        assert (stored["title"], stored["prompt"]) == ("Harbour", "Fog")
        await page.get_by_label("Title").fill("Harbour at dawn")
        await expect(save_status(page)).to_have_text("Saved", timeout=10_000)
        assert read_project(base, grace, project_id)["title"] == "Harbour at dawn"


async def test_unsaved_text_is_restored_whatever_the_clock_and_never_hides_a_later_change(
    server: StudioServer,
) -> None:
    base = server.base_url
    alan = sign_up(base, "Alan")
    project_id = new_project(base, alan, "Tunnel", prompt="Server prompt")
    key = f"studio.planner.{project_id}"
    put = "([key, copy]) => localStorage.setItem(key, JSON.stringify(copy))"
    async with editor_browser(base) as chrome:
        page = await open_planner(chrome, alan, project_id)
        # What a page closed before its save reached the server leaves behind.
        typed = {"title": "Tunnel", "prompt": "Typed, never sent", "brainDump": "Echoes"}
        server_text = {"title": "Tunnel", "prompt": "Server prompt", "brainDump": ""}
        await page.evaluate(put, [key, {"at": 10**13, "values": typed, "base": server_text}])
        await page.reload()
        await expect(page.get_by_label("Prompt", exact=True)).to_have_value("Typed, never sent")
        await expect(page.get_by_label("Brain dump")).to_have_value("Echoes")
        await expect(page.get_by_text("Restored your unsaved prompt, brain dump")).to_be_visible()
        await expect(save_status(page)).to_have_text("Saved", timeout=10_000)
        stored = read_project(base, alan, project_id)
        assert (stored["prompt"], brain_dump(stored)) == ("Typed, never sent", "Echoes")
        assert await page.evaluate(f"localStorage.getItem('{key}')") is None

        # A browser clock far behind the server's, and a teammate renaming the project
        # (which moves its updatedAt), do not make typed text count as old.
        mutation(
            base,
            UPDATE,
            {"input": {"id": project_id, "title": "Tunnel, renamed"}},
            token=alan.token,
        )
        offline = {"title": "Tunnel, renamed", "prompt": "Typed offline", "brainDump": "Echoes"}
        typed_over = {
            "title": "Tunnel, renamed",
            "prompt": "Typed, never sent",
            "brainDump": "Echoes",
        }
        await page.evaluate(put, [key, {"at": 1, "values": offline, "base": typed_over}])
        await page.reload()
        await expect(page.get_by_label("Prompt", exact=True)).to_have_value("Typed offline")
        await expect(save_status(page)).to_have_text("Saved", timeout=10_000)
        assert read_project(base, alan, project_id)["prompt"] == "Typed offline"
        await expect(page.get_by_text("someone changed it meanwhile")).to_have_count(0)

        # Someone changed the very text it was typed over: it is restored, and theirs is shown.
        mutation(
            base,
            UPDATE,
            {"input": {"id": project_id, "prompt": "Their prompt"}},
            token=alan.token,
        )
        mine = {"title": "Tunnel, renamed", "prompt": "Mine, offline", "brainDump": "Echoes"}
        await page.evaluate(put, [key, {"at": 1, "values": mine, "base": offline}])
        await page.reload()
        await expect(page.get_by_label("Prompt", exact=True)).to_have_value("Mine, offline")
        await expect(
            page.get_by_text("someone changed it meanwhile to: “Their prompt”")
        ).to_be_visible()


async def test_someone_elses_change_shows_without_overwriting_what_is_typed(
    server: StudioServer,
) -> None:
    base = server.base_url
    linus = sign_up(base, "Linus")
    project_id = new_project(base, linus, "Lighthouse", prompt="A keeper alone")
    async with editor_browser(base) as chrome:
        page = await open_planner(chrome, linus, project_id)
        prompt = page.get_by_label("Prompt", exact=True)
        await prompt.click()
        await prompt.press("End")
        await prompt.press_sequentially(" on a stormy night", delay=5)
        await expect(save_status(page)).to_have_text("Saved", timeout=10_000)
        # Someone else changes all three fields while the prompt has the focus.
        theirs = {
            "id": project_id,
            "title": "Lighthouse (renamed)",
            "prompt": "Their prompt",
            "promptPlannerData": json.dumps({"version": 1, "brainDump": "Their notes"}),
        }
        mutation(base, UPDATE, {"input": theirs}, token=linus.token)
        await expect(page.get_by_label("Title")).to_have_value(
            "Lighthouse (renamed)", timeout=10_000
        )
        await expect(page.get_by_label("Brain dump")).to_have_value("Their notes")
        await expect(prompt).to_have_value("A keeper alone on a stormy night")
        await expect(prompt).to_be_focused()
        await expect(page.get_by_text("their text shows when you leave this field")).to_be_visible()
        await screenshot(page, "planner-merged")
        # Typing on keeps the person's text, and saves it over theirs.
        await prompt.press_sequentially("!", delay=5)
        await expect(page.get_by_text("your text is kept and saved over theirs")).to_be_visible()
        await expect(save_status(page)).to_have_text("Saved", timeout=10_000)
        stored = read_project(base, linus, project_id)
        assert stored["prompt"] == "A keeper alone on a stormy night!"
        assert stored["title"] == "Lighthouse (renamed)"
        assert brain_dump(stored) == "Their notes"
        # A change to the focused field that is not typed over shows on leaving it.
        mutation(
            base,
            UPDATE,
            {"input": {"id": project_id, "prompt": "A third prompt"}},
            token=linus.token,
        )
        await expect(page.get_by_text("their text shows when you leave this field")).to_be_visible()
        await expect(prompt).to_have_value("A keeper alone on a stormy night!")
        await prompt.press("Tab")
        await expect(prompt).to_have_value("A third prompt")
        await expect(save_status(page)).to_have_text("Saved")
        assert read_project(base, linus, project_id)["prompt"] == "A third prompt"
        await screenshot(page, "planner-merged")


async def test_the_next_step_moves_the_project_to_scenes_setup(server: StudioServer) -> None:
    base = server.base_url
    hedy = sign_up(base, "Hedy")
    project_id = new_project(base, hedy, "Orchard")
    async with editor_browser(base) as chrome:
        page = await open_planner(chrome, hedy, project_id)
        stepper = page.get_by_role("list", name="Workflow")
        await expect(stepper.locator("[aria-current=step]")).to_have_text(
            re.compile("Prompt planning")
        )
        await page.get_by_role("button", name="Planning done: set up scenes").click()
        await page.wait_for_url(f"**/projects/{project_id}/scenes")
        await expect(stepper.locator("[aria-current=step]")).to_have_text(
            re.compile("Scenes setup"), timeout=10_000
        )
        assert read_project(base, hedy, project_id)["status"] == "SCENES_SETUP"
        # Back on the plan, the link is the next step (the status is past planning).
        await page.get_by_role("link", name="Plan", exact=True).click()
        await page.get_by_role("link", name="Set up scenes").wait_for()
        await expect(page.get_by_role("button", name="Planning done: set up scenes")).to_have_count(
            0
        )
