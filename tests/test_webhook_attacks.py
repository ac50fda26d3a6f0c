"""Webhook deliveries under attack: the same delivery at once, odd prediction IDs,
one prediction ID held by several rows, on both engines."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
from sqlmodel import col, select

from schema import ids
from services.database import Database
from services.generation.engine import GenerationEngine
from services.library.tables import AssetRow
from services.tables import ProjectEventRow, ShotImageRow, ShotRow, WebhookDeliveryRow
from tests.factories import account, library_asset
from tests.test_webhook_bodies import delivery, receiver, waiting_image

__all__ = ["receiver"]


async def _events(db: Database, pk: int) -> list[int]:
    async with db.session() as session:
        image = await session.get(ShotImageRow, pk)
        assert image is not None
        rows = await session.exec(select(ProjectEventRow))
        return sorted(e.sequence for e in rows if e.node_type == "ShotImage" and e.node_id == pk)


async def _project_sequences(db: Database, pk: int) -> list[int]:
    """The event numbers of the project of shot image `pk`, in order (other tests'
    projects, in the same database, may have had events pruned)."""
    async with db.session() as session:
        image = await session.get(ShotImageRow, pk)
        assert image is not None
        shot = await session.get(ShotRow, image.shot_id)
        assert shot is not None
        rows = await session.exec(
            select(ProjectEventRow.sequence).where(ProjectEventRow.project_id == shot.project_id)
        )
        return sorted(rows)


def _dense(sequences: list[int]) -> bool:
    return bool(sequences) and sequences == list(range(sequences[0], sequences[0] + len(sequences)))


async def test_the_same_delivery_at_once_is_applied_once(
    db: Database, receiver: GenerationEngine
) -> None:
    prediction_id = f"p-{secrets.token_hex(6)}"
    pk = await waiting_image(db, prediction_id)
    before = await _events(db, pk)
    body = json.dumps({"id": prediction_id, "status": "failed", "error": "oom"}).encode()
    _, headers = delivery(body)
    outcomes = await asyncio.gather(*(receiver.receive_webhook(headers, body) for _ in range(4)))
    assert sorted(outcomes) == [False, False, False, True]
    after = await _events(db, pk)
    assert len(after) == len(before) + 1
    assert _dense(await _project_sequences(db, pk))


async def test_different_deliveries_of_one_prediction_at_once(
    db: Database, receiver: GenerationEngine
) -> None:
    """Two deliveries (different ids) of one prediction at once: both handled, events
    dense, the image settled once."""
    prediction_id = f"p-{secrets.token_hex(6)}"
    pk = await waiting_image(db, prediction_id)
    body = json.dumps({"id": prediction_id, "status": "failed", "error": "oom"}).encode()
    deliveries = [delivery(body)[1] for _ in range(3)]
    outcomes = await asyncio.gather(*(receiver.receive_webhook(h, body) for h in deliveries))
    assert outcomes == [True, True, True]
    async with db.session() as session:
        image = await session.get(ShotImageRow, pk)
    assert image is not None
    assert image.status == "FAILED"
    assert _dense(await _project_sequences(db, pk))


@pytest.mark.parametrize(
    "prediction_id",
    [
        "p" * 128,
        "é🎬-" + "x" * 120,
        "' OR 1=1 --",
        "x'); DROP TABLE shot_images; --",
        "%_\\",
        ":prediction_id",
    ],
    ids=["max-length", "unicode", "or-1", "drop", "like-chars", "bind-name"],
)
async def test_odd_prediction_ids_match_only_their_own_rows(
    db: Database, receiver: GenerationEngine, prediction_id: str
) -> None:
    unique = (
        prediction_id[:-8] + secrets.token_hex(4)
        if len(prediction_id) > 20
        else (prediction_id + secrets.token_hex(4))
    )
    pk = await waiting_image(db, unique)
    other = await waiting_image(db, f"p-{secrets.token_hex(6)}")
    body = json.dumps({"id": unique, "status": "failed", "error": "oom"}).encode()
    webhook_id, headers = delivery(body)
    assert await receiver.receive_webhook(headers, body)
    assert not await receiver.receive_webhook(headers, body)
    async with db.session() as session:
        image = await session.get(ShotImageRow, pk)
        untouched = await session.get(ShotImageRow, other)
        recorded = await session.get(WebhookDeliveryRow, webhook_id)
    assert image is not None
    assert image.status == "FAILED"
    assert untouched is not None
    assert untouched.status == "PROCESSING"
    assert recorded is not None
    assert recorded.prediction_id == unique


async def test_one_prediction_id_held_by_rows_of_several_tables(
    db: Database, receiver: GenerationEngine
) -> None:
    """Two shot images (of two projects) and a library asset waiting for one
    prediction: one delivery settles every one of them, and nothing else."""
    prediction_id = f"p-{secrets.token_hex(6)}"
    first = await waiting_image(db, prediction_id)
    second = await waiting_image(db, prediction_id)
    other = await waiting_image(db, f"p-{secrets.token_hex(6)}")
    creator = await account(db)
    asset = ids.decode(
        await library_asset(
            db, creator, generation_status="PROCESSING", prediction_id=prediction_id
        ),
        "Asset",
    )
    body = json.dumps({"id": prediction_id, "status": "failed", "error": "oom"}).encode()
    _, headers = delivery(body)
    assert await receiver.receive_webhook(headers, body)
    async with db.session() as session:
        found = (
            await session.exec(
                select(ShotImageRow).where(col(ShotImageRow.id).in_([first, second, other]))
            )
        ).all()
        stored = await session.get(AssetRow, asset)
    assert {i.id: i.status for i in found} == {
        first: "FAILED",
        second: "FAILED",
        other: "PROCESSING",
    }
    assert stored is not None
    assert stored.generation_status == "FAILED"
