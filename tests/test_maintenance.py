"""Housekeeping on each engine: old events, expired tokens and webhook deliveries too old
to be needed go; nothing else does."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import col, select

from schema import ids
from services import maintenance
from services.accounts import accounts
from services.database import Database
from services.generation.engine import (
    DELIVERY_RETENTION,
    EngineSettings,
    GenerationEngine,
)
from services.media.storage import LocalStorage
from services.realtime import events
from services.realtime.bus import EventBus
from services.replicate.gateway import ReplicateGateway
from services.replicate.signatures import TOLERANCE_SECONDS, WebhookRejected, sign
from services.tables import AccessTokenRow, ProjectEventRow, WebhookDeliveryRow, utcnow
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


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"maintenance tests webhook signing key").decode()


@pytest.fixture
async def receiver(
    db: Database, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[GenerationEngine]:
    """An engine that only receives webhooks: its secret is configured, so the provider
    (nothing listens at its address) is never asked for anything."""
    gateway = ReplicateGateway(api_token=None, base_url="http://127.0.0.1:9")
    engine = GenerationEngine(
        db,
        gateway,
        LocalStorage(tmp_path_factory.mktemp("media")),
        EngineSettings(webhook_secret=WEBHOOK_SECRET),
    )
    try:
        yield engine
    finally:
        await engine.stop()
        await gateway.aclose()


def delivery(webhook_id: str, timestamp: int) -> tuple[dict[str, str], bytes]:
    """A genuine delivery (headers, body) of an update to a prediction no row waits for."""
    body = json.dumps({"id": f"p_{secrets.token_hex(6)}", "status": "processing"}).encode()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(WEBHOOK_SECRET, webhook_id, timestamp, body),
    }, body


async def test_tidy_prunes_webhook_deliveries_past_the_retention_in_batches(
    db: Database, receiver: GenerationEngine
) -> None:
    now = int(time.time())
    old_ids = [f"msg_{secrets.token_hex(8)}" for _ in range(3)]
    recent_id, edge_id = f"msg_{secrets.token_hex(8)}", f"msg_{secrets.token_hex(8)}"
    for webhook_id in [*old_ids, recent_id, edge_id]:
        assert await receiver.receive_webhook(*delivery(webhook_id, now)) is True
    async with db.transaction() as session:
        for row in await session.exec(
            select(WebhookDeliveryRow).where(col(WebhookDeliveryRow.id).in_([*old_ids, edge_id]))
        ):
            # The old ones arrived three days ago; the edge one just inside the retention.
            row.received_at = utcnow() - (
                DELIVERY_RETENTION - timedelta(minutes=5)
                if row.id == edge_id
                else timedelta(days=3)
            )

    # Batches of two: three old rows take two batches, the second one short.
    tidied = await maintenance.tidy(db, event_retention=timedelta(days=7), delivery_batch=2)

    assert tidied.deliveries == 3
    async with db.session() as session:
        left = set(
            await session.exec(
                select(WebhookDeliveryRow.id).where(
                    col(WebhookDeliveryRow.id).in_([*old_ids, recent_id, edge_id])
                )
            )
        )
    assert left == {recent_id, edge_id}
    # A kept id still makes its delivery, re-sent as it was, a duplicate.
    assert await receiver.receive_webhook(*delivery(recent_id, now)) is False
    assert (await maintenance.tidy(db, event_retention=timedelta(days=7))).deliveries == 0


async def test_a_pruned_delivery_replayed_as_sent_is_still_refused_by_its_timestamp(
    db: Database, receiver: GenerationEngine
) -> None:
    webhook_id = f"msg_{secrets.token_hex(8)}"
    sent = int(time.time()) - int(timedelta(days=3).total_seconds())
    captured = delivery(webhook_id, sent)  # the request as sent three days ago
    # Recorded when it arrived, three days ago (within the tolerance of `sent` then).
    async with db.transaction() as session:
        session.add(
            WebhookDeliveryRow(id=webhook_id, received_at=utcnow() - timedelta(days=3, seconds=-5))
        )

    assert (await maintenance.tidy(db, event_retention=timedelta(days=7))).deliveries >= 1
    async with db.session() as session:
        assert await session.get(WebhookDeliveryRow, webhook_id) is None

    # Genuine signature, id no longer recorded: the timestamp alone refuses it.
    with pytest.raises(WebhookRejected, match="outside the tolerance"):
        await receiver.receive_webhook(*captured)
    async with db.session() as session:
        assert await session.get(WebhookDeliveryRow, webhook_id) is None
    # Even one second past the tolerance is enough.
    with pytest.raises(WebhookRejected, match="outside the tolerance"):
        await receiver.receive_webhook(
            *delivery(webhook_id, int(time.time()) - TOLERANCE_SECONDS - 2)
        )
