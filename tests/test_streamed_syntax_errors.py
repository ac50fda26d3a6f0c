"""A document that does not parse, sent to be streamed (a WebSocket, either
protocol, or Server-Sent Events), gets an error with GRAPHQL_PARSE_FAILED, as a
query over HTTP does (graphql-transport-ws closes with 4400 and the syntax error,
as Strawberry and graphql-ws's reference server do, the code leading the reason);
nothing is logged as a fault.
(Parsed through ParserCache, a subscription's syntax error used to escape its
stream: `complete` with no error on graphql-transport-ws, no answer at all on
graphql-ws, a broken 500 over SSE, and a traceback in the log each time.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

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
    with server:
        yield server


@pytest.fixture(scope="module")
async def owner(studio: StudioServer) -> AsyncIterator[Api]:
    api = Api(studio.base_url)
    await api.sign_up("Parser")
    yield api
    await api.aclose()


async def test_graphql_transport_ws_closes_4400_on_a_syntax_error(
    studio: StudioServer, owner: Api
) -> None:
    # Strawberry's choice, as graphql-ws's reference server: a subscribe whose
    # document does not parse is a bad message, closed with 4400 and the reason.
    for number, query in enumerate(UNPARSABLE):
        client = await Client.open(studio, owner.token, TRANSPORT_WS)
        try:
            await client.send(
                {"type": "subscribe", "id": f"bad-{number}", "payload": {"query": query}}
            )
            with pytest.raises(ConnectionClosed) as closed:
                await client.receive()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4400
            reason = closed.value.rcvd.reason
            assert reason.startswith("GRAPHQL_PARSE_FAILED: Syntax Error"), reason
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


async def test_server_sent_events_answer_a_syntax_error(studio: StudioServer, owner: Api) -> None:
    headers = {"Authorization": f"Bearer {owner.token}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=studio.base_url, timeout=10.0, trust_env=False) as http:
        for query in UNPARSABLE:
            response = await http.post("/graphql", json={"query": query}, headers=headers)
            assert response.status_code == 200, response.text
            events = [line for line in response.text.splitlines() if line.startswith("data: {")]
            assert len(events) == 1, response.text
            result = json.loads(events[0].removeprefix("data: "))
            assert codes(result) == ["GRAPHQL_PARSE_FAILED"], result
            assert "event: complete" in response.text
    assert "Traceback" not in studio.output()
