"""The web editor's page: web/index.html at `/` and at every deep link into the app.

The editor is one HTML page whose ES modules (web/static/app/) import the vendored
libraries by bare specifier (`preact`, `graphql-ws`...), resolved by the page's inline
import map. The shared Content-Security-Policy (`api.page_headers`) allows no inline
script, so the page's policy adds exactly that import map's SHA-256 to `script-src`
(CSP Level 3 §8.3, https://www.w3.org/TR/CSP3/#match-element-to-source-list: a hash
source allows an inline script whose content has that digest; an import map is such a
script, https://html.spec.whatwg.org/multipage/webappapis.html#import-maps).

`EditorPage` reads the page once, when the app is made, and refuses to start
(EditorPageError) when the page has not exactly one import map, or when the map names
anything but a vendored file (web/vendor/manifest.json), so a page that would load a
missing library, or another origin's, never ships.

Deep links: the router in web/static/app/router.js owns the paths under APP_SECTIONS
(`/projects/<id>/shots/<id>`, `/library/assets/<id>`...). Every GET or HEAD of `/`, of a
section or of a path under one answers the same page, which then shows the right view
(or its own "not found"); any other path stays a plain 404.

Answers carry the page headers, an ETag (a digest of the page) with 304 to a matching
If-None-Match, and are gzip-compressed (by `starlette.middleware.gzip.GZipMiddleware`,
see `static_app`) when the browser accepts it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.page_headers import page_headers
from api.vendor import VENDOR_DIR, read_manifest

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGE = WEB_DIR / "index.html"
VENDOR_URL = "/static/vendor/"

APP_SECTIONS = (
    "login",
    "signup",
    "invitations",
    "team",
    "projects",
    "library",
    "collections",
    "shared",
    "constellation",
)
"""The first segment of every path the editor's router owns (web/static/app/routes.js)."""

GZIP_MINIMUM_BYTES = 512
"""Smaller answers are sent as they are: a gzip header and trailer cost about 20 bytes."""

_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.DOTALL)


class EditorPageError(RuntimeError):
    """web/index.html cannot be served: no import map, two, or one naming a file we do not have."""


def import_map_hash(page: str, vendored: Mapping[str, object]) -> str:
    """The CSP hash source (`'sha256-<base64>'`) of `page`'s one import map.

    Raises EditorPageError when the page has no import map or several, when the map is
    not JSON of the shape `{"imports": {specifier: url}}`, or when a URL is not
    `/static/vendor/<a path in vendored>`.
    """
    found = _IMPORT_MAP.findall(page)
    if len(found) != 1:
        raise EditorPageError(f"web/index.html must hold one import map, not {len(found)}")
    content: str = found[0]
    try:
        imports = json.loads(content)["imports"]
    except (ValueError, KeyError, TypeError) as error:
        raise EditorPageError(f"web/index.html: the import map is malformed ({error})") from error
    if not isinstance(imports, dict) or not imports:
        raise EditorPageError("web/index.html: the import map has no imports")
    for specifier, url in imports.items():
        path = url.removeprefix(VENDOR_URL) if isinstance(url, str) else None
        if path is None or not url.startswith(VENDOR_URL) or path not in vendored:
            raise EditorPageError(
                f"web/index.html: the import map sends {specifier!r} to {url!r}, "
                "which is not a vendored file (web/vendor/manifest.json)"
            )
    digest = hashlib.sha256(content.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


class EditorPage:
    """The ASGI app answering the editor's page (GET and HEAD; 405 otherwise).

    Reads `page` once; EditorPageError as `import_map_hash`, OSError if unreadable.
    """

    def __init__(self, *, page: Path = PAGE, vendor_dir: Path = VENDOR_DIR) -> None:
        self.body = page.read_bytes()
        script_hash = import_map_hash(self.body.decode(), read_manifest(vendor_dir).paths())
        # Weak: gzip sends other bytes for the same page (RFC 9110 §8.8.1).
        self.etag = f'W/"{hashlib.sha256(self.body).hexdigest()[:32]}"'
        self.headers = {
            **page_headers({"script-src": (script_hash,)}),
            "ETag": self.etag,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            answer: Response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"Allow": "GET, HEAD"}
            )
        elif self.etag.removeprefix("W/") in _etags(Headers(scope=scope).get("if-none-match", "")):
            answer = Response(status_code=304, headers=self.headers)
        else:
            answer = Response(self.body, media_type="text/html", headers=self.headers)
        await answer(scope, receive, send)


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match value (RFC 9110 §13.1.2), weak ones as strong."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def compressed(app: ASGIApp) -> ASGIApp:
    """`app` with gzip for browsers that accept it (`Accept-Encoding: gzip`)."""
    return GZipMiddleware(app, minimum_size=GZIP_MINIMUM_BYTES)


def editor_routes(page: EditorPage) -> list[BaseRoute]:
    """`/`, `/<section>` and `/<section>/<anything>` for each of APP_SECTIONS, all `page`."""
    app = compressed(page)
    routes: list[BaseRoute] = [Route("/", app, methods=["GET", "HEAD"])]
    for section in APP_SECTIONS:
        routes.append(Route(f"/{section}", app, methods=["GET", "HEAD"]))
        routes.append(Route(f"/{section}/{{rest:path}}", app, methods=["GET", "HEAD"]))
    return routes
