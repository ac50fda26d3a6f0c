"""The team page and invitation links in real Chromium: inviting a member (who signs up
from the link and accepts), the member showing on the owner's page without a reload,
revoking an invitation, removing a member (whose editor moves on at once), and creating
and switching teams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.async_api import Locator, Page, expect

from tests.servers import StudioServer
from tests.web_harness import (
    PASSWORD,
    assert_accessible,
    editor_browser,
    editor_server,
    graphql,
    screenshot,
    sign_up,
)
from tests.web_team_setup import accept, in_team, join, member_ids, new_project, new_team

pytestmark = pytest.mark.e2e

LIVE = 15_000
"""How long a change may take to reach another person's page, in ms (a busy machine)."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(tmp_path_factory.mktemp("web-team"), "web-team") as running:
        yield running


def members(page: Page) -> Locator:
    return page.get_by_role("table").get_by_role("row")


async def invitation_link(page: Page, role: str) -> str:
    """Makes an invitation for `role` on the team page; the link it shows."""
    await page.get_by_label("Role").select_option(label=role)
    await page.get_by_role("button", name="Create invitation link").click()
    link = page.get_by_label("Invitation link")
    await link.wait_for()
    value = await link.input_value()
    assert "/invitations/sbi_" in value, value
    return value


async def test_invite_a_member_who_signs_up_from_the_link(server: StudioServer) -> None:
    base = server.base_url
    owner = sign_up(base, "Tove")
    owner = in_team(owner, new_team(base, owner, "Moomin Unit"))
    async with editor_browser(base) as chrome:
        page = await chrome.open(owner, "/team")
        await page.get_by_role("heading", name="Moomin Unit", level=1).wait_for()
        await expect(members(page)).to_have_count(2)  # the header row and the owner
        await page.evaluate("window.__notReloaded = true")
        link = await invitation_link(page, "Editor")
        assert link.startswith(f"{base}/invitations/")
        await expect(page.get_by_role("status").filter(has_text="Send this link")).to_contain_text(
            "Whoever opens it first joins Moomin Unit as an editor"
        )
        pending = page.get_by_role("list", name="Pending invitations").get_by_role("listitem")
        await expect(pending).to_have_count(1)
        await expect(pending).to_contain_text("Editor invitation")
        await assert_accessible(page)
        await screenshot(page, "team-invited")

        # The invitee is signed out: the link sends them to sign up, then back.
        invitee = await chrome.open(None, link.removeprefix(base))
        await invitee.get_by_role("heading", name="You are invited to a team").wait_for()
        await assert_accessible(invitee)
        await screenshot(invitee, "invitation-signed-out")
        await invitee.get_by_role("link", name="Sign up").click()
        await invitee.get_by_label("Name").fill("Snufkin")
        await invitee.get_by_label("Email").fill("snufkin.web-team@example.com")
        await invitee.get_by_label("Password").fill(PASSWORD)
        await invitee.get_by_role("button", name="Sign up").click()
        await invitee.wait_for_url(link)
        accept_button = invitee.get_by_role("button", name="Accept invitation")
        await assert_accessible(invitee)
        await screenshot(invitee, "invitation-signed-in")
        await accept_button.click()
        await invitee.wait_for_url("**/team")
        await invitee.get_by_role("heading", name="Moomin Unit", level=1).wait_for()
        await expect(invitee.get_by_role("combobox", name="Team")).to_have_value(owner.team_id)
        await expect(invitee.get_by_role("row", name="Snufkin (you)")).to_contain_text("Editor")

        # The owner sees the new member, and the invitation used up, without a reload.
        await page.locator('[data-live="on"]').wait_for(timeout=10_000)
        await expect(page.get_by_role("row", name="Snufkin")).to_contain_text(
            "Editor", timeout=LIVE
        )
        await expect(pending).to_have_count(0, timeout=LIVE)
        assert await page.evaluate("window.__notReloaded === true")
        await screenshot(page, "team-joined")

        # A used link is refused with what to do next.
        again = await chrome.open(sign_up(base, "Late"), link.removeprefix(base))
        await again.get_by_role("button", name="Accept invitation").click()
        await expect(again.get_by_role("alert")).to_contain_text("Ask the team for a new one")


async def test_revoke_an_invitation(server: StudioServer) -> None:
    base = server.base_url
    owner = sign_up(base, "Revoker")
    owner = in_team(owner, new_team(base, owner, "Revoke Unit"))
    async with editor_browser(base) as chrome:
        page = await chrome.open(owner, "/team")
        link = await invitation_link(page, "Viewer")
        pending = page.get_by_role("list", name="Pending invitations").get_by_role("listitem")
        await expect(pending).to_have_count(1)
        revoke = pending.get_by_role("button", name="Revoke the viewer invitation")
        await revoke.focus()
        await page.keyboard.press("Enter")
        await expect(pending).to_have_count(0)
        await expect(page.get_by_text("None: every invitation was used")).to_be_visible()
        await screenshot(page, "team-revoked")
    code = link.rsplit("/", 1)[1]
    refused = accept(base, sign_up(base, "Too Late"), code)
    assert [e["code"] for e in refused["userErrors"]] == ["INVALID_INVITATION"]


async def test_remove_a_member_after_a_clear_confirmation(server: StudioServer) -> None:
    base = server.base_url
    owner = sign_up(base, "Remover")
    team_id = new_team(base, owner, "Remove Unit")
    owner = in_team(owner, team_id)
    member = join(base, owner, sign_up(base, "Leaving"), team_id, role="VIEWER")
    async with editor_browser(base) as chrome:
        theirs = await chrome.open(member, "/projects")
        await theirs.get_by_role("heading", name="Projects of Remove Unit").wait_for()
        await theirs.locator('[data-live="on"]').wait_for(timeout=10_000)
        await theirs.evaluate("window.__notReloaded = true")
        page = await chrome.open(owner, "/team")
        row = page.get_by_role("row", name="Leaving")
        await expect(row).to_contain_text("Viewer")
        # The owner cannot be removed by the owner here (no button on their own row).
        await expect(
            page.get_by_role("row", name="Remover (you)").get_by_role("button")
        ).to_have_count(0)
        await row.get_by_role("button", name="Remove Leaving").click()
        dialog = page.get_by_role("dialog", name="Remove Leaving from Remove Unit?")
        await expect(dialog).to_contain_text(
            "will no longer see Remove Unit's projects and library, at once"
        )
        await expect(dialog).to_contain_text("The projects they made stay with the team")
        await assert_accessible(page)
        await screenshot(page, "team-remove")
        await dialog.get_by_role("button", name="Remove member").click()
        await expect(row).to_have_count(0)
        # The removed member's editor moves to their own team at once, without a reload.
        await theirs.get_by_role("heading", name="Projects of Leaving's team").wait_for(
            timeout=LIVE
        )
        await expect(theirs.get_by_text("You are no longer in this team.")).to_be_visible()
        await expect(theirs.get_by_role("combobox", name="Team").locator("option")).to_have_count(1)
        assert await theirs.evaluate("window.__notReloaded === true")
    assert member.user_id not in member_ids(base, owner, team_id)


async def test_create_a_team_and_switch_teams(server: StudioServer) -> None:
    base = server.base_url
    person = sign_up(base, "Switcher")
    new_project(base, person, person.team_id, "Personal Reel")
    async with editor_browser(base) as chrome:
        page = await chrome.open(person, "/team")
        await page.get_by_role("heading", name="Switcher's team", level=1).wait_for()
        # A personal team has one member: no invitations there.
        await expect(page.get_by_text("This is your personal team")).to_be_visible()
        await expect(page.get_by_role("button", name="Create invitation link")).to_have_count(0)
        await assert_accessible(page)
        await screenshot(page, "team-personal")
        # Refused without a name.
        await page.get_by_role("button", name="Create team").click()
        await page.get_by_role("alert").first.wait_for()
        await page.get_by_label("New team's name").fill("Harbour Crew")
        await page.get_by_label("New team's name").press("Enter")
        await page.get_by_role("heading", name="Harbour Crew", level=1).wait_for()
        switcher = page.get_by_role("combobox", name="Team")
        await expect(switcher.locator("option:checked")).to_have_text("Harbour Crew")
        await expect(page.get_by_role("row", name="Switcher (you)")).to_contain_text("Owner")
        await expect(page.get_by_role("button", name="Create invitation link")).to_be_visible()
        await assert_accessible(page)
        await screenshot(page, "team-created")
        # Its projects page is empty; back on the personal team, its project shows.
        await page.get_by_role("link", name="Projects", exact=True).click()
        await page.get_by_text("No projects in Harbour Crew yet.").wait_for()
        await page.get_by_role("link", name="Team", exact=True).click()
        yours = page.get_by_role("list", name="Your teams").get_by_role("listitem")
        await (
            yours.filter(has_text="Switcher's team")
            .get_by_role("button", name="Use this team")
            .click()
        )
        await page.get_by_role("heading", name="Switcher's team", level=1).wait_for()
        await page.get_by_role("link", name="Projects", exact=True).click()
        await page.get_by_role("heading", name="Personal Reel").wait_for()
    teams = graphql(base, "{ viewer { teams { name } } }", token=person.token)["viewer"]["teams"]
    assert sorted(t["name"] for t in teams) == ["Harbour Crew", "Switcher's team"]
