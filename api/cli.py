"""The `studio` command: serve, migrate, schema."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from sqlalchemy.engine import make_url

import migrations
from api.settings import Settings, SettingsError
from services.database import Database

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600
PRIVATE_UMASK = 0o077
"""Files this process creates are its user's alone (the database, its journal, media)."""


def _settings() -> Settings:
    settings = Settings()
    if settings.embedded:
        _make_private(settings)
    return settings


def _make_private(settings: Settings) -> None:
    """Keep the embedded data directory to this user: it holds the database (password
    and token hashes, every project), the generated SECRET_KEY and the media.

    The directory is made (or narrowed to) 0700; the database file and SQLite's
    `-wal`/`-shm` files beside it are made 0600 if they exist already; and the
    process umask becomes 0077, so whatever it creates later (those files, media,
    temporary files) is private too, whatever umask it was started with.
    """
    os.umask(PRIVATE_UMASK)
    directory = settings.studio_data_dir
    directory.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
    directory.chmod(PRIVATE_DIRECTORY)
    database = settings.sqlite_path
    for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
        if path.exists():
            path.chmod(PRIVATE_FILE)


def _describe_database(settings: Settings) -> str:
    if settings.embedded:
        return f"embedded SQLite file {settings.sqlite_path}"
    return make_url(settings.resolved_database_url()).render_as_string(hide_password=True)


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app

    settings = _settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(settings, host=args.host, port=args.port)
    public = settings.resolved_public_url(args.host, args.port)
    print(f"Storyboard Studio on {_describe_database(settings)}")
    print(f"  GraphiQL:   {public}/graphql")
    print(f"  Editor:     {public}/")
    print(f"  Readiness:  {public}/readyz", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        # uvicorn times out neither request headers nor bodies: the body is timed in
        # api/limits.py; headers by the reverse proxy in front (see deploy/nginx.conf).
        limit_concurrency=settings.max_connections,
        backlog=settings.listen_backlog,
        timeout_keep_alive=settings.keep_alive_seconds,
        # The app believes forwarded headers from TRUSTED_PROXIES only (api/app.py);
        # uvicorn's own handling would believe 127.0.0.1 (or FORWARDED_ALLOW_IPS) too.
        proxy_headers=False,
        ws_per_message_deflate=settings.websocket_compression,
    )


def migrate(_: argparse.Namespace) -> None:
    settings = _settings()

    async def run() -> None:
        db = Database(settings.resolved_database_url())
        try:
            await migrations.upgrade_to_head(db)
        finally:
            await db.dispose()

    asyncio.run(run())
    print(f"{_describe_database(settings)} is at migration {migrations.head_revision()}.")


def schema(_: argparse.Namespace) -> None:
    from schema.app import schema as graphql_schema

    print(graphql_schema.as_str())


def emulator(args: argparse.Namespace) -> None:
    """Run the emulator on its own. Like Replicate it needs an API token on every call:
    REPLICATE_API_TOKEN if set (so one configuration serves it and the server), else a
    new one, shown once on the terminal. Its webhook secret is REPLICATE_WEBHOOK_SECRET
    if set, else a new one, which the server fetches with the token."""
    import secrets

    import uvicorn

    from services.replicate.emulator import (
        EmulatorConfig,
        create_emulator_app,
        generate_webhook_secret,
    )

    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    public_url = f"http://{args.host}:{args.port}"
    configured = settings.replicate_api_token
    token = configured.get_secret_value() if configured else "r8_" + secrets.token_urlsafe(32)
    webhook_secret = settings.replicate_webhook_secret
    config = EmulatorConfig(
        latency_ms=settings.emulator_latency_ms,
        public_url=public_url,
        api_token=token,
        webhook_secret=webhook_secret.get_secret_value()
        if webhook_secret
        else generate_webhook_secret(),
    )
    print(f"Replicate emulator at {public_url} (point REPLICATE_BASE_URL here)")
    if configured:
        print("  API token: REPLICATE_API_TOKEN", flush=True)
    else:
        print(f"  API token (set REPLICATE_API_TOKEN to it): {token}", flush=True)
    uvicorn.run(create_emulator_app(config), host=args.host, port=args.port, log_level="warning")


def bench(args: argparse.Namespace) -> None:
    from api.bench.run import main as run_bench

    run_bench(args.postgres)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="studio", description="Storyboard Studio server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the server")
    serve_parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve_parser.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    serve_parser.set_defaults(run=serve)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=migrate)
    commands.add_parser("schema", help="print the GraphQL schema (SDL)").set_defaults(run=schema)
    emulator_parser = commands.add_parser(
        "emulator", help="run the built-in Replicate emulator on its own"
    )
    emulator_parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    emulator_parser.add_argument("--port", type=int, default=8001, help="port to bind (8001)")
    emulator_parser.set_defaults(run=emulator)
    bench_parser = commands.add_parser("bench", help="print benchmark figures")
    bench_parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="also measure on PostgreSQL, in a database made and dropped through this URL",
    )
    bench_parser.set_defaults(run=bench)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except SettingsError as error:
        print(f"studio: {error}", file=sys.stderr)
        sys.exit(2)
