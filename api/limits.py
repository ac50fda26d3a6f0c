"""Limits at the HTTP edge, each refused before the request costs much.

`BodySizeLimit` refuses an oversized body (413) before it is read into memory.
`BodyReadTimeout` answers 408 and closes the connection when a body has not
arrived whole within a deadline counted from its request's headers: uvicorn
itself waits for a slow body forever, one byte a minute keeping a connection
and a task alive. (Slow *headers* never reach the app; the reverse proxy in
front times those out, see deploy/nginx.conf.) `CloseUnreadBodies` closes the
connection after any response given before its request's body was whole, so a
route that never reads the body (a health probe, a 413, a 429) cannot be kept
busy by a body trickled after it. `WebSocketCap` bounds open WebSockets, and
`UnsignedWebSocketCap` those of one address not yet signed in. `RateLimit`
refuses request rates per client with 429 before the request is read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict

from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.state import AppState
from schema.error_codes import BUSY, SERVICE_UNAVAILABLE
from services.accounts import accounts
from services.accounts.accounts import hash_token
from services.authorization import AuthorizationError, bearer_token
from services.database import Database
from services.errors import RateLimited

logger = logging.getLogger("studio.limits")


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
            {
                "errors": [
                    {
                        "message": f"The request body is over {self.max_bytes} bytes.",
                        "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                    }
                ]
            },
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
                {
                    "errors": [
                        {
                            "message": f"The request body took over {self.seconds:g} s.",
                            "extensions": {"code": "REQUEST_TIMEOUT"},
                        }
                    ]
                },
                status_code=408,
                headers={"Connection": "close"},
            )
            await response(scope, receive, watched)


class CloseUnreadBodies:
    """`Connection: close` on a response that starts before its request's body is whole.

    uvicorn keeps reading a request's body after the app has answered, without a
    deadline, before it serves the next request on the connection: a client
    declaring `Content-Length: 100000000` to any route that does not read it,
    then sending a byte every few seconds, held a connection (and a slot of
    MAX_CONNECTIONS) forever. With `Connection: close` uvicorn closes the
    connection once the response is sent (RFC 9112 section 9.6), so the rest of
    the body is never waited for. Requests without a body (no Content-Length
    or zero, no Transfer-Encoding) and those whose body was read whole keep
    their connection. Put it outermost, so every answer passes through it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        unread = "transfer-encoding" in headers or (
            length is not None and length.strip().strip("0") != ""
        )

        async def observed() -> Message:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False
            return message

        async def closing(message: Message) -> None:
            if message["type"] == "http.response.start" and unread:
                message = {
                    **message,
                    "headers": [
                        *(
                            (name, value)
                            for name, value in message.get("headers", [])
                            if name.lower() != b"connection"
                        ),
                        (b"connection", b"close"),
                    ],
                }
            await send(message)

        await self.app(scope, observed, closing)


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
        await refuse_handshake(
            scope, send, status=503, message="Too many open connections; try again later."
        )


async def refuse_handshake(scope: Scope, send: Send, *, status: int, message: str) -> None:
    """Answer a WebSocket handshake with `status` and a plain-text `message`, not accepting it."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = message.encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
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


def _acknowledges(message: Message) -> bool:
    """Whether a message the app sends is a `connection_ack` (both subprotocols name it so)."""
    text = message.get("text") if message["type"] == "websocket.send" else None
    if not isinstance(text, str) or "connection_ack" not in text:
        return False
    try:
        sent = json.loads(text)
    except ValueError:
        return False
    return isinstance(sent, dict) and sent.get("type") == "connection_ack"


class UnsignedWebSocketCap:
    """At most `max_per_address` WebSockets per address before they are signed in; 429 past it.

    A socket counts from its handshake until the server acknowledges its
    `connection_init` (sends `connection_ack`) or it closes. Unsigned sockets
    cost nothing to open and, with the init timeout, still hold a connection for
    seconds each: without this, a few addresses could fill MAX_CONNECTIONS and
    every HTTP request would get 503. Counted per server process.
    """

    def __init__(self, app: ASGIApp, *, max_per_address: int) -> None:
        self.app = app
        self.max_per_address = max_per_address
        self.unsigned: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        if self.unsigned.get(address, 0) >= self.max_per_address:
            await refuse_handshake(
                scope,
                send,
                status=429,
                message="Too many WebSockets from your address waiting to sign in; "
                "send connection_init on those first.",
            )
            return
        self.unsigned[address] = self.unsigned.get(address, 0) + 1
        counted = True

        def signed() -> None:
            nonlocal counted
            if counted:
                counted = False
                left = self.unsigned[address] - 1
                if left:
                    self.unsigned[address] = left
                else:
                    del self.unsigned[address]

        async def watched(message: Message) -> None:
            if counted and _acknowledges(message):
                signed()
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            signed()


def client_address(scope: Scope) -> str:
    """The client's address: the connecting one, or what a trusted proxy forwarded.

    Forwarded headers are applied (or not) before this runs, by uvicorn's
    ProxyHeadersMiddleware for TRUSTED_PROXIES only (see api/app.py).
    """
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def rate_limited_response(error: RateLimited) -> JSONResponse:
    """429 Too Many Requests with Retry-After (RFC 6585 §4, RFC 9110 §10.2.3), GraphQL-shaped."""
    extensions: dict[str, object] = {"code": error.code}
    headers = {}
    if error.retry_after is not None:
        extensions["retryAfter"] = error.retry_after
        headers["Retry-After"] = str(error.retry_after)
    return JSONResponse(
        {"errors": [{"message": error.message, "extensions": extensions}]},
        status_code=429,
        headers=headers,
    )


class _TokenOwners:
    """Whose a bearer token is, remembered briefly so a limit costs no query per request.

    Only the limit's key comes from here; each operation still checks its token
    itself, so a token revoked meanwhile is refused as before.
    """

    def __init__(self, *, ttl: float = 30.0, size: int = 10_000) -> None:
        self.ttl, self.size = ttl, size
        self._owners: OrderedDict[str, tuple[int | None, float]] = OrderedDict()

    async def owner(self, db: Database, token: str) -> int | None:
        key = hash_token(token)
        now = time.monotonic()
        known = self._owners.get(key)
        if known is not None and known[1] > now:
            return known[0]
        async with db.session() as session:
            actor = await accounts.authenticate(session, token)
        user_id = actor.user_id if actor is not None else None
        self._owners[key] = (user_id, now + self.ttl)
        self._owners.move_to_end(key)
        while len(self._owners) > self.size:
            self._owners.popitem(last=False)
        return user_id


class RateLimit:
    """Request rates per client, refused with 429 before the request is read.

    On /graphql a client is its user when the bearer token is valid, else its
    address; each HTTP request counts once, and so does opening a WebSocket (its
    operations are counted one by one in schema/limits.py). /media counts per
    address under its own, looser rate. Webhooks and health probes are not
    limited: webhooks are signed and verified, and probes come from the platform.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._owners = _TokenOwners()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        rate = "graphql" if path == "/graphql" else "media" if path.startswith("/media/") else None
        state: AppState | None = getattr(scope["app"].state, "studio", None)
        limits = state.resources.limits if state is not None else None
        if rate is None or limits is None or not limits.limited(rate):
            await self.app(scope, receive, send)
            return
        try:
            await limits.hit(rate, await self._client(scope, rate, state))
        except RateLimited as error:
            if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
                "extensions", {}
            ):
                # Without the denial-response extension, closing before accepting is
                # the only refusal: the server answers the handshake with 403.
                await send({"type": "websocket.close", "code": 1008, "reason": error.message})
            else:
                # A WebSocket handshake is refused as HTTP is (the ASGI
                # `websocket.http.response` extension): 429 with Retry-After and the
                # same body, not a 403 that reads as a refusal of the client itself.
                await rate_limited_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _client(self, scope: Scope, rate: str, state: AppState | None) -> str:
        if rate == "graphql" and scope["type"] == "http" and state is not None:
            headers = Headers(scope=scope)
            try:
                token = bearer_token(headers.getlist("authorization"))
            except AuthorizationError:
                # Malformed or several: counted by address; the view refuses it.
                token = None
            if token is not None:
                user_id = await self._owners.owner(state.db, token)
                if user_id is not None:
                    return f"user:{user_id}"
        limits = state.resources.limits if state is not None else None
        address = client_address(scope)
        return limits.address(address) if limits is not None else f"address:{address}"


class BusyDatabase:
    """ASGI middleware: an HTTP request that found no database connection free within
    DATABASE_POOL_TIMEOUT_SECONDS (the pool's `TimeoutError`, raised before any answer
    began: a token check, a webhook's write) is a 503 with `Retry-After: 1` and the
    GraphQL error shape (SERVICE_UNAVAILABLE), not a 500: nothing of it was done, and
    trying again is what to do (Replicate retries a webhook so answered). Errors inside
    a GraphQL operation are answered by the schema (`schema.app`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except PoolTimeout:
            if started:
                raise
            logger.warning("no database connection came free in time for %s: 503", scope["path"])
            body = {"errors": [{"message": BUSY, "extensions": {"code": SERVICE_UNAVAILABLE}}]}
            await JSONResponse(body, status_code=503, headers={"Retry-After": "1"})(
                scope, receive, send
            )
