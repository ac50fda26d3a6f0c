"""`POST /webhooks/replicate`: prediction updates, verified, idempotent, in any order."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.state import app_state
from services import decoding
from services.replicate.gateway import Prediction
from services.replicate.signatures import SecretUnavailable, WebhookRejected, claimed, verify

logger = logging.getLogger("studio.webhooks")


async def replicate_webhook(request: Request) -> JSONResponse:
    """Verify and apply one delivery.

    401: headers that cannot verify (checked before the signing secret is needed,
    so they never make the server ask the provider for it) or a wrong signature;
    503 with `Retry-After` while the secret cannot be had; 400: a genuine delivery
    whose body is not a prediction.
    """
    generation_engine = app_state(request).generation_engine
    try:
        claimed(request.headers)
    except WebhookRejected as error:
        logger.warning("webhook refused: %s", error)
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    body = await request.body()
    try:
        secret = await generation_engine.secret()
    except SecretUnavailable as error:
        logger.warning("webhook refused: %s", error)
        return JSONResponse(
            {"error": "not ready"},
            status_code=503,
            headers={"Retry-After": str(error.retry_after)},
        )
    try:
        webhook_id = verify(secret, request.headers, body)
    except WebhookRejected as error:
        logger.warning("webhook refused: %s", error)
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    try:
        # Our parser: no NaN or Infinity, and bounded nesting (no RecursionError).
        prediction = Prediction.from_json(decoding.loads(body))
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "not a prediction"}, status_code=400)
    if not await generation_engine.ingest(webhook_id, prediction):
        return JSONResponse({"status": "duplicate"})
    return JSONResponse({"status": "ok"})
