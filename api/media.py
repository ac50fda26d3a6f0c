"""`GET /media/{key}`: stored images and videos, by signed, expiring URL, with Range support."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from api.state import app_state
from services.storage import StorageError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _not_found() -> Response:
    return Response("Not found, or the link has expired.", status_code=404, media_type="text/plain")


async def media(request: Request) -> Response:
    state = app_state(request)
    key = request.path_params["key"]
    expires = request.query_params.get("expires", "")
    signature = request.query_params.get("signature", "")
    if not state.media_links.verify(key, expires, signature):
        return _not_found()
    try:
        stored = await state.storage.stat(key)
    except StorageError:
        return _not_found()
    if stored is None:
        return _not_found()
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=3600",
        "Content-Type": stored.content_type,
    }
    start, end = 0, stored.size - 1
    status = 200
    requested = request.headers.get("range")
    if requested:
        match = _RANGE.match(requested.strip())
        if match is None or (not match[1] and not match[2]):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{stored.size}"})
        if match[1]:
            start = int(match[1])
            end = min(int(match[2]), stored.size - 1) if match[2] else stored.size - 1
        else:  # the last N bytes
            start = max(stored.size - int(match[2]), 0)
        if start >= stored.size or start > end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{stored.size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{stored.size}"
    headers["Content-Length"] = str(end - start + 1 if stored.size else 0)
    if request.method == "HEAD" or stored.size == 0:
        return Response(status_code=status, headers=headers)
    return StreamingResponse(
        state.storage.read(key, start, end), status_code=status, headers=headers
    )
