"""`POST /webhooks/replicate`: prediction updates, verified, idempotent, in any order."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.state import app_state
from services.generation.engine import MalformedDelivery
from services.replicate.signatures import SecretUnavailable, WebhookRejected

logger = logging.getLogger("studio.webhooks")


async def replicate_webhook(request: Request) -> JSONResponse:
    """Verify and apply one delivery (`GenerationEngine.receive_webhook`).

    401: headers that cannot verify (checked before the signing secret is needed,
    so they never make the server ask the provider for it) or a wrong signature;
    503 with `Retry-After` while the secret cannot be had; 400: a genuine delivery
    whose body is not a prediction.
    """
    generation_engine = app_state(request).generation_engine
    try:
        handled = await generation_engine.receive_webhook(request.headers, await request.body())
    except WebhookRejected as error:
        logger.warning("webhook refused: %s", error)
        return JSONResponse({"error": "invalid signature"}, status_code=401)
    except SecretUnavailable as error:
        logger.warning("webhook refused: %s", error)
        return JSONResponse(
            {"error": "not ready"},
            status_code=503,
            headers={"Retry-After": str(error.retry_after)},
        )
    except MalformedDelivery:
        return JSONResponse({"error": "not a prediction"}, status_code=400)
    return JSONResponse({"status": "ok" if handled else "duplicate"})
