"""The scene iterator in real Chromium against a real `studio serve` generating with an
emulator (tests/iterator_harness.py): six tiles that fill in live, stars, compare,
master, refine, cancel, a failure retried, refusals shown where they apply."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from playwright.async_api import expect

from tests.iterator_harness import (
    LATENCY_MS,
    LIVE,
    Studio,
    all_complete,
    board,
    generate,
    images_of,
    iterator_studio,
    master_of,
    tile,
    tiles,
)
from tests.web_harness import (
    assert_accessible,
    editor_browser,
    graphql,
    mutation,
    screenshot,
    sign_up,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    with iterator_studio(tmp_path_factory.mktemp("web-iterator")) as running:
        yield running


async def test_six_fill_in_live_then_star_compare_master_and_refine(studio: Studio) -> None:
    person = sign_up(studio.base, "Agnes")
    made = board(studio.base, person)
    async with editor_browser(studio.base) as chrome:
        # Without a shot in the address, the first shot is shown.
        page = await chrome.open(person, made.path())
        await page.get_by_role("heading", name="Scene 1 · Shot 1: Boats at rest").wait_for()
        sidebar = page.get_by_role("navigation", name="Scenes and shots")
        await expect(sidebar.get_by_role("link")).to_have_count(3)
        await expect(sidebar.get_by_role("link", name="Shot 1: Boats at rest")).to_have_attribute(
            "aria-current", "page"
        )
        await page.get_by_text("No images yet").wait_for()
        # The model's own settings, with its limits and default.
        await expect(page.get_by_label("Model")).to_have_value("flux-schnell")
        await page.get_by_text("Settings of flux-schnell").click()
        await expect(page.get_by_label("Output quality")).to_have_value("90")
        await expect(page.get_by_label("Aspect ratio")).to_be_visible()
        await assert_accessible(page)
        await screenshot(page, "iterator-empty")

        await generate(page)
        # Six tiles at once, before the images exist, then every one COMPLETE, live.
        await expect(tiles(page, 0)).to_have_count(6, timeout=5_000)
        statuses = await tiles(page, 0).evaluate_all("(ts) => ts.map((t) => t.dataset.status)")
        assert len(statuses) == 6
        assert any(s in ("PENDING", "PROCESSING") for s in statuses), statuses
        assert await page.locator("progress.tile-progress").count() > 0
        await all_complete(page, 0)
        await expect(page.get_by_text("6 of 6 done", exact=True)).to_be_visible()
        # Tiles show thumbnails, not the full images.
        source = await tile(page, 1, 1).locator("img").get_attribute("src")
        assert source is not None
        assert "/media/thumbnails/" in source, source

        # Star by keyboard: a toggle button.
        star = tile(page, 1, 2).get_by_role("button", name="Favourite Iteration 1, variant 2")
        await expect(star).to_have_attribute("aria-pressed", "false")
        await star.focus()
        await page.keyboard.press("Enter")
        await expect(star).to_have_attribute("aria-pressed", "true")
        images = images_of(studio.base, person, made.shots[0])
        assert [i["isFavorite"] for i in images] == [False, True, False, False, False, False]

        # One full size, from its tile.
        await (
            tile(page, 1, 3)
            .get_by_role("button", name="Open Iteration 1, variant 3 full size")
            .click()
        )
        full = page.get_by_role("dialog", name="Iteration 1, variant 3")
        source = await full.locator("img").get_attribute("src")
        assert source is not None
        assert "/media/images/" in source, source
        await page.keyboard.press("Escape")
        await expect(full).to_be_hidden()

        # Compare two: each shown full size, side by side.
        await page.get_by_role("checkbox", name="Compare Iteration 1, variant 1").check()
        compare = page.get_by_role("button", name="Compare side by side")
        await expect(compare).to_be_disabled()
        await page.get_by_role("checkbox", name="Compare Iteration 1, variant 2").check()
        await compare.click()
        dialog = page.get_by_role(
            "dialog", name="Compare Iteration 1, variant 1 and Iteration 1, variant 2"
        )
        await expect(dialog.locator("img")).to_have_count(2)
        for source in await dialog.locator("img").evaluate_all("(is) => is.map((i) => i.src)"):
            assert "/media/images/" in source, source
        await expect(dialog.locator("img").first).to_have_js_property("complete", True)
        await assert_accessible(page)
        await screenshot(page, "iterator-compare")
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()

        # The master: marked on its tile and in the sidebar.
        await (
            tile(page, 1, 2)
            .get_by_role("button", name="Make master: Iteration 1, variant 2")
            .click()
        )
        await expect(tile(page, 1, 2)).to_have_attribute("data-master", "true")
        await expect(tile(page, 1, 2).get_by_text("Master", exact=True)).to_be_visible()
        shot_link = sidebar.locator(f'li[data-shot-id="{made.shots[0]}"]')
        await expect(shot_link).to_have_attribute("data-has-master", "true", timeout=10_000)
        await expect(shot_link.get_by_text("Master chosen")).to_be_visible()
        assert master_of(studio.base, person, made.shots[0]) == images[1]["id"]

        # Refine the star: a new iteration, grouped, its parent shown.
        await tile(page, 1, 2).get_by_role("button", name="Refine Iteration 1, variant 2").click()
        refine = page.get_by_role("dialog", name="Refine Iteration 1, variant 2")
        await refine.get_by_label("Prompt").fill("fishing boats at dawn, golden light")
        await expect(refine.get_by_label("Model")).to_have_value("flux-dev")
        await refine.get_by_label("Strength").fill("0.45")
        await assert_accessible(page)
        await refine.get_by_role("button", name="Refine into 6").click()
        await expect(refine).to_be_hidden()
        group = page.locator('section[data-iteration="1"]')
        await expect(group.get_by_role("heading", name="Iteration 2")).to_be_visible()
        await expect(group.get_by_text("Refined from Iteration 1, variant 2")).to_be_visible()
        await expect(tiles(page, 1)).to_have_count(6, timeout=5_000)
        await all_complete(page, 1)
        # The newest iteration comes first.
        order = await page.locator("section.iteration").evaluate_all(
            "(ss) => ss.map((s) => s.dataset.iteration)"
        )
        assert order == ["1", "0"]
        refined = [
            i for i in images_of(studio.base, person, made.shots[0]) if i["iterationNumber"] == 1
        ]
        assert len(refined) == 6
        assert {i["parentImage"]["id"] for i in refined} == {images[1]["id"]}
        assert {i["metadata"]["prompt_strength"] for i in refined} == {0.45}
        await page.locator("section.iteration img").last.evaluate(
            "(img) => img.complete || new Promise((r) => img.addEventListener('load', r))"
        )
        await assert_accessible(page)
        await page.get_by_text("Settings of flux-schnell").click()  # folded again
        await page.evaluate("window.scrollTo(0, 0)")
        await screenshot(page, "iterator")


async def test_cancel_and_a_failed_generation_retried(studio: Studio) -> None:
    person = sign_up(studio.base, "Bertil")
    made = board(studio.base, person)
    async with editor_browser(studio.base) as chrome:
        page = await chrome.open(person, made.path(2))
        await page.get_by_role("heading", name="Scene 2 · Shot 1: Beam").wait_for()
        studio.faults(latency_ms=60_000)
        try:
            await generate(page)
            first = tile(page, 1, 1)
            await expect(tiles(page, 0)).to_have_count(6, timeout=5_000)
            await first.get_by_role("button", name="Cancel Iteration 1, variant 1").click()
            await expect(first).to_have_attribute("data-status", "CANCELED", timeout=10_000)
            await expect(first.get_by_text("You canceled this one.")).to_be_visible()
            await expect(
                page.get_by_text("0 of 6 done · 1 canceled · 5 in progress")
            ).to_be_visible()
            await page.get_by_role("button", name="Cancel the 5 in progress in iteration 1").click()
            await expect(
                tiles(page, 0).and_(page.locator('[data-status="CANCELED"]'))
            ).to_have_count(6, timeout=10_000)
            # A generation that fails says why, and what to do.
            studio.faults(latency_ms=300, failure_rate=1.0)
            await first.get_by_role("button", name="Retry Iteration 1, variant 1").click()
            await expect(first).to_have_attribute("data-status", "FAILED", timeout=LIVE)
            await expect(first.locator(".tile-error")).to_contain_text("Prediction failed")
            await expect(first.locator(".tile-error")).to_contain_text("Retry it")
            await assert_accessible(page)
            await screenshot(page, "iterator-failed")
        finally:
            studio.faults(latency_ms=LATENCY_MS, failure_rate=0.0)
        # The retry works.
        await first.get_by_role("button", name="Retry Iteration 1, variant 1").click()
        await expect(first).to_have_attribute("data-status", "COMPLETE", timeout=LIVE)
        await expect(first.locator("img")).to_be_visible()
        statuses = [i["status"] for i in images_of(studio.base, person, made.shots[2])]
        assert statuses == ["COMPLETE"] + ["CANCELED"] * 5


async def test_refusals_are_shown_where_they_apply_and_the_sidebar_moves_between_shots(
    studio: Studio,
) -> None:
    person = sign_up(studio.base, "Edvard")
    made = board(studio.base, person)
    async with editor_browser(studio.base) as chrome:
        page = await chrome.open(person, made.path(0))
        await page.get_by_role("heading", name="Scene 1 · Shot 1: Boats at rest").wait_for()
        # Checked here first, against the model's own limits: nothing is sent.
        await page.get_by_text("Settings of flux-schnell").click()
        quality = page.get_by_label("Output quality")
        await quality.fill("150")
        await generate(page)
        await expect(page.get_by_text("Output quality must be between 0 and 100.")).to_be_visible()
        await expect(quality).to_be_focused()
        await expect(quality).to_have_attribute("aria-invalid", "true")
        steps = page.get_by_label("Num inference steps")
        await steps.fill("2.5")
        await quality.fill("80")
        await generate(page)
        await expect(
            page.get_by_text("Num inference steps must be a whole number.")
        ).to_be_visible()
        assert images_of(studio.base, person, made.shots[0]) == []
        # Another model, other settings.
        await page.get_by_label("Model").select_option("flux-dev")
        await expect(page.get_by_label("Guidance")).to_have_value("3")
        await expect(page.get_by_label("Num inference steps")).to_have_value("28")

        # The sidebar moves to the second shot, which has no prompt: the server's
        # refusal is shown under the prompt.
        sidebar = page.get_by_role("navigation", name="Scenes and shots")
        await sidebar.get_by_role("link", name="Shot 2: The quay").click()
        await page.wait_for_url(lambda url: unquote(url).endswith(made.path(1)))
        await page.get_by_role("heading", name="Scene 1 · Shot 2: The quay").wait_for()
        await generate(page)
        prompt_field = page.locator(".field").filter(has=page.get_by_label("Prompt"))
        await expect(prompt_field.get_by_role("alert")).to_contain_text("Give a prompt")
        await expect(
            page.get_by_role("alert").filter(has_text="Could not start the generation")
        ).to_be_visible()
        await assert_accessible(page)
        await screenshot(page, "iterator-refused")
        await page.get_by_label("Prompt").fill("stone quay, nets drying")
        await generate(page)
        await expect(tiles(page, 0)).to_have_count(6, timeout=5_000)
        await expect(prompt_field.get_by_role("alert")).to_have_count(0)
        # On a tablet the sidebar goes above the shot and the tiles two a row.
        await page.set_viewport_size({"width": 768, "height": 1024})
        sidebar_box = await sidebar.bounding_box()
        heading_box = await page.get_by_role("heading", name="Scene 1 · Shot 2").bounding_box()
        assert sidebar_box is not None
        assert heading_box is not None
        assert sidebar_box["y"] + sidebar_box["height"] <= heading_box["y"]
        columns = await tiles(page, 0).evaluate_all(
            "(ts) => new Set(ts.map((t) => Math.round(t.getBoundingClientRect().left))).size"
        )
        assert columns == 2
        await assert_accessible(page)
        await screenshot(page, "iterator-tablet")


def test_a_shot_images_thumbnail_is_its_library_assets(studio: Studio) -> None:
    """ShotImage.thumbnailUrl (what tiles show): null while the image is made, then its
    asset's thumbnail; an image added from the library shows that asset's."""
    person = sign_up(studio.base, "Gunnar")
    made = board(studio.base, person)
    started = mutation(
        studio.base,
        "mutation($i: GenerateShotImagesInput!) { generateShotImages(input: $i) {"
        " images { id thumbnailUrl } userErrors { code message } } }",
        {"i": {"shotId": made.shots[0], "variantCount": 2}},
        token=person.token,
    )
    assert [image["thumbnailUrl"] for image in started["images"]] == [None, None]
    deadline = time.monotonic() + LIVE / 1000
    while {i["status"] for i in images_of(studio.base, person, made.shots[0])} != {"COMPLETE"}:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assets = graphql(
        studio.base,
        "query($t: ID!) { library(filter: {teamId: $t}, first: 10) { edges { node {"
        " id thumbnailUrl sourceImage { id thumbnailUrl imageUrl } } } } }",
        {"t": person.team_id},
        token=person.token,
    )["library"]["edges"]
    assert len(assets) == 2
    for edge in assets:
        asset = edge["node"]
        assert asset["thumbnailUrl"] is not None
        assert asset["sourceImage"]["thumbnailUrl"] == asset["thumbnailUrl"]
        assert "/media/thumbnails/" in asset["thumbnailUrl"]
        assert asset["sourceImage"]["imageUrl"] != asset["thumbnailUrl"]
    source = assets[0]["node"]
    added = mutation(
        studio.base,
        "mutation($i: AddShotImagesInput!) { addShotImages(input: $i) {"
        " images { thumbnailUrl } userErrors { code message } } }",
        {
            "i": {
                "shotId": made.shots[1],
                "iterationPrompt": "from the library",
                "images": [{"variantNumber": 0, "status": "COMPLETE", "assetId": source["id"]}],
            }
        },
        token=person.token,
    )
    assert [image["thumbnailUrl"] for image in added["images"]] == [source["thumbnailUrl"]]


async def test_clicks_that_follow_a_started_batch_start_nothing_more(studio: Studio) -> None:
    """Each batch is paid for on Replicate: four quick clicks make one iteration of six."""
    person = sign_up(studio.base, "Quinn")
    made = board(studio.base, person)
    async with editor_browser(studio.base) as chrome:
        page = await chrome.open(person, made.path(0))
        await page.get_by_role("heading", name="Scene 1 · Shot 1: Boats at rest").wait_for()
        button = page.get_by_role("button", name="Generate 6")
        await button.click()
        submit = page.locator("form.generate-form button[type=submit]")
        for _ in range(3):  # as a person clicks again, impatient, once it has started
            await page.wait_for_timeout(300)
            await submit.click(force=True)
        await all_complete(page, 0)
        await page.wait_for_timeout(500)
        assert len(images_of(studio.base, person, made.shots[0])) == 6
        await expect(button).to_be_enabled(timeout=10_000)
