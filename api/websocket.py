"""GraphQL over WebSocket: Strawberry's two protocol handlers, with our rules.

Both subprotocols (graphql-transport-ws, and the older graphql-ws of
subscriptions-transport-ws) keep to three rules Strawberry's handlers alone do not:

- Every message is checked against its protocol before it is acted on. A
  malformed one (not JSON, not text, not an object, a missing or mistyped field,
  an unknown type) closes the socket with 4400 and a short reason that starts
  `BAD_REQUEST: Invalid message:`; other subscriptions on it end with that close,
  never with a dropped connection.
  graphql-ws, which defines no close codes, first sends `connection_error`.
  (graphql-transport-ws: https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md)
- Every operation runs with a context of its own, signed in again with the
  connection's token when it starts (`schema.context.signed_in`): fresh
  DataLoaders, and the user's teams and roles as they are now. If the token no
  longer signs anyone in (logged out, expired), the socket closes with 4403 and
  a reason that starts with TOKEN_INVALID and says to sign in again.
- A `connection_init` without a bearer token (no payload, a null or empty one,
  another scheme), or with one that is malformed or signs no one in, closes the
  socket with 4403 and a reason that starts with UNAUTHENTICATED or
  TOKEN_INVALID (see `schema.error_codes`); graphql-ws first sends the same
  code and message in a `connection_error`. Both protocols allow the payload
  to be absent or null (graphql-transport-ws: `payload?: Record<string,
  unknown> | null`), and both treat that as no token. Several credentials, or
  an `authorization` that is not a string, close it with 4400 (BAD_REQUEST).
- Every close reason of ours starts with a code, as GraphiQL and the editor read
  it (`CODE: message`): a graphql-transport-ws `subscribe` sent before the
  `connection_ack` closes with 4401 and `UNAUTHENTICATED: ...` saying to send
  `connection_init` first (Strawberry's reason is a bare "Unauthorized"), and a
  document that does not parse closes with 4400 and `GRAPHQL_PARSE_FAILED:
  Syntax Error ...`, the code it has over HTTP.
- On graphql-ws the socket's rights are checked before anything about the
  operation: a logged-out socket closes with 4403 whatever it sends.
- A socket not signed in (its `connection_init` acknowledged) within the
  view's `connection_init_wait_timeout` (WEBSOCKET_INIT_TIMEOUT_SECONDS) is
  closed with 4408: Strawberry does so for graphql-transport-ws, and here the
  same for graphql-ws, for which Strawberry waits forever.
- A result that says TOKEN_INVALID means the token stopped working while the
  operation ran: the socket closes with 4403 instead of sending it. An open
  subscription learns it at the token's expiry instant, at once after a logout
  (an access notice on the bus), and otherwise at its next scheduled check
  (`services.realtime.feed.follow`), however busy its project is.

Queries and mutations run exactly as over HTTP: same schema, same extensions,
same context.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Annotated, Any, Literal, cast

from graphql import (
    GraphQLError,
    GraphQLFormattedError,
    GraphQLSyntaxError,
    OperationType,
    get_operation_ast,
    parse,
)
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.websockets import WebSocketDisconnected as SentAfterClose
from strawberry.http.exceptions import (
    NonJsonMessageReceived,
    NonTextMessageReceived,
    WebSocketDisconnected,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage as TransportErrorMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage as LegacyCompleteMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as LegacyConnectionInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ErrorMessage,
    OperationMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from api.fanout import TRANSPORT_SEND, TRANSPORT_WRITE, FanOut, Follower, group_key
from schema.context import TOKEN_REFUSED, Context, signed_in
from schema.error_codes import (
    BUSY,
    PARSE_FAILED,
    SERVICE_UNAVAILABLE,
    TOKEN_INVALID,
    UNAUTHENTICATED,
)

# A message could not go out because the socket is gone: the client left (Strawberry's
# WebSocketDisconnected), or a close was sent first (Starlette's, on a send after it).
# A client leaving is no fault of the server: the operation just ends, unlogged.
SOCKET_GONE = (WebSocketDisconnected, SentAfterClose)

logger = logging.getLogger("studio.websocket")

BAD_MESSAGE = 4400
UNAUTHORIZED = 4401  # graphql-transport-ws: a `subscribe` before `connection_ack`
FORBIDDEN = 4403
INIT_TIMEOUT = 4408  # graphql-transport-ws's code for it, used on graphql-ws as well
# RFC 6455's "Try Again Later": no database connection came free in time to sign the
# socket in (DATABASE_POOL_TIMEOUT_SECONDS); nothing is wrong with what it sent.
TRY_AGAIN_LATER = 1013
# An operation that found no database connection free in time: SERVICE_UNAVAILABLE,
# as over HTTP, never a bare `complete` (which would read as "no results").
BUSY_ERROR: GraphQLFormattedError = {
    "message": BUSY,
    "extensions": {"code": SERVICE_UNAVAILABLE},
}
_SIGNED_OUT = f"{TOKEN_INVALID}: {TOKEN_REFUSED}"
_NOT_INITIALISED = (
    f"{UNAUTHENTICATED}: send connection_init and wait for connection_ack before subscribe"
)
_INVALID_MESSAGE = "BAD_REQUEST: Invalid message: "


class SignInRefused(Exception):
    """`connection_init` signs no one in: the socket closes with `close_code` (4403
    unless said otherwise) and the reason `code: message`.

    Raised by the view's `on_ws_connect` and handled by the handlers here (not a
    Strawberry `ConnectionRejectionError`, whose close reason is a bare "Forbidden").
    """

    def __init__(self, code: str, message: str, *, close_code: int = FORBIDDEN) -> None:
        super().__init__(message)
        self.code, self.message, self.close_code = code, message, close_code

    @property
    def reason(self) -> str:
        return close_reason(f"{self.code}: {self.message}")

    @property
    def payload(self) -> dict[str, object]:
        """A `connection_error` payload in the shape of a GraphQL error."""
        return {"message": self.message, "extensions": {"code": self.code}}


# -- message shapes -----------------------------------------------------------------------


class _Strict(BaseModel):
    # Strict: "1" is not an int, 1 is not a string; unknown keys are tolerated.
    model_config = ConfigDict(strict=True, frozen=True)


Record = dict[str, object]

MAX_OPERATION_ID = 128
"""Characters an operation's `id` may have: it repeats in every frame of the operation
(clients use counters or UUIDs, 36 characters)."""

OperationId = Annotated[str, StringConstraints(max_length=MAX_OPERATION_ID)]


class OperationPayload(_Strict):
    """What a `subscribe` (graphql-transport-ws) or `start` (graphql-ws) carries."""

    query: str
    variables: Record | None = None
    operation_name: str | None = Field(default=None, alias="operationName")
    extensions: Record | None = None


class _ConnectionInit(_Strict):
    type: Literal["connection_init"]
    payload: Record | None = None


class _Ping(_Strict):
    type: Literal["ping", "pong"]
    payload: Record | None = None


class _Subscribe(_Strict):
    type: Literal["subscribe"]
    id: OperationId
    payload: OperationPayload


class _Complete(_Strict):
    type: Literal["complete"]
    id: OperationId


class _Start(_Strict):
    type: Literal["start"]
    id: OperationId
    payload: OperationPayload


class _Stop(_Strict):
    type: Literal["stop"]
    id: OperationId


class _Terminate(_Strict):
    type: Literal["connection_terminate"]


_TRANSPORT_WS: TypeAdapter[Any] = TypeAdapter(
    Annotated[_ConnectionInit | _Ping | _Subscribe | _Complete, Field(discriminator="type")]
)
_GRAPHQL_WS: TypeAdapter[Any] = TypeAdapter(
    Annotated[_ConnectionInit | _Start | _Stop | _Terminate, Field(discriminator="type")]
)


def malformed(adapter: TypeAdapter[Any], message: object) -> str | None:
    """Why `message` is not a message of the protocol (a close reason), or None if it is."""
    try:
        adapter.validate_python(message)
    except ValidationError as error:
        first = error.errors()[0]
        kind, context = first["type"], first.get("ctx") or {}
        if kind == "union_tag_not_found":
            why = "a message is a JSON object with a `type`"
        elif kind == "union_tag_invalid":
            # The protocol's types first: the type sent is the client's and may be long.
            why = f"the type is one of {context['expected_tags']}, not {context['tag']!r}"
        elif kind == "model_attributes_type":
            why = "a message is a JSON object"
        else:
            where = ".".join(str(part) for part in first["loc"][1:]) or "message"
            why = f"{where}: {first['msg']}"
        return close_reason(_INVALID_MESSAGE + why)
    return None


def close_reason(text: str) -> str:
    """`text` cut to what a close frame can carry: 123 bytes of UTF-8 (RFC 6455 §5.5).

    Reasons may repeat what a client sent (a bad `type`), so they are cut by bytes,
    never inside a character, and a lone surrogate becomes "?".
    """
    return text.encode("utf-8", "replace")[:123].decode("utf-8", "ignore")


# -- the context of each operation ---------------------------------------------------------


async def operation_context(connection: Context) -> Context | None:
    """A context for one operation on this connection, or None if its token is no longer good."""
    context = await signed_in(connection.resources, connection.token)
    if context.actor is None:
        return None
    context.connection_params = connection.connection_params
    context.address = connection.address
    context.connection = connection.connection  # per-connection counts (api.limits, schema.limits)
    return context


def signed_out(result: ExecutionResult) -> bool:
    """Whether the result says the connection's token stopped working while it ran."""
    return any(
        (error.extensions or {}).get("code") in (TOKEN_INVALID, UNAUTHENTICATED)
        for error in result.errors or ()
    )


# -- graphql-transport-ws ------------------------------------------------------------------


class TransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with checked messages and a context per operation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The sharing part (api/fanout.py) of each running operation that has one, by
        # id, with the operation: stopped as soon as the operation is cleaned up.
        self._followers: dict[str, tuple[Operation[Context, None], Follower]] = {}

    async def cleanup_operation(self, operation_id: str) -> None:
        """Strawberry's (the operation forgotten, its task cancelled), and at once
        its shared frames stopped (`Follower.stop`): its task leaves its group only
        at its next step, and nothing may go out under the id meanwhile."""
        sharing = self._followers.pop(operation_id, None)
        if sharing is not None and self.operations.get(operation_id) is sharing[0]:
            sharing[1].stop()
        await super().cleanup_operation(operation_id)

    async def handle_message(self, message: Message) -> None:
        reason = malformed(_TRANSPORT_WS, message)
        if reason is not None:
            await self.handle_invalid_message(reason)
            return
        await super().handle_message(message)

    async def handle_invalid_message(self, error_message: str) -> None:
        """Close with 4400; Strawberry's own reasons (a frame not text, not JSON) get
        the `BAD_REQUEST: Invalid message:` our checks give every other bad message."""
        if not error_message.startswith(_INVALID_MESSAGE):
            error_message = close_reason(_INVALID_MESSAGE + error_message)
        await super().handle_invalid_message(error_message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        """Strawberry's, but a `subscribe` before the `connection_ack` says what to do."""
        if not self.connection_acknowledged:
            await self.websocket.close(code=UNAUTHORIZED, reason=_NOT_INITIALISED)
            return
        await super().handle_subscribe(message)

    @staticmethod
    def _get_pre_execution_close_reason(error: GraphQLError) -> str | None:
        """A syntax error still closes the socket (as Strawberry and graphql-ws's reference
        server do), its reason led by the code HTTP gives it: GRAPHQL_PARSE_FAILED."""
        if isinstance(error, GraphQLSyntaxError):
            return close_reason(f"{PARSE_FAILED}: {error.message}")
        return None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        if message.get("payload") is None:
            # The protocol allows a null payload; Strawberry closes with 4400 for it.
            message = {"type": "connection_init", "payload": {}}
        try:
            await super().handle_connection_init(message)
        except SignInRefused as refused:
            await self.websocket.close(code=refused.close_code, reason=refused.reason)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Strawberry's, with a context of the operation's own (see the module)."""
        try:
            await self._run_operation(operation)
        finally:
            sharing = self._followers.get(operation.id)
            if sharing is not None and sharing[0] is operation:
                del self._followers[operation.id]

    async def _run_operation(self, operation: Operation[Context, None]) -> None:
        try:
            try:
                context = await operation_context(self.context)
            except PoolTimeout:
                logger.warning("no database connection came free in time for an operation")
                await operation.send_operation_message(
                    TransportErrorMessage(id=operation.id, type="error", payload=[BUSY_ERROR])
                )
                self.operations.pop(operation.id, None)
                return
            if context is None:
                await self._close_signed_out(operation)
            self._share(operation, context)
            result_source = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            await operation.send_operation_message(
                CompleteMessage(id=operation.id, type="complete")
            )
        except _OperationStreamClosed:
            return
        except SOCKET_GONE:
            self.operations.pop(operation.id, None)  # nothing more can reach the client
            return
        except Exception as error:
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise

    def _share(self, operation: Operation[Context, None], context: Context | None) -> None:
        """Let the operation share its feed with like subscribers (api/fanout.py): a
        subscription parks there once it has sent all there is; anything else never asks."""
        fanout: FanOut | None = getattr(self.view, "fanout", None)
        socket = getattr(self.websocket, "ws", None)
        if fanout is None or socket is None or context is None or context.actor is None:
            return
        key = group_key(
            operation.query, operation.operation_name, operation.variables, context.actor.user_id
        )
        context.sharing = follower = fanout.follower(
            key,
            operation.id,
            socket.scope.get(TRANSPORT_SEND) or socket.send,
            context,
            operation.query,
            operation.variables,
            operation.operation_name,
            socket.scope.get(TRANSPORT_WRITE),
        )
        self._followers[operation.id] = (operation, follower)

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: Any
    ) -> None:
        is_first_result = True
        async for result in result_source:
            if is_first_result and isinstance(result, PreExecutionError):
                await self._handle_pre_execution_error(operation, result)
                return
            if not isinstance(result, ExecutionResult):
                await self._reject_incremental_delivery(operation)
                return
            if signed_out(result):
                await self._close_signed_out(operation)
            await operation.send_next(result)
            is_first_result = False

    async def _close_signed_out(self, operation: Operation[Context, None]) -> None:
        await self.websocket.close(code=FORBIDDEN, reason=_SIGNED_OUT)
        self.operations.pop(operation.id, None)
        raise _OperationStreamClosed


# -- graphql-ws (subscriptions-transport-ws) -----------------------------------------------


class GraphQLWSHandler(BaseGraphQLWSHandler[Context, None]):
    """The older graphql-ws protocol with checked messages and a context per operation."""

    async def handle(self) -> None:
        """Strawberry's, but a frame that is not JSON is malformed, not ignored, and
        a socket not signed in within the view's `connection_init_wait_timeout` is closed."""
        deadline = asyncio.create_task(self._close_unless_acknowledged())
        try:
            try:
                async for message in self.websocket.iter_json():
                    await self.handle_message(cast(OperationMessage, message))
            except NonTextMessageReceived:
                await self._refuse(_INVALID_MESSAGE + "WebSocket messages must be text")
            except NonJsonMessageReceived:
                await self._refuse(_INVALID_MESSAGE + "WebSocket messages must be JSON")
        except WebSocketDisconnected:
            pass
        finally:
            deadline.cancel()
            with suppress(BaseException):
                await deadline
            if self.keep_alive_task:
                self.keep_alive_task.cancel()
                with suppress(BaseException):
                    await self.keep_alive_task
            await self.cleanup()

    async def _close_unless_acknowledged(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        if not self.connection_acknowledged:
            with suppress(WebSocketDisconnected, RuntimeError):  # already closing
                await self.websocket.close(
                    code=INIT_TIMEOUT, reason="Connection initialisation timeout"
                )

    async def handle_message(self, message: OperationMessage) -> None:
        reason = malformed(_GRAPHQL_WS, message)
        if reason is not None:
            await self._refuse(reason)
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: LegacyConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except SignInRefused as refused:
            with suppress(WebSocketDisconnected):
                await self.send_message({"type": "connection_error", "payload": refused.payload})
            await self.websocket.close(code=refused.close_code, reason=refused.reason)

    async def _refuse(self, reason: str) -> None:
        with suppress(WebSocketDisconnected):
            payload: dict[str, object] = {"message": reason, "extensions": {"code": "BAD_REQUEST"}}
            await self.send_message({"type": "connection_error", "payload": payload})
        await self.websocket.close(code=BAD_MESSAGE, reason=reason)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        """Strawberry's, with a context of the operation's own (see the module)."""
        try:
            # Rights first: a socket whose token stopped working closes, whatever it sent.
            try:
                context = await operation_context(self.context)
            except PoolTimeout:
                logger.warning("no database connection came free in time for an operation")
                await self.send_message(
                    ErrorMessage(type="error", id=operation_id, payload=BUSY_ERROR)
                )
                return
            if context is None:
                await self.websocket.close(code=FORBIDDEN, reason=_SIGNED_OUT)
                return
            if not _is_subscription_or_unknown(query, operation_name):
                # Strawberry runs only subscriptions over graphql-ws (as the protocol's
                # reference server did); a query or mutation would fail as an internal error.
                await self.send_message(
                    ErrorMessage(
                        type="error",
                        id=operation_id,
                        payload={
                            "message": "The graphql-ws protocol carries subscriptions only: send "
                            "queries and mutations over HTTP or graphql-transport-ws.",
                            "extensions": {"code": "BAD_REQUEST"},
                        },
                    )
                )
                return
            result_source = await self.schema.subscribe(
                query=query,
                variable_values=variables,
                operation_name=operation_name,
                context_value=context,
                root_value=self.root_value,
            )
            self.subscriptions[operation_id] = result_source
            is_first_result = True
            async for result in result_source:
                if is_first_result and isinstance(result, PreExecutionError):
                    assert result.errors
                    await self.send_message(
                        ErrorMessage(
                            type="error", id=operation_id, payload=result.errors[0].formatted
                        )
                    )
                    return
                if signed_out(result):
                    await self.websocket.close(code=FORBIDDEN, reason=_SIGNED_OUT)
                    return
                await self.send_data_message(result, operation_id)
                is_first_result = False
            await self.send_message(LegacyCompleteMessage(type="complete", id=operation_id))
        except asyncio.CancelledError:
            with suppress(WebSocketDisconnected):
                await self.send_message(LegacyCompleteMessage(type="complete", id=operation_id))
        except SOCKET_GONE:
            pass  # nothing more can reach the client
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


def _is_subscription_or_unknown(query: str, operation_name: str | None) -> bool:
    """False only for a document whose chosen operation is surely a query or mutation.

    A document that does not parse, or does not say which operation runs, is left
    to execution, which reports it as on every other transport.
    """
    try:
        document = parse(query)
    except GraphQLError:
        return True
    operation = get_operation_ast(document, operation_name)
    return operation is None or operation.operation is OperationType.SUBSCRIPTION
