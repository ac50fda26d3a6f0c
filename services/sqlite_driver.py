"""SQLite through aiosqlite with one trip to the connection's thread per statement.

aiosqlite runs every call on a sqlite3 connection in that connection's own thread,
and SQLAlchemy's aiosqlite adapter makes four such calls per statement: make a
cursor, execute, fetch the rows, close the cursor. Each trip hands a task to the
thread and wakes the event loop again when it is done: measured here, a trivial
SELECT cost about 270 us of CPU that way, and 165 us in one trip (an UPDATE 190
and 120 us). On the embedded default every statement pays it, the webhook's
transaction seven times.

`connect` makes the aiosqlite connection SQLAlchemy gets instead (through the
`async_creator_fn` connect argument its aiosqlite dialect takes, with the
arguments it would have passed `aiosqlite.connect`): a `Connection` whose cursors
run the statement, read all its rows and close the sqlite3 cursor in one trip,
then serve the rows, `description`, `rowcount` and `lastrowid` from memory. A rollback
with no transaction open makes no trip (the pool's reset after each commit);
every other call (commit, close, isolation level) is aiosqlite's own.

A server-side cursor (`stream()`) gets its rows all at once too: nothing here
streams from SQLite.

It relies on `aiosqlite.Connection._execute` (run a function in the connection's
thread), as SQLAlchemy's adapter relies on `_conn` and `_tx`; `connect_args`
leaves it out when an aiosqlite release no longer has it, and the stock cursors
are used.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite

AVAILABLE = callable(getattr(aiosqlite.Connection, "_execute", None))
"""Whether this aiosqlite has what the one-trip cursors need."""

Row = tuple[Any, ...]


class OneTripCursor:
    """An aiosqlite-like cursor whose `execute` and `executemany` are one trip each.

    Shapes as DB-API 2.0 (PEP 249) gives them: `description` a sequence of 7-item
    sequences or None, `rowcount` an int (-1 before any statement), `lastrowid`
    the last inserted rowid or None. Errors are sqlite3's, raised from `execute`.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._rows: collections.deque[Row] = collections.deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def _run(self, operation: str, parameters: Any, many: bool) -> list[Row]:
        """In the connection's thread: the statement (once per set of `parameters` if
        `many`), its rows, the cursor closed."""
        cursor = self._connection._conn.cursor()
        try:
            if many:
                cursor.executemany(operation, parameters)
            else:
                cursor.execute(operation, parameters)
            rows: list[Row] = cursor.fetchall() if cursor.description is not None else []
            self.description = cursor.description
            self.rowcount, self.lastrowid = cursor.rowcount, cursor.lastrowid
            return rows
        finally:
            cursor.close()

    async def _trip(self, operation: str, parameters: Any, many: bool) -> OneTripCursor:
        rows: list[Row] = await self._connection._execute(self._run, operation, parameters, many)
        self._rows = collections.deque(rows)
        return self

    async def execute(self, operation: str, parameters: Any = None) -> OneTripCursor:
        """Run one statement (`parameters` a sequence or mapping, or None) and read
        all its rows."""
        return await self._trip(operation, () if parameters is None else parameters, False)

    async def executemany(self, operation: str, parameters: Any) -> OneTripCursor:
        """Run one statement for each set of parameters."""
        return await self._trip(operation, parameters, True)

    async def fetchone(self) -> Row | None:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Row]:
        count = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Row]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        """Drop what is unread (the sqlite3 cursor closed in its thread already)."""
        self._rows.clear()


class Connection(aiosqlite.Connection):
    """aiosqlite's connection whose `cursor()` is a `OneTripCursor` (no trip to make it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Calls handed to the thread, and calls it has finished: each counter has one
        # writer (the event loop's thread, the connection's thread). A call whose
        # caller was cancelled still runs in the thread, later.
        self._handed = 0
        self._finished = 0

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def _execute(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """aiosqlite's: run `fn(*args, **kwargs)` in the connection's thread; counted."""

        def counted() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self._finished += 1

        self._handed += 1
        return await super()._execute(counted)  # type: ignore[no-untyped-call]

    async def rollback(self) -> None:
        """aiosqlite's, with no trip to the thread when no transaction is open and
        nothing handed to the thread is still to run (a BEGIN whose caller was
        cancelled may still be queued), where sqlite3's own `rollback` does nothing
        either. The pool resets every connection it gets back with a rollback, most
        of them after a commit."""
        if self._handed != self._finished or self._conn.in_transaction:
            await super().rollback()


def connect(database: str, *, iter_chunk_size: int = 64, **kwargs: Any) -> Connection:
    """What `aiosqlite.connect(database, **kwargs)` makes, with one-trip cursors
    (`kwargs` as `sqlite3.connect` takes them). Its thread is a daemon, as
    SQLAlchemy makes aiosqlite's. Await it to open the file."""

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection: Connection = Connection(connector, iter_chunk_size)
    connection._thread.daemon = True
    return connection


def connect_args() -> dict[str, Any]:
    """Connect arguments for an `sqlite+aiosqlite` engine that make it use `connect`
    (none when this aiosqlite lacks what it needs)."""
    return {"async_creator_fn": connect} if AVAILABLE else {}
