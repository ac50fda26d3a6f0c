"""The token check (`accounts.authenticate`) at its edges, on SQLite and PostgreSQL.

It reads with one prebuilt statement on the session's connection. Called in a
session that has changes of its own not yet flushed (a write transaction that
logged the token out, or made a team, then asks who the token is), it must see
them, as every other read through the session does (autoflush).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from services.accounts import accounts
from services.accounts.accounts import hash_token
from services.database import Database
from services.tables import AccessTokenRow, utcnow
from tests.factories import account, mutate_ok


class _RolledBack(Exception):
    """Raised to leave a write transaction without committing it."""


async def test_a_token_logged_out_in_the_same_transaction_signs_no_one_in(db: Database) -> None:
    owner = await account(db)

    async def log_out_then_check() -> None:
        async with db.transaction() as session:
            assert await accounts.authenticate(session, owner.token) is not None
            await accounts.log_out(session, token=owner.token)
            assert await accounts.authenticate(session, owner.token) is None
            raise _RolledBack

    with pytest.raises(_RolledBack):
        await log_out_then_check()
    async with db.session() as session:  # rolled back: still good
        assert await accounts.authenticate(session, owner.token) is not None


async def test_a_team_made_in_the_same_transaction_is_among_the_roles(db: Database) -> None:
    owner = await account(db)
    async with db.transaction() as session:
        actor = await accounts.authenticate(session, owner.token)
        assert actor is not None
        assert len(actor.roles) == 1
        team = await accounts.create_team(session, actor, name="Second")
        again = await accounts.authenticate(session, owner.token)
        assert again is not None
        assert team.id in again.roles
        assert len(again.roles) == 2


async def test_a_token_expired_in_the_same_transaction_signs_no_one_in(db: Database) -> None:
    owner = await account(db)
    async with db.transaction() as session:
        rows = await session.exec(
            select(AccessTokenRow).where(col(AccessTokenRow.token_hash) == hash_token(owner.token))
        )
        for row in rows:
            row.expires_at = utcnow() - timedelta(seconds=1)
            session.add(row)
        assert await accounts.authenticate(session, owner.token) is None


async def test_several_teams_and_none(db: Database) -> None:
    owner = await account(db)
    await mutate_ok(db, "createTeam", {"name": "Second"}, "team { id }", token=owner.token)
    async with db.session() as session:
        actor = await accounts.authenticate(session, owner.token)
    assert actor is not None
    assert len(actor.roles) == 2
    assert actor.signed_in_until is not None
    assert actor.signed_in_until.tzinfo is not None
