"""Drive the web editor in real Chromium against a real `studio serve`.

The browser is Debian's `chromium` through Playwright (whose own browser download
cannot work here); `./dev test` installs it as root. Without it the browser tests
skip, and fail under CI=true.

    async with editor_browser(server.base_url) as chrome:
        person = sign_up(server.base_url, "Ada")            # over HTTP, the public API
        page = await chrome.open(person, "/projects")        # signed in, app started
        await page.get_by_role("button", name="New project").click()
        await screenshot(page, "projects-empty")
        await assert_accessible(page)

Every page may reach the server's own origin and nothing else: other requests are
aborted and recorded. On leaving `editor_browser` the test fails if a page reached
another origin, logged an error, threw, or violated its Content-Security-Policy; if
the test failed, every open page is saved as a screenshot first
(`.screenshots/failed-<test>-<n>.png`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright

from api.bench.editor import CHROMIUM_ARGS as CHROMIUM_ARGS  # tests import it from here
from api.bench.editor import chromium_executable
from api.vendor import VENDOR_DIR
from tests.conftest import IN_CI
from tests.servers import StudioServer, studio_env

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / ".screenshots"
"""Where the browser tests save what each page looked like (not committed)."""
AXE = VENDOR_DIR / "axe-core@4.14.1" / "axe.min.js"
PASSWORD = "correct horse battery"
START_TIMEOUT = 90.0
"""Seconds a browser test's server may take to start."""
RECORD_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.recordViolation(`${event.effectiveDirective}: ${event.blockedURI}`);
});
"""
"""Run before the page's own scripts (Playwright's init script, which no policy blocks)."""

SERIOUS = ("serious", "critical")
"""The axe-core impacts that fail a test (https://github.com/dequelabs/axe-core/blob/develop/doc/API.md#results-object)."""


def chromium() -> str:
    """Debian's Chromium; skip (fail under CI=true) when it is not installed."""
    found = chromium_executable()
    if found is None:
        message = "Chromium is not installed (./dev test installs Debian's chromium as root)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextmanager
def editor_server(
    tmp_path: Path, name: str, *, port: int | None = None, **env: str
) -> Iterator[StudioServer]:
    """A `studio serve` on SQLite with the built-in emulator, in `tmp_path`; `env` adds
    settings. With `port` it keeps that port across restarts (so open pages reconnect)."""
    environment = studio_env(STUDIO_DATA_DIR=str(tmp_path / "data"), **env)
    server = StudioServer(env=environment, cwd=tmp_path, name=name, port=port)
    # Longer than the usual 30 s: a browser test shares the machine with Chromium.
    server.start(timeout=START_TIMEOUT)
    try:
        yield server
    finally:
        server.stop()


# -- people, over the public API ---------------------------------------------------------------


@dataclass
class Person:
    """A signed-up user: their bearer token, global user ID, email, name and personal team."""

    token: str
    user_id: str
    email: str
    name: str
    team_id: str


def graphql(
    base: str, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
) -> dict[str, Any]:
    """POST one operation to `base`/graphql; its `data`. AssertionError on any `errors`."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{base}/graphql",
        json={"query": query, "variables": variables or {}},
        headers=headers,
        timeout=30,
    )
    body = response.json()
    assert not body.get("errors"), body["errors"]
    data: dict[str, Any] = body["data"]
    return data


def mutation(base: str, query: str, variables: dict[str, Any], *, token: str) -> dict[str, Any]:
    """A one-field mutation's payload; AssertionError if it has `userErrors`."""
    payload: dict[str, Any] = next(iter(graphql(base, query, variables, token=token).values()))
    assert not payload.get("userErrors"), payload["userErrors"]
    return payload


def sign_up(base: str, name: str) -> Person:
    """A new user (unique email) signed up through `signUp`."""
    email = f"{name.lower().replace(' ', '.')}.{secrets.token_hex(4)}@example.com"
    payload = next(
        iter(
            graphql(
                base,
                "mutation($input: SignUpInput!) { signUp(input: $input) {"
                " token user { id teams { id isPersonal } } userErrors { code message } } }",
                {"input": {"email": email, "password": PASSWORD, "name": name}},
            ).values()
        )
    )
    assert not payload["userErrors"], payload["userErrors"]
    teams = payload["user"]["teams"]
    personal = next(team["id"] for team in teams if team["isPersonal"])
    return Person(payload["token"], payload["user"]["id"], email, name, personal)


# -- the browser ---------------------------------------------------------------------------------


class Chrome:
    """One Chromium; each `open` is a page in a context of its own (one per person).

    `outside`, `problems`, `violations` and `sockets` collect, across every page: requests
    to other origins (aborted), console errors and uncaught exceptions, policy
    violations ("directive: blocked"), and the WebSocket URLs pages opened.
    """

    def __init__(self, browser: Browser, base: str) -> None:
        self.browser, self.base = browser, base
        self.outside: list[str] = []
        self.problems: list[str] = []
        self.violations: list[str] = []
        self.sockets: list[str] = []
        self.pages: list[Page] = []
        self.allowed_problems: list[re.Pattern[str]] = []

    async def context(self, person: Person | None = None, **options: Any) -> BrowserContext:
        """A fresh context (its own storage), signed in as `person` if given."""
        options.setdefault("viewport", {"width": 1280, "height": 860})
        context = await self.browser.new_context(**options)
        base = self.base

        async def this_origin_only(route: Route) -> None:
            if route.request.url.startswith(f"{base}/"):
                await route.continue_()
            else:
                self.outside.append(route.request.url)
                await route.abort("internetdisconnected")

        await context.route("**/*", this_origin_only)
        await context.expose_function("recordViolation", lambda v: self.violations.append(v))
        await context.add_init_script(RECORD_VIOLATIONS)
        if person is not None:
            session = {
                "token": person.token,
                "user": {"id": person.user_id, "name": person.name, "email": person.email},
            }
            # In a try: on about:blank (Back past the first page) storage throws.
            await context.add_init_script(
                "try { if (!sessionStorage.getItem('studio.test.seeded')) {"
                f" localStorage.setItem('studio.session', {json.dumps(json.dumps(session))});"
                f" localStorage.setItem('studio.team', {json.dumps(json.dumps(person.team_id))});"
                " sessionStorage.setItem('studio.test.seeded', '1'); } } catch (e) {}"
            )
        return context

    def watch(self, page: Page) -> Page:
        """Records `page`'s errors and sockets (done by `open` and `new_page`)."""
        page.on("console", lambda m: self._problem(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: self._problem(str(error)))
        page.on("websocket", lambda socket: self.sockets.append(socket.url))
        self.pages.append(page)
        return page

    def _problem(self, text: str) -> None:
        if not any(pattern.search(text) for pattern in self.allowed_problems):
            self.problems.append(text)

    def allow_problem(self, pattern: str) -> None:
        """Console errors matching `pattern` are expected (a server stopped on purpose)."""
        self.allowed_problems.append(re.compile(pattern))

    async def new_page(self, context: BrowserContext, path: str = "/") -> Page:
        """A page of `context` at `path`, once the editor has drawn it."""
        page = self.watch(await context.new_page())
        await page.goto(f"{self.base}{path}")
        await started(page)
        return page

    async def open(self, person: Person | None = None, path: str = "/", **options: Any) -> Page:
        """A page in a new context (signed in as `person` if given) at `path`, drawn."""
        return await self.new_page(await self.context(person, **options), path)


async def started(page: Page) -> None:
    """Waits until the editor replaced its loading text with a page."""
    await page.locator("#main:not(.boot)").wait_for(timeout=20_000)
    # A function, not an expression: Playwright polls an expression with eval, which the
    # page's policy refuses.
    await page.wait_for_function("() => !document.querySelector('main.boot')", timeout=20_000)


@asynccontextmanager
async def editor_browser(base: str, name: str = "test") -> AsyncIterator[Chrome]:
    """Chromium that may reach `base` only (see the module's docstring)."""
    executable = chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        chrome = Chrome(browser, base)
        try:
            yield chrome
        except BaseException:
            await _save_failures(chrome, name)
            raise
        finally:
            await browser.close()
    assert chrome.outside == [], f"a page tried to reach other origins: {chrome.outside}"
    assert chrome.violations == [], f"a page's policy was violated: {chrome.violations}"
    assert chrome.problems == [], f"the browser reported errors: {chrome.problems}"


async def _save_failures(chrome: Chrome, name: str) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", name).split(" ")[0]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", test)[-120:]
    for number, page in enumerate(chrome.pages):
        if not page.is_closed():
            # A page that cannot be drawn is no reason to hide the failure.
            with suppress(Exception):
                await screenshot(page, f"failed-{slug}-{number}")


async def screenshot(page: Page, name: str) -> Path:
    """Saves `page` as .screenshots/<name>.png; returns the path."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def assert_accessible(page: Page, *, exclude: tuple[str, ...] = ()) -> None:
    """axe-core (vendored) finds no serious or critical violation on `page` as it is now.

    `exclude`: CSS selectors of regions to leave out (third-party canvases). The script is
    evaluated through the debugging protocol, which the page's policy does not govern.
    """
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    results = await page.evaluate(
        "(exclude) => axe.run({exclude: exclude.map((s) => [s])}, {resultTypes: ['violations']})",
        list(exclude),
    )
    serious = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(node["target"][0] for node in violation["nodes"][:5])
        for violation in results["violations"]
        if violation["impact"] in SERIOUS
    ]
    assert serious == [], "accessibility violations:\n" + "\n".join(serious)
