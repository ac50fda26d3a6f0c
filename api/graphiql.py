"""GraphiQL at GET /graphql, served whole by us: it loads nothing from another origin.

Strawberry's own page loads React and GraphiQL from a CDN and stays at
"Loading..." on a machine without internet. This page loads the same UMD builds
(GraphiQL 3, React 18, the explorer plugin) from `/static/vendor/` (see
`api.vendor` and `api.static`), and its start-up script from
`/static/graphiql.js` (web/static/). Each vendored file carries an `integrity`
attribute from the manifest's SHA-256, so a browser refuses a file that differs.

The Content-Security-Policy allows scripts, styles and connections (HTTP and the
WebSocket of subscriptions) to this origin only, fonts and images also as
`data:` URLs (GraphiQL's CSS embeds its fonts so), and nothing else: no inline
script, no other origin, no frames.
"""

from __future__ import annotations

import base64
import functools
from html import escape

from starlette.responses import HTMLResponse

from api.static import OWN_PREFIX
from api.vendor import Manifest, read_manifest

SCRIPTS = (
    ("react", "umd/react.production.min.js"),
    ("react-dom", "umd/react-dom.production.min.js"),
    ("graphiql", "graphiql.min.js"),
    ("@graphiql/plugin-explorer", "dist/index.umd.js"),
)
"""Vendored scripts in the order they run: each UMD build reads the globals of those before."""
STYLES = (
    ("graphiql", "graphiql.min.css"),
    ("@graphiql/plugin-explorer", "dist/style.css"),
)
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        # 'self' covers ws: and wss: of this host too (CSP Level 3, §6.7.2.9).
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


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


@functools.cache
def _page() -> bytes:
    return page_html(read_manifest()).encode()


def graphiql_response() -> HTMLResponse:
    """The page with its security headers; the vendor manifest is read on first use."""
    return HTMLResponse(_page(), headers=HEADERS)
