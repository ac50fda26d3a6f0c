"""The GraphQL context: one per operation, on every transport.

Over HTTP each request builds one from its `Authorization` header. A WebSocket
signs in once, at `connection_init`, and keeps only the token: each operation
on it gets a context of its own, signed in again as of when it starts (see
`api.websocket`). A subscription replaces its loaders before each message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from schema.error_codes import TOKEN_INVALID, UNAUTHENTICATED
from schema.loaders import Loaders, ReadSession
from services.accounts import accounts
from services.accounts.access import Actor
from services.accounts.accounts import AccountSettings
from services.authorization import MalformedCredentials, bearer_token
from services.database import HELD_READ_CONNECTION, Database
from services.generation.engine import GenerationEngine
from services.media.storage import MediaLinks, Storage
from services.realtime.bus import EventBus
from services.realtime.feed import Sharing
from services.request_limits.policy import Limits

TOKEN_REFUSED = (
    "That token is malformed, unknown, expired or revoked: "  # noqa: S105 (a message)
    "sign in again (logIn) for a new one."
)
"""What a token that signs no one in (TOKEN_INVALID) is told, on every transport: over
HTTP and SSE as the error's message, on a WebSocket in the 4403 close reason."""


class NotAuthenticated(GraphQLError):
    """A top-level error: the operation needs a valid bearer token.

    UNAUTHENTICATED when none was sent; TOKEN_INVALID when the one sent is
    malformed or signs no one in (`token_refused`): see schema.error_codes.
    """

    def __init__(self, *, token_refused: bool = False) -> None:
        if token_refused:
            super().__init__(TOKEN_REFUSED, extensions={"code": TOKEN_INVALID})
        else:
            super().__init__(
                "Sign in first: send `Authorization: Bearer <token>` (from signUp or logIn).",
                extensions={"code": UNAUTHENTICATED},
            )


class BadRequest(GraphQLError):
    """A top-level error for a malformed argument of a query (mutations use userErrors)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


@dataclass(frozen=True)
class Resources:
    """What the lifespan opened, for every operation: plain objects, no settings."""

    db: Database
    media: MediaLinks
    generation_engine: GenerationEngine | None = None
    bus: EventBus | None = None
    limits: Limits | None = None  # None: nothing is limited (schema tests)
    accounts: AccountSettings = field(default_factory=AccountSettings)
    # Where media files are kept, for writes that remove them (deleteAsset); None: a
    # server (or a schema test) without media, where nothing is deleted from storage.
    storage: Storage | None = None
    # Read the storyboard tree in one compiled statement where the selection allows (see
    # schema.compiled); False resolves every field one by one (tests compare the two).
    compiled_reads: bool = True


@dataclass
class Connection:
    """What the operations on one connection share (a WebSocket, or one SSE request)."""

    # Subscriptions open on the connection now, for MAX_SUBSCRIPTIONS_PER_CONNECTION.
    open_subscriptions: int = 0


@dataclass
class Context:
    resources: Resources
    actor: Actor | None = None
    token: str | None = None
    # A WebSocket's connection_init payload (Strawberry sets it); where its token comes from.
    connection_params: dict[str, object] | None = None
    # The client's address (after trusted proxies), for limits keyed by address.
    address: str = "unknown"
    # A token was sent but signs no one in (malformed, unknown, expired, revoked):
    # said so in errors.
    token_refused: bool = False
    # Shared by every operation on this context's connection; each gets its own context.
    connection: Connection = field(default_factory=Connection)
    # The operation's one read session (see schema.loaders.ReadSession and OneReadSession).
    reads: ReadSession = field(init=False)
    # A subscription's part in a feed shared with others (api/fanout.py); None: unshared.
    sharing: Sharing | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.reads = ReadSession(self.db)
        self.loaders = Loaders(self.reads)

    @property
    def db(self) -> Database:
        return self.resources.db

    @property
    def media(self) -> MediaLinks:
        return self.resources.media

    def require_generation_engine(self) -> GenerationEngine:
        if self.resources.generation_engine is None:
            raise GraphQLError(
                "Generation is not available on this server.",
                extensions={"code": "GENERATION_UNAVAILABLE"},
            )
        return self.resources.generation_engine

    def require_actor(self) -> Actor:
        if self.actor is None:
            raise NotAuthenticated(token_refused=self.token_refused)
        return self.actor

    def refresh(self) -> None:
        """Forget everything loaded so far: called after each write, so later reads see it.

        The read session keeps no rows between reads here: mutations and
        subscription events, which refresh, do not `hold` it (see OneReadSession).
        """
        self.loaders = Loaders(self.reads)


Info = strawberry.Info[Context, None]


async def signed_in(resources: Resources, token: str | None) -> Context:
    """A fresh context for one operation, signed in as the token's user if it is valid now.

    An unknown, revoked or expired token gives a context without an actor (and
    without the token).
    """
    context = Context(resources=resources)
    if token is not None:
        # Through the operation's read session; not held (nothing may run the
        # operation, and then nothing would give the connection back).
        actor = await context.reads.run(lambda session: accounts.authenticate(session, token))
        context.actor, context.token = actor, token if actor else None
        context.token_refused = actor is None
    return context


async def signed_in_by(resources: Resources, authorization: str | Sequence[str] | None) -> Context:
    """A fresh context for one operation, signed in by its `Authorization` credentials.

    `authorization` is the header's value, or each value it was sent with (see
    `services.authorization.bearer_token`). No bearer credential gives a context
    without an actor; a malformed one, or a token that signs no one in, one that
    says so (`token_refused`, hence TOKEN_INVALID). Raises SeveralCredentials
    for more than one credential: the caller refuses the request.
    """
    try:
        token = bearer_token(authorization)
    except MalformedCredentials:
        return Context(resources=resources, token_refused=True)
    return await signed_in(resources, token)


class OneReadSession(SchemaExtension):
    """A query's reads share one database connection, from its first read to its end.

    For a query, the context's read session holds its connection while the
    operation executes (`ReadSession.hold`) and gives it back when execution ends.
    Mutations and subscriptions do not hold it: a mutation waits for a write's
    connection, a subscription for its next event, and neither should keep one for
    reading meanwhile. Whatever the operation, it is released at the end.
    """

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context.context
        if not isinstance(context, Context):
            yield
            return
        hold = self.execution_context.operation_type is OperationType.QUERY
        context.reads.hold = hold
        # A query's tasks (its resolvers') give the held connection back before they
        # ask the pool for another (see services.database.HELD_READ_CONNECTION).
        held = HELD_READ_CONNECTION.set(context.reads if hold else None)
        try:
            yield
        finally:
            # An operation abandoned mid-way (its client left) may be closed later by the
            # event loop's async-generator finalizer, in a context of its own: the
            # variable was never set there, so there is nothing to reset.
            with suppress(ValueError):
                HELD_READ_CONNECTION.reset(held)
            context.reads.hold = False
            await context.reads.release()

    async def on_operation(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            context = self.execution_context.context
            if isinstance(context, Context):
                await context.reads.release()
