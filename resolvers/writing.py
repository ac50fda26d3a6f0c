"""How every mutation runs: one transaction, domain errors as `userErrors`.

    @returns_user_errors(ScenePayload)
    async def create_scene(info: Info, input: CreateSceneInput) -> ScenePayload:
        async with write(info) as (session, actor):
            scene = await scenes.create_scene(session, actor, ...)
        return ScenePayload(scene=Scene.from_row(scene))

Resolver modules leave out `from __future__ import annotations`: the wrapper
copies the resolver's annotations, which must be real types, not strings.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession

from schema.context import Info
from schema.errors import UserError, user_errors
from services.accounts import accounts
from services.accounts.access import Actor
from services.errors import StudioError
from services.validation import UNCHANGED, Checks, Maybe

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


class Payload(Protocol):
    def __init__(self, *, user_errors: list[UserError]) -> None: ...


PayloadT = TypeVar("PayloadT", bound=Payload)


def returns_user_errors(
    payload: Callable[..., PayloadT],
) -> Callable[[Callable[P, Awaitable[PayloadT]]], Callable[P, Awaitable[PayloadT]]]:
    """Turn the domain errors a mutation raises into its payload's `userErrors`.

    Whether a mutation needs a signed-in actor is decided before execution starts,
    from its field's metadata (`schema.operations.PUBLIC`), so a caller without a
    token costs nothing and learns nothing else; `write` checks it again.
    """

    def decorate(resolver: Callable[P, Awaitable[PayloadT]]) -> Callable[P, Awaitable[PayloadT]]:
        @wraps(resolver)
        async def run(*args: P.args, **kwargs: P.kwargs) -> PayloadT:
            try:
                return await resolver(*args, **kwargs)
            except StudioError as error:
                return payload(user_errors=user_errors(error))

        return run

    return decorate


@asynccontextmanager
async def write(info: Info) -> AsyncIterator[tuple[AsyncSession, Actor]]:
    """One all-or-nothing transaction as the signed-in actor; later reads see what it wrote."""
    actor = info.context.require_actor()
    async with info.context.db.transaction() as session:
        yield session, actor
    info.context.refresh()


async def sign_in_as(info: Info, user_id: int, token: str | None) -> None:
    """Run the rest of this operation as that user, with their roles as they are now.

    After signUp and logIn (a new token), and after a write that changed the
    actor's own roles (`reload_actor`).
    """
    async with info.context.db.session() as session:
        info.context.actor = await accounts.load_actor(session, user_id)
    info.context.token = token
    info.context.refresh()


async def reload_actor(info: Info) -> None:
    """The actor's roles changed (a team made, joined or left): read them again."""
    await sign_in_as(info, info.context.require_actor().user_id, info.context.token)


def given(value: Any) -> Maybe[Any]:
    """An input field's value for a service update: UNCHANGED when it was left out."""
    return UNCHANGED if value is strawberry.UNSET else value


def given_required(value: Any) -> Maybe[Any]:
    """Like `given`, but null also means unchanged, for fields that cannot be cleared."""
    return UNCHANGED if value is strawberry.UNSET or value is None else value


def model_params(checks: Checks, value: object) -> dict[str, Any] | None:
    """A `params` input (JSON) for a generation model: a dict, or None when not given.

    Anything else (a list, a number, a string) is noted in `checks` as INVALID_PARAM on
    `params` and gives None, so it joins the input's other userErrors."""
    if value is None or isinstance(value, dict):
        return cast(dict[str, Any] | None, value)
    checks.fail("INVALID_PARAM", "`params` must be a JSON object.", ("params",))
    return None
