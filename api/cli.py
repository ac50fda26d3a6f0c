"""The `studio` command: serve, migrate, schema, emulator, bench, vendor."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import logging
import os
import re
import socket
import sqlite3
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

import migrations
from api.settings import Settings, SettingsError, load_settings
from api.state import AppState
from api.urls import base_url, shown_url, url_host
from api.vendor import VendorError
from api.ws_protocol import StudioWebSocketProtocol
from services.database import Database

PRIVATE_DIRECTORY = 0o700
GROUP_AND_OTHER = 0o077
PRIVATE_UMASK = 0o077
"""Files this process creates are its user's alone (the database, its journal, media)."""
STARTUP_FAILURE = 3
"""The exit code of a server that did not start, as uvicorn's own."""
UNAVAILABLE = 1
"""The exit code when the port or the database cannot be had (the machine's state)."""
BAD_SETTINGS = 2
"""The exit code for a setting or an argument that is wrong (the configuration)."""
DATABASE_CHECK_SECONDS = 10.0


def _settings() -> Settings:
    settings = load_settings()
    if settings.embedded:
        _make_private(settings)
    return settings


def _make_private(settings: Settings) -> None:
    """Keep the embedded data directory to this user: it holds the database (password
    and token hashes, every project), the generated SECRET_KEY and the media.

    The directory is made 0700 if it does not exist. An existing directory, and the
    database file and SQLite's `-wal`/`-shm` files beside it, lose their group and
    other permission bits, and keep their owner's as they are: a directory or a
    database made read-only stays read-only. The process umask becomes 0077, so
    whatever it creates later (those files, media, temporary files) is private too,
    whatever umask it was started with.

    Raises DataDirectoryUnavailable, naming the path and the system's reason, when
    the directory cannot be made or a permission cannot be narrowed (a file of
    another user, an immutable one).
    """
    os.umask(PRIVATE_UMASK)
    directory = settings.studio_data_dir
    database = settings.sqlite_path
    sidecars = (database.with_name(database.name + suffix) for suffix in ("-wal", "-shm"))
    path = directory
    try:
        directory.mkdir(mode=PRIVATE_DIRECTORY, parents=True, exist_ok=True)
        for path in (directory, database, *sidecars):
            if path.exists():
                _narrow(path)
    except OSError as error:
        raise DataDirectoryUnavailable(
            f"cannot keep the data directory private: {path}: {error.strerror or error}. "
            "It must be this user's own: check STUDIO_DATA_DIR and its permissions."
        ) from None


def _narrow(path: Path) -> None:
    """Take group and other permission bits off `path`; never add any."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & GROUP_AND_OTHER:
        path.chmod(mode & ~GROUP_AND_OTHER)


class DataDirectoryUnavailable(Exception):
    """The embedded data directory cannot be made or kept private; the message says why."""


def _describe_database(settings: Settings) -> str:
    if settings.embedded:
        return f"embedded SQLite file {settings.sqlite_path}"
    return shown_url(settings.resolved_database_url())


_REFUSED_URL = (
    "DATABASE_URL: the database driver refuses it: a query parameter it does not take, "
    "or a value of the wrong kind"
)


class DatabaseUnavailable(Exception):
    """The database cannot be reached or opened; the message says which and why."""


async def check_database(
    settings: Settings, *, migrated: bool = False, seconds: float = DATABASE_CHECK_SECONDS
) -> None:
    """Connect to the configured database once (`SELECT 1`), within `seconds`; with
    `migrated`, a PostgreSQL database must also be at the latest migration (the
    server migrates only SQLite itself).

    Raises DatabaseUnavailable, naming the database as `shown_url` shows it (no
    password) and the driver's reason: nothing listening, no such database, a
    refused log-in, no answer in time; for SQLite, a file that cannot be opened or
    written (no such directory, permission denied, read-only, not a database).
    Raises SettingsError for a URL the driver refuses (an argument it does not take,
    a value of the wrong kind) and for a database that `studio migrate` must bring
    up to date. Neither message holds a password.
    """
    where = _describe_database(settings)
    try:
        db = Database(settings.resolved_database_url())
    except (TypeError, ValueError, SQLAlchemyError):
        raise SettingsError(_REFUSED_URL) from None
    if db.is_sqlite:
        advice = "Check that the file is an SQLite database this user can read and write."
    else:
        advice = "Check DATABASE_URL and that the database server is running."
    try:
        async with asyncio.timeout(seconds):
            await db.check_writable()
            await db.ping()
            current = None if db.is_sqlite else await migrations.current_revision(db)
    except TimeoutError:
        raise DatabaseUnavailable(
            f"cannot reach the database {where}: no answer within {seconds:g} s. {advice}"
        ) from None
    except (OSError, SQLAlchemyError, sqlite3.Error) as error:
        reason = getattr(error, "orig", None) or error
        text = (getattr(reason, "strerror", None) or str(reason)).splitlines()[0]
        verb = "use" if db.is_sqlite else "reach"
        raise DatabaseUnavailable(f"cannot {verb} the database {where}: {text}. {advice}") from None
    except (TypeError, ValueError):
        # asyncpg.connect refusing an argument SQLAlchemy passed on from the URL's query.
        raise SettingsError(_REFUSED_URL) from None
    finally:
        await db.dispose()
    head = migrations.head_revision()
    if migrated and not db.is_sqlite and current != head:
        raise SettingsError(
            f"the database {where} is at migration {current or 'none'}, not {head}: "
            "run `studio migrate` first."
        )


class PortUnavailable(Exception):
    """`studio serve` cannot listen where it was asked to; the message says what to do."""


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError("must be between 1 and 64")
    return value


def _port(text: str) -> int:
    """An argparse type: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= MAX_PORT:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 1-{MAX_PORT}")
    return port


MAX_PORT = 65535


def listen_host(text: str) -> str:
    """An argparse type: a host to listen on, a name or an address; `[::1]` is taken
    as `::1`. An empty one is refused: it would mean every interface, unsaid."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise argparse.ArgumentTypeError(
            "the host is empty: give 127.0.0.1 (this machine only), or 0.0.0.0 or :: "
            "(every interface)"
        )
    return host


def _bind(family: int, address: tuple[str, int], *, listen: int | None = None) -> socket.socket:
    """A TCP socket of `family` bound to `address` (SO_REUSEADDR, as uvicorn binds one),
    listening with backlog `listen` unless that is None."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        if listen is not None:
            sock.listen(listen)
    except BaseException:
        sock.close()
        raise
    return sock


def _address(host: str, port: int) -> str:
    return f"{url_host(host)}:{port}"


def listening_address(sock: socket.socket) -> str:
    """The address a socket from `listen_socket` is bound to, as text (`::1`, `0.0.0.0`)."""
    return str(sock.getsockname()[0])


def listen_socket(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A socket listening on host:port, made before anything else starts; PortUnavailable
    if it cannot be had.

    `host` is a name or an address, looked up with getaddrinfo (IPv4 or IPv6,
    whichever it gives first): `localhost`, `::1`, `0` (which is 0.0.0.0). The socket
    listens before it is returned, and is handed to uvicorn as it is, so nothing can
    take the port between this check and the server serving on it: of two servers
    started at once on one port, the second is refused here (bind, or listen,
    fails with EADDRINUSE) whichever of the two gets there first.
    """
    where = _address(host, port)
    try:
        family, address = _resolve(host, port)
        where = _address(address[0], port)
        return _bind(family, address, listen=backlog)
    except socket.gaierror as error:
        raise PortUnavailable(
            f"cannot listen on {where}: {host!r} is not a known host name ({error.strerror}). "
            "Choose another with --host (127.0.0.1 for this machine only, 0.0.0.0 for every "
            "interface)."
        ) from error
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            free = _free_port_after(family, address)
            choice = f": --port {free} is free now" if free is not None else " with --port"
            raise PortUnavailable(
                f"cannot listen on {where}: address already in use (another server, perhaps "
                f"an earlier `./dev serve`, is on port {port}). Stop it, or choose another "
                f"port{choice}."
            ) from error
        if error.errno == errno.EACCES:
            raise PortUnavailable(
                f"cannot listen on {where}: permission denied (ports below 1024 need "
                "privileges). Choose another port with --port, e.g. --port 8000."
            ) from error
        if error.errno == errno.EADDRNOTAVAIL:
            raise PortUnavailable(
                f"cannot listen on {where}: {host} is not an address of this machine. "
                "Choose another with --host (127.0.0.1, or 0.0.0.0 for every interface)."
            ) from error
        raise PortUnavailable(f"cannot listen on {where}: {error.strerror or error}") from error


def _resolve(host: str, port: int) -> tuple[int, tuple[str, int]]:
    """The address family and (address, port) getaddrinfo gives first for a TCP
    server on host:port; socket.gaierror for a name that does not resolve."""
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def _free_port_after(family: int, address: tuple[str, int], tries: int = 20) -> int | None:
    """The first of the next `tries` ports that can be bound and listened on now, if any."""
    host, port = address
    for candidate in range(port + 1, min(port + 1 + tries, MAX_PORT + 1)):
        try:
            _bind(family, (host, candidate), listen=1).close()
        except OSError:
            continue
        return candidate
    return None


def startup_report(
    settings: Settings, *, host: str, port: int, public_url: str, replicate_url: str
) -> str:
    """What runs where, printed once the server listens: URLs, storage, bus and Replicate.

    `host` is the address listened on; `replicate_url` is where the server's calls
    to Replicate go (the built-in emulator's loopback URL when it runs). Every URL is
    shown by `shown_url`: no password, token or secret-looking query value.
    """
    public = shown_url(public_url)
    websocket = public.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    bus = settings.event_bus_url.get_secret_value()
    bus_text = "memory:// (this process only)" if bus.startswith("memory://") else shown_url(bus)
    replicate_url = shown_url(replicate_url)
    if settings.uses_emulator:
        logged = (
            "its requests logged"
            if settings.emulator_log_requests
            else "quiet; EMULATOR_LOG_REQUESTS=true logs its requests"
        )
        replicate = f"built-in Replicate emulator at {replicate_url} ({logged})"
    elif settings.replicate_base_url:
        replicate = f"Replicate-compatible API at {replicate_url}"
    else:
        replicate = f"Replicate at {replicate_url}"
    lines = [
        f"Storyboard Studio is ready (listening on {_address(host, port)})",
        f"  GraphQL:    {public}/graphql (GraphiQL in a browser)",
        f"  WebSocket:  {websocket}/graphql (graphql-transport-ws, graphql-ws)",
        f"  Editor:     {public}/",
        f"  Readiness:  {public}/readyz",
        f"  Database:   {_describe_database(settings)}",
        f"  Event bus:  {bus_text}",
        f"  Replicate:  {replicate}",
    ]
    if settings.embedded:
        lines.append(f"  Data:       {settings.studio_data_dir.resolve()}")
    lines.append(f"  Media:      {settings.resolved_media_root}")
    lines.append("Stop it with Ctrl+C.")
    return "\n".join(lines)


class _Server(uvicorn.Server):
    """uvicorn's server, printing the start-up report once it listens."""

    def __init__(self, config: uvicorn.Config, *, report: Callable[[], str]) -> None:
        super().__init__(config)
        self._report = report

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            print(self._report(), flush=True)


class _UvicornStartLines(logging.Filter):
    """Drops uvicorn's own start-up lines: the start-up report says what runs where."""

    START_LINES = (
        "Started server process",
        "Waiting for application startup",
        "Application startup complete",
        "Uvicorn running on",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.START_LINES)


_START_LINES = _UvicornStartLines()


class MaskedLinkSignatures(logging.Filter):
    """Blanks the `signature` of signed links in uvicorn's access lines: a signed media
    link is a bearer credential until it expires, and a log is read by more people than
    its links were handed to. `GET /media/a.webp?expires=1&signature=4f...` is logged as
    `GET /media/a.webp?expires=1&signature=...`."""

    _SIGNATURE = re.compile(r"(signature=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._SIGNATURE.sub(r"\1...", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


_MASKED_SIGNATURES = MaskedLinkSignatures()


def _quiet_uvicorn_start() -> None:
    """Install the filters once on uvicorn's loggers: no start-up lines of its own, and
    no link signatures in its access lines."""
    logger = logging.getLogger("uvicorn.error")
    if _START_LINES not in logger.filters:
        logger.addFilter(_START_LINES)
    access = logging.getLogger("uvicorn.access")
    if _MASKED_SIGNATURES not in access.filters:
        access.addFilter(_MASKED_SIGNATURES)


def workers_refused(settings: Settings, workers: int) -> str | None:
    """Why `studio serve --workers N` cannot run with these settings, or None.

    Several processes must share what one process keeps in memory: the event bus
    (a subscriber on one worker must see a write served by another) and the rate
    limits (or each worker would allow the whole rate). The built-in Replicate
    emulator keeps its predictions in its process, so each worker's would know
    only its own. SQLite is fine: WAL lets the processes share the file.
    """
    if workers <= 1:
        return None
    problems = []
    if settings.event_bus_url.get_secret_value().startswith("memory://"):
        problems.append(
            "EVENT_BUS_URL is memory://, one process's: set a shared bus "
            "(redis://host:6379/0 or postgres://user@host/db)"
        )
    elif settings.resolved_limits_url().startswith("memory://"):
        problems.append("the rate limits are kept in memory: set LIMITS_URL=redis://host:6379/0")
    if settings.uses_emulator:
        problems.append(
            "the built-in Replicate emulator runs inside each worker: run `studio emulator` "
            "once and set REPLICATE_BASE_URL (and REPLICATE_API_TOKEN) to it, or use Replicate"
        )
    if not problems:
        return None
    return f"--workers {workers} needs state shared by every worker: " + "; ".join(problems) + "."


def worker_app(settings: Settings, *, host: str, port: int) -> Starlette:
    """The app of one worker process of `studio serve --workers N`: the parent's
    logging, then `create_app` (whose lifespan opens this worker's own resources)."""
    from api.app import create_app

    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _quiet_uvicorn_start()
    return create_app(settings, host=host, port=port)


async def _migrate_sqlite(settings: Settings) -> None:
    """Bring an SQLite database to the latest migration once, before the workers start
    (each would otherwise try at once; PostgreSQL is migrated by `studio migrate`)."""
    from api.app import prepare_database

    db = Database(settings.resolved_database_url())
    try:
        if db.is_sqlite:
            await prepare_database(db, migrate=True)
    finally:
        await db.dispose()


def serve(args: argparse.Namespace) -> None:
    from api.app import create_app

    settings = _settings()
    workers: int = args.workers
    refused = workers_refused(settings, workers)
    if refused:
        raise SettingsError(refused)
    # Before migrating or starting anything: the port must be ours, and the database
    # must answer.
    sock = listen_socket(args.host, args.port, backlog=settings.listen_backlog)
    host = listening_address(sock)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(check_database(settings, migrated=True))
        # Every setting is checked here, in one process, even when workers serve.
        app = create_app(settings, host=host, port=args.port)
        if workers > 1:
            asyncio.run(_migrate_sqlite(settings))
    except BaseException:
        sock.close()
        raise
    _quiet_uvicorn_start()
    options = _uvicorn_options(settings)
    if workers > 1:
        config = uvicorn.Config(
            functools.partial(worker_app, settings, host=host, port=args.port),
            factory=True,
            workers=workers,
            # uvicorn replaces a worker that does not answer its supervisor in time; a
            # worker's start-up (imports, the schema, the lifespan) takes seconds on a
            # busy machine, more than uvicorn's 5 s.
            timeout_worker_healthcheck=60,
            host=host,
            port=args.port,
            **options,
        )
        print(
            startup_report(
                settings,
                host=host,
                port=args.port,
                public_url=settings.resolved_public_url(host, args.port),
                replicate_url=settings.replicate_base_url or "https://api.replicate.com",
            ).replace("is ready", f"is starting {workers} workers", 1),
            flush=True,
        )
        # Each worker is a process of its own (spawned), serving on the same socket.
        Multiprocess(config, sockets=[sock]).run()
        return
    config = uvicorn.Config(app, host=host, port=args.port, **options)

    def report() -> str:
        state: AppState = app.state.studio
        return startup_report(
            settings,
            host=host,
            port=args.port,
            public_url=state.public_url,
            replicate_url=state.replicate_url,
        )

    server = _Server(config, report=report)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        # No logging set-up of uvicorn's own: its records go through ours, in one format.
        "log_config": None,
        "log_level": settings.log_level.lower(),
        # uvicorn times out neither request headers nor bodies: the body is timed in
        # api/limits.py; headers by the reverse proxy in front (see deploy/nginx.conf).
        "limit_concurrency": settings.max_connections,
        "backlog": settings.listen_backlog,
        "timeout_keep_alive": settings.keep_alive_seconds,
        # The app believes forwarded headers from TRUSTED_PROXIES only (api/app.py);
        # uvicorn's own handling would believe 127.0.0.1 (or FORWARDED_ALLOW_IPS) too.
        "proxy_headers": False,
        # uvicorn's websockets-sansio protocol, its small messages left uncompressed
        # (api/ws_protocol.py).
        "ws": StudioWebSocketProtocol,
        "ws_per_message_deflate": settings.websocket_compression,
        # A WebSocket message is held to the request-body cap, after decompression
        # (uvicorn's own default is 16 MiB).
        "ws_max_size": settings.max_request_bytes,
    }


def migrate(_: argparse.Namespace) -> None:
    settings = _settings()
    asyncio.run(check_database(settings))

    async def run() -> None:
        db = Database(settings.resolved_database_url())
        try:
            await migrations.upgrade_to_head(db)
        finally:
            await db.dispose()

    asyncio.run(run())
    print(f"{_describe_database(settings)} is at migration {migrations.head_revision()}.")


def thumbnails(args: argparse.Namespace) -> None:
    """Make the missing thumbnails and measurements of library assets (those
    back-filled by migration 0011, or whose thumbnail failed), and print a summary.
    Idempotent: a second run finds nothing to do. See services/library/thumbnails.py."""
    from services.library.thumbnails import fill_missing
    from services.media.storage import LocalStorage

    settings = _settings()
    asyncio.run(check_database(settings, migrated=True))

    async def run() -> str:
        db = Database(settings.resolved_database_url())
        try:
            if await migrations.current_revision(db) != migrations.head_revision():
                raise SettingsError(
                    "The database is not at the latest migration: run `studio migrate` first."
                )
            storage = LocalStorage(settings.resolved_media_root)
            report = await fill_missing(db, storage, limit=args.limit)
        finally:
            await db.dispose()
        return (
            f"{report.completed} assets completed, {report.incomplete} still incomplete, "
            f"{report.missing} without their file ({report.seen} looked at)."
        )

    print(asyncio.run(run()))


def schema(_: argparse.Namespace) -> None:
    from api.schema import schema as graphql_schema

    print(graphql_schema.as_str())


def emulator(args: argparse.Namespace) -> None:
    """Run the emulator on its own. Like Replicate it needs an API token on every call:
    REPLICATE_API_TOKEN if set (so one configuration serves it and the server), else a
    new one, shown once on the terminal. Its webhook secret is REPLICATE_WEBHOOK_SECRET
    if set, else a new one, which the server fetches with the token."""
    import secrets

    from services.replicate.emulator import (
        EmulatorConfig,
        create_emulator_app,
        generate_webhook_secret,
    )

    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sock = listen_socket(args.host, args.port)
    public_url = base_url(listening_address(sock), args.port)
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
    server = uvicorn.Server(
        uvicorn.Config(
            create_emulator_app(config),
            host=listening_address(sock),
            port=args.port,
            log_level="warning",
        )
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
    finally:
        sock.close()


def bench(args: argparse.Namespace) -> None:
    """`all`: every figure of api/bench/run.py; `side-by-side`: the storyboard read
    against PostGraphile (api/bench/peer.py); `realtime`: fan-out against a floor
    server (api/bench/realtime_floor.py). Exits 1 when a figure is not measured."""
    if args.mode == "side-by-side":
        from api.bench.peer import main as run_peer

        run_peer(args.postgres, seconds=args.duration)
    elif args.mode == "realtime":
        _bench_realtime()
    else:
        from api.bench.run import main as run_bench

        run_bench(args.postgres)


def _bench_realtime() -> None:
    """Run the realtime floor bench (`api.bench.realtime_floor.main_figures`) and print
    its lines; exit 1 when one says a figure was not measured."""
    import asyncio

    from api.bench.realtime_floor import main_figures

    lines = asyncio.run(main_figures())
    print("\n".join(lines), flush=True)
    unmeasured = sum("not measured" in line for line in lines)
    if unmeasured:
        print(f"{unmeasured} figure(s) not measured: see above.", file=sys.stderr)
        sys.exit(1)


def _seconds(text: str) -> float:
    """An argparse type: a positive duration in seconds."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 1 <= seconds <= MAX_BENCH_SECONDS:
        raise argparse.ArgumentTypeError(f"{seconds:g} s: use 1-{MAX_BENCH_SECONDS}")
    return seconds


MAX_BENCH_SECONDS = 600


def vendor(args: argparse.Namespace) -> None:
    """Re-fetch the browser libraries of web/vendor/packages.toml with npm and rewrite
    web/vendor/manifest.json; with --check, verify the files offline instead (no npm
    needed). Exits 1 with one line per problem, 2 when re-vendoring finds no npm.
    See api/vendor.py."""
    from api import vendor as vendoring
    from api.graphiql import VENDORED_FILES

    if args.check:
        problems = vendoring.check(needed=VENDORED_FILES)
        for problem in problems:
            print(f"studio vendor: {problem}", file=sys.stderr)
        if problems:
            sys.exit(1)
        manifest = vendoring.read_manifest()
        count = sum(len(package.files) for package in manifest.packages)
        print(f"{count} files of {len(manifest.packages)} packages match web/vendor/manifest.json.")
        return
    try:
        manifest = vendoring.fetch(registry=args.registry)
    except vendoring.NpmMissingError as error:
        print(f"studio vendor: {error}", file=sys.stderr)
        sys.exit(2)
    except vendoring.VendorError as error:
        print(f"studio vendor: {error}", file=sys.stderr)
        sys.exit(1)
    for package in manifest.packages:
        print(f"{package.name}@{package.version} ({package.license}): {len(package.files)} files")
    print("Wrote web/vendor/manifest.json.")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="studio", description="Storyboard Studio server.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the server")
    serve_parser.add_argument(
        "--host",
        type=listen_host,
        default="127.0.0.1",
        help="name or address to listen on (127.0.0.1; 0.0.0.0 or 0: every IPv4 interface)",
    )
    serve_parser.add_argument("--port", type=_port, default=8000, help="port to bind (8000)")
    serve_parser.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes sharing the port (1); more than one needs a shared "
        "event bus and rate limits (Redis or PostgreSQL), and Replicate or `studio emulator`",
    )
    serve_parser.set_defaults(run=serve)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=migrate)
    commands.add_parser("schema", help="print the GraphQL schema (SDL)").set_defaults(run=schema)
    thumbnails_parser = commands.add_parser(
        "thumbnails",
        help="make the library assets' missing thumbnails and measurements",
    )
    thumbnails_parser.add_argument(
        "--limit", type=int, default=None, help="look at most at this many assets (all)"
    )
    thumbnails_parser.set_defaults(run=thumbnails)
    emulator_parser = commands.add_parser(
        "emulator", help="run the built-in Replicate emulator on its own"
    )
    emulator_parser.add_argument(
        "--host",
        type=listen_host,
        default="127.0.0.1",
        help="name or address to listen on (127.0.0.1)",
    )
    emulator_parser.add_argument("--port", type=_port, default=8001, help="port to bind (8001)")
    emulator_parser.set_defaults(run=emulator)
    bench_parser = commands.add_parser("bench", help="print benchmark figures")
    bench_parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="also measure on PostgreSQL, in a database made and dropped through this URL",
    )
    bench_parser.add_argument(
        "--mode",
        choices=("all", "side-by-side", "realtime"),
        default="all",
        help="all: every figure (default); side-by-side: the storyboard read against "
        "PostGraphile, on PostgreSQL (needs --postgres, wrk, npm); realtime: subscriptions "
        "against a floor server",
    )
    bench_parser.add_argument(
        "--duration",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="side-by-side: seconds of each load run (10)",
    )
    bench_parser.set_defaults(run=bench)
    vendor_parser = commands.add_parser(
        "vendor", help="re-fetch the vendored browser libraries (web/vendor/), or --check them"
    )
    vendor_parser.add_argument(
        "--check",
        action="store_true",
        help="verify the files against web/vendor/manifest.json, offline; change nothing",
    )
    vendor_parser.add_argument(
        "--registry",
        metavar="URL",
        help="passed on to `npm pack --registry` (default: npm's own setting, "
        "e.g. $npm_config_registry)",
    )
    vendor_parser.set_defaults(run=vendor)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except SettingsError as error:
        # One `studio: SETTING: problem` line per problem; indented lines go on one.
        for line in str(error).splitlines():
            print(line if line.startswith(" ") else f"studio: {line}", file=sys.stderr)
        sys.exit(BAD_SETTINGS)
    except (PortUnavailable, DatabaseUnavailable, DataDirectoryUnavailable) as error:
        print(f"studio: {error}", file=sys.stderr)
        sys.exit(UNAVAILABLE)
    except VendorError as error:
        # Raised at start-up when GraphiQL's vendored files are missing or changed.
        print(f"studio: {error}", file=sys.stderr)
        sys.exit(BAD_SETTINGS)
