"""Limits on request bodies: their size, and how long they may take to arrive.

`BodySizeLimit` refuses an oversized body (413) before it is read into memory.
`BodyReadTimeout` answers 408 and closes the connection when a body has not
arrived whole within a deadline counted from its request's headers: uvicorn
itself waits for a slow body forever, one byte a minute keeping a connection
and a task alive. (Slow *headers* never reach the app; the reverse proxy in
front times those out, see deploy/nginx.conf.)
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if (
            declared is not None
            and declared.isdigit()
            and (len(declared) > len(str(self.max_bytes)) or int(declared) > self.max_bytes)
        ):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"errors": [{"message": f"The request body is over {self.max_bytes} bytes."}]},
            status_code=413,
        )
        await response(scope, receive, send)


class BodyTimedOut(Exception):
    pass


class BodyReadTimeout:
    """408 (and the connection closed) for a body not whole within `seconds` of its headers.

    Only the body is timed: once its last chunk is in, `receive` waits for the
    client to disconnect (streaming responses listen for that) without limit.
    RFC 9110 section 15.5.9: a 408 tells the client the server closes the
    connection instead of waiting longer.
    """

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_complete = False
        response_started = False

        async def timed() -> Message:
            nonlocal body_complete
            if body_complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimedOut from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def watched(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, timed, watched)
        except BodyTimedOut:
            if response_started:
                raise  # too late for a 408; the server drops the connection
            response = JSONResponse(
                {"errors": [{"message": f"The request body took over {self.seconds:g} s."}]},
                status_code=408,
                headers={"Connection": "close"},
            )
            await response(scope, receive, watched)


class WebSocketCap:
    """At most `max_open` WebSockets at once; past that the handshake gets 503.

    uvicorn's `limit_concurrency` answers 503 to HTTP requests past its cap but
    lets every WebSocket upgrade through, and each one is a connection (and a
    subscription task) for as long as the client likes.
    """

    def __init__(self, app: ASGIApp, *, max_open: int) -> None:
        self.app = app
        self.max_open = max_open
        self.open = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        if self.open >= self.max_open:
            await self._refuse(scope, send)
            return
        self.open += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.open -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            body = b"Too many open connections; try again later."
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"text/plain"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"5"),
                    ],
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # a server without the extension answers 403 to a close before accept
            await send({"type": "websocket.close", "code": 1013})
