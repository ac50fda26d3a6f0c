"""`GET|HEAD /media/{key}`: stored images, video and audio, by signed, expiring URL.

After the link's signature and expiry check, a file of local storage is sent
by Starlette's `FileResponse`, which implements byte ranges (several at once
as multipart/byteranges), `If-Range`, `ETag` and `Last-Modified` (RFC 9110
sections 14 and 13.1.5); conditional GETs (`If-None-Match`,
`If-Modified-Since`, sections 13.1.2 and 13.1.3) are answered 304 here. A
store that serves its objects itself is redirected to.

A `Range` header is used only when it is a well-formed `bytes` range set
(RFC 9110 section 14.1.1). An origin server MUST ignore one with a unit it does
not understand (section 14.2), and MAY ignore or reject an invalid one: both are
ignored here, so such a request gets the whole file (200), as a server without
range support would send, rather than an error. A well-formed set none of
whose ranges is satisfiable is 416 (section 15.5.17).

Only what is provably an image, video or audio by its first bytes is served,
typed by those bytes, with `X-Content-Type-Options: nosniff` and a
Content-Security-Policy that forbids everything (a file opened as a page can
run nothing). `MediaHeaders` puts those two on every answer under `/media`,
whoever gives it (a 405, a 413, a 429 from the rate limit). Every other
outcome is the same 404, so a link reveals nothing.
"""

from __future__ import annotations

import re
import time
from email.utils import parsedate_to_datetime

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.state import app_state
from services.decoding import decimal
from services.media.storage import MAX_EXPIRES, LocalFile, Redirect, StorageError

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
MAX_AGE = 3600
"""Seconds a browser may keep a file it was sent, at most: never past its link's expiry,
so a short link handed out through a share is not served from a cache after it ends."""
SERVED_KINDS = ("image/", "video/", "audio/")
MAX_RANGES = 100
"""More ranges than this in one request are ignored (RFC 9110 section 14.2 allows it)."""
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_BEYOND_ANY_FILE = 10**19
"""What a longer position stands for: past any file, so its meaning is kept."""


def _not_found() -> Response:
    return Response("Not found, or the link has expired.", status_code=404, media_type="text/plain")


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 section 8.8.3.2) of an If-None-Match list with our ETag."""
    if if_none_match.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in if_none_match.split(","))


def not_modified(request_headers: Headers, response_headers: Headers) -> bool:
    """Whether a GET or HEAD with these headers is answered 304 (RFC 9110 section 13.2.2:
    If-None-Match decides when present; otherwise If-Modified-Since)."""
    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        return _etag_matches(if_none_match, response_headers["etag"])
    if_modified_since = request_headers.get("if-modified-since")
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
        modified = parsedate_to_datetime(response_headers["last-modified"])
        return since.tzinfo is not None and modified <= since
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an invalid date is ignored (section 13.1.3)


def _position(digits: str) -> int:
    return _BEYOND_ANY_FILE if len(digits) > len(str(_BEYOND_ANY_FILE)) else int(digits)


def usable_range(value: str, size: int) -> str | None:
    """The `Range` header to act on for a file of `size` bytes, in a form Starlette's
    FileResponse reads the same way; None when the header is to be ignored.

    Ignored (RFC 9110 section 14.2): a unit other than `bytes` (compared without
    regard to case, section 14.1), and an invalid ranges-specifier (section
    14.1.1: no range, a position that is not ASCII digits, a last-pos below its
    first-pos, more than MAX_RANGES ranges). Ranges that cannot be satisfied are
    dropped from a set that has another (section 14.1.1: the set is satisfiable
    if any is); when none is, the result asks for what Starlette answers 416.
    """
    unit, equals, range_set = value.partition("=")
    if not equals or unit.strip(" \t").lower() != "bytes":
        return None
    # A list (section 5.6.1): optional whitespace around commas, empty elements skipped.
    specs = [spec.strip(" \t") for spec in range_set.split(",")]
    specs = [spec for spec in specs if spec]
    if not specs or len(specs) > MAX_RANGES:
        return None
    satisfiable: list[str] = []
    for spec in specs:
        match = _RANGE_SPEC.fullmatch(spec)
        if match is None or not spec.strip("-"):
            return None
        first_text, last_text = match.groups()
        if not first_text:  # suffix-range: the last N bytes
            length = _position(last_text)
            if length > 0 and size > 0:
                satisfiable.append(f"{max(size - length, 0)}-{size - 1}")
            continue
        first = _position(first_text)
        last = _position(last_text) if last_text else None
        if last is not None and last < first:
            return None
        if first < size:
            satisfiable.append(f"{first}-{size - 1 if last is None else min(last, size - 1)}")
    return "bytes=" + ",".join(satisfiable) if satisfiable else f"bytes={size}-"


class _Ranged(Response):
    """Sends `response` as if the request's Range header were `range_value` (None: absent)."""

    def __init__(self, response: Response, range_value: str | None) -> None:
        # Not super().__init__: that would render a body; the wrapped response sends its own.
        self.response = response
        self.range_value = range_value
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"range"]
        if self.range_value is not None:
            headers.append((b"range", self.range_value.encode("latin-1")))
        await self.response({**scope, "headers": headers}, receive, send)


def _file_response(
    request: Request, found: LocalFile, media_type: str, *, link_expires: int
) -> Response:
    max_age = max(0, min(MAX_AGE, link_expires - int(time.time())))
    response = FileResponse(
        found.path,
        media_type=media_type,
        stat_result=found.stat,
        headers={"Cache-Control": f"private, max-age={max_age}"},
    )
    if not_modified(request.headers, response.headers):
        kept = ("etag", "last-modified", "cache-control")
        return Response(status_code=304, headers={name: response.headers[name] for name in kept})
    requested = request.headers.get("range")
    if requested is None:
        return response
    return _Ranged(response, usable_range(requested, found.stat.st_size))


class MediaHeaders:
    """ASGI middleware: every HTTP answer under `/media` carries SECURITY_HEADERS.

    Outermost, so answers given before the route runs (405 for another method,
    429 from the rate limit, 408/413 for a body) have them too.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/media" or path.startswith("/media/")):
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name in SECURITY_HEADERS}
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.decode("latin-1").lower() not in names
                ]
                headers += [(n.lower().encode(), v.encode()) for n, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured)


async def _answer(request: Request) -> Response:
    state = app_state(request)
    key = request.path_params["key"]
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    links = state.media_links
    if not links.verify(key, expires, signature):
        return _not_found()
    try:
        found = await state.storage.locate(key, expires_in=links.bucket)
    except StorageError:
        return _not_found()
    if isinstance(found, Redirect):
        return RedirectResponse(found.url, status_code=307)
    if found is None or found.media_type is None or not found.media_type.startswith(SERVED_KINDS):
        return _not_found()
    link_expires = decimal(expires, high=MAX_EXPIRES)  # verified above: a number
    assert link_expires is not None
    return _file_response(request, found, found.media_type, link_expires=link_expires)


async def media(request: Request) -> Response:
    """The endpoint of `/media/{key:path}` (GET and HEAD); serve it behind MediaHeaders."""
    return await _answer(request)
