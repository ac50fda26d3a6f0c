"""A document that does not parse, sent over a WebSocket, gets an error with
GRAPHQL_PARSE_FAILED on both protocols, as over HTTP; nothing is logged as a fault
and the socket carries on. (Parsed through ParserCache, a subscription's syntax
error used to escape its stream: `complete` with no error on graphql-transport-ws,
no answer at all on graphql-ws, and a traceback in the log each time.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.realtime_harness import Api
from tests.servers import StudioServer
from tests.test_subscriptions import studio_server
from tests.test_ws_auth import GRAPHQL_WS, TRANSPORT_WS, Client, codes

pytestmark = pytest.mark.e2e

UNPARSABLE = ["subscription {", "{ __typename \u0000 }", "query { viewer { id }", "}"]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    cwd = tmp_path_factory.mktemp("ws-syntax")
    server = studio_server(
        cwd, "ws-syntax", DATABASE_URL=f"sqlite+aiosqlite:///{cwd / 'studio.db'}"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def owner(studio: StudioServer) -> AsyncIterator[Api]:
    api = Api(studio.base_url)
    await api.sign_up("Parser")
    yield api
    await api.aclose()


async def test_graphql_transport_ws_answers_a_syntax_error(
    studio: StudioServer, owner: Api
) -> None:
    client = await Client.open(studio, owner.token, TRANSPORT_WS)
    try:
        for number, query in enumerate(UNPARSABLE):
            operation_id = f"bad-{number}"
            await client.send(
                {"type": "subscribe", "id": operation_id, "payload": {"query": query}}
            )
            message = await client.message(operation_id)
            assert message["type"] == "error", message
            assert codes(client.as_result(message)) == ["GRAPHQL_PARSE_FAILED"], message
        assert (await client.ask("{ viewer { name } }"))["data"] == {"viewer": {"name": "Parser"}}
    finally:
        await client.close()
    assert "Traceback" not in studio.output()


async def test_graphql_ws_answers_a_syntax_error(studio: StudioServer, owner: Api) -> None:
    legacy = await Client.open(studio, owner.token, GRAPHQL_WS)
    try:
        for number, query in enumerate(UNPARSABLE):
            operation_id = f"bad-{number}"
            await legacy.send({"type": "start", "id": operation_id, "payload": {"query": query}})
            result = await legacy.result(operation_id)
            assert codes(result) == ["GRAPHQL_PARSE_FAILED"], result
    finally:
        await legacy.close()
    assert "Traceback" not in studio.output()
