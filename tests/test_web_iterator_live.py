"""The scene iterator live across people and restarts, in real Chromium: two people
in one team see each other's tiles, stars and masters without reloading, and a
server restart mid-generation ends with each image's true state on screen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.iterator_harness import (
    LATENCY_MS,
    LIVE,
    START,
    Studio,
    all_complete,
    board,
    crew,
    generate,
    images_of,
    iterator_studio,
    studio_settings,
    tile,
    tiles,
)
from tests.servers import StudioServer, free_port, studio_env
from tests.web_harness import editor_browser, screenshot, sign_up

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    with iterator_studio(tmp_path_factory.mktemp("web-iterator-live")) as running:
        yield running


async def test_two_people_see_each_others_tiles_stars_and_master(studio: Studio) -> None:
    owner, other = crew(studio.base, sign_up(studio.base, "Cecilia"), "Dagny")
    made = board(studio.base, owner)
    async with editor_browser(studio.base) as chrome:
        mine = await chrome.open(owner, made.path(0))
        theirs = await chrome.open(other, made.path(0))
        for page in (mine, theirs):
            await page.get_by_text("No images yet").wait_for()
        await generate(mine)
        # The other person's page fills in too, without a reload.
        await expect(tiles(theirs, 0)).to_have_count(6, timeout=10_000)
        await all_complete(theirs, 0)
        await all_complete(mine, 0)
        await (
            tile(mine, 1, 4).get_by_role("button", name="Favourite Iteration 1, variant 4").click()
        )
        await expect(
            tile(theirs, 1, 4).get_by_role("button", name="Favourite Iteration 1, variant 4")
        ).to_have_attribute("aria-pressed", "true", timeout=10_000)
        await (
            tile(theirs, 1, 3)
            .get_by_role("button", name="Make master: Iteration 1, variant 3")
            .click()
        )
        await expect(tile(mine, 1, 3)).to_have_attribute("data-master", "true", timeout=10_000)
        sidebar = mine.get_by_role("navigation", name="Scenes and shots")
        await expect(sidebar.locator(f'li[data-shot-id="{made.shots[0]}"]')).to_have_attribute(
            "data-has-master", "true", timeout=10_000
        )
        # Choosing again moves the mark.
        await (
            tile(mine, 1, 5)
            .get_by_role("button", name="Make master: Iteration 1, variant 5")
            .click()
        )
        await expect(tile(theirs, 1, 5)).to_have_attribute("data-master", "true", timeout=10_000)
        await expect(tile(theirs, 1, 3)).to_have_attribute("data-master", "false")
        await screenshot(theirs, "iterator-two-people")


async def test_a_restart_mid_generation_ends_showing_each_images_true_state(
    studio: Studio, tmp_path: Path
) -> None:
    """The page says it is reconnecting, resumes, and shows what happened meanwhile:
    iteration 1 FAILED (with a retry that works), iteration 2 COMPLETE."""
    restarted = StudioServer(
        env=studio_env(STUDIO_DATA_DIR=str(tmp_path / "data"), **studio_settings(studio.replicate)),
        cwd=tmp_path,
        name="iterator-restart",
        port=free_port(),
    )
    restarted.start(timeout=START)
    try:
        base = restarted.base_url
        person = sign_up(base, "Frida")
        made = board(base, person)
        async with editor_browser(base) as chrome:
            chrome.allow_problem(r"WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource")
            page = await chrome.open(person, made.path(0))
            await page.get_by_text("No images yet").wait_for()
            try:
                studio.faults(latency_ms=20_000, failure_rate=1.0)
                await generate(page)
                # Every prediction of iteration 1 made (and doomed) before going on.
                await expect(
                    tiles(page, 0).and_(page.locator('[data-status="PROCESSING"]'))
                ).to_have_count(6, timeout=LIVE)
                studio.faults(failure_rate=0.0)
                await generate(page)
                await expect(
                    tiles(page, 1).and_(page.locator('[data-status="PROCESSING"]'))
                ).to_have_count(6, timeout=LIVE)
                # Both iterations still running on the provider when the server stops.
                running = page.locator('li.tile[data-status="PROCESSING"]')
                await expect(running).to_have_count(12)
                restarted.stop()
                await expect(page.locator('[data-connection="reconnecting"]')).to_be_visible(
                    timeout=15_000
                )
                await screenshot(page, "iterator-reconnecting")
                restarted.start(timeout=START)
            finally:
                studio.faults(latency_ms=LATENCY_MS, failure_rate=0.0)
            await expect(page.locator('[data-connection="reconnecting"]')).to_be_hidden(
                timeout=LIVE
            )
            failed = tiles(page, 0).and_(page.locator('[data-status="FAILED"]'))
            await expect(failed).to_have_count(6, timeout=LIVE)
            await all_complete(page, 1)
            await expect(page.locator("section.iteration")).to_have_count(2)
            first = tile(page, 1, 1)
            await expect(first.locator(".tile-error")).to_contain_text("Prediction failed")
            await first.get_by_role("button", name="Retry Iteration 1, variant 1").click()
            await expect(first).to_have_attribute("data-status", "COMPLETE", timeout=LIVE)
            statuses = [i["status"] for i in images_of(base, person, made.shots[0])]
            assert statuses == ["COMPLETE"] + ["FAILED"] * 5 + ["COMPLETE"] * 6
    finally:
        restarted.stop()
