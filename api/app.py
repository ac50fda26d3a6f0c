"""The ASGI app: routes, middleware, and the lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    GRAPHQL_WS_PROTOCOL,
)
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

import migrations
from api.editor import EditorPage, editor_routes
from api.embedded import embedded_emulator
from api.fanout import TransportSend
from api.graphiql import graphiql_page
from api.graphql import StudioGraphQL
from api.health import healthz, readyz
from api.limits import (
    BodyReadTimeout,
    BodySizeLimit,
    BusyDatabase,
    CloseUnreadBodies,
    RateLimit,
    UnsignedWebSocketCap,
    WebSocketCap,
)
from api.media import MediaHeaders, media
from api.prediction_webhooks import replicate_webhook
from api.schema import schema
from api.settings import Settings, SettingsError
from api.state import AppState
from api.static import static_mounts
from api.vendor import VENDOR_DIR
from schema.context import Resources
from services import maintenance
from services.accounts.accounts import AccountSettings
from services.accounts.passwords import Passwords
from services.database import Database
from services.generation.engine import EngineSettings, GenerationEngine
from services.library import edits as library_edits
from services.library import thumbnails
from services.media.storage import LocalStorage, MediaLinks
from services.outbound import FetchLimits, parse_allowed_hosts
from services.realtime import events
from services.realtime.bus import EventBus
from services.replicate.gateway import ReplicateGateway
from services.request_limits.policy import Backoff, Limits, LimitSettings, LoginPolicy

logger = logging.getLogger("studio")

THUMBNAIL_FILL_LIMIT = 2000
"""At most this many assets get their missing thumbnails made at each start-up."""


async def prepare_database(db: Database, *, migrate: bool) -> None:
    """Bring the schema to the latest migration, or refuse to run on an outdated one."""
    if migrate:
        # Alembic logs a line per migration; one line says it all at start-up.
        alembic_log = logging.getLogger("alembic")
        level = alembic_log.level
        alembic_log.setLevel(max(logging.WARNING, level))
        try:
            before = await migrations.current_revision(db)
            await migrations.upgrade_to_head(db)
        finally:
            alembic_log.setLevel(level)
        after = migrations.head_revision()
        if before != after:
            logger.info("database migrated from %s to %s", before or "empty", after)
        return
    current, head = await migrations.current_revision(db), migrations.head_revision()
    if current != head:
        raise SettingsError(
            f"The database is at migration {current or 'none'}, not {head}: "
            "run `studio migrate` first."
        )


def freeze_start_up_objects() -> None:
    """Move every object alive now out of the cyclic garbage collector's sight, until
    `gc.unfreeze()`.

    What start-up made (modules, the schema, pools, settings) lives as long as the
    server, yet each full collection would walk it again: on the nested storyboard
    read the collector took a third of the CPU, and freezing after start-up cut the
    mean time of that read by a quarter and its p90 by half (see the README's
    figures). The garbage made so far is collected first, so none of it is kept
    frozen (https://docs.python.org/3/library/gc.html#gc.freeze).
    """
    gc.collect()
    gc.freeze()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def replicate_gateway(settings: Settings) -> AsyncIterator[ReplicateGateway]:
    """Replicate itself, an emulator at REPLICATE_BASE_URL, or the built-in one."""
    async with contextlib.AsyncExitStack() as stack:
        if settings.uses_emulator:
            base_url, emulator = await stack.enter_async_context(
                embedded_emulator(
                    latency_ms=settings.emulator_latency_ms,
                    log_requests=settings.emulator_log_requests,
                )
            )
            api_token = emulator.api_token
        else:
            base_url = settings.replicate_base_url or "https://api.replicate.com"
            api_token = _unwrap(settings.replicate_api_token)
        gateway = ReplicateGateway(
            api_token=api_token,
            base_url=base_url,
            max_attempts=settings.replicate_post_attempts,
            call_timeout=settings.replicate_call_timeout_seconds,
            retry_after_cap=settings.replicate_retry_after_cap_seconds,
        )
        stack.push_async_callback(gateway.aclose)
        yield gateway


def limit_settings(settings: Settings) -> LimitSettings:
    """Every limit from the settings, as the plain values services take."""
    return LimitSettings(
        graphql=settings.rate_limit_graphql,
        media=settings.rate_limit_media,
        sign_up=settings.rate_limit_sign_up,
        max_input_list_length=settings.max_input_list_length,
        subscriptions_per_connection=settings.max_subscriptions_per_connection,
        subscriptions_per_user=settings.max_subscriptions_per_user,
        lease_seconds=settings.subscription_lease_seconds,
        ipv6_prefix=settings.rate_limit_ipv6_prefix,
        login=LoginPolicy(
            pair=Backoff(
                settings.login_free_failures,
                settings.login_base_delay_seconds,
                settings.login_max_delay_seconds,
            ),
            address=Backoff(
                settings.login_address_free_failures,
                settings.login_base_delay_seconds,
                settings.login_max_delay_seconds,
            ),
            account=Backoff(
                settings.login_account_free_failures,
                settings.login_base_delay_seconds,
                settings.login_account_max_delay_seconds,
            ),
            memory=settings.login_failure_memory_seconds,
        ),
    )


def _unwrap(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


def _account_settings(settings: Settings) -> AccountSettings:
    try:
        passwords = Passwords(
            memory_kib=settings.password_hash_memory_kib,
            iterations=settings.password_hash_iterations,
            lanes=settings.password_hash_lanes,
            concurrency=settings.password_hash_concurrency,
        )
    except ValueError as error:
        raise SettingsError(f"PASSWORD_HASH_*: {error}") from error
    return AccountSettings(
        passwords=passwords,
        invitation_lifetime=timedelta(days=settings.invitation_lifetime_days),
        max_pending_invitations=settings.max_pending_invitations,
    )


def create_app(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    vendor_dir: Path = VENDOR_DIR,
) -> Starlette:
    """The whole server; resources open when the lifespan starts and close when it ends.

    Raises SettingsError for a bad setting, and api.vendor.VendorError when the
    vendored browser libraries in `vendor_dir` (web/vendor/) lack a file GraphiQL loads.
    """
    secret_key = settings.resolved_secret_key()
    database_url = settings.resolved_database_url()
    public_url = settings.resolved_public_url(host, port)
    limits_url = settings.resolved_limits_url()
    accounts = _account_settings(settings)
    output_hosts = tuple(h for h in settings.outbound_allowed_hosts.split(",") if h.strip())
    try:
        parse_allowed_hosts(output_hosts)
    except ValueError as error:
        raise SettingsError(f"OUTBOUND_ALLOWED_HOSTS: {error}") from error
    fetch_limits = FetchLimits(
        max_image_bytes=settings.outbound_max_image_bytes,
        max_video_bytes=settings.outbound_max_video_bytes,
        connect_timeout=settings.outbound_connect_timeout_seconds,
        read_timeout=settings.outbound_read_timeout_seconds,
        total_timeout=settings.outbound_total_timeout_seconds,
        max_redirects=settings.outbound_max_redirects,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            db = Database(database_url, pool_timeout=settings.database_pool_timeout_seconds)
            stack.push_async_callback(db.dispose)
            await prepare_database(db, migrate=db.is_sqlite)
            async with db.session() as session:
                namespace = await events.studio_id(session)
            bus = EventBus(
                settings.event_bus_url.get_secret_value(),
                queue_size=settings.subscription_queue_size,
                namespace=namespace,
                outbox_size=settings.event_outbox_size,
                fanout_concurrency=settings.subscription_fanout_concurrency,
                fanout_lease=settings.subscription_fanout_lease_seconds,
            )
            await bus.start()
            stack.push_async_callback(bus.stop)
            db.bus = bus  # from now on, committed events are published
            limits = Limits(limits_url, limit_settings(settings), namespace=namespace)
            await limits.start()
            stack.push_async_callback(limits.stop)
            storage = LocalStorage(settings.resolved_media_root)
            # Files of deleted assets still being removed are finished before shutdown.
            stack.push_async_callback(library_edits.removals_done)
            gateway = await stack.enter_async_context(replicate_gateway(settings))
            generation_engine = GenerationEngine(
                db,
                gateway,
                storage,
                EngineSettings(
                    webhook_url=settings.webhook_url(),
                    webhook_secret=_unwrap(settings.replicate_webhook_secret),
                    poll_interval=settings.generation_poll_seconds,
                    max_tries=settings.generation_max_tries,
                    claim_timeout=settings.generation_claim_seconds,
                    # The provider's (or the built-in emulator's) own host is always
                    # allowed for its outputs; these are more such hosts.
                    output_hosts=output_hosts,
                    fetch_limits=fetch_limits,
                    copy_max_tries=settings.copy_max_tries,
                    copy_retry_seconds=settings.copy_retry_seconds,
                    copy_concurrency=settings.copy_concurrency,
                ),
            )
            housekeeping = asyncio.create_task(
                maintenance.run_forever(
                    db, event_retention=timedelta(days=settings.event_retention_days)
                ),
                name="housekeeping",
            )
            stack.push_async_callback(_cancel, housekeeping)
            # Its first sweep picks up whatever was in flight before a restart.
            generation_engine.start()
            stack.push_async_callback(generation_engine.stop)
            # Assets back-filled without storage (migration 0011) get their thumbnails
            # and measurements in the background, a bounded number per start-up.
            library_media = asyncio.create_task(
                thumbnails.fill_in_background(db, storage, limit=THUMBNAIL_FILL_LIMIT),
                name="library-thumbnails",
            )
            stack.push_async_callback(_cancel, library_media)
            resources = Resources(
                db=db,
                media=MediaLinks(secret_key, public_url),
                generation_engine=generation_engine,
                bus=bus,
                limits=limits,
                accounts=accounts,
                storage=storage,
            )
            app.state.studio = AppState(
                resources=resources,
                storage=storage,
                public_url=public_url,
                replicate_url=gateway.base_url,
            )
            # Last: everything above is opened. Unfrozen at shutdown, so a process
            # that runs several apps (tests) can still collect what each one left.
            freeze_start_up_objects()
            stack.callback(gc.unfreeze)
            yield

    graphql = StudioGraphQL(
        schema,
        ide_page=graphiql_page(vendor_dir),
        graphql_ide="graphiql",
        allowed_origins=settings.origins,
        keep_alive=True,
        keep_alive_interval=15,
        # Strawberry's default is a minute: an idle socket that never signs in holds
        # a connection that long.
        connection_init_wait_timeout=timedelta(seconds=settings.websocket_init_timeout_seconds),
        subscription_protocols=(
            GRAPHQL_TRANSPORT_WS_PROTOCOL,
            GRAPHQL_WS_PROTOCOL,
            GRAPHQL_SSE_PROTOCOL,
        ),
    )
    proxies = settings.proxies
    return Starlette(
        routes=[
            # Every method reaches the view, which refuses all but GET and POST with 405
            # and a JSON body (the router's own 405 is plain text).
            Route("/graphql", graphql),
            WebSocketRoute("/graphql", graphql),
            Route("/webhooks/replicate", replicate_webhook, methods=["POST"]),
            Route("/media/{key:path}", media, methods=["GET", "HEAD"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *editor_routes(EditorPage(vendor_dir=vendor_dir)),
            *static_mounts(vendor_dir=vendor_dir),
        ],
        middleware=[
            # First, so every answer under /media has nosniff and the CSP, a 429 included.
            Middleware(MediaHeaders),
            # Outside every middleware that wraps a WebSocket's send (api/fanout.py).
            Middleware(TransportSend),
            # Outside every middleware that may wait for a database connection.
            Middleware(BusyDatabase),
            # Outermost: every answer (a 413, a 429, a probe's) closes a connection
            # whose body it did not wait for.
            Middleware(CloseUnreadBodies),
            Middleware(WebSocketCap, max_open=settings.max_connections),
            # The one place forwarded headers are believed, and only from TRUSTED_PROXIES
            # (`studio serve` runs uvicorn without its own proxy-header handling).
            *([Middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)] if proxies else []),
            Middleware(
                UnsignedWebSocketCap, max_per_address=settings.max_unsigned_websockets_per_address
            ),
            Middleware(RateLimit),
            Middleware(BodyReadTimeout, seconds=settings.body_read_timeout_seconds),
            Middleware(BodySizeLimit, max_bytes=settings.max_request_bytes),
        ],
        lifespan=lifespan,
    )
