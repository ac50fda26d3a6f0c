"""Limits that belong to particular mutations: logIn waits and signUp rate, per address."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from schema.context import Info


@asynccontextmanager
async def login_throttle(info: Info, email: str) -> AsyncIterator[None]:
    """Refuse a logIn with RateLimited while the account or address must wait.

    The attempt counts as a failure unless the block finishes: a wrong password
    (AuthenticationFailed raised out of it) keeps it counted.
    """
    limits = info.context.resources.limits
    if limits is None:
        yield
        return
    address = info.context.address
    await limits.login_attempt(account=email, address=address)
    yield
    await limits.login_succeeded(account=email, address=address)


async def count_sign_up(info: Info) -> None:
    """Count a signUp against its address; RateLimited when over RATE_LIMIT_SIGN_UP."""
    limits = info.context.resources.limits
    if limits is not None:
        await limits.hit("signUp", limits.address(info.context.address))
