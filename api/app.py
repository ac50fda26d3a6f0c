"""The ASGI app: routes, middleware, and the lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
)

import migrations
from api.embedded import embedded_emulator
from api.graphql import StudioGraphQL
from api.health import healthz, readyz
from api.limits import BodySizeLimit
from api.media import media
from api.settings import Settings, SettingsError
from api.state import AppState
from api.webhooks import replicate_webhook
from resolvers.context import Resources
from schema.app import schema
from services import events, maintenance
from services.bus import EventBus
from services.database import Database
from services.generation import EngineSettings, GenerationEngine
from services.replicate_api import ReplicateGateway
from services.storage import LocalStorage, MediaLinks

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


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def editor(_: Request) -> FileResponse:
    return FileResponse(WEB_DIR / "index.html")


@contextlib.asynccontextmanager
async def replicate_gateway(settings: Settings) -> AsyncIterator[ReplicateGateway]:
    """Replicate itself, an emulator at REPLICATE_BASE_URL, or the built-in one."""
    async with contextlib.AsyncExitStack() as stack:
        if settings.uses_emulator:
            base_url, _ = await stack.enter_async_context(
                embedded_emulator(latency_ms=settings.emulator_latency_ms)
            )
            logger.info("no REPLICATE_API_TOKEN: using the built-in Replicate emulator")
        else:
            base_url = settings.replicate_base_url or "https://api.replicate.com"
        gateway = ReplicateGateway(api_token=settings.replicate_api_token, base_url=base_url)
        stack.push_async_callback(gateway.aclose)
        yield gateway


def create_app(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000) -> Starlette:
    """The whole server; resources open when the lifespan starts and close when it ends."""
    secret_key = settings.resolved_secret_key()
    database_url = settings.resolved_database_url()
    public_url = settings.resolved_public_url(host, port)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            db = Database(database_url)
            stack.push_async_callback(db.dispose)
            await prepare_database(db, migrate=db.is_sqlite)
            async with db.session() as session:
                namespace = await events.studio_id(session)
            bus = EventBus(
                settings.event_bus_url,
                queue_size=settings.subscription_queue_size,
                namespace=namespace,
                outbox_size=settings.event_outbox_size,
                fanout_concurrency=settings.subscription_fanout_concurrency,
                fanout_lease=settings.subscription_fanout_lease_seconds,
            )
            await bus.start()
            stack.push_async_callback(bus.stop)
            db.bus = bus  # from now on, committed events are published
            storage = LocalStorage(settings.resolved_media_root)
            gateway = await stack.enter_async_context(replicate_gateway(settings))
            engine = GenerationEngine(
                db,
                gateway,
                storage,
                EngineSettings(
                    webhook_url=settings.webhook_url(),
                    webhook_secret=settings.replicate_webhook_secret,
                    poll_interval=settings.generation_poll_seconds,
                ),
            )
            housekeeping = asyncio.create_task(
                maintenance.run_forever(
                    db, event_retention=timedelta(days=settings.event_retention_days)
                ),
                name="housekeeping",
            )
            stack.push_async_callback(_cancel, housekeeping)
            engine.start()  # its first sweep picks up whatever was in flight before a restart
            stack.push_async_callback(engine.stop)
            resources = Resources(
                db=db, media=MediaLinks(secret_key, public_url), generation=engine, bus=bus
            )
            app.state.studio = AppState(resources=resources, storage=storage, public_url=public_url)
            logger.info("ready at %s", public_url)
            yield

    graphql = StudioGraphQL(
        schema,
        graphql_ide="graphiql",
        allowed_origins=settings.origins,
        keep_alive=True,
        keep_alive_interval=15,
        subscription_protocols=(
            GRAPHQL_TRANSPORT_WS_PROTOCOL,
            GRAPHQL_WS_PROTOCOL,
            GRAPHQL_SSE_PROTOCOL,
        ),
    )
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/webhooks/replicate", replicate_webhook, methods=["POST"]),
            Route("/media/{key:path}", media, methods=["GET", "HEAD"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/", editor),
        ],
        middleware=[Middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)],
        lifespan=lifespan,
    )
