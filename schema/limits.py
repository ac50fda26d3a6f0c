"""Limits on each operation, checked after it is parsed and validated, before it runs.

`OperationLimits` refuses, with a top-level GraphQL error:

- a variable holding a list longer than MAX_INPUT_LIST_LENGTH (code TOO_LONG,
  with `field`: the path to the list), before graphql-core coerces the
  variables into inputs, so a huge list costs a walk over JSON, not the
  building and checking of each item;
- an operation over a WebSocket beyond the client's request rate (RATE_LIMITED
  with `retryAfter` seconds; HTTP requests are counted earlier, in api/limits.py);
- a subscription beyond MAX_SUBSCRIPTIONS_PER_CONNECTION on its connection, or
  MAX_SUBSCRIPTIONS_PER_USER over every server (RATE_LIMITED). The socket stays
  open; the subscription's slot is freed when it ends, however it ends.

Nothing is limited when the context's resources carry no `Limits` (schema tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from schema.context import Context
from services.errors import RateLimited
from services.validation import shortened


def rate_limited(error: RateLimited) -> GraphQLError:
    """The top-level form of RATE_LIMITED: `extensions.retryAfter` in seconds, when known."""
    extensions: dict[str, Any] = {"code": error.code}
    if error.retry_after is not None:
        extensions["retryAfter"] = error.retry_after
    return GraphQLError(error.message, extensions=extensions)


def too_long_list(variables: dict[str, Any] | None, max_length: int) -> list[str] | None:
    """The path of the first list in `variables` longer than `max_length`, or None.

    Iterative, so nesting depth cannot overflow the stack; a list is measured
    before it is entered, so an over-long one is found without walking its items.
    The path quotes the client's keys, each cut short (`services.validation.shortened`).
    """
    stack: list[tuple[list[str], Any]] = [
        ([shortened(name)], value) for name, value in (variables or {}).items()
    ]
    while stack:
        path, value = stack.pop()
        if isinstance(value, list):
            if len(value) > max_length:
                return path
            stack.extend(([*path, str(index)], item) for index, item in enumerate(value))
        elif isinstance(value, dict):
            stack.extend(([*path, shortened(str(key))], item) for key, item in value.items())
    return None


class OperationLimits(SchemaExtension):
    """See the module docstring; one instance per operation."""

    _slots: contextlib.AsyncExitStack | None = None

    async def on_operation(self) -> AsyncIterator[None]:
        # For a subscription this spans its whole life: its slots go when it ends.
        try:
            yield
        finally:
            if self._slots is not None:
                await self._slots.aclose()

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        limits = context.resources.limits if isinstance(context, Context) else None
        if limits is not None:
            path = too_long_list(execution.variables, limits.settings.max_input_list_length)
            if path is not None:
                raise GraphQLError(
                    f"The list at {'.'.join(path)} is longer than "
                    f"{limits.settings.max_input_list_length} items, the most any list may hold.",
                    extensions={"code": "TOO_LONG", "field": path},
                )
            assert isinstance(context, Context)
            try:
                if context.connection_params is not None:  # over a WebSocket
                    await limits.hit("graphql", _client(context))
                if execution.operation_type is OperationType.SUBSCRIPTION:
                    await self._hold_slots(context)
            except RateLimited as error:
                raise rate_limited(error) from None
        yield

    async def _hold_slots(self, context: Context) -> None:
        limits = context.resources.limits
        assert limits is not None
        most = limits.settings.subscriptions_per_connection
        if context.connection.open_subscriptions >= most:
            raise RateLimited(
                f"This connection has {most} subscriptions open, the most allowed; "
                "complete one before starting another.",
                retry_after=None,
            )
        slots = contextlib.AsyncExitStack()
        if context.actor is not None:
            await slots.enter_async_context(limits.subscription(f"user:{context.actor.user_id}"))
        context.connection.open_subscriptions += 1
        slots.callback(_closed, context)
        self._slots = slots


def _closed(context: Context) -> None:
    context.connection.open_subscriptions -= 1


def _client(context: Context) -> str:
    if context.actor is not None:
        return f"user:{context.actor.user_id}"
    limits = context.resources.limits
    if limits is not None:
        return limits.address(context.address)
    return f"address:{context.address}"
