"""Housekeeping on each engine: old events and expired tokens go; nothing else does."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import col, select

from schema import ids
from services import maintenance
from services.accounts import accounts
from services.database import Database
from services.realtime import events
from services.realtime.bus import EventBus
from services.tables import AccessTokenRow, ProjectEventRow, utcnow
from tests.factories import PASSWORD, account, mutate_ok, project, scene


async def test_tidy_removes_old_events_and_expired_tokens_only(db: Database) -> None:
    owner = await account(db)
    stale = await mutate_ok(
        db, "logIn", {"email": owner.email, "password": PASSWORD}, "token", token=None
    )
    project_id = await project(db, owner)
    await scene(db, owner, project_id, shots=1)
    pk = ids.decode(project_id, "Project")
    async with db.transaction() as session:
        row = (
            await session.exec(
                select(AccessTokenRow).where(
                    AccessTokenRow.token_hash == accounts.hash_token(stale["token"])
                )
            )
        ).one()
        row.expires_at = utcnow() - timedelta(minutes=1)
        first = (
            await session.exec(
                select(ProjectEventRow).where(
                    ProjectEventRow.project_id == pk, ProjectEventRow.sequence == 1
                )
            )
        ).one()
        first.at = utcnow() - timedelta(days=30)

    tidied = await maintenance.tidy(db, event_retention=timedelta(days=7))

    assert tidied.events >= 1
    assert tidied.tokens >= 1
    async with db.session() as session:
        left = await session.exec(
            select(ProjectEventRow.sequence).where(ProjectEventRow.project_id == pk)
        )
        sequences = sorted(left)
        assert sequences[0] == 2  # only the old one went
        assert await accounts.authenticate(session, owner.token) is not None
        gone = await session.exec(
            select(AccessTokenRow).where(col(AccessTokenRow.expires_at) <= utcnow())
        )
        assert gone.all() == []


async def test_purging_a_token_tells_its_users_subscriptions(db: Database) -> None:
    bus = EventBus("memory://")
    await bus.start()
    live = Database(db.url, bus=bus)
    try:
        owner = await account(live)
        user_id = ids.decode(owner.user_id, "User")
        async with live.transaction() as session:
            for row in await session.exec(
                select(AccessTokenRow).where(AccessTokenRow.user_id == user_id)
            ):
                row.expires_at = utcnow() - timedelta(seconds=1)
        async with bus.subscribe(events.access_channel(user_id)) as notices:
            await maintenance.tidy(live, event_retention=timedelta(days=7))
            assert await asyncio.wait_for(notices.get(), 5) == {"access": "changed"}
    finally:
        await live.dispose()
        await bus.stop()
