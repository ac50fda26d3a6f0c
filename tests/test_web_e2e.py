"""The whole studio in a browser, end to end, against a real `studio serve` with the
built-in emulator: a new person signs up, plans a project, sets up two scenes with
shots, generates six images, stars one, refines it, chooses a master for every shot,
animates the storyboard and plays a finished clip, and the project reaches
ANIMATION_COMPLETE on screen. Every step goes through the editor, none through the API."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.async_api import Locator, Page, expect

from tests.servers import StudioServer
from tests.web_harness import (
    PASSWORD,
    assert_accessible,
    editor_browser,
    editor_server,
    screenshot,
)

pytestmark = pytest.mark.e2e

GENERATION = 60_000
"""Milliseconds a batch of generations or animations may take on a busy machine."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(tmp_path_factory.mktemp("web-e2e"), "web-e2e") as running:
        yield running


def variant(iteration: int, number: int) -> str:
    """How the iterator names a tile (iterations and variants counted from 1, as shown)."""
    return f"Iteration {iteration}, variant {number}"


async def add_scene(page: Page, title: str, shot: str, prompt: str, number: int) -> None:
    await page.get_by_label("New scene title").fill(title)
    await page.get_by_role("button", name="Add scene").click()
    await expect(page.get_by_role("button", name=f"Add a shot to scene {number}")).to_be_visible()
    await page.get_by_role("button", name=f"Add a shot to scene {number}").click()
    await page.get_by_label("Shot description").fill(shot)
    await page.get_by_label("Initial prompt").fill(prompt)
    await page.get_by_role("button", name="Add shot").click()
    await expect(
        page.get_by_role("list", name=f"Shots of scene {number}").get_by_role("link")
    ).to_have_count(1)


async def generate_six(page: Page, iteration: int) -> None:
    await page.get_by_role("button", name="Generate 6").click()
    section = page.locator(f'section[data-iteration="{iteration - 1}"]')
    await expect(section.locator("li.tile")).to_have_count(6)
    await expect(section.get_by_text("6 of 6 done", exact=True)).to_be_visible(timeout=GENERATION)


def tile(page: Page, iteration: int, number: int) -> Locator:
    return page.locator("li.tile").filter(
        has=page.get_by_role("group", name=variant(iteration, number), exact=True)
    )


async def test_a_new_user_takes_a_project_from_plan_to_animation(server: StudioServer) -> None:
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(None, "/signup")

        # Sign up.
        await page.get_by_label("Name").fill("Mira")
        await page.get_by_label("Email").fill("mira.e2e@example.com")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign up").click()
        await page.wait_for_url("**/projects")

        # A new project, planned.
        await page.get_by_role("button", name="New project", exact=True).click()
        dialog = page.get_by_role("dialog", name="New project")
        await dialog.get_by_label("Title").fill("Harbour at dawn")
        await dialog.get_by_role("button", name="Create project").click()
        await page.wait_for_url(re.compile(r"/projects/[^/]+$"))
        await page.get_by_role("heading", name="Prompt planner").wait_for()
        await page.get_by_label("Prompt", exact=True).fill("Fishing boats leave a quiet harbour")
        await page.get_by_label("Brain dump").fill("Gulls, fog lifting, a lighthouse beam fading.")
        await page.get_by_text("Saved", exact=True).wait_for(timeout=15_000)
        await screenshot(page, "e2e-planner")
        await page.get_by_role("button", name="Planning done: set up scenes").click()

        # Two scenes, each with a shot.
        await page.wait_for_url("**/scenes")
        await page.get_by_role("heading", name="Scenes and shots").wait_for()
        await add_scene(page, "Dawn", "Boats at rest", "fishing boats moored at dawn, fog", 1)
        await add_scene(page, "Departure", "The beam", "a lighthouse beam over the sea", 2)
        await screenshot(page, "e2e-scenes")
        await page.get_by_role("button", name="Scenes done: iterate shots").click()

        # Shot 1: six images, one starred, refined, and a refinement made master.
        await page.wait_for_url(re.compile(r"/shots"))
        await page.get_by_role("heading", name="Scene 1 · Shot 1: Boats at rest").wait_for()
        await generate_six(page, 1)
        star = tile(page, 1, 2).get_by_role("button", name=f"Favourite {variant(1, 2)}")
        await star.click()
        await expect(star).to_have_attribute("aria-pressed", "true")
        await tile(page, 1, 2).get_by_role("button", name=f"Refine {variant(1, 2)}").click()
        refine = page.get_by_role("dialog", name=f"Refine {variant(1, 2)}")
        await refine.get_by_label("Prompt").fill("fishing boats at dawn, golden light")
        await refine.get_by_role("button", name="Refine into 6").click()
        refined = page.locator('section[data-iteration="1"]')
        await expect(refined.get_by_text(f"Refined from {variant(1, 2)}")).to_be_visible()
        await expect(refined.get_by_text("6 of 6 done", exact=True)).to_be_visible(
            timeout=GENERATION
        )
        await tile(page, 2, 1).get_by_role("button", name=f"Make master: {variant(2, 1)}").click()
        await expect(tile(page, 2, 1).get_by_text("Master", exact=True)).to_be_visible()
        await screenshot(page, "e2e-iterator")

        # Shot 2: six images and a master.
        sidebar = page.get_by_role("navigation", name="Scenes and shots")
        await sidebar.get_by_role("link", name="Shot 1: The beam").click()
        await page.get_by_role("heading", name="Scene 2 · Shot 1: The beam").wait_for()
        await generate_six(page, 1)
        await tile(page, 1, 3).get_by_role("button", name=f"Make master: {variant(1, 3)}").click()
        await expect(tile(page, 1, 3).get_by_text("Master", exact=True)).to_be_visible()

        # The storyboard: animate it all, watch it finish, play a clip.
        await (
            page.get_by_role("navigation", name="Project")
            .get_by_role("link", name="Storyboard")
            .click()
        )
        await page.get_by_role("heading", name="Storyboard", exact=True).wait_for()
        await page.get_by_text("0 of 2 clips ready").wait_for()
        await page.get_by_role("button", name="Animate all").click()
        await page.get_by_text("2 of 2 clips ready").wait_for(timeout=GENERATION)
        await expect(page.locator("ol.stepper")).to_have_attribute(
            "data-status", "ANIMATION_COMPLETE", timeout=GENERATION
        )
        current = page.get_by_role("list", name="Workflow").locator("[aria-current=step]")
        await expect(current).to_contain_text("Animation complete")
        clip = page.get_by_label("Clip of scene 1, shot 1")
        await clip.evaluate("(video) => { video.muted = true; return video.play(); }")
        await page.wait_for_function(
            "(video) => video.currentTime > 0", arg=await clip.element_handle(), timeout=15_000
        )
        await screenshot(page, "e2e-storyboard")
        await assert_accessible(page)
