"""Genuine webhook deliveries whose body no database column can hold.

A signed delivery is the provider's word, but its body is still input: a
prediction ID longer than the columns keeping it (128 characters), one that is
not a string, or a NUL character or broken Unicode anywhere in it (PostgreSQL
stores neither, in text or JSON) is a malformed delivery (400), on both engines,
and nothing of it is recorded; never a database error (500, which the provider
would retry forever).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from schema import ids
from services.database import Database
from services.generation.engine import EngineSettings, GenerationEngine, MalformedDelivery
from services.media.storage import LocalStorage
from services.replicate.gateway import ReplicateGateway
from services.replicate.signatures import sign
from services.tables import ShotImageRow, WebhookDeliveryRow
from tests.factories import account, iteration, project, scene, settle_generations
from tests.test_maintenance import WEBHOOK_SECRET


@pytest.fixture
async def receiver(db: Database, tmp_path: Path) -> AsyncIterator[GenerationEngine]:
    gateway = ReplicateGateway(api_token=None, base_url="http://127.0.0.1:9")
    engine = GenerationEngine(
        db, gateway, LocalStorage(tmp_path), EngineSettings(webhook_secret=WEBHOOK_SECRET)
    )
    try:
        yield engine
    finally:
        await engine.stop()
        await gateway.aclose()
        await settle_generations(db)


def delivery(body: bytes) -> tuple[str, dict[str, str]]:
    webhook_id, timestamp = f"msg_{secrets.token_hex(8)}", int(time.time())
    return webhook_id, {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(WEBHOOK_SECRET, webhook_id, timestamp, body),
    }


async def waiting_image(db: Database, prediction_id: str) -> int:
    """A shot image waiting for `prediction_id`; its row ID."""
    owner = await account(db)
    project_id = await project(db, owner)
    shot_id = (await scene(db, owner, project_id, shots=1))["shots"][0]["id"]
    image_id = (await iteration(db, owner, shot_id, count=1))["images"][0]["id"]
    pk = ids.decode(image_id, "ShotImage")
    async with db.transaction() as session:
        image = await session.get(ShotImageRow, pk)
        assert image is not None
        image.status, image.prediction_id = "PROCESSING", prediction_id
    return pk


@contextlib.asynccontextmanager
async def refusing_update(
    db: Database, pk: int, name: str, message: str, *, integrity: bool = True
) -> AsyncIterator[None]:
    """While inside: a trigger `name` refuses any update of shot image `pk`, with
    `message` as an integrity error (or, with `integrity=False`, an unexpected one);
    dropped on the way out."""
    if db.engine.dialect.name == "postgresql":
        code = "check_violation" if integrity else "internal_error"
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{message}' USING ERRCODE = '{code}'; END $$",
            f"CREATE TRIGGER {name} BEFORE UPDATE ON shot_images FOR EACH ROW "
            f"WHEN (NEW.id = {pk}) EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON shot_images", f"DROP FUNCTION {name}()"]
    else:
        refusal = (
            f"SELECT RAISE(ABORT, '{message}')" if integrity else f"SELECT * FROM {message}_missing"  # noqa: S608 (a test constant)
        )
        create = [
            f"CREATE TRIGGER {name} BEFORE UPDATE ON shot_images "
            f"WHEN NEW.id = {pk} BEGIN {refusal}; END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    async with db.engine.begin() as connection:
        for statement in create:
            await connection.exec_driver_sql(statement)
    try:
        yield
    finally:
        async with db.engine.begin() as connection:
            for statement in drop:
                await connection.exec_driver_sql(statement)


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "p" * 129, "status": "processing"},
        {"id": "p-\x00", "status": "processing"},
        {"id": "p-\ud800", "status": "processing"},
        {"id": {"nested": "id"}, "status": "processing"},
        {"id": "", "status": "processing"},
        {"status": "failed", "error": "broke \x00 here"},
        {"status": "succeeded", "output": ["https://example.com/a.png\x00"]},
        {"status": "processing", "logs": "step 1\ud800"},
    ],
    ids=[
        "long-id",
        "nul-id",
        "surrogate-id",
        "object-id",
        "empty-id",
        "nul-error",
        "nul-output",
        "surrogate-logs",
    ],
)
async def test_a_genuine_delivery_no_column_can_hold_is_malformed(
    db: Database, receiver: GenerationEngine, fields: dict[str, Any]
) -> None:
    prediction_id = f"p-{secrets.token_hex(6)}"
    pk = await waiting_image(db, prediction_id)
    body = json.dumps({"id": prediction_id, **fields}).encode()
    webhook_id, headers = delivery(body)
    with pytest.raises(MalformedDelivery):
        await receiver.receive_webhook(headers, body)
    async with db.session() as session:
        assert await session.get(WebhookDeliveryRow, webhook_id) is None
        image = await session.get(ShotImageRow, pk)
    assert image is not None
    assert image.status == "PROCESSING"
    # The same prediction's next genuine delivery is applied as ever.
    body = json.dumps({"id": prediction_id, "status": "failed", "error": "out of memory"}).encode()
    _, headers = delivery(body)
    assert await receiver.receive_webhook(headers, body)
    async with db.session() as session:
        found = (await session.exec(select(ShotImageRow).where(col(ShotImageRow.id) == pk))).one()
    assert found.status == "FAILED"


async def test_an_integrity_error_while_applying_is_no_repeat(
    db: Database, receiver: GenerationEngine
) -> None:
    """Only the delivery's own id being recorded already makes a delivery a repeat
    (answered 200 "duplicate", never applied). Any other integrity error raised while
    applying it (here a trigger refusing the image's update) is raised, nothing of the
    delivery is kept, and the provider's retry applies it once the cause is gone;
    taken for a repeat, the update would be lost for good."""
    prediction_id = f"p-{secrets.token_hex(6)}"
    pk = await waiting_image(db, prediction_id)
    body = json.dumps({"id": prediction_id, "status": "failed", "error": "out of memory"}).encode()
    webhook_id, headers = delivery(body)
    async with refusing_update(db, pk, f"refuse_{secrets.token_hex(4)}", "refused"):
        with pytest.raises(IntegrityError):
            await receiver.receive_webhook(headers, body)
    async with db.session() as session:
        assert await session.get(WebhookDeliveryRow, webhook_id) is None
        image = await session.get(ShotImageRow, pk)
    assert image is not None
    assert image.status == "PROCESSING"
    # The provider retries the same delivery: now it is applied, once.
    assert await receiver.receive_webhook(headers, body)
    assert not await receiver.receive_webhook(headers, body)
    async with db.session() as session:
        found = (await session.exec(select(ShotImageRow).where(col(ShotImageRow.id) == pk))).one()
    assert found.status == "FAILED"
