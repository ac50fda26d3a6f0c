"""The `Schema` class: guard rails, error masking, and the types only reachable by `node`.

It is given its root types (`Query`, `Mutation`, `Subscription`, in `resolvers/`)
by the composition root, `api.schema`: resolvers import the schema's types, so the
schema never imports a resolver.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.types import ExecutionContext
from strawberry.types.graphql import OperationType

from schema.accounts import Invitation, Team, User
from schema.context import OneReadSession
from schema.error_codes import BUSY, SERVICE_UNAVAILABLE, add_code
from schema.execution import StudioExecutor  # also corrects a graphql-core leak
from schema.limits import OperationLimits
from schema.operations import SignInFirst, StudioExecutionContext, as_client_error
from schema.parser_cache import StudioParserCache
from schema.scalars import OVERRIDES as SCALAR_OVERRIDES
from schema.storyboard import Project, Scene, Shot, ShotImage, StoryboardSelection
from schema.validation_budget import ValidationBudget

MAX_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 4000
# Work units of the same-named-fields check (see schema.validation_budget): the
# introspection query needs 135, the editor's nested storyboard query 62.
MAX_VALIDATION_WORK = 1000

logger = logging.getLogger("studio.graphql")

# The depth and alias rules, made once. QueryDepthLimiter and MaxAliasesLimiter make
# a new rule class each time one is constructed, and the validation cache is keyed
# by the rules: with an extension per operation, no document was ever found in it,
# and every request was validated again (about a third of a storyboard read's time).
_GUARD_RULES = (
    QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules
    + MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules
)


def _is_unexpected(error: GraphQLError) -> bool:
    """Errors we raise on purpose are GraphQLErrors; anything else is a fault to mask."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


def _busy(error: GraphQLError) -> GraphQLError:
    """A read or write that waited its time for a database connection (the pool's
    `TimeoutError`: a burst of operations holds them all) as SERVICE_UNAVAILABLE, a
    condition to retry rather than a fault to mask; other errors unchanged. Nothing
    was done: a write that never had a connection wrote nothing."""
    if not isinstance(error.original_error, PoolTimeout):
        return error
    logger.warning("no database connection came free in time (%s): busy", error.path)
    return GraphQLError(
        BUSY, nodes=error.nodes, path=error.path, extensions={"code": SERVICE_UNAVAILABLE}
    )


class StudioSchema(strawberry.Schema):
    def _create_execution_context(
        self,
        query: str | None,
        allowed_operation_types: Iterable[OperationType],
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionContext:
        """Strawberry's, but choosing the operation as graphql-core does (see schema.operations)."""
        return StudioExecutionContext(
            query=query,
            schema=self,
            allowed_operations=allowed_operation_types,
            context=context_value,
            root_value=root_value,
            variables=variable_values,
            provided_operation_name=operation_name,
            operation_extensions=operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log our faults in full; errors raised on purpose are the client's, so only at DEBUG.

        A document that does not say which operation to run is the client's error too:
        it is rewritten in place (as Strawberry edits errors here) to a BAD_REQUEST,
        before error masking would hide it. graphql-core's own errors get a code
        (see schema.error_codes).
        """
        errors[:] = [add_code(as_client_error(_busy(error))) for error in errors]
        for error in errors:
            if _is_unexpected(error):
                logger.error("unexpected error in %s", error.path, exc_info=error.original_error)
            else:
                logger.debug("client error: %s", error.message)


def build_schema(*, query: type, mutation: type, subscription: type) -> strawberry.Schema:
    """The schema served with these root types: every guard rail, error masking and type."""
    return StudioSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        types=[User, Team, Invitation, Project, Scene, Shot, ShotImage, StoryboardSelection],
        # JSON that refuses NaN/Infinity and deep nesting (see schema.scalars).
        scalar_overrides=SCALAR_OVERRIDES,
        # Takes compiled reads' values as they are (see schema.compiled).
        execution_context_class=StudioExecutor,
        extensions=[
            # Clients send the same few operations again and again (and every
            # subscribe parses its query): parse and validate each text once. A
            # document that would cost validation too much is refused unvalidated.
            lambda: StudioParserCache(maxsize=512),  # syntax errors reported on every transport
            lambda: ValidationBudget(max_work=MAX_VALIDATION_WORK, maxsize=512),
            # QueryDepthLimiter and MaxAliasesLimiter, with the same rule classes each time.
            lambda: AddValidationRules(_GUARD_RULES),
            lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
            SignInFirst,
            # A query's reads share one database connection (see schema.context).
            OneReadSession,
            # List lengths, rates over WebSockets, open subscriptions (the settings'
            # values come with the context's resources).
            OperationLimits,
            lambda: MaskErrors(
                should_mask_error=_is_unexpected,
                error_message="Something went wrong on our side; it has been logged.",
            ),
        ],
    )
