"""The library's asset page (/library/assets/:assetId) in real Chromium: its fields,
editing, sharing with an expiry and revoking, remix, regenerate and duplicate followed
live to the new asset, its lineage tree, delete, and what the API refuses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from tests.servers import StudioServer
from tests.web_asset_world import (
    LIVE,
    World,
    assert_not_reloaded,
    build_world,
    field,
    mark,
    node,
    path,
    read_asset,
    shown_id,
    update_asset,
)
from tests.web_harness import (
    assert_accessible,
    editor_browser,
    editor_server,
    graphql,
    mutation,
    screenshot,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    # Generations take two seconds, so a page shows GENERATING before READY.
    with editor_server(
        tmp_path_factory.mktemp("web-asset"), "web-asset", EMULATOR_LATENCY_MS="2000"
    ) as running:
        yield running


@pytest.fixture(scope="module")
def world(server: StudioServer) -> World:
    return build_world(server.base_url)


# -- the tests ----------------------------------------------------------------------------------


async def test_the_page_shows_the_fields_saves_edits_and_follows_changes_made_elsewhere(
    world: World,
) -> None:
    asset_id = world.assets[0]
    async with editor_browser(world.base) as chrome:
        page = await chrome.open(world.ann, path(asset_id))
        heading = page.get_by_role("heading", level=1)
        await expect(heading).to_contain_text("Harbour · Scene 1 · Shot 1")
        await expect(field(page, "Kind")).to_have_text("Image")
        await expect(field(page, "Status")).to_have_text("Ready")
        await expect(field(page, "Prompt")).to_have_text("a harbour at dawn with fishing boats")
        await expect(field(page, "Model")).to_have_text("black-forest-labs/flux-schnell")
        await expect(field(page, "Dimensions")).to_contain_text(" px")
        await expect(field(page, "Created")).to_contain_text("by Ann")
        await expect(field(page, "Used in projects")).to_have_text("0")
        await expect(field(page, "Team")).to_have_text("Harbour crew")
        await expect(field(page, "Parameters")).to_contain_text("aspect_ratio")
        image = page.locator("img.asset-image")
        await expect(image).to_be_visible()
        await page.wait_for_function(
            "() => document.querySelector('img.asset-image').naturalWidth > 0", timeout=10_000
        )
        tree = page.get_by_role("tree", name="Lineage")
        await expect(tree.get_by_role("treeitem")).to_have_count(1)
        await screenshot(page, "asset-detail")
        await assert_accessible(page)
        # On a tablet the fields go under the image.
        await page.set_viewport_size({"width": 768, "height": 1024})
        media = await page.locator(".asset-media").bounding_box()
        fields = await page.locator(".asset-fields").bounding_box()
        assert media is not None
        assert fields is not None
        assert fields["y"] >= media["y"] + media["height"]
        await screenshot(page, "asset-detail-tablet")
        await page.set_viewport_size({"width": 1280, "height": 860})

        # Edit: the name and tags are saved.
        await mark(page)
        await page.get_by_role("button", name="Edit details").click()
        form = page.get_by_role("form", name="Edit details")
        await form.get_by_label("Name").fill("Harbour at dawn")
        await form.get_by_label("Tags").fill("Dawn, boats, sea")
        await form.get_by_label("Mood").fill("calm")
        await screenshot(page, "asset-edit")
        await assert_accessible(page)
        await form.get_by_role("button", name="Save details").click()
        await expect(heading).to_have_text("Harbour at dawn")
        await expect(field(page, "Tags").get_by_role("listitem")).to_have_text(
            ["dawn", "boats", "sea"]
        )
        await expect(field(page, "Mood")).to_have_text("calm")
        saved = read_asset(world, asset_id)
        assert (saved["name"], saved["tags"]) == ("Harbour at dawn", ["dawn", "boats", "sea"])

        # A refusal is shown at its field, and nothing changes.
        await page.get_by_role("button", name="Edit details").click()
        await form.get_by_label("Name").fill("   ")
        await form.get_by_label("Tags").fill("fine, " + "x" * 51)
        await form.get_by_role("button", name="Save details").click()
        name_error = form.locator(".field", has=page.get_by_label("Name")).locator(".field-error")
        await expect(name_error).to_be_visible()
        tags_error = form.locator(".field", has=page.get_by_label("Tags")).locator(".field-error")
        await expect(tags_error).to_contain_text("Tag 2")
        await screenshot(page, "asset-edit-refused")
        assert read_asset(world, asset_id)["name"] == "Harbour at dawn"
        await form.get_by_role("button", name="Cancel").click()

        # Someone else renames it: the page shows it without a reload.
        update_asset(world, world.bob, {"id": asset_id, "name": "Harbour, renamed by Bob"})
        await expect(heading).to_have_text("Harbour, renamed by Bob", timeout=LIVE)
        await assert_not_reloaded(page)


async def test_sharing_with_an_expiry_then_changing_and_revoking_it(world: World) -> None:
    asset_id = world.assets[1]
    cy_shared = (
        "query { sharedWithMe(first: 10) { edges { node { id } share { permission expiresAt } } } }"
    )
    async with editor_browser(world.base) as chrome:
        page = await chrome.open(world.ann, path(asset_id))
        # By keyboard: the dialog opens with Enter and closes with Escape, focus back.
        share_button = page.get_by_role("button", name="Share…")
        await share_button.focus()
        await page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Share")
        await expect(dialog).to_be_visible()
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(share_button).to_be_focused()
        await page.keyboard.press("Enter")
        form = dialog.get_by_role("form", name="Share with someone")
        await expect(dialog.get_by_text("No one yet.")).to_be_visible()

        # By email, only a teammate: Cy is in none of Ann's teams, which is said plainly.
        await form.get_by_label("Email or user ID").fill(world.cy.email)
        await form.get_by_role("button", name="Share").click()
        recipient = form.locator(".field", has=page.get_by_label("Email or user ID"))
        await expect(recipient.locator(".field-error")).to_contain_text("use their user ID")
        await assert_accessible(page)
        await screenshot(page, "asset-share-refused")

        # By user ID, with a message and an expiry tomorrow.
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(second=0, microsecond=0)
        await form.get_by_label("Email or user ID").fill(world.cy.user_id)
        await form.get_by_label("Permission").select_option("VIEW")
        await form.get_by_label("Expires").fill(tomorrow.strftime("%Y-%m-%dT%H:%M"))
        await form.get_by_label("Message").fill("For the pitch deck")
        await form.get_by_role("button", name="Share").click()
        shares = dialog.get_by_role("list", name="Current shares").get_by_role("listitem")
        await expect(shares).to_have_count(1)
        # Cy shares no team with Ann: the API names him by ID only.
        await expect(shares.first).to_contain_text(
            f"outside your teams (user ID {world.cy.user_id})"
        )
        await expect(shares.first).to_contain_text("For the pitch deck")
        await expect(shares.first).to_contain_text("until")
        await screenshot(page, "asset-share")
        await assert_accessible(page)
        # Cy sees it through the API, with its expiry (the browser's clock is UTC here or not:
        # the instant is what counts).
        edges = graphql(world.base, cy_shared, token=world.cy.token)["sharedWithMe"]["edges"]
        assert [e["node"]["id"] for e in edges] == [asset_id]
        expires = datetime.fromisoformat(edges[0]["share"]["expiresAt"].replace("Z", "+00:00"))
        local = datetime.strptime(tomorrow.strftime("%Y-%m-%dT%H:%M"), "%Y-%m-%dT%H:%M")
        offset = await page.evaluate("new Date().getTimezoneOffset()")
        assert expires == local.replace(tzinfo=UTC) + timedelta(minutes=offset)
        assert edges[0]["share"]["permission"] == "VIEW"

        # Its permission changed in place, then revoked.
        await shares.first.get_by_label(re.compile("^Permission of")).select_option("EDIT")
        await expect(shares.first.get_by_label(re.compile("^Permission of"))).to_have_value("EDIT")
        await page.wait_for_function(
            "() => !document.querySelector('.share-row select:disabled')", timeout=LIVE
        )
        edges = graphql(world.base, cy_shared, token=world.cy.token)["sharedWithMe"]["edges"]
        assert edges[0]["share"]["permission"] == "EDIT"
        await shares.first.get_by_role("button", name=re.compile("^Revoke the share with")).click()
        await expect(dialog.get_by_text("No one yet.")).to_be_visible(timeout=LIVE)
        assert graphql(world.base, cy_shared, token=world.cy.token)["sharedWithMe"]["edges"] == []
        await dialog.get_by_role("button", name="Done").click()
        await expect(dialog).to_be_hidden()


async def test_a_remix_is_generated_live_and_its_lineage_shows_parent_then_child(
    world: World,
) -> None:
    parent_id = world.assets[2]
    async with editor_browser(world.base) as chrome:
        page = await chrome.open(world.ann, path(parent_id))
        parent_name = await page.get_by_role("heading", level=1).text_content()
        await page.get_by_role("button", name="Remix…").click()
        dialog = page.get_by_role("dialog", name="Remix")
        prompt = dialog.get_by_label("Prompt")
        await expect(prompt).to_have_value("a harbour at dawn with fishing boats")
        await prompt.fill("a harbour at dusk in the rain with fishing boats")
        await dialog.get_by_label("Note on what changes").fill("dusk, rain")
        await expect(dialog.get_by_label("Model")).to_have_value("flux-schnell")
        await dialog.locator("summary").click()
        await dialog.get_by_label("aspect ratio").select_option(label="1:1")
        await assert_accessible(page)
        await screenshot(page, "asset-remix")
        await mark(page)
        await dialog.get_by_role("button", name="Remix and generate").click()

        # The remix's own page, GENERATING and then READY while it is open.
        await page.wait_for_url(lambda url: shown_id(url) != parent_id)
        remix_id = shown_id(page.url)
        article = page.locator("article.asset-page")
        await expect(article).to_have_attribute("data-status", "GENERATING", timeout=LIVE)
        await expect(page.get_by_role("status").filter(has_text="Generating")).to_be_visible()
        await screenshot(page, "asset-remix-generating")
        await expect(article).to_have_attribute("data-status", "READY", timeout=LIVE)
        await expect(page.locator("img.asset-image")).to_be_visible()
        await assert_not_reloaded(page)
        await expect(field(page, "Prompt change")).to_contain_text("added: dusk")
        await expect(field(page, "Parameters")).to_contain_text("1:1")
        remix = read_asset(world, remix_id)
        assert (remix["status"], remix["evolutionType"], remix["parent"]) == (
            "READY",
            "REMIX",
            {"id": parent_id},
        )

        # Its lineage: the parent above, the remix below it, marked as this asset.
        tree = page.get_by_role("tree", name="Lineage")
        top = node(tree, parent_id)
        await expect(top).to_contain_text(parent_name or "")
        child = tree.get_by_role("treeitem").filter(has_text="REMIX")
        await expect(top).to_have_attribute("aria-level", "1")
        await expect(child).to_have_attribute("aria-level", "2")
        await expect(child).to_have_attribute("aria-current", "page")
        await expect(child).to_contain_text("Remix v2")
        await screenshot(page, "asset-lineage")
        await assert_accessible(page)

        # Keyboard: into the tree, up to the parent, and Enter opens it.
        await child.focus()
        await page.keyboard.press("ArrowUp")
        await expect(top).to_be_focused()
        await page.keyboard.press("ArrowDown")
        await expect(child).to_be_focused()
        await page.keyboard.press("ArrowLeft")
        await expect(top).to_be_focused()
        await page.keyboard.press("Enter")
        await page.wait_for_url(f"**{path(parent_id)}")
        await expect(page.get_by_role("heading", level=1)).to_have_text(parent_name or "")
        tree = page.get_by_role("tree", name="Lineage")
        await expect(node(tree, parent_id)).to_have_attribute("aria-current", "page")
        below = tree.get_by_role("treeitem").filter(has_text="REMIX")
        await expect(below).to_have_attribute("aria-level", "2")
        await expect(below).to_have_attribute("href", path(remix_id))
        await expect(field(page, "Remixes made")).to_have_text("1")


async def test_regenerate_makes_a_new_version_and_duplicate_a_copy_then_delete_it(
    world: World,
) -> None:
    original = world.assets[3]
    async with editor_browser(world.base) as chrome:
        page = await chrome.open(world.ann, path(original))
        await page.get_by_role("button", name="Regenerate…").click()
        dialog = page.get_by_role("dialog", name="Regenerate")
        await expect(dialog.get_by_label("Model")).to_have_value("flux-schnell")
        await assert_accessible(page)
        await dialog.get_by_role("button", name="Regenerate").click()
        await page.wait_for_url(lambda url: shown_id(url) != original)
        version_id = shown_id(page.url)
        article = page.locator("article.asset-page")
        await expect(article).to_have_attribute("data-status", "READY", timeout=LIVE)
        await expect(page.get_by_role("heading", level=1)).to_contain_text("v2")
        version = read_asset(world, version_id)
        assert (version["evolutionType"], version["parent"]) == ("REGENERATE", {"id": original})
        tree = page.get_by_role("tree", name="Lineage")
        await expect(tree.get_by_role("treeitem").filter(has_text="REGENERATE")).to_have_attribute(
            "aria-current", "page"
        )

        # Duplicate the new version: a READY copy at once, on its own page.
        await page.get_by_role("button", name="Duplicate…").click()
        dialog = page.get_by_role("dialog", name="Duplicate")
        await dialog.get_by_label("Branch").fill("alt")
        await dialog.get_by_role("button", name="Make a copy").click()
        await page.wait_for_url(lambda url: shown_id(url) != version_id)
        copy_id = shown_id(page.url)
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Copy v3")
        await expect(field(page, "Lineage")).to_contain_text("branch “alt”")
        copy = read_asset(world, copy_id)
        assert (copy["status"], copy["evolutionType"], copy["parent"]) == (
            "READY",
            "DUPLICATE",
            {"id": version_id},
        )
        tree = page.get_by_role("tree", name="Lineage")
        await expect(tree.get_by_role("treeitem")).to_have_count(3)
        await screenshot(page, "asset-duplicate")

        # Delete the copy: the dialog says what happens, then we are on its parent.
        await page.get_by_role("button", name="Delete…").click()
        confirm = page.get_by_role("dialog", name="Delete")
        await expect(confirm).to_contain_text("Nothing was made from it")
        await expect(confirm).to_contain_text("only when nothing else uses it")
        await screenshot(page, "asset-delete")
        await assert_accessible(page)
        await confirm.get_by_role("button", name="Delete the asset").click()
        await page.wait_for_url(f"**{path(version_id)}")
        assert read_asset(world, copy_id) is None
        tree = page.get_by_role("tree", name="Lineage")
        await expect(tree.get_by_role("treeitem")).to_have_count(2)

        # Deleting the version, which has no child now, from another tab: this one says so.
        graphql(
            world.base,
            "mutation($input: DeleteInput!) { deleteAsset(input: $input) { deletedId } }",
            {"input": {"id": version_id}},
            token=world.ann.token,
        )
        await expect(page.get_by_role("heading", name="This asset was deleted")).to_be_visible(
            timeout=LIVE
        )


async def test_refusals_are_plain_and_another_teams_asset_is_not_found(world: World) -> None:
    # Bob, an EDITOR, copies an asset: he holds EDIT on his copy, and may not share it.
    copy_id = mutation(
        world.base,
        "mutation($input: DuplicateAssetInput!) { duplicateAsset(input: $input) {"
        " asset { id } userErrors { code field message } } }",
        {"input": {"assetId": world.assets[4]}},
        token=world.bob.token,
    )["asset"]["id"]
    async with editor_browser(world.base) as chrome:
        page = await chrome.open(world.bob, path(copy_id))
        await expect(field(page, "Your permission")).to_have_text("Edit")
        await page.get_by_role("button", name="Share…").click()
        dialog = page.get_by_role("dialog", name="Share")
        await expect(dialog.get_by_role("note")).to_contain_text("need ADMIN")
        form = dialog.get_by_role("form", name="Share with someone")
        await form.get_by_label("Email or user ID").fill(world.ann.email)
        await form.get_by_role("button", name="Share").click()
        refusal = form.get_by_role("alert")
        await expect(refusal).to_contain_text("Not shared")
        await expect(refusal).to_contain_text("Only its team's owners and admins")
        await screenshot(page, "asset-share-forbidden")
        await assert_accessible(page)
        assert read_asset(world, copy_id, world.ann)["shares"] == []
        await dialog.get_by_role("button", name="Done").click()

        # Remix is turned off by its admin: the button says why it cannot.
        update_asset(world, world.ann, {"id": world.assets[5], "canRemix": False})
        await page.goto(f"{world.base}{path(world.assets[5])}")
        await expect(page.get_by_role("button", name="Remix…")).to_be_disabled()
        await expect(page.get_by_text("Remixing and new versions are turned off")).to_be_visible()
        await expect(page.get_by_role("button", name="Delete…")).to_have_count(0)

        # Cy is in no team of Ann's: her asset is not found, and neither is a made-up address.
        outsider = await chrome.open(world.cy, path(world.assets[0]))
        await expect(outsider.get_by_role("heading", name="Asset not found")).to_be_visible()
        await screenshot(outsider, "asset-not-found")
        await assert_accessible(outsider)
        await outsider.goto(f"{world.base}{path('not-an-asset')}")
        await expect(outsider.get_by_role("heading", name="Asset not found")).to_be_visible()


async def test_a_clip_plays_in_place_and_its_image_is_its_lineage_parent(world: World) -> None:
    async with editor_browser(world.base) as chrome:
        page = await chrome.open(world.ann, path(world.clip))
        await expect(field(page, "Kind")).to_have_text("Video")
        await expect(field(page, "Duration")).to_contain_text(" s")
        video = page.get_by_label(re.compile("^Clip: "))
        await expect(video).to_be_visible()
        await expect(video).to_have_attribute("controls", "")
        # It plays: its metadata loads and time moves on.
        await page.wait_for_function(
            "() => document.querySelector('video.asset-video').readyState >= 1", timeout=10_000
        )
        await video.evaluate("(v) => { v.muted = true; return v.play(); }")
        await page.wait_for_function(
            "() => document.querySelector('video.asset-video').currentTime > 0", timeout=10_000
        )
        tree = page.get_by_role("tree", name="Lineage")
        await expect(node(tree, world.assets[5])).to_have_attribute("aria-level", "1")
        await expect(node(tree, world.clip)).to_contain_text("ANIMATE")
        await expect(node(tree, world.clip)).to_have_attribute("aria-current", "page")
        await screenshot(page, "asset-clip")
        await assert_accessible(page)
        # Its image is the master of a storyboard: used in one project.
        await node(tree, world.assets[5]).click()
        await page.wait_for_url(f"**{path(world.assets[5])}")
        await expect(field(page, "Used in projects")).to_have_text("1")
        # So it cannot be PRIVATE, and the sharing dialog says why and what to do instead.
        await page.get_by_role("button", name="Share…").click()
        dialog = page.get_by_role("dialog", name="Share")
        await dialog.get_by_label("Who sees it besides those it is shared with").select_option(
            "PRIVATE"
        )
        await dialog.get_by_role("button", name="Save visibility").click()
        await expect(dialog.get_by_role("alert")).to_contain_text(
            "Duplicate it and make the copy PRIVATE instead"
        )
        assert read_asset(world, world.assets[5])["shareLevel"] == "TEAM"
        await screenshot(page, "asset-private-refused")


async def test_an_editors_remix_kept_as_a_draft_is_generated_in_place(world: World) -> None:
    async with editor_browser(world.base) as chrome:
        page = await chrome.open(world.bob, path(world.assets[4]))
        await page.get_by_role("button", name="Remix…").click()
        dialog = page.get_by_role("dialog", name="Remix")
        await dialog.get_by_label("Prompt").fill("a harbour at noon, empty")
        await dialog.get_by_label("Generate it now").uncheck()
        await dialog.get_by_role("button", name="Save remix as a draft").click()
        await page.wait_for_url(lambda url: shown_id(url) != world.assets[4])
        draft_id = shown_id(page.url)
        article = page.locator("article.asset-page")
        await expect(article).to_have_attribute("data-status", "DRAFT")
        await expect(page.get_by_text("A draft: no file yet")).to_be_visible()
        await mark(page)
        await page.get_by_role("button", name="Generate…").click()
        dialog = page.get_by_role("dialog", name="Generate")
        await expect(dialog).to_contain_text("Generates this asset from its prompt")
        await dialog.get_by_role("button", name="Generate").click()
        # The same asset, generated in place and shown when ready, without a reload.
        await expect(article).to_have_attribute("data-status", "READY", timeout=LIVE)
        assert shown_id(page.url) == draft_id
        await assert_not_reloaded(page)
        await expect(page.locator("img.asset-image")).to_be_visible()
        await expect(field(page, "Created")).to_contain_text("by Bob")
        drafted = read_asset(world, draft_id)
        assert (drafted["status"], drafted["version"]) == ("READY", 2)
