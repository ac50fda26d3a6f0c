"""Files the browser loads from us: our own scripts and styles, and the vendored libraries.

Served under `/static/`:

- `/static/vendor/<name>@<version>/<file>`: a file listed in web/vendor/manifest.json
  (see `api.vendor`) that is a regular file reached through no symbolic link, nothing
  else under that folder. A version's files never change, so they are cached for a
  year as `immutable` (RFC 8246).
- `/static/<file>`: our own files in web/static/, revalidated on every use
  (`no-cache` with ETag and Last-Modified), so a change shows at once.

Both are gzip-compressed for browsers that accept it (`api.editor.compressed`), and
both answer GET and HEAD with the right Content-Type (JavaScript as
`text/javascript`, RFC 9239), `X-Content-Type-Options: nosniff`, and 304 to a
matching If-None-Match or If-Modified-Since; anything else is a 404.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from api.editor import compressed
from api.vendor import VENDOR_DIR, read_manifest

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
VENDOR_PREFIX = "/static/vendor"
OWN_PREFIX = "/static"
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
}
"""Set explicitly: Python's `mimetypes` differs between versions and reads /etc/mime.types."""


class CachedFiles(StaticFiles):
    """Starlette's StaticFiles with our Content-Types and cache headers, and an allow-list.

    `only`, when given, holds the paths (relative to `directory`, with `/`) that may be
    served; every other path is a 404 even if the file exists, and so is one of them
    that is not a regular file or is reached through a symbolic link.
    """

    def __init__(
        self, *, directory: Path, cache_control: str, only: Collection[str] | None = None
    ) -> None:
        super().__init__(directory=directory, check_dir=False)
        self.cache_control = cache_control
        self.only = frozenset(only) if only is not None else None

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        """Starlette's, but with an allow-list only a regular file at exactly that path:
        Starlette follows a symbolic link that stays inside `directory`, and would
        serve whatever it points at."""
        if self.only is None:
            return super().lookup_path(path)
        full_path = Path(self.directory or ".").resolve() / path
        try:
            stat_result = full_path.lstat()
        except OSError:  # not there, a name too long, a loop of links...
            return "", None
        if not stat.S_ISREG(stat_result.st_mode) or full_path.resolve() != full_path:
            return "", None
        return str(full_path), stat_result

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] not in ("GET", "HEAD"):
            raise HTTPException(status_code=405, headers={"Allow": "GET, HEAD"})
        if self.only is not None and path.replace(os.sep, "/") not in self.only:
            raise HTTPException(status_code=404)
        response = await super().get_response(path, scope)
        response.headers["Cache-Control"] = self.cache_control
        response.headers["X-Content-Type-Options"] = "nosniff"
        content_type = CONTENT_TYPES.get(Path(path).suffix.lower())
        if content_type is not None and response.status_code in (200, 206):
            response.headers["Content-Type"] = content_type
        return response


def static_mounts(
    *, static_dir: Path = STATIC_DIR, vendor_dir: Path = VENDOR_DIR
) -> tuple[Mount, Mount]:
    """The two mounts, vendored files first (the more specific prefix).

    Reads the vendor manifest once; raises api.vendor.VendorError if it is missing
    or malformed.
    """
    vendored = read_manifest(vendor_dir).paths()
    return (
        Mount(
            VENDOR_PREFIX,
            app=compressed(
                CachedFiles(directory=vendor_dir, cache_control=IMMUTABLE, only=vendored)
            ),
        ),
        Mount(
            OWN_PREFIX,
            app=compressed(CachedFiles(directory=static_dir, cache_control=REVALIDATE)),
        ),
    )
