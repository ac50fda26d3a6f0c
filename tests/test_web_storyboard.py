"""The storyboard page in real Chromium: shots in order with their masters, clips animated
one at a time and all at once with live progress in two people's tabs, played in place
and one after another, the project reaching ANIMATION_COMPLETE, and a failed or canceled
animation retried.

The server talks to a `studio emulator` of its own (not the built-in one), so that the
tests can make its predictions fail or linger on purpose (`POST /_emulator/faults`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.servers import StudioServer, free_port, studio_env
from tests.test_generation_e2e import API_TOKEN, WEBHOOK_SECRET, emulator
from tests.web_harness import (
    Person,
    assert_accessible,
    editor_browser,
    graphql,
    mutation,
    screenshot,
    sign_up,
)

pytestmark = pytest.mark.e2e

LATENCY_MS = 1000
SETTLE = 60.0
"""Seconds an image or clip may take to finish on this shared machine."""


@dataclass
class Servers:
    studio: StudioServer
    replicate: StudioServer

    def faults(self, **settings: Any) -> None:
        """Changes the emulator's fault settings (failure_rate, latency_ms...)."""
        response = httpx.post(
            f"{self.replicate.base_url}/_emulator/faults",
            json=settings,
            headers={"Authorization": f"Bearer {API_TOKEN}"},
            timeout=10,
            trust_env=False,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    tmp = tmp_path_factory.mktemp("web-storyboard")
    replicate = emulator(tmp, latency_ms=LATENCY_MS)
    replicate.fixed_port = free_port()  # known before it starts, so both start at once
    studio = StudioServer(
        env=studio_env(
            STUDIO_DATA_DIR=str(tmp / "data"),
            REPLICATE_BASE_URL=f"http://127.0.0.1:{replicate.fixed_port}",
            REPLICATE_API_TOKEN=API_TOKEN,
            REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            GENERATION_POLL_SECONDS="0.3",
        ),
        cwd=tmp,
        name="web-storyboard",
    )
    try:
        for server in (replicate.launch(), studio.launch()):
            server.wait_ready()
        yield Servers(studio, replicate)
    finally:
        studio.stop()
        replicate.stop()


# -- set-up over the API -------------------------------------------------------------------------


@dataclass
class Storyboard:
    project_id: str
    shots: list[str]  # in storyboard order
    images: list[str]  # each shot's one image, same order


def make_storyboard(base: str, person: Person, team_id: str, scenes: list[list[str]]) -> Storyboard:
    """A project with `scenes` (each a list of shot descriptions) and one finished image per shot."""
    project = mutation(
        base,
        "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } userErrors { code message } } }",
        {"i": {"title": "Harbour at dawn", "teamId": team_id}},
        token=person.token,
    )["project"]["id"]
    shots: list[str] = []
    for number, descriptions in enumerate(scenes, start=1):
        scene = mutation(
            base,
            "mutation($i: CreateSceneInput!) { createScene(input: $i) {"
            " scene { shots { id } } userErrors { code message } } }",
            {
                "i": {
                    "projectId": project,
                    "title": f"Part {number}",
                    "shots": [{"description": d, "initialPrompt": d} for d in descriptions],
                }
            },
            token=person.token,
        )
        shots += [shot["id"] for shot in scene["scene"]["shots"]]
    images = []
    for shot in shots:
        started = mutation(
            base,
            "mutation($i: GenerateShotImagesInput!) { generateShotImages(input: $i) {"
            " images { id } userErrors { code message } } }",
            {"i": {"shotId": shot, "variantCount": 1}},
            token=person.token,
        )
        images.append(started["images"][0]["id"])
    deadline = time.monotonic() + SETTLE
    while True:
        statuses = [
            graphql(
                base,
                "query($id: ID!) { node(id: $id) { ... on ShotImage { status } } }",
                {"id": image},
                token=person.token,
            )["node"]["status"]
            for image in images
        ]
        if all(status == "COMPLETE" for status in statuses):
            return Storyboard(project, shots, images)
        assert time.monotonic() < deadline, statuses
        time.sleep(0.3)


def select_master(base: str, person: Person, shot: str, image: str) -> None:
    mutation(
        base,
        "mutation($i: SelectMasterShotInput!) { selectMasterShot(input: $i) {"
        " selection { id } userErrors { code message } } }",
        {"i": {"shotId": shot, "imageId": image}},
        token=person.token,
    )


def team_of_two(base: str) -> tuple[Person, Person, str]:
    """Two people in a new team (the second an EDITOR) and the team's ID."""
    owner, editor = sign_up(base, "Agnes"), sign_up(base, "Jacques")
    team = mutation(
        base,
        "mutation($i: CreateTeamInput!) { createTeam(input: $i) { team { id } userErrors { code message } } }",
        {"i": {"name": "Harbour crew"}},
        token=owner.token,
    )["team"]["id"]
    code = mutation(
        base,
        "mutation($i: InviteTeamMemberInput!) { inviteTeamMember(input: $i) { code userErrors { code message } } }",
        {"i": {"teamId": team, "role": "EDITOR"}},
        token=owner.token,
    )["code"]
    mutation(
        base,
        "mutation($i: AcceptInvitationInput!) { acceptInvitation(input: $i) { userErrors { code message } } }",
        {"i": {"code": code}},
        token=editor.token,
    )
    return owner, editor, team


# -- in the page ---------------------------------------------------------------------------------


def card(page: Page, shot: str) -> Any:
    return page.locator(f'article.clip-card[data-shot-id="{shot}"]')


async def watch_statuses(page: Page) -> None:
    """Records every clip status each card shows, in order, into window.seenStatuses."""
    await page.evaluate(
        """() => {
          window.seenStatuses = {};
          const note = (el) => {
            const list = (window.seenStatuses[el.dataset.shotId] ??= []);
            if (list[list.length - 1] !== el.dataset.status) list.push(el.dataset.status);
          };
          document.querySelectorAll('article.clip-card').forEach(note);
          new MutationObserver((records) => records.forEach((r) => {
            if (r.target.matches?.('article.clip-card')) note(r.target);
          })).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-status']});
        }"""
    )


async def seen(page: Page, shot: str) -> list[str]:
    statuses: list[str] = await page.evaluate(f"window.seenStatuses[{shot!r}] ?? []")
    return statuses


async def clip_progress(page: Page, shot: str) -> float:
    value: float = await card(page, shot).locator("progress").evaluate("(p) => p.position")
    return value


async def test_animate_one_then_all_live_in_two_tabs_play_and_complete(servers: Servers) -> None:
    base = servers.studio.base_url
    owner, editor, team = team_of_two(base)
    board = make_storyboard(
        base, owner, team, [["Boats at dawn", "Gulls over the quay"], ["The ferry leaves"]]
    )
    first, second, third = board.shots
    for shot, image in zip(board.shots[:2], board.images[:2], strict=True):
        select_master(base, owner, shot, image)
    path = f"/projects/{board.project_id}/storyboard"
    async with editor_browser(base) as chrome:
        mine = await chrome.open(owner, path)
        theirs = await chrome.open(editor, path)
        for page in (mine, theirs):
            await page.get_by_role("heading", name="Storyboard", exact=True).wait_for()
            await page.get_by_text("0 of 3 clips ready").wait_for()
            await page.evaluate("window.notReloaded = true")
        # Shots in order, scene by scene; the one without a master says so and links to it.
        headings = await mine.locator(".storyboard-scene h3").all_inner_texts()
        assert headings == ["Scene 1: Part 1", "Scene 2: Part 2"]
        order = await mine.locator("article.clip-card").evaluate_all(
            "(cards) => cards.map((c) => c.dataset.shotId)"
        )
        assert order == board.shots
        choose = mine.get_by_role("link", name="Choose a master image for scene 2, shot 1")
        assert await choose.get_attribute("href") == f"/projects/{board.project_id}/shots/{third}"
        await expect(
            card(mine, first).get_by_role("img", name="Master image of scene 1, shot 1")
        ).to_be_visible()
        await assert_accessible(mine)
        await screenshot(mine, "storyboard-masters")

        # A master chosen elsewhere appears without a reload.
        select_master(base, owner, third, board.images[2])
        await (
            card(mine, third).get_by_role("img", name="Master image of scene 2, shot 1").wait_for()
        )
        await expect(choose).to_have_count(0)

        # Animate one shot from my tab: both tabs follow its progress live to ready.
        await watch_statuses(mine)
        await watch_statuses(theirs)
        await mine.get_by_role("button", name="Animate scene 1, shot 1").click()
        for page in (mine, theirs):
            clip = card(page, first).get_by_label("Clip of scene 1, shot 1")
            await clip.wait_for(timeout=SETTLE * 1000)
            assert await clip_progress(page, first) == 1.0
            await page.get_by_text("1 of 3 clips ready").wait_for()
            statuses = await seen(page, first)
            assert statuses[0] == "NONE", statuses
            assert statuses[-1] == "COMPLETE", statuses
            assert {"PENDING", "PROCESSING"} & set(statuses), statuses
        assert await card(theirs, second).get_attribute("data-status") == "NONE"

        # The clip plays in place, from the keyboard.
        video = card(mine, first).locator("video")
        assert (await video.get_attribute("poster") or "").startswith(f"{base}/media/")
        await video.focus()
        await mine.keyboard.press("Space")
        await mine.wait_for_function(
            "(v) => v.readyState >= 2 && v.currentTime > 0.3", arg=await video.element_handle()
        )

        # Animate all from their tab: the other two clips are made, and the project completes.
        await theirs.get_by_role("button", name="Animate all").click()
        for page in (theirs, mine):
            await page.get_by_text("3 of 3 clips ready").wait_for(timeout=SETTLE * 1000)
            overall = page.get_by_role("progressbar", name="3 of 3 clips ready")
            await expect(overall).to_have_attribute("value", "100")
            for shot in board.shots:
                await expect(card(page, shot).locator("video")).to_have_count(1)
                assert await clip_progress(page, shot) == 1.0
            stepper = page.get_by_role("list", name="Workflow")
            await expect(stepper).to_have_attribute("data-status", "ANIMATION_COMPLETE")
            await expect(stepper.locator('[aria-current="step"]')).to_contain_text(
                "Animation complete"
            )
            assert await page.evaluate("window.notReloaded") is True
        assert {"PENDING", "PROCESSING"} & set(await seen(mine, third))
        await mine.get_by_text("Every shot is animated: the project is complete.").wait_for()
        await assert_accessible(mine)
        await video.evaluate("(v) => v.blur()")
        await screenshot(mine, "storyboard")

        # Play the storyboard: every finished clip, one after another, in order.
        await mine.get_by_role("button", name="Play storyboard").click()
        player = mine.get_by_role("dialog", name="Play storyboard")
        await player.get_by_text("Clip 1 of 3: Scene 1, shot 1").wait_for()
        await player.get_by_label("Speed").select_option("4")
        await player.get_by_text("Clip 2 of 3: Scene 1, shot 2").wait_for(timeout=20_000)
        await player.get_by_text("Clip 3 of 3: Scene 2, shot 1").wait_for(timeout=20_000)
        await player.get_by_text("End of the storyboard.").wait_for(timeout=20_000)
        played = await player.locator("video").evaluate("(v) => [v.ended, v.currentTime > 0]")
        assert played == [True, True]
        await assert_accessible(mine)
        await screenshot(mine, "storyboard-player")
        await mine.keyboard.press("Escape")
        await expect(player).to_have_count(0)


async def test_a_failed_or_canceled_animation_says_what_to_do_and_retries(servers: Servers) -> None:
    base = servers.studio.base_url
    person = sign_up(base, "Ines")
    board = make_storyboard(base, person, person.team_id, [["Nets drying", "A bell rings"]])
    first, second = board.shots
    for shot, image in zip(board.shots, board.images, strict=True):
        select_master(base, person, shot, image)
    async with editor_browser(base) as chrome:
        page = await chrome.open(person, f"/projects/{board.project_id}/storyboard")
        await page.get_by_text("0 of 2 clips ready").wait_for()

        # A parameter out of its limits is refused, next to its field, and nothing starts.
        settings = page.locator("summary", has_text="Animation settings")
        await settings.focus()
        await page.keyboard.press("Enter")
        await page.get_by_label("Model", exact=True).select_option("wan-2.1-i2v")
        steps = page.get_by_label("sample steps")
        assert await steps.input_value() == "30"
        await steps.fill("99")
        await page.get_by_role("button", name="Animate all").click()
        refusal = page.locator(".field", has=steps).get_by_role("alert")
        await expect(refusal).to_contain_text("40")
        assert await card(page, first).get_attribute("data-status") == "NONE"
        await page.get_by_label("Model", exact=True).select_option("kling-v2.1")

        # The provider fails: the card says so, what to do, and offers a retry that works.
        servers.faults(failure_rate=1.0)
        try:
            await page.get_by_role("button", name="Animate scene 1, shot 1").click()
            failed = card(page, first)
            await expect(failed).to_have_attribute("data-status", "FAILED", timeout=SETTLE * 1000)
            await expect(failed.get_by_role("alert")).to_contain_text("Retry it")
            await assert_accessible(page)
            await screenshot(page, "storyboard-failed")
        finally:
            servers.faults(failure_rate=0.0)
        await page.get_by_role("button", name="Retry the animation of scene 1, shot 1").click()
        await card(page, first).locator("video").wait_for(timeout=SETTLE * 1000)
        assert await clip_progress(page, first) == 1.0
        # Making a finished clip again asks first; saying no keeps it.
        await page.get_by_role("button", name="Animate again scene 1, shot 1").click()
        question = page.get_by_role("dialog", name="Animate scene 1, shot 1 again?")
        await expect(question).to_contain_text("stays in the library")
        await question.get_by_role("button", name="Cancel").click()
        await expect(question).to_have_count(0)
        await expect(card(page, first)).to_have_attribute("data-status", "COMPLETE")

        # A slow animation canceled: it says so, and a retry makes the clip.
        servers.faults(latency_ms=60_000)
        try:
            await page.get_by_role("button", name="Animate scene 1, shot 2").click()
            await page.get_by_role("button", name="Cancel the animation of scene 1, shot 2").click()
            canceled = card(page, second)
            await expect(canceled).to_have_attribute(
                "data-status", "CANCELED", timeout=SETTLE * 1000
            )
            await expect(canceled).to_contain_text("Retry to start it again")
        finally:
            servers.faults(latency_ms=LATENCY_MS)
        await page.get_by_role("button", name="Retry the animation of scene 1, shot 2").click()
        await card(page, second).locator("video").wait_for(timeout=SETTLE * 1000)
        await page.get_by_text("2 of 2 clips ready").wait_for()

        # A shot added elsewhere shows at once, waiting for its master, and counts.
        scene = graphql(
            base,
            "query($id: ID!) { project(id: $id) { scenes { id } } }",
            {"id": board.project_id},
            token=person.token,
        )["project"]["scenes"][0]["id"]
        mutation(
            base,
            "mutation($i: CreateShotInput!) { createShot(input: $i) { shot { id } userErrors { code message } } }",
            {"i": {"sceneId": scene, "description": "Rain on the deck"}},
            token=person.token,
        )
        await page.get_by_role("link", name="Choose a master image for scene 1, shot 3").wait_for()
        await page.get_by_text("2 of 3 clips ready").wait_for()
        await page.get_by_text("1 shot has no master image yet.").wait_for()

        # On a tablet the page fits its width.
        await page.set_viewport_size({"width": 768, "height": 1024})
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        await screenshot(page, "storyboard-tablet")
