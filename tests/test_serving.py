"""How the server spends its time per request: start-up objects frozen out of the
garbage collector's sight, no round trip to the database a read does not need, one
connection per operation, and several worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

import migrations
from api.app import create_app
from api.graphql import build_context
from api.schema import schema
from api.settings import Settings
from schema.loaders import ReadSession
from services.accounts import accounts
from services.database import Database, scratch_postgres_database
from services.tables import UserRow
from tests.conftest import ADMIN_URL, _unavailable
from tests.factories import (
    Account,
    account,
    gql,
    image_drafts,
    mutate_ok,
    project,
    resources,
    scene,
    statements,
)
from tests.realtime_harness import PROJECT_EVENTS, Api, Socket
from tests.servers import HOST, StudioServer, free_port, run_studio, studio_env


async def test_the_started_app_keeps_its_start_up_objects_out_of_the_collectors_sight(
    tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None, studio_data_dir=tmp_path, secret_key="k" * 32)
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    async with app.router.lifespan_context(app):
        frozen = gc.get_freeze_count()
        # The schema and the modules alone are tens of thousands of objects.
        assert frozen > 10_000
    assert gc.get_freeze_count() == 0  # unfrozen at shutdown: a later app can collect them


# --- PostgreSQL: no pre-ping, reads in autocommit, dropped connections --------------


@pytest.fixture
async def own_postgres() -> AsyncIterator[Database]:
    """A migrated PostgreSQL database of this test alone, so every backend of it may
    be terminated without touching another test's."""
    try:
        async with scratch_postgres_database(ADMIN_URL, prefix="studio_serving") as url:
            database = Database(url, pool_size=3)
            await migrations.upgrade_to_head(database)
            try:
                yield database
            finally:
                await database.dispose()
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable("PostgreSQL", error)


async def terminate_every_backend(db: Database) -> int:
    """End every server process connected to `db`'s database, as a restart would."""
    admin = await asyncpg.connect(ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        ended: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            db.url.database,
        )
    finally:
        await admin.close()
    return ended


@contextmanager
def round_trips(db: Database) -> Iterator[list[str]]:
    """Every statement sent inside the block, and BEGIN, COMMIT and ROLLBACK too (which
    `before_cursor_execute` does not see) as far as the connection really sends them."""
    sent: list[str] = []
    engine = db.engine.sync_engine

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        sent.append(text)

    def begin(connection: Any) -> None:
        # The asyncpg adapter sends BEGIN only outside autocommit.
        if not connection.connection.dbapi_connection.autocommit:
            sent.append("BEGIN")

    def end(name: str) -> Callable[[Any], None]:
        def note(connection: Any) -> None:
            if connection.connection.dbapi_connection._transaction is not None:
                sent.append(name)

        return note

    hooks: list[tuple[Any, str, Callable[..., None]]] = [
        (engine, "before_cursor_execute", statement),
        (engine, "begin", begin),
        (engine, "rollback", end("ROLLBACK")),
        (engine, "commit", end("COMMIT")),
    ]
    for target, name, hook in hooks:
        event.listen(target, name, hook)
    try:
        yield sent
    finally:
        for target, name, hook in hooks:
            event.remove(target, name, hook)


async def test_a_postgres_read_sends_its_statements_and_nothing_else(
    own_postgres: Database,
) -> None:
    db = own_postgres
    owner = await account(db)
    await project(db, owner)
    async with db.session() as session:  # a first connection, which asks about the server
        await session.exec(select(UserRow).limit(1))
    assert db.engine.sync_engine.pool._pre_ping is False
    with round_trips(db) as sent:
        data = await gql(db, "{ projects { edges { node { title } } } }", token=owner.token)
    assert data["projects"]["edges"]
    assert [s for s in sent if s in ("BEGIN", "COMMIT", "ROLLBACK")] == []
    assert all(s.lstrip().upper().startswith("SELECT") for s in sent), sent


async def test_writes_still_run_in_one_transaction_on_postgres(own_postgres: Database) -> None:
    db = own_postgres
    owner = await account(db)
    with round_trips(db) as sent:
        await mutate_ok(db, "createProject", {"title": "T"}, "project { id }", token=owner.token)
    # The token is checked by a read first; then one transaction.
    assert sent.count("BEGIN") == 1
    assert sent.count("COMMIT") == 1
    assert sent.index("BEGIN") < sent.index("COMMIT")


async def test_a_read_after_every_backend_was_terminated_succeeds(own_postgres: Database) -> None:
    """The pool holds only dropped connections: a read (token check included) and a
    write still succeed, with no ping before any check-out."""
    db = own_postgres
    owner = await account(db)
    await project(db, owner)
    # Several connections in the pool, all of which the server is about to drop.
    await asyncio.gather(*(gql(db, "{ viewer { id } }", token=owner.token) for _ in range(3)))
    assert await terminate_every_backend(db) >= 1
    data = await gql(db, "{ projects { edges { node { title } } } }", token=owner.token)
    assert data["projects"]["edges"][0]["node"]["title"]
    await terminate_every_backend(db)
    await mutate_ok(db, "createProject", {"title": "After"}, "project { id }", token=owner.token)


async def test_a_read_that_meets_a_connection_dropped_in_use_runs_again(
    own_postgres: Database,
) -> None:
    """The server drops the connection between check-out and the statement (asyncpg
    cannot know yet): the read is run once more on a new connection."""
    db = own_postgres
    await account(db)
    async with db.session() as session:
        await session.exec(select(UserRow).limit(1))
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        assert raw.driver_connection is not None
        pid = raw.driver_connection.get_server_pid()
        admin = await asyncpg.connect(ADMIN_URL.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        # No tick for the event loop to notice: the next statement meets the dropped socket.
        rows = (await session.exec(select(UserRow).limit(1))).all()
        again = await (await session.connection()).get_raw_connection()
        assert again.driver_connection is not raw.driver_connection
        adapted: Any = again.dbapi_connection
        assert adapted.autocommit  # still a read: no BEGIN
    assert len(rows) == 1
    # Returned to the pool, the new connection is no read's any more: writes BEGIN.
    assert not adapted.autocommit


# --- one read session per operation -------------------------------------------------

# Through `node`, which is resolved field by field (DataLoaders) on every version.
NESTED = """query($id: ID!) { node(id: $id) { ... on Project { title
  progress { selectionProgress }
  scenes { sceneNumber shots { shotNumber selectedImage { id }
    iterations { iterationNumber images { id variantNumber imageUrl } } } } } } }"""


@contextmanager
def checkouts(db: Database) -> Iterator[list[int]]:
    """How many connections the engine's pool handed out inside the block."""
    counted = [0]

    def note(*_: Any) -> None:
        counted[0] += 1

    pool = db.engine.sync_engine.pool
    event.listen(pool, "checkout", note)
    try:
        yield counted
    finally:
        event.remove(pool, "checkout", note)


async def storyboard(db: Database) -> tuple[Account, str]:
    owner = await account(db)
    project_id = await project(db, owner)
    for title in ("One", "Two"):
        made = await scene(db, owner, project_id, title=title, shots=3)
        for shot in made["shots"]:
            await mutate_ok(
                db,
                "addShotImages",
                {"shotId": shot["id"], "iterationPrompt": "p", "images": image_drafts(2)},
                "iteration { iterationNumber }",
                token=owner.token,
            )
    return owner, project_id


@pytest.mark.parametrize("compiled", [False, True], ids=["field by field", "compiled"])
async def test_a_query_reads_through_one_connection_and_gives_it_back(
    db: Database, compiled: bool
) -> None:
    owner, project_id = await storyboard(db)
    context = await build_context(
        dataclasses.replace(resources(db), compiled_reads=compiled), owner.token
    )
    assert context.actor is not None
    pool = db.engine.sync_engine.pool
    held_before = pool.checkedout()  # type: ignore[attr-defined]
    with checkouts(db) as counted, statements(db) as sent:
        result = await schema.execute(NESTED, {"id": project_id}, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    shots = [s for sc in result.data["node"]["scenes"] for s in sc["shots"]]
    assert len(shots) == 6
    assert all(len(s["iterations"][0]["images"]) == 2 for s in shots)
    # Field by field: several batches (scenes, shots, images, selections, progress),
    # sent concurrently by graphql-core; compiled: one statement. One connection.
    assert len(sent) == 1 if compiled else len(sent) >= 5
    assert counted[0] == 1
    assert pool.checkedout() == held_before  # type: ignore[attr-defined]


async def test_the_token_check_holds_no_connection(db: Database) -> None:
    """A context that is never executed (a request refused before it runs) keeps none."""
    owner = await account(db)
    pool = db.engine.sync_engine.pool
    held_before = pool.checkedout()  # type: ignore[attr-defined]
    context = await build_context(resources(db), owner.token)
    assert context.actor is not None
    assert pool.checkedout() == held_before  # type: ignore[attr-defined]


async def test_a_mutation_reads_what_it_wrote_and_holds_no_read_connection(db: Database) -> None:
    owner, project_id = await storyboard(db)
    payload = await mutate_ok(
        db,
        "updateProject",
        {"id": project_id, "title": "Renamed"},
        "project { title scenes { title } }",
        token=owner.token,
    )
    assert payload["project"]["title"] == "Renamed"
    data = await gql(
        db, "query($id: ID!) { project(id: $id) { title } }", {"id": project_id}, token=owner.token
    )
    assert data["project"]["title"] == "Renamed"


async def test_a_read_that_waits_for_another_read_of_its_operation_is_refused(
    db: Database,
) -> None:
    reads = ReadSession(db)
    reads.hold = True

    async def nested(session: AsyncSession) -> None:
        await reads.run(lambda inner: inner.exec(select(UserRow).limit(1)))

    with pytest.raises(RuntimeError, match="waits for another"):
        await reads.run(nested)
    await reads.release()
    assert (await reads.run(lambda s: s.exec(select(UserRow).limit(1)))) is not None
    await reads.release()


# --- studio serve --workers N -----------------------------------------------------------


def test_several_workers_are_refused_without_shared_state(tmp_path: Path) -> None:
    """The in-process bus (or in-memory limits) would split the workers' subscribers
    (and multiply the rates); the built-in emulator would split their predictions."""
    env = studio_env(SECRET_KEY="k" * 40)
    refused = run_studio(
        ["serve", "--port", str(free_port()), "--workers", "2"], env=env, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "EVENT_BUS_URL is memory://" in refused.stderr
    assert "studio emulator" in refused.stderr
    env = studio_env(
        SECRET_KEY="k" * 40,
        EVENT_BUS_URL="postgres://postgres@127.0.0.1:5432/postgres",
        REPLICATE_API_TOKEN="r8_test",
        REPLICATE_BASE_URL="http://127.0.0.1:9",
    )
    refused = run_studio(
        ["serve", "--port", str(free_port()), "--workers", "2"], env=env, cwd=tmp_path
    )
    assert refused.returncode == 2
    assert "LIMITS_URL" in refused.stderr


def _children(pid: int) -> list[int]:
    """The processes `pid` started (uvicorn's workers, and multiprocessing's tracker)."""
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _socket_owner(client_port: int, server_port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the server end of the TCP connection from `client_port`."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (
            int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) == client_port
        ):
            inode = fields[9]
    if inode is None:
        return None
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                if str(fd.readlink()) == f"socket:[{inode}]":
                    return pid
    return None


async def _connected_to(
    server: StudioServer, workers: list[int], *, not_on: int | None
) -> tuple[socket.socket, int]:
    """A TCP connection to the server that a worker other than `not_on` accepted."""
    for _ in range(200):
        connection = socket.create_connection((HOST, server.port))
        owner = None
        for _ in range(100):  # the worker accepts it from its event loop
            owner = _socket_owner(connection.getsockname()[1], server.port, workers)
            if owner is not None:
                break
            await asyncio.sleep(0.02)
        if owner is not None and owner != not_on:
            return connection, owner
        connection.close()
    raise AssertionError("the kernel gave every connection to the same worker")


async def _post(
    connection: socket.socket, token: str, query: str, variables: dict[str, Any]
) -> Any:
    """One GraphQL request over this connection (HTTP/1.1, closed after)."""
    body = json.dumps({"query": query, "variables": variables}).encode()
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(sock=connection)
    writer.write(head + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status, _, rest = answer.partition(b"\r\n")
    assert b" 200 " in status, answer
    return json.loads(rest.partition(b"\r\n\r\n")[2])


@pytest.mark.e2e
async def test_two_workers_on_redis_serve_a_subscription_fed_by_the_other_worker(
    tmp_path: Path,
) -> None:
    redis_url = "redis://127.0.0.1:6379/0"
    server = StudioServer(
        env=studio_env(
            SECRET_KEY="k" * 40,
            EVENT_BUS_URL=redis_url,
            REPLICATE_API_TOKEN="r8_workers",
            REPLICATE_BASE_URL="http://127.0.0.1:9",  # nothing is generated here
        ),
        cwd=tmp_path,
        name="workers",
        extra_args=("--workers", "2"),
    )
    server.start(timeout=120)
    try:
        workers = _children(server.process.pid)
        async with Api(server.base_url) as ann:
            await ann.sign_up("Ann")
            made = await ann.create_project("Tide")
            listening, first = await _connected_to(server, workers, not_on=None)
            async with await Socket.connect(server, sock=listening) as ws:
                await ws.init({"authorization": f"Bearer {ann.token}"})
                assert (await ws.receive())["type"] == "connection_ack"
                feed = await ws.subscribe(PROJECT_EVENTS, {"projectId": made})
                # Sent once the subscription is in place on its worker.
                snapshot = (await feed.next())["projectEvents"]
                assert snapshot["kind"] == "SNAPSHOT"
                writing, second = await _connected_to(server, workers, not_on=first)
                assert second != first
                written = await _post(
                    writing,
                    ann.token,
                    "mutation($i: UpdateProjectInput!) { updateProject(input: $i) "
                    "{ project { title } userErrors { code } } }",
                    {"i": {"id": made, "title": "Tide pools"}},
                )
                assert written["data"]["updateProject"]["userErrors"] == []
                event = (await feed.next())["projectEvents"]
    finally:
        server.stop()
    assert (event["kind"], event["nodeId"]) == ("PROJECT_UPDATED", made)


# --- no per-field extension hooks -----------------------------------------------------


def test_no_schema_extension_runs_for_every_field() -> None:
    """An extension with a `resolve` hook becomes graphql-core middleware around every
    field of every response (and custom directives add Strawberry's own): none may."""
    extensions = schema.get_extensions()
    assert extensions
    per_field = [
        type(extension).__name__ for extension in extensions if extension._implements_resolve()
    ]
    assert per_field == []
    assert list(schema._get_middleware_manager(extensions).middlewares) == []


async def test_the_token_check_is_one_statement(db: Database) -> None:
    """The token and the user's teams in one round trip; two teams, and an unknown
    token, read right."""
    owner = await account(db)
    await mutate_ok(db, "createTeam", {"name": "Second"}, "team { id }", token=owner.token)
    async with db.session() as session:
        with statements(db) as sent:
            actor = await accounts.authenticate(session, owner.token)
        assert actor is not None
        assert len(actor.roles) == 2
        assert actor.signed_in_until is not None
        assert len(sent) == 1
        unknown = await accounts.authenticate(session, "sbs_" + "A" * 43)
        assert unknown is None
