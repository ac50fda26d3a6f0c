"""Limits at the HTTP edge: a cap on request bodies (refused before they are read into
memory) and request rates per client (refused with 429 before the request is read)."""

from __future__ import annotations

import time
from collections import OrderedDict

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.graphql import bearer_token
from api.state import AppState
from services import accounts
from services.accounts import hash_token
from services.database import Database
from services.errors import RateLimited


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
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
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
            if scope["type"] == "websocket":
                # Closing before accepting answers the handshake with 403.
                await send({"type": "websocket.close", "code": 1008, "reason": error.message})
            else:
                await rate_limited_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _client(self, scope: Scope, rate: str, state: AppState | None) -> str:
        if rate == "graphql" and scope["type"] == "http" and state is not None:
            headers = Headers(scope=scope)
            token = bearer_token(headers.get("authorization"))
            if token is not None:
                user_id = await self._owners.owner(state.db, token)
                if user_id is not None:
                    return f"user:{user_id}"
        return f"address:{client_address(scope)}"
