"""GraphiQL at /graphql, served whole by a real `studio serve`, used in real Chromium.

The browser may reach the server's own origin and nothing else: every other
request is aborted and recorded, so the page is shown to work with no network.
The browser is Debian's `chromium` driven by Playwright (whose own browser
download cannot work here); `./dev test` installs it as root. Without it the
browser tests are skipped, and fail under CI=true.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, Route, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError
from starlette.applications import Starlette

from api import vendor
from api.app import create_app
from api.graphiql import SCRIPTS, STYLES, VENDORED_FILES, graphiql_page, page_html
from api.page_headers import content_security_policy
from api.settings import Settings
from api.static import static_mounts
from schema.context import TOKEN_REFUSED
from tests.emulator_harness import ThreadedServer
from tests.servers import StudioServer, studio_env
from tests.web_harness import CHROMIUM_ARGS, PASSWORD, RECORD_VIOLATIONS, chromium

pytestmark = pytest.mark.e2e

QUERY_EDITOR = ".graphiql-query-editor .CodeMirror"
HEADERS_EDITOR = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror"
RESPONSE = ".graphiql-response .CodeMirror"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    cwd = tmp_path_factory.mktemp("graphiql")
    env = studio_env(STUDIO_DATA_DIR=str(cwd / "data"))
    with StudioServer(env=env, cwd=cwd, name="graphiql") as running:
        yield running


# -- the page ------------------------------------------------------------------------------------


class Addresses(HTMLParser):
    """Every src and href of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [value or "" for name, value in attrs if name in ("src", "href")]


def test_graphiql_page_loads_only_vendored_files_from_this_origin() -> None:
    manifest = vendor.read_manifest()
    html = page_html(manifest)
    parser = Addresses()
    parser.feed(html)
    vendored = [manifest.url_path(name, file) for name, file in (*SCRIPTS, *STYLES)]
    own = ["/static/graphiql.css", "/static/graphiql.js"]
    assert sorted(parser.found) == sorted([*vendored, *own, "data:,"])
    assert "http" not in html
    assert html.index("react.production") < html.index("react-dom.production")
    assert html.index("react-dom.production") < html.index("graphiql.min.js")


def test_every_file_the_page_loads_is_declared_vendored_and_intact() -> None:
    declared = {(p.name, f) for p in vendor.read_declaration().package for f in p.files}
    assert set(VENDORED_FILES) <= declared
    assert vendor.check(needed=VENDORED_FILES) == []
    assert graphiql_page() == page_html(vendor.read_manifest()).encode()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A copy of web/vendor/ to spoil."""
    target = tmp_path / "vendor"
    shutil.copytree(vendor.VENDOR_DIR, target)
    return target


def drop_the_explorer_style(copy: Path) -> None:
    """dist/style.css gone from packages.toml, the manifest and the disk: consistent,
    so only what the page needs can tell."""
    declaration = copy / vendor.DECLARATION
    declaration.write_text(
        declaration.read_text().replace(
            '["dist/index.umd.js", "dist/style.css"]', '["dist/index.umd.js"]'
        )
    )
    manifest = json.loads((copy / vendor.MANIFEST).read_text())
    for package in manifest["packages"]:
        package["files"] = [f for f in package["files"] if f["path"] != "dist/style.css"]
    (copy / vendor.MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    (copy / "@graphiql" / "plugin-explorer@1.0.2" / "dist" / "style.css").unlink()
    assert vendor.check(copy) == []


def test_check_reports_a_file_the_page_loads_that_is_not_declared(copy: Path) -> None:
    drop_the_explorer_style(copy)
    assert vendor.check(copy, needed=VENDORED_FILES) == [
        "@graphiql/plugin-explorer dist/style.css is loaded by a page but not declared in "
        "packages.toml: declare it and run ./dev vendor"
    ]


def test_the_server_does_not_start_without_a_file_the_page_loads(copy: Path) -> None:
    """Rather than answer GET /graphql with a 500: the error names the file and the fix."""
    drop_the_explorer_style(copy)
    message = (
        f"GraphiQL (/graphql) cannot be served from {copy}: @graphiql/plugin-explorer "
        "dist/style.css is not in manifest.json (declare it in packages.toml). "
        "Run ./dev vendor, then ./dev vendor --check."
    )
    with pytest.raises(vendor.VendorError) as raised:
        graphiql_page(copy)
    assert str(raised.value) == message
    with pytest.raises(vendor.VendorError) as raised:
        create_app(Settings(), vendor_dir=copy)
    assert str(raised.value) == message


@pytest.mark.parametrize("spoil", ["changed", "missing", "link"])
def test_the_server_does_not_start_with_a_page_file_changed_or_missing(
    copy: Path, spoil: str
) -> None:
    """A browser would refuse a changed file (its integrity attribute), and the server
    serves no link: either way the page would never load."""
    path = copy / "graphiql@3.8.3" / "graphiql.min.css"
    data = path.read_bytes()
    path.unlink()
    if spoil == "changed":
        path.write_bytes(data + b" ")
    elif spoil == "link":
        (copy.parent / "graphiql.min.css").write_bytes(data)
        path.symlink_to(copy.parent / "graphiql.min.css")
    with pytest.raises(
        vendor.VendorError,
        match=r"graphiql@3\.8\.3/graphiql\.min\.css is missing or differs from manifest\.json",
    ):
        create_app(Settings(), vendor_dir=copy)


# -- the files over HTTP -------------------------------------------------------------------------


def test_only_regular_files_listed_in_the_manifest_are_served(copy: Path) -> None:
    """Starlette itself follows a symbolic link that stays inside the folder."""
    licence = "react-dom@18.2.0/LICENSE"
    (copy / licence).unlink()
    (copy / licence).symlink_to(copy / "react@18.2.0" / "LICENSE")  # the same bytes
    (copy / "react@18.2.0").rename(copy / "react-moved")
    (copy / "react@18.2.0").symlink_to(copy / "react-moved")
    explorer = copy / "@graphiql" / "plugin-explorer@1.0.2" / "dist"
    (explorer / "style.css").unlink()
    os.mkfifo(explorer / "style.css")
    app = Starlette(routes=list(static_mounts(vendor_dir=copy)))
    with (
        ThreadedServer(lambda _: app, name="static") as server,
        httpx.Client(base_url=f"{server.url}/static/vendor/") as client,
    ):
        assert client.get("graphiql@3.8.3/graphiql.min.css").status_code == 200
        for path in (
            licence,
            "react@18.2.0/LICENSE",
            "react@18.2.0/umd/react.production.min.js",
            "@graphiql/plugin-explorer@1.0.2/dist/style.css",
        ):
            assert client.get(path).status_code == 404, path
            assert client.head(path).status_code == 404, path


def test_graphql_page_is_ours_with_a_policy_that_allows_this_origin_only(
    server: StudioServer,
) -> None:
    response = httpx.get(f"{server.base_url}/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = directives(response.headers["content-security-policy"])
    assert policy["default-src"] == "'none'"
    # Scripts, styles and connections (HTTP and WebSocket) to this origin only; no
    # inline script, but inline styles (GraphiQL's menus and dialogs add them).
    assert policy["script-src"] == policy["connect-src"] == "'self'"
    assert policy["style-src"] == "'self' 'unsafe-inline'"
    assert policy["font-src"] == "'self' data:"
    assert policy["img-src"] == "'self' data: blob:"
    assert policy["frame-ancestors"] == "'none'"
    assert "http" not in response.text
    assert '<script src="/static/vendor/graphiql@' in response.text


def directives(header: str) -> dict[str, str]:
    """A Content-Security-Policy header as {directive: its sources}."""
    return dict(directive.strip().partition(" ")[::2] for directive in header.split(";"))


def test_every_html_page_sends_the_same_security_headers(server: StudioServer) -> None:
    """The editor (/) and GraphiQL (/graphql) share one origin, so one policy: nothing
    by default, scripts from this origin only, not framed by any page; GraphiQL may
    only add sources to it."""
    with httpx.Client(base_url=server.base_url, headers={"Accept": "text/html"}) as client:
        pages = {path: client.get(path) for path in ("/", "/graphql")}
        pages["HEAD /"] = client.head("/")
    for name, response in pages.items():
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "text/html; charset=utf-8", name
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert response.headers["referrer-policy"] == "no-referrer", name
        assert response.headers["x-frame-options"] == "DENY", name
        assert response.headers["cache-control"] == "no-cache", name
    editor = directives(pages["/"].headers["content-security-policy"])
    assert editor["script-src"].startswith("'self' 'sha256-")  # its import map (test_web_shell)
    assert editor == {
        "default-src": "'none'",
        "script-src": editor["script-src"],
        "style-src": "'self'",  # no inline style: the editor's is /static/app/app.css
        "font-src": "'self'",
        "img-src": "'self' data: blob:",
        "media-src": "'self'",
        "connect-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    assert (
        pages["HEAD /"].headers["content-security-policy"]
        == (pages["/"].headers["content-security-policy"])
    )
    assert directives(pages["/graphql"].headers["content-security-policy"])["script-src"] == (
        "'self'"
    )
    graphiql = directives(pages["/graphql"].headers["content-security-policy"])
    assert graphiql.keys() == editor.keys()
    shared = directives(content_security_policy())
    for directive, sources in shared.items():
        # Each page may only add sources to the shared policy (the editor its import map's hash).
        assert graphiql[directive].startswith(sources), directive
        assert editor[directive].startswith(sources), directive
    # GraphiQL adds to styles and fonts; the editor adds its import map's hash to scripts.
    assert {d for d in editor if graphiql[d] != editor[d]} == {
        "style-src",
        "font-src",
        "script-src",
    }


def test_vendored_files_are_served_with_their_type_and_cached_for_good(
    server: StudioServer,
) -> None:
    manifest = vendor.read_manifest()
    with httpx.Client(base_url=server.base_url) as client:
        for path, file in manifest.paths().items():
            response = client.get(f"/static/vendor/{path}")
            assert response.status_code == 200, path
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert len(response.content) == file.size, path
        script = client.get(manifest.url_path("react", "umd/react.production.min.js"))
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        style = client.get(manifest.url_path("graphiql", "graphiql.min.css"))
        assert style.headers["content-type"] == "text/css; charset=utf-8"
        again = client.get(
            manifest.url_path("graphiql", "graphiql.min.css"),
            headers={"If-None-Match": style.headers["etag"]},
        )
        assert again.status_code == 304
        assert again.headers["cache-control"] == "public, max-age=31536000, immutable"
        own = client.get("/static/graphiql.js")
        assert own.status_code == 200
        assert own.headers["content-type"] == "text/javascript; charset=utf-8"
        assert own.headers["cache-control"] == "no-cache"
        # Only what the manifest lists: not the manifest itself, nor a path out of the folder.
        for path in (
            "/static/vendor/manifest.json",
            "/static/vendor/packages.toml",
            "/static/vendor/react@18.2.0/../../../api/app.py",
            "/static/vendor/react@18.2.0/",
            "/static/nothing.js",
        ):
            assert client.get(path).status_code == 404, path
        assert client.post("/static/graphiql.js").status_code == 405


# -- the page in a browser -----------------------------------------------------------------------


def sign_up(base_url: str) -> tuple[str, str]:
    """A new user's token and a project of theirs, made over the API."""
    with httpx.Client(base_url=base_url) as client:

        def data(query: str, variables: dict[str, Any], token: str | None = None) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            ).json()
            assert "errors" not in body, body
            return body["data"]

        email = f"ann-{secrets.token_hex(4)}@example.com"
        signed = data(
            "mutation($i: SignUpInput!) { signUp(input: $i) { token userErrors { code } } }",
            {"i": {"email": email, "password": PASSWORD, "name": "Ann"}},
        )["signUp"]
        assert signed["userErrors"] == []
        token: str = signed["token"]
        made = data(
            "mutation($i: CreateProjectInput!) { createProject(input: $i) "
            "{ project { id } userErrors { code } } }",
            {"i": {"title": "Seen in GraphiQL"}},
            token,
        )["createProject"]
        assert made["userErrors"] == []
        project_id: str = made["project"]["id"]
        return token, project_id


def update_title(base_url: str, token: str, project_id: str, title: str) -> None:
    response = httpx.post(
        f"{base_url}/graphql",
        json={
            "query": "mutation($i: UpdateProjectInput!) { updateProject(input: $i) "
            "{ userErrors { code } } }",
            "variables": {"i": {"id": project_id, "title": title}},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json() == {"data": {"updateProject": {"userErrors": []}}}


def log_out(base_url: str, token: str) -> None:
    """Revoke `token`, as signing out in another window would."""
    response = httpx.post(
        f"{base_url}/graphql",
        json={"query": "mutation { logOut { success } }"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.json() == {"data": {"logOut": {"success": True}}}


async def type_into(page: Page, editor: str, text: str) -> None:
    """Replace an editor's text as a person pasting would (no auto-closed brackets)."""
    await page.locator(editor).click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)


async def run(page: Page, operation: str, name: str) -> None:
    """Put `operation` in the query editor and press the run button."""
    await type_into(page, QUERY_EDITOR, operation)
    # GraphiQL reads the operation's name from the editor a moment after an edit.
    await page.wait_for_function(
        "([editor, name]) => document.querySelector(editor).CodeMirror.operationName === name",
        arg=[QUERY_EDITOR, name],
    )
    await page.locator(".graphiql-execute-button").click()


async def wait_for_response(page: Page, *fragments: str) -> str:
    """The response pane's text, once it holds every fragment."""
    await page.wait_for_function(
        "([editor, fragments]) => { const text = document.querySelector(editor)"
        "?.CodeMirror.getValue() ?? ''; return fragments.every(f => text.includes(f)); }",
        arg=[RESPONSE, list(fragments)],
        timeout=15_000,
    )
    text: str = await page.evaluate(
        "(editor) => document.querySelector(editor).CodeMirror.getValue()", RESPONSE
    )
    return text


class Browsing:
    """A Chromium context that may reach `base` and nothing else, and what it reported.

    `outside`: every request to another origin (each aborted); `problems`: every
    console error and uncaught exception of its pages; `sockets`: the URL of every
    WebSocket its pages opened; `violations`: every Content-Security-Policy
    violation in them (a `securitypolicyviolation` event), as "directive: blocked".
    """

    def __init__(self, context: BrowserContext, base: str) -> None:
        self.context, self.base = context, base
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.sockets: list[str] = []
        self.violations: list[str] = []

    async def open(self) -> Page:
        """A new page (a browser tab) on /graphql, once GraphiQL's editor is there."""
        page = await self.context.new_page()
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self.problems.append(str(error)))
        page.on("websocket", lambda socket: self.sockets.append(socket.url))
        await page.goto(f"{self.base}/graphql")
        await self.started(page)
        return page

    async def started(self, page: Page) -> None:
        try:
            await page.locator(QUERY_EDITOR).wait_for(timeout=20_000)
        except PlaywrightTimeoutError:
            pytest.fail(f"GraphiQL never started; it tried {self.outside}; errors: {self.problems}")


@asynccontextmanager
async def browsing(base: str, **context_options: Any) -> AsyncIterator[Browsing]:
    """Chromium with a fresh context (its own localStorage) that may reach `base` only.

    On leaving, fails the test if a page reached another origin, reported an error
    or had its policy violated.
    """
    executable = chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(**context_options)
            browsing = Browsing(context, base)

            async def this_origin_only(route: Route) -> None:
                if route.request.url.startswith(f"{base}/"):
                    await route.continue_()
                else:
                    browsing.outside.append(route.request.url)
                    await route.abort("internetdisconnected")

            await context.route("**/*", this_origin_only)
            await context.expose_function(
                "recordViolation", lambda v: browsing.violations.append(v)
            )
            await context.add_init_script(RECORD_VIOLATIONS)
            yield browsing
        finally:
            await browser.close()
    assert browsing.outside == [], f"the page tried to reach other origins: {browsing.outside}"
    assert browsing.violations == [], f"the page's policy was violated: {browsing.violations}"
    assert browsing.problems == [], f"the browser reported errors: {browsing.problems}"


async def editor_text(page: Page, editor: str, index: int = 0) -> str:
    text: str = await page.evaluate(
        "([editor, index]) => document.querySelectorAll(editor)[index].CodeMirror.getValue()",
        [editor, index],
    )
    return text


async def headers_text(page: Page) -> str:
    """The Headers pane's text, shown or not (the second editor of the tools pane)."""
    return await editor_text(page, ".graphiql-editor-tool .graphiql-editor .CodeMirror", 1)


async def tab_titles(page: Page) -> list[str]:
    """GraphiQL's tabs; it shows none while there is only one."""
    titles: list[str] = await page.locator(".graphiql-tab-button").all_inner_texts()
    return titles


async def test_graphiql_runs_a_query_and_a_subscription_with_no_network(
    server: StudioServer,
) -> None:
    base = server.base_url
    token, project_id = sign_up(base)
    async with browsing(base) as browser:
        page = await browser.open()
        await page.get_by_role("button", name="Headers").click()
        await type_into(page, HEADERS_EDITOR, json.dumps({"Authorization": f"Bearer {token}"}))

        # A query over HTTP, signed in by the header.
        await run(
            page,
            "query Mine { viewer { email } projects { edges { node { title } } } }",
            "Mine",
        )
        shown = await wait_for_response(page, '"email": "ann-', '"title": "Seen in GraphiQL"')
        assert '"errors"' not in shown

        # A subscription over the WebSocket, signed in by the same header in its
        # connection_init: first its snapshot, then a change made elsewhere.
        feed = (
            f'subscription Feed {{ projectEvents(projectId: "{project_id}") {{ kind sequence }} }}'
        )
        await run(page, feed, "Feed")
        await wait_for_response(page, '"kind": "SNAPSHOT"')
        update_title(base, token, project_id, "Renamed")
        await wait_for_response(page, '"kind": "PROJECT_UPDATED"')

        # Signed out elsewhere: the server closes the socket (4403), and GraphiQL
        # shows why at once rather than opening it again.
        log_out(base, token)
        shown = await wait_for_response(page, '"code": "TOKEN_INVALID"')
        assert json.loads(shown)["errors"][0]["extensions"] == {"code": "TOKEN_INVALID"}
        await page.locator(".graphiql-execute-button[aria-label^='Execute']").wait_for()
        assert len(browser.sockets) == 1, browser.sockets


async def saved(page: Page, query: str) -> None:
    """Until GraphiQL has stored its tabs with `query` in one (it waits 500 ms after an edit)."""
    await page.wait_for_function(
        "(query) => (localStorage.getItem('graphiql:tabState') ?? '').includes(query)",
        arg=json.dumps(query)[1:-1],
    )


async def test_graphiql_keeps_the_headers_across_reloads_edits_and_tabs(
    server: StudioServer,
) -> None:
    """The Headers pane is kept in the browser: after a reload, an edited query, in a
    new GraphiQL tab and in a second browser tab, and a reload opens no second tab."""
    base = server.base_url
    token, _ = sign_up(base)
    headers = json.dumps({"Authorization": f"Bearer {token}"})
    me = "query Me { viewer { email } }"
    mine = "query Mine { viewer { name } }"
    async with browsing(base) as browser:
        page = await browser.open()
        await type_into(page, HEADERS_EDITOR, headers)
        await run(page, me, "Me")
        await wait_for_response(page, '"email": "ann-')
        await saved(page, me)

        await page.reload()
        await browser.started(page)
        assert await editor_text(page, QUERY_EDITOR) == me
        assert await headers_text(page) == headers

        # The newcomer's case: an edited query, run, then a reload.
        await run(page, mine, "Mine")
        await wait_for_response(page, '"name": "Ann"')
        await saved(page, mine)
        await page.reload()
        await browser.started(page)
        assert await tab_titles(page) == []  # one tab, not a second "Mine"
        assert await editor_text(page, QUERY_EDITOR) == mine
        assert await headers_text(page) == headers
        await page.locator(".graphiql-execute-button").click()
        shown = await wait_for_response(page, '"name": "Ann"')
        assert '"errors"' not in shown

        # A second browser tab shows the same tab, signed in.
        second = await browser.open()
        assert await tab_titles(second) == []
        assert await headers_text(second) == headers
        await run(second, me, "Me")
        await wait_for_response(second, '"email": "ann-')

        # A new GraphiQL tab starts with the headers too.
        await page.get_by_role("button", name="Add tab").click()
        await page.wait_for_function(
            "() => document.querySelectorAll('.graphiql-tab-button').length === 2"
        )
        assert await headers_text(page) == headers
        await run(page, me, "Me")
        shown = await wait_for_response(page, '"email": "ann-')
        assert '"errors"' not in shown


@pytest.mark.parametrize(
    ("headers", "code", "message"),
    [
        (
            "",
            "UNAUTHENTICATED",
            'Sign in first: send {"authorization": "Bearer <token>"} in connection_init.',
        ),
        (
            '{"Authorization": "Bearer sbs_not-a-token"}',
            "TOKEN_INVALID",
            TOKEN_REFUSED,
        ),
    ],
    ids=["no token", "bad token"],
)
async def test_a_subscription_not_signed_in_fails_at_once(
    server: StudioServer, headers: str, code: str, message: str
) -> None:
    """The server closes the socket with 4403 and `CODE: message`; GraphiQL shows it at
    once as a GraphQL error, without opening the socket again."""
    async with browsing(server.base_url) as browser:
        page = await browser.open()
        await type_into(page, HEADERS_EDITOR, headers)
        started = time.monotonic()
        await run(page, 'subscription Feed { projectEvents(projectId: "1") { kind } }', "Feed")
        await page.wait_for_function(
            "([editor, code]) => document.querySelector(editor)?.CodeMirror.getValue()"
            ".includes(code)",
            arg=[RESPONSE, code],
            timeout=5_000,
        )
        assert time.monotonic() - started < 2.0
        shown = json.loads(await editor_text(page, RESPONSE))
        assert shown == {"errors": [{"message": message, "extensions": {"code": code}}]}
        # Ended: the button runs again, and no socket is opened after the first.
        await page.locator(".graphiql-execute-button[aria-label^='Execute']").wait_for()
        await page.wait_for_timeout(1_500)
        assert len(browser.sockets) == 1, browser.sockets


async def test_graphiql_fits_and_its_menus_and_panes_keep_to_the_policy(
    server: StudioServer,
) -> None:
    """At 1400 px the welcome text fits its editor; opening the operation menu, the
    docs, the explorer and the settings violates no Content-Security-Policy."""
    async with browsing(server.base_url, viewport={"width": 1400, "height": 900}) as browser:
        page = await browser.open()
        welcome = await editor_text(page, QUERY_EDITOR)
        assert max(len(line) for line in welcome.splitlines()) <= 60
        scroller = f"{QUERY_EDITOR} .CodeMirror-scroll"
        overflow = await page.evaluate(
            "(s) => { const e = document.querySelector(s); return e.scrollWidth - e.clientWidth; }",
            scroller,
        )
        assert overflow <= 0

        # Two operations: the run button opens a menu to choose one.
        await type_into(page, QUERY_EDITOR, "query One { __typename }\nquery Two { __typename }")
        await page.locator(".graphiql-execute-button[aria-haspopup='menu']").click()
        await page.get_by_role("menuitem", name="Two").click()
        await wait_for_response(page, '"__typename": "Query"')
        await page.get_by_label("Show Documentation Explorer").click()
        await page.locator(".graphiql-doc-explorer").wait_for()
        await page.get_by_label("Show GraphiQL Explorer").click()
        await page.locator(".docExplorerWrap").wait_for()
        await page.get_by_label("Show History").click()
        await page.locator(".graphiql-history").wait_for()
        await page.get_by_label("Open settings dialog").click()
        await page.get_by_role("dialog").wait_for()
        await page.keyboard.press("Escape")
        await page.get_by_label("Open short keys dialog").click()
        await page.get_by_role("dialog").wait_for()
        await page.keyboard.press("Escape")
        await page.wait_for_timeout(500)  # a violation is reported as an event, later
