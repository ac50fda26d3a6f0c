"""The scene iterator in real Chromium against a real `studio serve` whose Replicate is
an emulator of our own (so a test can make predictions slow or fail on purpose):
six tiles that fill in live, stars, compare, master, refine, cancel, a failure retried,
two people seeing each other's work, refusals shown where they apply."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from tests.servers import StudioServer, studio_env
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

API_TOKEN = "r8_" + secrets.token_urlsafe(24)
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"iterator browser tests webhook key").decode()
LATENCY_MS = 2500
"""How long the emulator takes per prediction: long enough to see tiles in progress."""
LIVE = 30_000
"""How long a tile may take to reach its final state on screen (ms)."""


@dataclass
class Studio:
    """The editor's server and the emulator it generates with."""

    server: StudioServer
    replicate: StudioServer

    @property
    def base(self) -> str:
        return self.server.base_url

    def faults(self, **settings: Any) -> None:
        """Change the emulator's behaviour (failure_rate, latency_ms...) from now on."""
        response = httpx.post(
            f"{self.replicate.base_url}/_emulator/faults",
            json=settings,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
            trust_env=False,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    tmp = tmp_path_factory.mktemp("web-iterator")
    replicate = StudioServer(
        env=studio_env(
            EMULATOR_LATENCY_MS=str(LATENCY_MS),
            REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            REPLICATE_API_TOKEN=API_TOKEN,
        ),
        cwd=tmp,
        name="iterator-emulator",
        command="emulator",
        ready_path="/_emulator/health",
    )
    with (
        replicate,
        editor_server(
            tmp,
            "web-iterator",
            REPLICATE_BASE_URL=replicate.base_url,
            REPLICATE_API_TOKEN=API_TOKEN,
            REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            GENERATION_POLL_SECONDS="0.3",
        ) as server,
    ):
        yield Studio(server, replicate)


# -- set-up over the API ---------------------------------------------------------------------


@dataclass
class Board:
    """A project with two scenes: scene 1 has shots 1 (with a prompt) and 2 (without)."""

    project_id: str
    shots: list[str]

    def path(self, shot: int | None = None) -> str:
        tail = f"/{self.shots[shot]}" if shot is not None else ""
        return f"/projects/{self.project_id}/shots{tail}"


def board(base: str, person: Person) -> Board:
    project = mutation(
        base,
        "mutation($i: CreateProjectInput!) { createProject(input: $i) {"
        " project { id } userErrors { code message } } }",
        {"i": {"title": "Harbour at Dawn", "teamId": person.team_id}},
        token=person.token,
    )["project"]["id"]
    shots: list[str] = []
    for title, drafts in (
        (
            "The harbour",
            [
                {"description": "Boats at rest", "initialPrompt": "fishing boats at dawn, mist"},
                {"description": "The quay"},
            ],
        ),
        ("The lighthouse", [{"description": "Beam", "initialPrompt": "a lighthouse beam"}]),
    ):
        scene = mutation(
            base,
            "mutation($i: CreateSceneInput!) { createScene(input: $i) {"
            " scene { shots { id } } userErrors { code message } } }",
            {"i": {"projectId": project, "title": title, "shots": drafts}},
            token=person.token,
        )["scene"]
        shots += [shot["id"] for shot in scene["shots"]]
    return Board(project, shots)


def images_of(base: str, person: Person, shot_id: str) -> list[dict[str, Any]]:
    shot = graphql(
        base,
        "query($id: ID!) { node(id: $id) { ... on Shot { images { id status isFavorite"
        " iterationNumber variantNumber metadata parentImage { id } } } } }",
        {"id": shot_id},
        token=person.token,
    )["node"]
    images: list[dict[str, Any]] = shot["images"]
    return images


def master_of(base: str, person: Person, shot_id: str) -> str | None:
    shot = graphql(
        base,
        "query($id: ID!) { node(id: $id) { ... on Shot { selectedImage { id } } } }",
        {"id": shot_id},
        token=person.token,
    )["node"]
    return shot["selectedImage"]["id"] if shot["selectedImage"] else None


def crew(base: str, owner: Person, name: str) -> tuple[Person, Person]:
    """`owner` and a new person `name`, both in a new team of `owner`'s (as Persons
    working in it); the new person joins by invitation as an editor."""
    team = mutation(
        base,
        "mutation($i: CreateTeamInput!) { createTeam(input: $i) {"
        " team { id } userErrors { code message } } }",
        {"i": {"name": "Harbour crew"}},
        token=owner.token,
    )["team"]["id"]
    code = mutation(
        base,
        "mutation($i: InviteTeamMemberInput!) { inviteTeamMember(input: $i) {"
        " code userErrors { code message } } }",
        {"i": {"teamId": team, "role": "EDITOR"}},
        token=owner.token,
    )["code"]
    other = sign_up(base, name)
    mutation(
        base,
        "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) {"
        " userErrors { code message } } }",
        {"i": {"code": code}},
        token=other.token,
    )
    return (
        Person(owner.token, owner.user_id, owner.email, owner.name, team),
        Person(other.token, other.user_id, other.email, name, team),
    )


# -- on the page ---------------------------------------------------------------------------------


def tiles(page: Page, iteration: int | None = None) -> Locator:
    if iteration is None:
        return page.locator("li.tile")
    return page.locator(f'section[data-iteration="{iteration}"] li.tile')


def tile(page: Page, iteration: int, variant: int) -> Locator:
    """The tile of iteration `iteration`, variant `variant` (counted from 1, as shown)."""
    return page.locator("li.tile").filter(
        has=page.get_by_role("group", name=f"Iteration {iteration}, variant {variant}", exact=True)
    )


async def all_complete(page: Page, iteration: int, count: int = 6) -> None:
    await expect(tiles(page, iteration)).to_have_count(count, timeout=LIVE)
    await expect(
        tiles(page, iteration).and_(page.locator('[data-status="COMPLETE"]'))
    ).to_have_count(count, timeout=LIVE)


async def generate(page: Page) -> None:
    await page.get_by_role("button", name="Generate 6").click()


# -- the tests ---------------------------------------------------------------------------------


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
        await expect(page.get_by_text("6 of 6 finished")).to_be_visible()
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
            for variant in range(2, 7):
                await (
                    tile(page, 1, variant)
                    .get_by_role("button", name=f"Cancel Iteration 1, variant {variant}")
                    .click()
                )
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
        await page.wait_for_url(f"**{made.path(1)}")
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
