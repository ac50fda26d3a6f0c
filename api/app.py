"""The ASGI app: routes, middleware, and the lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route, WebSocketRoute

import migrations
from api.graphql import StudioGraphQL
from api.health import healthz, readyz
from api.limits import BodySizeLimit
from api.settings import Settings, SettingsError
from api.state import AppState
from schema.app import schema
from services.database import Database

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

logger = logging.getLogger("studio")


async def prepare_database(db: Database, *, migrate: bool) -> None:
    """Bring the schema to the latest migration, or refuse to run on an outdated one."""
    if migrate:
        await migrations.upgrade_to_head(db)
        return
    current, head = await migrations.current_revision(db), migrations.head_revision()
    if current != head:
        raise SettingsError(
            f"The database is at migration {current or 'none'}, not {head}: "
            "run `studio migrate` first."
        )


async def editor(_: Request) -> FileResponse:
    return FileResponse(WEB_DIR / "index.html")


def create_app(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000) -> Starlette:
    """The whole server; resources open when the lifespan starts and close when it ends."""
    secret_key = settings.resolved_secret_key()
    database_url = settings.resolved_database_url()
    public_url = settings.resolved_public_url(host, port)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(database_url)
        try:
            await prepare_database(db, migrate=db.is_sqlite)
            app.state.studio = AppState(db=db, public_url=public_url, secret_key=secret_key)
            logger.info("ready at %s", public_url)
            yield
        finally:
            await db.dispose()

    graphql = StudioGraphQL(schema, graphql_ide="graphiql")
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/", editor),
        ],
        middleware=[Middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)],
        lifespan=lifespan,
    )
