"""The GraphQL endpoint: Strawberry's ASGI view with our context and bearer-token auth."""

from __future__ import annotations

from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.types.execution import ExecutionResult
from strawberry.types.unset import UnsetType

from api.state import app_state
from resolvers.context import Context, Resources
from services import accounts


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def build_context(resources: Resources, token: str | None) -> Context:
    """The context of one operation, signed in as the token's user (if it is valid)."""
    actor = None
    if token is not None:
        async with resources.db.session() as session:
            actor = await accounts.authenticate(session, token)
    return Context(resources=resources, actor=actor, token=token if actor else None)


def _is_subscription(request_data: GraphQLRequestData) -> bool:
    query = request_data.query
    if not query or "subscription" not in query:  # cheap: most requests stop here
        return False
    try:
        document = parse(query)
    except GraphQLError:
        return False  # execution reports the syntax error
    operation = get_operation_ast(document, request_data.operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


class StudioGraphQL(GraphQL[Context, None]):
    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        address = request.client.host if request.client else "unknown"  # after trusted proxies
        if isinstance(request, WebSocket):
            # Signed in at connection_init (on_ws_connect), not by headers.
            return Context(resources=app_state(request).resources, address=address)
        token = bearer_token(request.headers.get("authorization"))
        context = await build_context(app_state(request).resources, token)
        context.address = address
        return context

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """A query or mutation; a subscription sent without a streaming transport is refused."""
        if _is_subscription(request_data):
            raise HTTPException(
                400,
                "A subscription needs a stream: open a WebSocket to /graphql "
                "(graphql-transport-ws), or POST with `Accept: text/event-stream`.",
            )
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Accept a WebSocket only with a valid token in the connection_init payload."""
        params = context.connection_params or {}
        raw = params.get("authorization", params.get("Authorization"))
        token = bearer_token(raw) if isinstance(raw, str) else None
        if token is None:
            raise ConnectionRejectionError(
                {"message": 'Send {"authorization": "Bearer <token>"} in connection_init.'}
            )
        signed_in = await build_context(context.resources, token)
        if signed_in.actor is None:
            raise ConnectionRejectionError({"message": "That token is unknown or expired."})
        context.actor, context.token = signed_in.actor, signed_in.token
        return UnsetType()

    async def get_root_value(self, request: Request | WebSocket) -> Any:
        return None
