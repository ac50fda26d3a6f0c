"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from api.state import app_state

logger = logging.getLogger("studio.health")


async def healthz(_: Request) -> JSONResponse:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and a message makes a round trip through the bus."""
    state = app_state(request)
    checks: dict[str, str] = {}
    try:
        await state.db.ping()
        checks["database"] = "ok"
    except Exception:
        logger.exception("readiness: the database did not answer")
        checks["database"] = "unavailable"
    try:
        await state.bus.ping()
        checks["eventBus"] = "ok"
    except Exception as error:
        logger.warning("readiness: the event bus did not answer (%s)", error)
        checks["eventBus"] = "unavailable"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
