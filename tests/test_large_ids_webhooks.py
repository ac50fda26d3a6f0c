"""Row IDs past 2^31 on PostgreSQL (BIGINT keys) through a webhook's transaction.

Every sequence of a fresh database is moved past 2^31 before any row is made, so
each statement a webhook sends (the delivery's INSERT, the images read with their
shots' projects, the other tables' IDs, the event counters and the events) binds
IDs that a 32-bit parameter cannot hold.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import col, select

import migrations
from schema import ids
from services.database import Database, scratch_postgres_database
from services.generation.engine import EngineSettings, GenerationEngine
from services.media.storage import LocalStorage
from services.replicate.gateway import ReplicateGateway
from services.replicate.signatures import sign
from services.tables import ProjectEventRow, ShotImageRow
from tests.conftest import ADMIN_URL
from tests.factories import account, iteration, library_asset, project, scene
from tests.test_maintenance import WEBHOOK_SECRET

FAR = 2**31 + 1_000


@pytest.fixture
async def big_db() -> AsyncIterator[Database]:
    async with scratch_postgres_database(ADMIN_URL, prefix="studio_bigids") as url:
        database = Database(url)
        await migrations.upgrade_to_head(database)
        async with database.engine.begin() as connection:
            names = (
                await connection.execute(
                    text("SELECT sequence_name FROM information_schema.sequences")
                )
            ).scalars()
            for name in list(names):
                await connection.execute(text(f"SELECT setval('{name}', {FAR})"))
        try:
            yield database
        finally:
            await database.dispose()


async def test_a_webhook_moves_rows_whose_ids_are_past_32_bits(
    big_db: Database, tmp_path: Path
) -> None:
    db = big_db
    owner = await account(db)
    project_id = await project(db, owner)
    assert ids.decode(project_id, "Project") > 2**31
    shot_id = (await scene(db, owner, project_id, shots=1))["shots"][0]["id"]
    image_id = (await iteration(db, owner, shot_id, count=1))["images"][0]["id"]
    asset_id = await library_asset(db, owner, status="PENDING", prediction_id="p-big")
    pk = ids.decode(image_id, "ShotImage")
    async with db.transaction() as session:
        image = await session.get(ShotImageRow, pk)
        assert image is not None
        image.status, image.prediction_id = "PENDING", "p-big"
    gateway = ReplicateGateway(api_token=None, base_url="http://127.0.0.1:9")
    engine = GenerationEngine(
        db, gateway, LocalStorage(tmp_path), EngineSettings(webhook_secret=WEBHOOK_SECRET)
    )
    try:
        body = json.dumps({"id": "p-big", "status": "processing"}).encode()
        webhook_id, timestamp = f"msg_{secrets.token_hex(6)}", int(time.time())
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(WEBHOOK_SECRET, webhook_id, timestamp, body),
        }
        assert await engine.receive_webhook(headers, body)
        assert not await engine.receive_webhook(headers, body)
    finally:
        await engine.stop()
        await gateway.aclose()
    async with db.session() as session:
        image = await session.get(ShotImageRow, pk)
        assert image is not None
        assert image.status == "PROCESSING"
        events = (
            await session.exec(
                select(ProjectEventRow).where(
                    col(ProjectEventRow.project_id) == ids.decode(project_id, "Project")
                )
            )
        ).all()
    assert any(e.node_id == pk for e in events)
    assert asset_id
