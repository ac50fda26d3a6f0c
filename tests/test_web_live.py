"""Live pages across a dropped connection: the editor says it is reconnecting, resumes
every feed from its last cursor when the server is back, says what it caught up on, and
shows each change once, with no reload."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import StudioServer, free_port
from tests.web_harness import editor_browser, editor_server, graphql, mutation, screenshot, sign_up

pytestmark = pytest.mark.e2e

CREATE_PROJECT = """mutation($input: CreateProjectInput!) {
  createProject(input: $input) { project { id } userErrors { code message } } }"""
UPDATE_PROJECT = """mutation($input: UpdateProjectInput!) {
  updateProject(input: $input) { project { id title } userErrors { code message } } }"""


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(
        tmp_path_factory.mktemp("web-live"), "web-live", port=free_port()
    ) as running:
        yield running


async def test_a_restarted_server_is_resumed_from_the_last_cursor(server: StudioServer) -> None:
    person = sign_up(server.base_url, "Ida")
    project = mutation(
        server.base_url, CREATE_PROJECT, {"input": {"title": "Lighthouse"}}, token=person.token
    )["project"]
    async with editor_browser(server.base_url) as chrome:
        chrome.allow_problem(r"WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource")
        page = await chrome.open(person, f"/projects/{project['id']}")
        title = page.get_by_role("heading", level=1)
        await title.filter(has_text="Lighthouse").wait_for()
        await page.evaluate("window.__notReloaded = true")
        # Opened: a change is live.
        mutation(
            server.base_url,
            UPDATE_PROJECT,
            {"input": {"id": project["id"], "title": "Lighthouse at dusk"}},
            token=person.token,
        )
        await title.filter(has_text="Lighthouse at dusk").wait_for()

        server.stop()
        banner = page.locator("[data-connection=reconnecting]")
        await banner.wait_for(timeout=15_000)
        await screenshot(page, "reconnecting")
        server.start()
        # Changed while the page is still away (it retries at most every 5 s).
        mutation(
            server.base_url,
            UPDATE_PROJECT,
            {"input": {"id": project["id"], "title": "Lighthouse at night"}},
            token=person.token,
        )
        resumed = page.locator("[data-connection=resumed]")
        await resumed.wait_for(timeout=20_000)
        await title.filter(has_text="Lighthouse at night").wait_for()
        assert "Caught up on" in (await resumed.inner_text())
        assert await page.evaluate("window.__notReloaded") is True
        now = graphql(
            server.base_url,
            "query($id: ID!) { project(id: $id) { title } }",
            {"id": project["id"]},
            token=person.token,
        )
        assert now["project"]["title"] == "Lighthouse at night"
