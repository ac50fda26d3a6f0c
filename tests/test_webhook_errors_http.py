"""`POST /webhooks/replicate` on a real server when applying a genuine delivery
fails unexpectedly: a 5xx (the provider retries it) that tells nothing of the
cause, nothing of the delivery recorded, and its retry applied once the cause is
gone. On both engines."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

import migrations
from api.app import create_app
from api.cli import _uvicorn_options
from api.ports import free_port
from api.settings import Settings
from services.database import Database
from services.tables import ShotImageRow, WebhookDeliveryRow
from tests.servers import serving_in_process
from tests.test_maintenance import WEBHOOK_SECRET
from tests.test_webhook_bodies import delivery, refusing_update, waiting_image

pytestmark = pytest.mark.e2e

MARK = f"hidden_{secrets.token_hex(4)}"


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[tuple[str, Database]]:
    migrated = Database(database_url)
    try:
        await migrations.upgrade_to_head(migrated)
    finally:
        await migrated.dispose()
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        secret_key="webhook error tests secret key, long enough to be accepted",
        event_bus_url="memory://",
        replicate_webhook_secret=WEBHOOK_SECRET,
        generation_poll_seconds=3600,
    )
    port = free_port()
    app = create_app(settings, port=port)
    async with serving_in_process(app, port, **_uvicorn_options(settings)) as base_url:
        yield base_url, app.state.studio.db


@pytest.mark.parametrize("kind", ["unexpected", "integrity"])
async def test_a_delivery_failing_unexpectedly_is_a_bare_5xx_and_kept_for_its_retry(
    served: tuple[str, Database], kind: str
) -> None:
    base_url, db = served
    prediction_id = f"p-{secrets.token_hex(6)}"
    pk = await waiting_image(db, prediction_id)
    body = json.dumps({"id": prediction_id, "status": "failed", "error": "oom"}).encode()
    webhook_id, headers = delivery(body)
    async with httpx.AsyncClient(base_url=base_url, trust_env=False, timeout=30) as client:
        async with refusing_update(db, pk, f"t_{MARK}_{kind}", MARK, integrity=kind == "integrity"):
            answer = await client.post("/webhooks/replicate", content=body, headers=headers)
        assert answer.status_code >= 500, answer.text
        assert MARK not in answer.text
        assert "Traceback" not in answer.text
        assert "shot_images" not in answer.text
        async with db.session() as session:
            assert await session.get(WebhookDeliveryRow, webhook_id) is None
            image = await session.get(ShotImageRow, pk)
        assert image is not None
        assert image.status == "PROCESSING"
        retried = await client.post("/webhooks/replicate", content=body, headers=headers)
        assert retried.json() == {"status": "ok"}
        again = await client.post("/webhooks/replicate", content=body, headers=headers)
        assert again.json() == {"status": "duplicate"}
    async with db.session() as session:
        image = await session.get(ShotImageRow, pk)
    assert image is not None
    assert image.status == "FAILED"
