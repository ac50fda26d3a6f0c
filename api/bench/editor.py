"""`studio bench`: the web editor's first load, in headless Chromium.

Starts a real `studio serve` (SQLite, built-in emulator) and Debian's Chromium
through Playwright, then, in a fresh browser context each time (an empty cache):

- the log-in page (`/login`, what a new visitor loads first): the bytes transferred
  (the sum of every response's `transferSize`, headers included, as the Resource
  Timing API reports it: https://www.w3.org/TR/resource-timing/#dom-performanceresourcetiming-transfersize),
  the number of requests, and the time from navigation start to a usable page (the
  "Log in" button shown and enabled);
- a signed-in person's projects (`/projects`, 20 projects): time to the list shown;
- the same log-in page again in the same context (a warm cache: revalidations only).

The floor beside each time is the page's own HTML arriving (`responseEnd` of the
navigation): nothing can be usable before it, so `usable / floor` is what the
scripts, styles and first queries add. Medians of ROUNDS runs. Prints figures;
asserts nothing (the budget of 300 KB is checked by tests/test_web_shell.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx

from api.bench.processes import studio_process
from api.environment import studio_env

ROUNDS = 5
PROJECTS = 20
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Headless Chromium as root on a machine with no internet (STACK-NOTES)."""

_TRANSFERRED = """() => performance.getEntriesByType('navigation')
  .concat(performance.getEntriesByType('resource'))
  .reduce((sum, entry) => sum + entry.transferSize, 0)"""
_REQUESTS = "() => 1 + performance.getEntriesByType('resource').length"
_FLOOR = "() => performance.getEntriesByType('navigation')[0].responseEnd"


def chromium_executable() -> str | None:
    """Debian's Chromium, or None when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium", path="/usr/bin:/usr/lib/chromium")
    return found if found and os.access(found, os.X_OK) else None


def _person(base: str) -> tuple[str, dict[str, Any]]:
    """Signs a person up and makes PROJECTS projects; (token, user)."""

    def call(query: str, variables: dict[str, Any], token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = httpx.post(
            f"{base}/graphql", json={"query": query, "variables": variables}, headers=headers
        ).json()
        if body.get("errors"):
            raise RuntimeError(body["errors"][0]["message"])
        return next(iter(body["data"].values()))

    signed = call(
        "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id name email } } }",
        {"i": {"email": "bench@example.com", "password": "bench password", "name": "Bench"}},
    )
    for n in range(PROJECTS):
        call(
            "mutation($i: CreateProjectInput!) { createProject(input: $i) { project { id } } }",
            {"i": {"title": f"Project {n + 1}"}},
            signed["token"],
        )
    return signed["token"], signed["user"]


def _median(values: list[float]) -> float:
    return statistics.median(values)


async def _measure(base: str, executable: str, token: str, user: dict[str, Any]) -> list[str]:
    from playwright.async_api import async_playwright

    cold: dict[str, list[float]] = {
        "bytes": [],
        "requests": [],
        "usable": [],
        "floor": [],
        "warm_bytes": [],
        "warm_usable": [],
        "projects": [],
        "projects_floor": [],
    }
    session = f'{{"token": "{token}", "user": {{"id": "{user["id"]}", "name": "Bench"}}}}'
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            for _ in range(ROUNDS):
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(f"{base}/login", wait_until="commit")
                await page.get_by_role("button", name="Log in").wait_for()
                cold["usable"].append(await page.evaluate("performance.now()"))
                cold["floor"].append(await page.evaluate(_FLOOR))
                cold["bytes"].append(await page.evaluate(_TRANSFERRED))
                cold["requests"].append(await page.evaluate(_REQUESTS))
                await page.goto(f"{base}/login", wait_until="commit")
                await page.get_by_role("button", name="Log in").wait_for()
                cold["warm_usable"].append(await page.evaluate("performance.now()"))
                cold["warm_bytes"].append(await page.evaluate(_TRANSFERRED))
                await context.close()

                context = await browser.new_context()
                await context.add_init_script(
                    f"localStorage.setItem('studio.session', {session!r});"
                )
                page = await context.new_page()
                await page.goto(f"{base}/projects", wait_until="commit")
                await page.get_by_role("link", name=f"Project {PROJECTS}", exact=True).wait_for()
                cold["projects"].append(await page.evaluate("performance.now()"))
                cold["projects_floor"].append(await page.evaluate(_FLOOR))
                await context.close()
        finally:
            await browser.close()
    usable, floor = _median(cold["usable"]), _median(cold["floor"])
    projects, projects_floor = _median(cold["projects"]), _median(cold["projects_floor"])
    warm_kb = _median(cold["warm_bytes"]) / 1024
    return [
        f"  first load of /login (empty cache)             {_median(cold['bytes']) / 1024:7.1f} KB"
        f" in {_median(cold['requests']):.0f} requests   (budget 300 KB)",
        f"  time to a usable log-in page                   {usable:7.1f} ms"
        f"   floor (its HTML arrived) {floor:6.1f} ms   ratio {usable / floor:5.1f}x",
        f"  again with a warm cache                        {warm_kb:7.1f} KB"
        f", usable in {_median(cold['warm_usable']):.1f} ms",
        f"  signed in, /projects with {PROJECTS} projects shown      {projects:7.1f} ms"
        f"   floor {projects_floor:6.1f} ms   ratio {projects / projects_floor:5.1f}x"
        f"   (median of {ROUNDS})",
    ]


async def run_all() -> list[str]:
    """The figures as printable lines; one line saying "not measured" if Chromium is missing."""
    executable = chromium_executable()
    if executable is None:
        return ["  editor first load: not measured (Chromium is not installed)"]
    with tempfile.TemporaryDirectory() as directory:
        env = studio_env(STUDIO_DATA_DIR=str(Path(directory) / "data"))
        with studio_process("serve", env, Path(directory), "/readyz") as (base, _):
            token, user = _person(base)
            return await _measure(base, executable, token, user)
