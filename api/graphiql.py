"""GraphiQL at GET /graphql, served whole by us: it loads nothing from another origin.

Strawberry's own page loads React and GraphiQL from a CDN and stays at
"Loading..." on a machine without internet. This page loads the same UMD builds
(GraphiQL 3, React 18, the explorer plugin) from `/static/vendor/` (see
`api.vendor` and `api.static`), and its start-up script from
`/static/graphiql.js` (web/static/), which uses graphql-ws's client (vendored too)
for subscriptions. Each vendored file carries an `integrity`
attribute from the manifest's SHA-256, so a browser refuses a file that differs.

The page is built once, when the app is (`graphiql_page`): a file it needs that is
not vendored, or not intact on disk, stops the server at start-up with a VendorError
naming it, rather than answering /graphql with a 500 or a page that never loads.
`studio vendor --check` reports a needed file packages.toml does not declare.

Its security headers are every HTML page's (`api.page_headers`: scripts, styles
and connections, HTTP and the WebSocket of subscriptions, to this origin only; no
inline script, no other origin, no frames, not framed by any page) with two
additions: inline styles (GraphiQL's menus and dialogs add them) and fonts as
`data:` URLs (GraphiQL's CSS embeds its fonts so).
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from html import escape
from pathlib import Path

from starlette.responses import HTMLResponse

from api.page_headers import page_headers
from api.static import OWN_PREFIX
from api.vendor import DECLARATION, MANIFEST, VENDOR_DIR, Manifest, VendorError, read_manifest

SCRIPTS = (
    ("react", "umd/react.production.min.js"),
    ("react-dom", "umd/react-dom.production.min.js"),
    ("graphiql", "graphiql.min.js"),
    ("@graphiql/plugin-explorer", "dist/index.umd.js"),
    ("graphql-ws", "umd/graphql-ws.min.js"),
)
"""Vendored scripts in the order they run: each UMD build reads the globals of those before."""
STYLES = (
    ("graphiql", "graphiql.min.css"),
    ("@graphiql/plugin-explorer", "dist/style.css"),
)
VENDORED_FILES = (*SCRIPTS, *STYLES)
"""Every (package, file) the page loads from web/vendor/."""
HEADERS = page_headers(
    {
        # Inline styles too: GraphiQL's menus and dialogs (Radix) add a <style>
        # element when they open (react-remove-scroll-bar), with values measured
        # then, so no hash can list it. Scripts stay 'self' only.
        "style-src": ("'unsafe-inline'",),
        # GraphiQL's CSS embeds its fonts as data: URLs.
        "font-src": ("data:",),
    }
)
"""The page's headers: every page's (`api.page_headers`), with the two allowances above."""


def _integrity(manifest: Manifest, name: str, file: str) -> str:
    package = manifest.package(name)
    digest = next(f.sha256 for f in package.files if f.path == file)
    return "sha256-" + base64.b64encode(bytes.fromhex(digest)).decode("ascii")


def page_html(manifest: Manifest) -> str:
    """The page, every URL in it a path on this origin; KeyError if a file was not vendored."""
    links = "\n".join(
        f'    <link rel="stylesheet" href="{escape(manifest.url_path(name, file))}"'
        f' integrity="{_integrity(manifest, name, file)}">'
        for name, file in STYLES
    )
    scripts = "\n".join(
        f'    <script src="{escape(manifest.url_path(name, file))}"'
        f' integrity="{_integrity(manifest, name, file)}"></script>'
        for name, file in SCRIPTS
    )
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Storyboard Studio · GraphiQL</title>
    <link rel="icon" href="data:,">
{links}
    <link rel="stylesheet" href="{OWN_PREFIX}/graphiql.css">
{scripts}
  </head>
  <body>
    <div id="graphiql">Loading...</div>
    <script src="{OWN_PREFIX}/graphiql.js"></script>
  </body>
</html>
"""


def graphiql_page(vendor_dir: Path = VENDOR_DIR) -> bytes:
    """The page as UTF-8, after verifying that every file it loads (VENDORED_FILES) is
    listed in the manifest and on disk as a regular file with its SHA-256.

    Raises VendorError naming each file that is not, and what to run.
    """
    manifest = read_manifest(vendor_dir)
    problems: list[str] = []
    for name, file in VENDORED_FILES:
        try:
            path = manifest.url_path(name, file, prefix="")
        except KeyError:
            problems.append(f"{name} {file} is not in {MANIFEST} (declare it in {DECLARATION})")
            continue
        if not _intact(vendor_dir / path.removeprefix("/"), manifest, name, file):
            problems.append(f"{path.removeprefix('/')} is missing or differs from {MANIFEST}")
    if problems:
        raise VendorError(
            f"GraphiQL (/graphql) cannot be served from {vendor_dir}: {'; '.join(problems)}. "
            "Run ./dev vendor, then ./dev vendor --check."
        )
    return page_html(manifest).encode()


def _intact(path: Path, manifest: Manifest, name: str, file: str) -> bool:
    listed = next(f for f in manifest.package(name).files if f.path == file)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        data = path.read_bytes()
    except OSError:
        return False
    return len(data) == listed.size and hashlib.sha256(data).hexdigest() == listed.sha256


def graphiql_response(page: bytes) -> HTMLResponse:
    """`page` (from graphiql_page) with its security headers."""
    return HTMLResponse(page, headers=HEADERS)
