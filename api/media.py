"""`GET|HEAD /media/{key}`: stored images, video and audio, by signed, expiring URL.

After the link's signature and expiry check, a file of local storage is sent
by Starlette's `FileResponse`, which implements byte ranges (several at once
as multipart/byteranges), `If-Range`, `ETag` and `Last-Modified` (RFC 9110
sections 14 and 13.1.5); conditional GETs (`If-None-Match`,
`If-Modified-Since`, sections 13.1.2 and 13.1.3) are answered 304 here. A
store that serves its objects itself is redirected to.

Only what is provably an image, video or audio by its first bytes is served,
typed by those bytes, with `X-Content-Type-Options: nosniff` and a
Content-Security-Policy that forbids everything (a file opened as a page can
run nothing). Every other outcome is the same 404, so a link reveals nothing.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.types import Message, Receive, Scope, Send

from api.state import app_state
from services.storage import LocalFile, Redirect, StorageError

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}
CACHE_CONTROL = "private, max-age=3600"
SERVED_KINDS = ("image/", "video/", "audio/")


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


def _file_response(request: Request, found: LocalFile, media_type: str) -> Response:
    response = FileResponse(
        found.path,
        media_type=media_type,
        stat_result=found.stat,
        headers={"Cache-Control": CACHE_CONTROL},
    )
    if not_modified(request.headers, response.headers):
        kept = ("etag", "last-modified", "cache-control")
        return Response(status_code=304, headers={name: response.headers[name] for name in kept})
    return response


class _Secured(Response):
    """Sends a response with the security headers on it, whatever its status (a 416
    or 400 from FileResponse's own range handling included)."""

    def __init__(self, response: Response) -> None:
        # Not super().__init__: that would render a body; the wrapped response sends its own.
        self.response = response
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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

        await self.response(scope, receive, secured)


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
    return _file_response(request, found, found.media_type)


async def media(request: Request) -> Response:
    """The endpoint of `/media/{key:path}` (GET and HEAD)."""
    return _Secured(await _answer(request))
