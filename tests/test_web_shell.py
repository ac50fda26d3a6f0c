"""The editor's frame: how its page is served (deep links, policy, gzip, caching), its
first load's size, and signing up, out and in, in real Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.editor import APP_SECTIONS, EditorPageError, import_map_hash
from api.vendor import read_manifest
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

pytestmark = pytest.mark.e2e

WEB = Path(__file__).resolve().parent.parent / "web"
FIRST_LOAD_LIMIT = 300 * 1024
"""The issue's budget for everything the first page load transfers, in bytes."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    with editor_server(tmp_path_factory.mktemp("web-shell"), "web-shell") as running:
        yield running


def the_import_map() -> str:
    found = re.findall(
        r'<script type="importmap">(.*?)</script>', (WEB / "index.html").read_text(), re.S
    )
    assert len(found) == 1
    content: str = found[0]
    return content


# -- serving ------------------------------------------------------------------------------------


def test_every_app_path_answers_the_page_and_other_paths_do_not(server: StudioServer) -> None:
    page = (WEB / "index.html").read_bytes()
    paths = ["/", "/projects", "/projects/UHJvamVjdDox/shots/U2hvdDox", "/library/assets/x/"]
    paths += [f"/{section}" for section in APP_SECTIONS]
    with httpx.Client(base_url=server.base_url) as client:
        for path in paths:
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.content == page, path
            assert response.headers["content-type"] == "text/html; charset=utf-8"
        for path in ("/nope", "/projectsx", "/favicon.ico", "/static/app/nope.js"):
            assert client.get(path).status_code == 404, path
        assert client.post("/projects").status_code == 405
        assert client.head("/projects/1").status_code == 200


def test_the_policy_allows_exactly_the_import_map(server: StudioServer) -> None:
    content = the_import_map()
    digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
    policy = httpx.get(f"{server.base_url}/projects").headers["content-security-policy"]
    script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
    assert script_src.split() == ["script-src", "'self'", f"'sha256-{digest}'"]
    # Every specifier goes to a vendored file.
    vendored = read_manifest().paths()
    for url in json.loads(content)["imports"].values():
        assert url.removeprefix("/static/vendor/") in vendored, url


@pytest.mark.parametrize(
    ("page", "complaint"),
    [
        ("<html></html>", "one import map, not 0"),
        ('<script type="importmap">{"imports": {}}</script>' * 2, "not 2"),
        ('<script type="importmap">{"imports": ', "one import map, not 0"),
        ('<script type="importmap">[1]</script>', "malformed"),
        ('<script type="importmap">{"imports": {}}</script>', "no imports"),
        (
            '<script type="importmap">{"imports": {"x": "https://cdn.example/x.js"}}</script>',
            "not a vendored file",
        ),
        (
            '<script type="importmap">{"imports": {"x": "/static/vendor/x@1/x.js"}}</script>',
            "not a vendored file",
        ),
        (
            '<script type="importmap">{"imports": {"x": "/static/app/main.js"}}</script>',
            "not a vendored file",
        ),
    ],
)
def test_a_page_with_a_bad_import_map_is_refused(page: str, complaint: str) -> None:
    with pytest.raises(EditorPageError, match=complaint):
        import_map_hash(page, read_manifest().paths())


def test_files_are_compressed_and_cached(server: StudioServer) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        page = client.get("/", headers={"Accept-Encoding": "gzip"})
        assert page.headers["content-encoding"] == "gzip"
        assert page.headers["cache-control"] == "no-cache"
        etag = page.headers["etag"]
        again = client.get("/library", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        own = client.get("/static/app/ui.js", headers={"Accept-Encoding": "gzip"})
        assert own.headers["content-encoding"] == "gzip"
        assert own.headers["cache-control"] == "no-cache"
        assert own.headers["content-type"] == "text/javascript; charset=utf-8"
        assert (
            client.get(
                "/static/app/ui.js", headers={"If-None-Match": own.headers["etag"]}
            ).status_code
            == 304
        )
        vendor = client.get(
            "/static/vendor/preact@10.29.8/dist/preact.module.js",
            headers={"Accept-Encoding": "gzip"},
        )
        assert vendor.headers["content-encoding"] == "gzip"
        assert vendor.headers["cache-control"] == "public, max-age=31536000, immutable"


def test_every_page_module_the_routes_name_exists() -> None:
    routes = (WEB / "static" / "app" / "routes.js").read_text()
    modules = re.findall(r"import\('\./pages/([a-z]+)\.js'\)", routes)
    assert len(modules) >= 13
    missing = [m for m in modules if not (WEB / "static" / "app" / "pages" / f"{m}.js").is_file()]
    assert missing == []
    sections = {
        path.split("/")[1] for path in re.findall(r"path: '(/[^']*)'", routes) if path != "/"
    }
    assert sections == set(APP_SECTIONS)


# -- in the browser -----------------------------------------------------------------------------


async def test_the_first_load_is_small(server: StudioServer) -> None:
    """Everything the log-in page transfers (HTML, scripts, styles) is under 300 KB."""
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(None, "/login")
        await page.get_by_role("heading", name="Log in").wait_for()
        transferred = await page.evaluate(
            """() => performance.getEntriesByType('navigation').concat(
                 performance.getEntriesByType('resource')).reduce((sum, e) => sum + e.transferSize, 0)"""
        )
        assert 0 < transferred < FIRST_LOAD_LIMIT, transferred


async def test_sign_up_log_out_and_log_in_again_where_one_was_going(server: StudioServer) -> None:
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(None, "/team")
        # Signed out, a deep link goes to log in, remembering where it was going.
        assert page.url.endswith("/login?next=%2Fteam")
        await assert_accessible(page)
        await screenshot(page, "log-in")
        await page.get_by_role("link", name="Sign up").click()
        await page.get_by_label("Name").fill("Grace")
        email = "grace.web-shell@example.com"
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill("short")
        await page.get_by_role("button", name="Sign up").click()
        # A refusal is shown, with the form kept.
        await page.get_by_role("alert").first.wait_for()
        assert await page.get_by_label("Email").input_value() == email
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign up").click()
        await page.wait_for_url("**/team")
        header = page.get_by_role("banner")
        await header.get_by_text("Grace", exact=True).wait_for()
        await header.get_by_role("button", name="Log out").click()
        await page.wait_for_url("**/login")
        # The token is revoked on the server, not just forgotten here.
        assert await page.evaluate("localStorage.getItem('studio.session')") is None
        await page.goto(f"{server.base_url}/projects")
        await page.wait_for_url("**/login?next=%2Fprojects")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url("**/projects")
        await page.get_by_role("heading", name="Projects").wait_for()
        await assert_accessible(page)


async def test_a_session_ended_elsewhere_sends_the_page_to_log_in(server: StudioServer) -> None:
    person = sign_up(server.base_url, "Linus")
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(person, "/projects")
        await page.get_by_role("heading", name="Projects").wait_for()
        graphql(server.base_url, "mutation { logOut { userErrors { code } } }", token=person.token)
        await page.goto(f"{server.base_url}/library")
        await page.wait_for_url("**/login?next=%2Flibrary", timeout=10_000)


async def test_the_team_switcher_changes_the_team_in_use(server: StudioServer) -> None:
    person = sign_up(server.base_url, "Hedy")
    graphql(
        server.base_url,
        "mutation($input: CreateTeamInput!) { createTeam(input: $input) { userErrors { code } } }",
        {"input": {"name": "Night Unit"}},
        token=person.token,
    )
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(person, "/projects")
        switcher = page.get_by_role("combobox", name="Team")
        await switcher.select_option(label="Night Unit")
        await page.reload()
        await page.get_by_role("heading", name="Projects").wait_for()
        chosen = await page.get_by_role("combobox", name="Team").evaluate(
            "(select) => select.selectedOptions[0].textContent"
        )
        assert chosen == "Night Unit"


def test_every_module_the_first_page_needs_is_preloaded() -> None:
    """main.js's static imports, and theirs, are each named by a modulepreload link, so the
    browser fetches them at once instead of one level of imports after another."""
    html = (WEB / "index.html").read_text()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', html))
    imports = json.loads(the_import_map())["imports"]
    static_import = re.compile(r"^\s*(?:import|export)\b[^;]*?from\s+'([^']+)'", re.M)
    needed: set[str] = set()
    todo = ["/static/app/main.js"]
    while todo:
        url = todo.pop()
        if url in needed:
            continue
        needed.add(url)
        source = WEB / url.removeprefix("/").replace("static/vendor/", "vendor/", 1)
        if url.startswith("/static/app/"):
            source = WEB / "static" / url.removeprefix("/static/")
        for specifier in static_import.findall(source.read_text()):
            if specifier.startswith("."):
                todo.append(str(Path(url).parent / specifier).replace("/./", "/"))
                todo[-1] = str(Path(todo[-1]).resolve()) if ".." in todo[-1] else todo[-1]
            else:
                todo.append(imports[specifier])
    assert needed - preloaded == set()


def test_the_stylesheet_closes_every_block_it_opens() -> None:
    """An unclosed block swallows every rule after it (the browser reports nothing)."""
    css = re.sub(r"/\*.*?\*/", "", (WEB / "static" / "app" / "app.css").read_text(), flags=re.S)
    depth = 0
    for number, line in enumerate(css.splitlines(), 1):
        depth += line.count("{") - line.count("}")
        assert 0 <= depth <= 2, f"app.css line {number}: blocks nested {depth} deep"
        if not line.startswith((" ", "}")) and line.strip() and depth:
            # A line at the top level either closes its rule or opens a block.
            assert depth == 1, f"app.css line {number}"
            assert "{" in line, f"app.css line {number}"
    assert depth == 0


async def test_a_malformed_deep_link_is_not_found_not_a_blank_page(server: StudioServer) -> None:
    person = sign_up(server.base_url, "Ada")
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(person, "/projects/%E0%A4%A")
        await page.get_by_role("heading", name="Not found").wait_for()
        await page.goto(f"{server.base_url}/library/assets/%")
        await page.get_by_role("heading", name="Not found").wait_for()


@pytest.mark.parametrize(
    "next_path",
    ["/.//evil.example", "/.%2F/evil.example", "/projects/..//evil.example", "//evil.example"],
)
async def test_a_next_that_reads_as_another_site_goes_to_the_projects(
    server: StudioServer, next_path: str
) -> None:
    person = sign_up(server.base_url, "Eve")
    async with editor_browser(server.base_url) as chrome:
        page = await chrome.open(None, f"/login?next={next_path}")
        await page.get_by_label("Email").fill(person.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Log in").click()
        await page.wait_for_url(f"{server.base_url}/projects")
        await page.get_by_role("heading", name="Projects").wait_for()
