"""The GraphQL endpoint: Strawberry's ASGI view with our context and bearer-token auth.

Every refusal of a request (a body that is not a JSON object of the GraphQL
shape, an unsupported content type, a document that does not say which
operation to run, several `Authorization` credentials) is a 4xx with a JSON
body in the GraphQL shape,
`{"errors": [{"message": ..., "extensions": {"code": "BAD_REQUEST"}}]}`.
WebSockets are handled by `api.websocket`.
"""

from __future__ import annotations

import json
from typing import Any, cast

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.schema.base import BaseSchema
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionResult
from strawberry.types.unset import UnsetType

from api.fanout import FanOut
from api.graphiql import graphiql_response
from api.state import app_state
from api.websocket import (
    BAD_MESSAGE,
    TRY_AGAIN_LATER,
    GraphQLWSHandler,
    SignInRefused,
    TransportWSHandler,
)
from schema.context import TOKEN_REFUSED, Context, Resources, signed_in, signed_in_by
from schema.error_codes import BUSY, SERVICE_UNAVAILABLE, TOKEN_INVALID, UNAUTHENTICATED
from schema.operations import OperationNotChosen
from services import decoding
from services.authorization import SeveralCredentials
from services.decoding import MAX_JSON_DEPTH

MUTATION_OVER_GET = "A mutation cannot be sent with GET: POST it to /graphql as JSON."
"""GET is for reads only (GraphQL over HTTP §6.1): what a mutation sent with it is told."""


def encode_response(data: object) -> bytes:
    """A response body as compact JSON (UTF-8 bytes). orjson is several times faster than
    the standard library on a storyboard's few hundred KB; what it refuses (an integer
    beyond 64 bits in a stored JSON value, say) is encoded by the standard library,
    as before."""
    try:
        return orjson.dumps(data)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":")).encode()


async def build_context(resources: Resources, token: str | None) -> Context:
    """The context of one operation, signed in as the token's user (if it is valid now)."""
    return await signed_in(resources, token)


class RequestBody(BaseModel):
    """A GraphQL request (POST body, or GET parameters), per GraphQL over HTTP §5."""

    model_config = ConfigDict(strict=True, frozen=True)

    query: str | None = None
    variables: dict[str, object] | None = None
    operation_name: str | None = Field(default=None, alias="operationName")
    extensions: dict[str, object] | None = None


def error_response(status_code: int, message: str) -> JSONResponse:
    """A refused request, in the shape of a GraphQL response (a 405 says what is allowed)."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]},
        status_code=status_code,
        headers={"Allow": "GET, POST"} if status_code == 405 else None,
    )


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
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = GraphQLWSHandler

    def __init__(self, schema: BaseSchema, *, ide_page: bytes, **options: Any) -> None:
        """Strawberry's view; `ide_page` is our GraphiQL page (api.graphiql.graphiql_page)."""
        super().__init__(schema, **options)
        self.ide_page = ide_page
        # Subscriptions of one operation, variables and user share one execution per event.
        self.fanout = FanOut(schema)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Strawberry's, but a refused HTTP request gets a JSON body, not plain text."""
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as error:
            response = error_response(error.status_code, error.reason)
        await response(scope, receive, send)

    def decode_json(self, data: str | bytes) -> object:
        """JSON as RFC 8259 has it (`services.decoding.loads`): finite numbers only,
        bounded nesting; anything undecodable is malformed.

        Raises json.JSONDecodeError, which the view answers with 400 over HTTP and
        the WebSocket handlers with a 4400 close.
        """
        try:
            # The body's envelope and `variables` stand around a variable's value,
            # which may itself nest MAX_JSON_DEPTH deep.
            return decoding.loads(data, max_depth=MAX_JSON_DEPTH + 2)
        except decoding.MalformedJson as error:  # bad UTF-8, NaN, 1e999, nesting too deep
            document = data if isinstance(data, str) else ""
            raise json.JSONDecodeError(str(error), document, 0) from error

    def parse_json(self, data: str | bytes) -> Any:
        """`decode_json`'s value; HTTPException(400) saying what is wrong with the body
        (not JSON, NaN or 1e999, nested too deep) rather than Strawberry's one line."""
        try:
            return self.decode_json(data)
        except json.JSONDecodeError as error:
            raise HTTPException(400, error.msg) from error

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """Strawberry's response, its JSON encoded by orjson (`encode_response`); the
        WebSocket handlers keep `encode_json`, whose text frames the protocols need."""
        response = Response(
            encode_response(response_data), status_code=200, media_type="application/json"
        )
        response.headers.raw.extend(sub_response.headers.raw)
        if sub_response.background:
            response.background = sub_response.background
        if sub_response.status_code:
            response.status_code = sub_response.status_code
        return response

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        """The request's operation; HTTPException(400) for anything not of that shape.

        Only single operations are accepted (no batching, no multipart uploads).
        """
        content_type = (request.content_type or "").partition(";")[0].strip().lower()
        transport = self._get_stream_transport_from_headers(request.headers)
        protocol: GraphQLRequestProtocol = transport.protocol if transport else "http"
        data: object
        if request.method == "GET":
            data = self.parse_query_params(request.query_params)
        elif content_type == "application/json" or content_type.endswith("+json"):
            try:
                body_bytes = await request.get_body()
            except ClientDisconnect as error:
                # The browser went away mid-request (a page closed as it saved): nothing
                # to answer, and no fault of ours to log.
                raise HTTPException(400, "The request ended before its body arrived.") from error
            data = self.parse_json(body_bytes)
        else:
            raise HTTPException(400, "Send the operation as JSON (Content-Type: application/json).")
        if not isinstance(data, dict):
            raise HTTPException(
                400, "The request body must be a JSON object: {query, variables, operationName}."
            )
        try:
            body = RequestBody.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise HTTPException(400, f"`{where}`: {first['msg']}.") from error
        return GraphQLRequestData(
            query=body.query,
            variables=body.variables,
            operation_name=body.operation_name,
            extensions=body.extensions,
            protocol=protocol,
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        address = request.client.host if request.client else "unknown"  # after trusted proxies
        if isinstance(request, WebSocket):
            # The connection's: signed in at connection_init (on_ws_connect); each
            # operation on it gets its own (api.websocket).
            return Context(resources=app_state(request).resources, address=address)
        # Every value sent, so that several are refused rather than one picked.
        credentials = request.headers.getlist("authorization")
        try:
            context = await signed_in_by(app_state(request).resources, credentials)
        except SeveralCredentials as error:
            raise HTTPException(400, str(error)) from error
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
        try:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        except HTTPException as error:
            # Strawberry's wording for a document that does not say which operation
            # to run is vague; ours says what to do.
            cause = error.__cause__
            if isinstance(cause, CannotGetOperationTypeError) and isinstance(
                cause.__cause__, OperationNotChosen
            ):
                raise HTTPException(400, cause.__cause__.message) from error
            if isinstance(cause, InvalidOperationTypeError):
                # Strawberry's "mutations are not allowed when using GET" says no more.
                raise HTTPException(400, MUTATION_OVER_GET) from error
            raise

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Accept a WebSocket only with a valid token in the connection_init payload.

        The payload's `authorization` (any case) is read as an `Authorization`
        header is (services.authorization). Raises SignInRefused (see
        api.websocket): 4403 UNAUTHENTICATED without a bearer token (no payload, a
        null or empty one, a null `authorization`, another scheme); 4403
        TOKEN_INVALID with a malformed one or one that signs no one in; 4400
        BAD_REQUEST for a value that is not a string, or several credentials.
        """
        params = context.connection_params or {}
        values = [
            value
            for key, value in params.items()
            if key.lower() == "authorization" and value is not None  # null: none sent
        ]
        if not all(isinstance(value, str) for value in values):
            raise SignInRefused(
                "BAD_REQUEST",
                'Invalid connection init payload: "authorization" must be a string, '
                '"Bearer <token>".',
                close_code=BAD_MESSAGE,
            )
        try:
            signed = await signed_in_by(context.resources, cast(list[str], values))
        except SeveralCredentials as error:
            raise SignInRefused("BAD_REQUEST", str(error), close_code=BAD_MESSAGE) from error
        except PoolTimeout as error:
            # No connection came free in time to check the token: try again, as over HTTP.
            raise SignInRefused(SERVICE_UNAVAILABLE, BUSY, close_code=TRY_AGAIN_LATER) from error
        if signed.actor is None and not signed.token_refused:
            raise SignInRefused(
                UNAUTHENTICATED,
                'Sign in first: send {"authorization": "Bearer <token>"} in connection_init.',
            )
        if signed.actor is None:
            raise SignInRefused(
                TOKEN_INVALID,
                TOKEN_REFUSED,
            )
        context.actor, context.token = signed.actor, signed.token
        return UnsetType()

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """Our GraphiQL page (api.graphiql), which loads everything from this server."""
        return graphiql_response(self.ide_page)

    async def get_root_value(self, request: Request | WebSocket) -> Any:
        return None
