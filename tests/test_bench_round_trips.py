"""The side-by-side bench counts SQL round trips with a proxy in front of PostgreSQL
(api/bench/round_trips.py): it must count what a real driver sends, message by message,
and pass the conversation through untouched. Also the bench's answer checks and its
wrk result line. No timing is asserted."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from api.bench import wrk
from api.bench.round_trips import GSSENC_REQUEST, SSL_REQUEST, CountingProxy, FrontendParser
from api.bench.storyboard_tree import IMAGES, SHOTS, check_ours, check_peer, seed
from tests.conftest import ADMIN_URL, IN_CI


def _typed(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!I", 4 + len(body)) + body


def _untyped(code: int, body: bytes = b"") -> bytes:
    return struct.pack("!II", 8 + len(body), code) + body


def test_parser_splits_messages_fed_a_byte_at_a_time() -> None:
    startup = _untyped(196608, b"user\0postgres\0\0")
    typed = [
        _typed(b"Q", b"BEGIN\0"),
        _typed(b"P", b"\0SELECT 1\0\0\0"),
        _typed(b"B", b"\0\0\0\0\0\0\0\0"),
        _typed(b"E", b"\0\0\0\0\0"),
        _typed(b"S"),
        _typed(b"H"),
    ]
    stream = _untyped(SSL_REQUEST) + _untyped(GSSENC_REQUEST) + startup + b"".join(typed)
    parser = FrontendParser()
    forwarded, refusals, kinds = b"", 0, []
    for byte in stream:
        more, refused, seen = parser.feed(bytes([byte]))
        forwarded += more
        refusals += refused
        kinds += seen
    assert refusals == 2
    assert forwarded == startup + b"".join(typed)  # the encryption requests stay here
    assert kinds == ["Q", "P", "B", "E", "S", "H"]


def test_parser_keeps_a_partial_message_for_later() -> None:
    parser = FrontendParser()
    startup = _untyped(196608, b"user\0u\0\0")
    whole = _typed(b"Q", b"SELECT 1\0")
    assert parser.feed(startup + whole[:3]) == (startup, 0, [])
    assert parser.feed(whole[3:]) == (whole, 0, ["Q"])


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[CountingProxy, asyncpg.Connection]]:
    url = make_url(ADMIN_URL)
    proxy = CountingProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        # asyncpg's default sslmode asks for SSL first: the proxy refuses it.
        connection = await asyncpg.connect(
            host="127.0.0.1",
            port=proxy.port,
            user=url.username,
            password=url.password,
            database=url.database or "postgres",
            timeout=10,
        )
    except (OSError, asyncpg.PostgresError) as error:
        proxy.stop()
        if IN_CI:
            pytest.fail(f"PostgreSQL is not reachable: {error!r}")
        pytest.skip(f"PostgreSQL is not reachable: {error!r}")
    yield proxy, connection
    await connection.close()
    proxy.stop()


async def test_proxy_counts_a_real_drivers_round_trips(
    proxied: tuple[CountingProxy, asyncpg.Connection],
) -> None:
    proxy, connection = proxied
    assert proxy.counts().connections == 1

    before = proxy.counts()
    assert await connection.execute("SELECT 1") == "SELECT 1"  # simple protocol
    simple = proxy.counts() - before
    assert (simple.of("Q"), simple.round_trips, simple.statements) == (1, 1, 1)

    before = proxy.counts()
    assert await connection.fetchval("SELECT $1::int + 1", 41) == 42  # prepared, then run
    first = proxy.counts() - before
    assert (first.parses, first.statements) == (1, 1)
    assert first.round_trips == 2  # describe the new statement, then bind and execute

    before = proxy.counts()
    assert await connection.fetchval("SELECT $1::int + 1", 1) == 2  # from asyncpg's cache
    again = proxy.counts() - before
    assert (again.parses, again.statements, again.round_trips) == (0, 1, 1)

    before = proxy.counts()
    async with connection.transaction():
        await connection.execute("SELECT 2")
    transaction = proxy.counts() - before
    assert (transaction.of("Q"), transaction.round_trips) == (3, 3)  # BEGIN, SELECT, COMMIT


async def test_proxy_passes_answers_through_whole(
    proxied: tuple[CountingProxy, asyncpg.Connection],
) -> None:
    _, connection = proxied
    rows = await connection.fetch("SELECT g, repeat('x', 1000) FROM generate_series(1, 2000) g")
    assert [row[0] for row in rows] == list(range(1, 2001))
    assert {row[1] for row in rows} == {"x" * 1000}


async def test_seeded_tree_reads_whole_through_our_schema(postgresql_url: str) -> None:
    """The bench's seed, read with our query in-process, passes the bench's own check;
    a trimmed answer does not."""
    from api.bench.storyboard_tree import OURS, execute
    from services.database import Database

    seeded = await seed(postgresql_url)
    db = Database(postgresql_url)
    try:
        data = await execute(db, seeded.token, OURS, {"id": seeded.project_id})
    finally:
        await db.dispose()
    assert check_ours({"data": data}) is None
    images = [
        image
        for scene in data["project"]["scenes"]
        for shot in scene["shots"]
        for iteration in shot["iterations"]
        for image in iteration["images"]
    ]
    assert len(images) == IMAGES
    assert data["project"]["progress"]["totalShots"] == SHOTS
    data["project"]["scenes"].pop()
    assert "not 10" in (check_ours({"data": data}) or "")
    assert check_ours({"errors": [{"message": "boom"}]}) == "errors: boom"
    assert check_peer({"data": {"projectByRowId": None}}) == "no project in the answer"


def test_wrk_result_line_is_read_and_a_missing_one_refused() -> None:
    run = wrk.parse("noise\nWRK_RESULT 120 10000000 6600 9100 0 0\n")
    assert (run.requests, run.per_second, run.p50_ms, run.p99_ms, run.clean) == (
        120,
        12.0,
        6.6,
        9.1,
        True,
    )
    assert not wrk.parse("WRK_RESULT 5 1000000 1 2 1 0").clean
    with pytest.raises(wrk.LoadUnavailable, match="no result"):
        wrk.parse("", "unable to connect", 1)
