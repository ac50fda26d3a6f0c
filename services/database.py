"""The database: one async engine, short sessions for reads, one transaction per write.

PostgreSQL (asyncpg) in production; an SQLite file (aiosqlite) as the embedded
default. On SQLite, write transactions start with `BEGIN IMMEDIATE`, so two
writers queue on the file lock instead of failing half-way with "database is
locked", and reads run without a transaction; on PostgreSQL, writers lock the
parent row they change (see `services.storyboard.projects`).

Reads run without a transaction on both engines: on PostgreSQL a read session's
connection is in autocommit mode, so a read costs its statements and nothing
else (no BEGIN, no ROLLBACK). That loses no consistency: PostgreSQL's default
isolation, READ COMMITTED, already gives each statement its own snapshot, and
nothing here raises it.

A connection the server dropped (a restart, `pg_terminate_backend`) fails no
read: a pooled connection that asyncpg already knows to be closed is replaced
when it is checked out, at no cost (no ping is sent), and a read statement that
meets a dropped connection is run once more on a new one (safe in autocommit:
nothing else was done on that connection's behalf; the recipe of SQLAlchemy's
FAQ, "Using DBAPI Autocommit Allows for a Readonly Version of Transparent
Reconnect"). A disconnect is noticed by SQLAlchemy, which then replaces every
pooled connection opened before it. A write is never run again: one whose
connection drops between its check-out and its first statement (the server
went away in that instant) fails with the driver's connection error, masked for
clients; the client may retry it, nothing of it was committed.

Example:

    db = Database("sqlite+aiosqlite:///studio.db")
    async with db.transaction() as session:
        session.add(row)
    async with db.session() as session:
        rows = (await session.exec(select(ProjectRow))).all()
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Protocol

from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from services import decoding, sqlite_driver
from services.realtime import recording
from services.realtime.bus import EventBus

logger = logging.getLogger("studio.database")

_WRITE_OPTION = "studio_write"
POOL_RECYCLE_SECONDS = 1800
"""PostgreSQL connections older than this are replaced at check-out: a proxy or
firewall that drops idle connections silently (so asyncpg cannot know) is met
before it bites."""
_AFTER_COMMIT = "studio.after_commit"


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Call `callback` once this write transaction has committed; never if it rolls back.

    For work a write starts outside the database (waking the generation engine,
    canceling a prediction): it must not start before the rows it reads are
    visible, nor at all for a write that failed. `Database.transaction()` runs the
    callbacks in the order given, after handing the transaction's events to the bus.
    """
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


class StudioSession(Session):
    """The sessions `Database` opens: the only ones whose writes are recorded as events.

    The recording hooks (`services.realtime.recording`) are bound to this class, not
    to SQLAlchemy's global `Session`, so a session made elsewhere (a library's, a
    script's) never records or drops our events.
    """


event.listen(StudioSession, "after_flush", recording.note_flush)
event.listen(StudioSession, "after_rollback", recording.forget_pending)


class HeldConnection(Protocol):
    """What keeps a pooled connection between its reads (`schema.loaders.ReadSession`)."""

    def lent(self) -> AbstractAsyncContextManager[None]:
        """A block during which it holds no connection between reads (it gives back the
        one it holds on entry)."""
        ...


# The running GraphQL operation's held read connection, if it keeps one (a query's:
# `schema.context.OneReadSession` sets it for the operation's tasks). An operation
# that held a connection while it waited for the pool to give it another (a
# `session()` or `transaction()` of a resolver) could wait forever: once every
# connection is held so, none is given back (until the pool's timeout fails them all).
# So `session()` and `transaction()` first give that connection back, and none is held
# again until they end.
HELD_READ_CONNECTION: ContextVar[HeldConnection | None] = ContextVar(
    "held_read_connection", default=None
)


def _give_back_held() -> AbstractAsyncContextManager[None]:
    held = HELD_READ_CONNECTION.get()
    return nullcontext() if held is None else held.lent()


class Database:
    """The engine and the two ways to use it: `session()` to read, `transaction()` to write.

    url: an SQLAlchemy URL (`postgresql+asyncpg://...` or `sqlite+aiosqlite:///path`);
    echo: log every statement; pool_size: PostgreSQL connections kept open (as many
    again may be opened under load); pool_timeout: seconds a session waits for a
    pooled connection before sqlalchemy.exc.TimeoutError (which the GraphQL layer
    answers as SERVICE_UNAVAILABLE); bus: where committed events are published
    (None: they are recorded only). SQLite connections wait up to 30 s for a lock.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        echo: bool = False,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        bus: EventBus | None = None,
    ) -> None:
        self.url = make_url(url)
        # Where committed events go (see `services.realtime.events`); None records them only.
        self.bus = bus
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # Stored JSON that cannot be decoded (nested too deep, say) must not make
        # every read of its row fail: see `decoding.loads_stored`.
        options: dict[str, Any] = {
            "echo": echo,
            "json_deserializer": decoding.loads_stored,
            "pool_timeout": pool_timeout,
        }
        if self.is_sqlite:
            # One trip to aiosqlite's thread per statement (services/sqlite_driver.py).
            options["connect_args"] = {"timeout": 30, **sqlite_driver.connect_args()}
        else:
            options.update(
                pool_size=pool_size, max_overflow=pool_size, pool_recycle=POOL_RECYCLE_SECONDS
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            # No BEGIN is sent for reads on SQLite already (see `_configure_sqlite`).
            self.read_engine: AsyncEngine = self.engine
        else:
            _configure_postgresql(self.engine)
            self.read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.write_engine: AsyncEngine = self.engine.execution_options(**{_WRITE_OPTION: True})

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reading, outside any transaction (each statement sees the
        database as of when it runs); rows stay usable after it closes. Writing
        through it is an error on neither engine but commits nothing: use
        `transaction()`. A GraphQL operation holding a read connection gives it back
        first (see `HELD_READ_CONNECTION`)."""
        async with _give_back_held(), self.read_session() as session:
            yield session

    def read_session(self) -> AsyncSession:
        """A session as `session()` gives, for a caller that closes it itself
        (`await session.close()`, or `async with`): one that outlives a block, such
        as a GraphQL operation's (`schema.loaders.ReadSession`). It checks out a
        connection at its first statement and returns it when closed."""
        return AsyncSession(
            self.read_engine, expire_on_commit=False, sync_session_class=StudioSession
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on any error.

        The transaction's changes are recorded as project events before it commits
        and handed to the bus after (`services.realtime.recording`); the bus publishes them from
        its own task, so leaving this block never waits for subscribers. Then it runs
        what `after_commit` scheduled. A GraphQL operation holding a read connection
        gives it back first (see `HELD_READ_CONNECTION`).
        """
        async with (
            _give_back_held(),
            AsyncSession(
                self.write_engine, expire_on_commit=False, sync_session_class=StudioSession
            ) as session,
        ):
            async with session.begin():
                yield session
                outbox = await recording.record(session)
                callbacks: list[Callable[[], None]] = session.info.pop(_AFTER_COMMIT, [])
            recording.publish(self.bus, outbox)
            for callback in callbacks:
                callback()

    @asynccontextmanager
    async def schema_change(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one write transaction, for migrations; committed on
        success, rolled back on any error.

        On SQLite, foreign keys are not enforced inside it and are checked before it
        commits, as SQLite's procedure for changing a table's definition asks
        (https://www.sqlite.org/lang_altertable.html#otheralter): a table is changed
        by building a new one and dropping the old, and with keys enforced that drop
        would first delete every row of the old table, cascading into the tables
        that refer to it. `PRAGMA foreign_keys` cannot change inside a transaction,
        so it is set before BEGIN and set back after. A row left pointing at no row
        raises RuntimeError and nothing is committed.
        """
        if not self.is_sqlite:
            async with self.write_engine.begin() as connection:
                yield connection
            return
        async with self.engine.connect() as connection:
            # A connection of `engine` (not `write_engine`) sends no BEGIN: these run
            # outside any transaction, where the pragma takes effect.
            await connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
            await connection.commit()
            try:
                await connection.execution_options(**{_WRITE_OPTION: True})
                async with connection.begin():
                    yield connection
                    broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(
                            f"The schema change leaves {len(broken)} row(s) referring to no "
                            f"row (table, rowid, parent): {[tuple(r[:3]) for r in broken[:5]]}"
                        )
            finally:
                await connection.execution_options(**{_WRITE_OPTION: False})
                await connection.exec_driver_sql("PRAGMA foreign_keys = ON")
                await connection.commit()

    async def ping(self) -> None:
        """Raise (whatever the driver or SQLAlchemy raises) unless the database answers
        `SELECT 1`; for health checks."""
        async with self.read_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def check_writable(self) -> None:
        """On SQLite, raise sqlite3.Error unless this process can open and write the
        file: it is a database (or is not there yet, and is made empty), its directory
        exists, and neither is read-only. It takes the write lock and writes
        `PRAGMA user_version` back unchanged in a transaction that is rolled back, so
        nothing changes. On PostgreSQL it does nothing (a role's rights show when it
        writes).

        It uses the standard library's sqlite3 in a worker thread rather than the
        engine: aiosqlite leaves a failed connection's thread to finish after the
        event loop may have closed, which then prints a traceback of its own.
        """
        if not self.is_sqlite:
            return
        uri = str(self.url.query.get("uri", "")).lower() in ("1", "true")
        await asyncio.to_thread(_check_sqlite_writable, self.url.database or "", uri=uri)

    async def dispose(self) -> None:
        """Close every pooled connection; for shutdown."""
        await self.engine.dispose()


def _check_sqlite_writable(path: str, *, uri: bool) -> None:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None, uri=uri)
    try:
        version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute(f"PRAGMA user_version = {version}")
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
    finally:
        connection.close()


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take over transaction control from the driver, so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Writers take the file's write lock up front. Readers open no transaction:
        # each read is one statement, and WAL gives every statement a consistent view.
        if connection.get_execution_options().get(_WRITE_OPTION, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_postgresql(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
        # asyncpg marks a connection closed as soon as the event loop sees the server
        # end it: such a one is replaced here without a round trip (the pool tries a
        # new connection on DisconnectionError).
        if dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this pooled connection")

    # A dialect event: it sees every statement of the engine, writes included; only
    # those of autocommit (read) connections are run again.
    @event.listens_for(sync_engine, "do_execute")
    def _do_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
        return _execute_read_again_once(
            context.dialect.do_execute, cursor, statement, parameters, context
        )

    @event.listens_for(sync_engine, "do_execute_no_params")
    def _do_execute_no_params(cursor: Any, statement: str, context: Any) -> bool:
        return _execute_read_again_once(
            context.dialect.do_execute_no_params, cursor, statement, None, context
        )


def _execute_read_again_once(
    execute: Callable[..., None], cursor: Any, statement: str, parameters: Any, context: Any
) -> bool:
    """Run the statement; if it meets a dropped connection on an autocommit (read)
    connection, run it once more on a new connection. Returns True: executed."""
    arguments = () if parameters is None else (parameters,)
    connection = context.root_connection
    try:
        execute(cursor, statement, *arguments, context=context)
        return True
    except context.dialect.loaded_dbapi.Error as error:
        if context.execution_options.get("isolation_level") != "AUTOCOMMIT" or not (
            context.dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
        ):
            raise
        # As SQLAlchemy does on a disconnect: every pooled connection opened before now
        # is replaced at its next check-out (the server dropped them all, most likely),
        # so the new connection below is a new one, not another dropped one.
        connection.engine.pool._invalidate(connection.connection, error)
    logger.warning("a read met a dropped database connection; running it again")
    # As SQLAlchemy's FAQ recipe: drop the connection, end its (empty) transaction,
    # connect again, and run the statement on a cursor of the new connection, which
    # gets the read engine's autocommit again (reset when it returns to the pool).
    connection.invalidate()
    connection.rollback()
    context.dialect.set_connection_execution_options(connection, {"isolation_level": "AUTOCOMMIT"})
    context.cursor = cursor = connection.connection.cursor()
    execute(cursor, statement, *arguments, context=context)
    return True


@asynccontextmanager
async def scratch_postgres_database(admin_url: str, *, prefix: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for tests and benchmarks, dropped on exit.

    `admin_url` names any database the user may connect to and create databases
    from; the URL yielded is the same with the new database's name.
    """
    import asyncpg  # only scratch databases need a raw connection

    url = make_url(admin_url)
    admin = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
        timeout=5,
    )
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
