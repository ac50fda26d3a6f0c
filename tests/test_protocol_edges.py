"""Malformed requests and messages of every shape are the client's error, never a crash.

Real `studio serve` processes. Over graphql-transport-ws, every message that is
not one of the protocol's (generated here: each field of each message type
replaced by each wrong type, or left out; frames that are not JSON objects)
closes the socket with 4400 and nothing else, while another subscription is
open on it; graphql-ws answers `connection_error` and closes with 4400. Over
HTTP, every body that is not a GraphQL request object is a 400 with a JSON
error. A document that does not say which of its operations to run runs none,
on every transport. An operation that needs a token is refused before its
input is read.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from api.websocket import MAX_OPERATION_ID
from tests.realtime_harness import PROJECT_EVENTS, WAIT, Api
from tests.servers import StudioServer
from tests.test_subscriptions import studio_server
from tests.test_ws_auth import GRAPHQL_WS, TRANSPORT_WS, Client, codes

pytestmark = pytest.mark.e2e

MASKED = "Something went wrong"


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudioServer]:
    cwd = tmp_path_factory.mktemp("edges")
    server = studio_server(cwd, "edges", DATABASE_URL=f"sqlite+aiosqlite:///{cwd / 'studio.db'}")
    with server:
        yield server


@pytest.fixture(scope="module")
async def owner(studio: StudioServer) -> AsyncIterator[Api]:
    api = Api(studio.base_url)
    await api.sign_up("Edge")
    yield api
    await api.aclose()


@pytest.fixture(scope="module")
async def project_id(owner: Api) -> str:
    return await owner.create_project("Edges")


# -- generated malformed messages ----------------------------------------------------------------

# What each field may hold, per the protocols: a Python type, or None for "may be null".
Spec = dict[tuple[str, ...], tuple[Any, ...]]
WRONG: list[Any] = [None, 0, 1.5, True, "x", [], ["x"], {}, {"a": 1}]


def _set(message: dict[str, Any], path: tuple[str, ...], value: Any, *, drop: bool = False) -> None:
    *parents, last = path
    for key in parents:
        message = message[key]
    if drop:
        del message[last]
    else:
        message[last] = value


def _allowed(value: Any, types: tuple[Any, ...]) -> bool:
    if value is None:
        return None in types
    return any(t is not None and isinstance(value, t) for t in types)


def malformed_variants(
    valid: dict[str, dict[str, Any]], spec: dict[str, Spec], required: dict[str, set[str]]
) -> Iterator[tuple[str, Any]]:
    """Each valid message with one field given a wrong type, or dropped if required."""
    for kind, message in valid.items():
        for path, types in spec[kind].items():
            for value in WRONG:
                # No value of WRONG is a message type's name.
                if path == ("type",) or not _allowed(value, types):
                    bad = copy.deepcopy(message)
                    _set(bad, path, value)
                    yield f"{kind}.{'.'.join(path)}={json.dumps(value)}", bad
            if ".".join(path) in required[kind]:
                bad = copy.deepcopy(message)
                _set(bad, path, None, drop=True)
                yield f"{kind}.{'.'.join(path)}-missing", bad
    for value in [None, 0, "x", [], [{}], True]:
        yield f"not-an-object={json.dumps(value)}", value


OPERATION: dict[str, Any] = {
    "query": "{ __typename }",
    "variables": {},
    "operationName": None,
    "extensions": {},
}
OPERATION_SPEC: Spec = {
    ("type",): (str,),
    ("id",): (str,),
    ("payload",): (dict,),
    ("payload", "query"): (str,),
    ("payload", "variables"): (dict, None),
    ("payload", "operationName"): (str, None),
    ("payload", "extensions"): (dict, None),
}
TRANSPORT_WS_MESSAGES: dict[str, dict[str, Any]] = {
    "subscribe": {"type": "subscribe", "id": "x", "payload": OPERATION},
    "complete": {"type": "complete", "id": "x"},
    "ping": {"type": "ping", "payload": {}},
    "pong": {"type": "pong", "payload": {}},
}
TRANSPORT_WS_CASES = list(
    malformed_variants(
        TRANSPORT_WS_MESSAGES,
        {
            "subscribe": OPERATION_SPEC,
            "complete": {("type",): (str,), ("id",): (str,)},
            "ping": {("type",): (str,), ("payload",): (dict, None)},
            "pong": {("type",): (str,), ("payload",): (dict, None)},
        },
        {
            "subscribe": {"type", "id", "payload", "payload.query"},
            "complete": {"type", "id"},
            "ping": {"type"},
            "pong": {"type"},
        },
    )
)
GRAPHQL_WS_CASES = list(
    malformed_variants(
        {
            "start": {"type": "start", "id": "x", "payload": OPERATION},
            "stop": {"type": "stop", "id": "x"},
        },
        {"start": OPERATION_SPEC, "stop": {("type",): (str,), ("id",): (str,)}},
        {"start": {"type", "id", "payload", "payload.query"}, "stop": {"type", "id"}},
    )
)
# Unknown types the close reason repeats: it must still fit a close frame (123 bytes).
ECHOED_TYPES: list[tuple[str, Any]] = [
    ("type-non-ascii", {"type": "é" * 100}),
    ("type-lone-surrogate", {"type": "\ud800" * 10}),
]
TRANSPORT_WS_CASES += ECHOED_TYPES
GRAPHQL_WS_CASES += ECHOED_TYPES
# An id repeats in every frame of its operation: it is bounded.
LONG_ID = "i" * (MAX_OPERATION_ID + 1)
TRANSPORT_WS_CASES += [
    ("subscribe-id-too-long", {"type": "subscribe", "id": LONG_ID, "payload": OPERATION}),
    ("complete-id-too-long", {"type": "complete", "id": LONG_ID}),
]
GRAPHQL_WS_CASES += [
    ("start-id-too-long", {"type": "start", "id": LONG_ID, "payload": OPERATION}),
    ("stop-id-too-long", {"type": "stop", "id": LONG_ID}),
]
RAW_FRAMES: list[tuple[str, str | bytes]] = [
    ("binary", b'{"type": "ping"}'),
    ("not-json", "{"),
    ("empty", ""),
    ("nan", '{"type": "ping", "payload": {"a": NaN}}'),
    ("deeply-nested", "[" * 100_000 + "]" * 100_000),
]


async def open_socket(
    server: StudioServer, owner: Api, project_id: str, protocol: str
) -> tuple[ClientConnection, Client]:
    """A signed-in socket with a live projectEvents subscription (its snapshot received)."""
    client = await Client.open(server, owner.token, protocol)
    feed = await client.start(PROJECT_EVENTS, {"projectId": project_id})
    assert (await client.result(feed))["data"]["projectEvents"]["kind"] == "SNAPSHOT"
    return client.connection, client


async def everything_until_closed(connection: ClientConnection) -> tuple[list[Any], int | None]:
    """Every message the server sends (keep-alives aside) until it closes; its close code."""
    received: list[Any] = []
    try:
        async with asyncio.timeout(WAIT):
            while True:
                raw = await connection.recv()
                message = json.loads(raw)
                if message.get("type") != "ka":
                    received.append(message)
    except ConnectionClosed as closed:
        return received, closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("unreachable")  # pragma: no cover


@pytest.mark.parametrize(
    ("label", "message"), TRANSPORT_WS_CASES, ids=[label for label, _ in TRANSPORT_WS_CASES]
)
async def test_graphql_transport_ws_closes_on_a_malformed_message(
    studio: StudioServer, owner: Api, project_id: str, label: str, message: Any
) -> None:
    connection, _ = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    await connection.send(json.dumps(message))
    assert await everything_until_closed(connection) == ([], 4400)


@pytest.mark.parametrize(("label", "frame"), RAW_FRAMES, ids=[label for label, _ in RAW_FRAMES])
async def test_graphql_transport_ws_closes_on_a_frame_that_is_not_a_json_object(
    studio: StudioServer, owner: Api, project_id: str, label: str, frame: str | bytes
) -> None:
    connection, _ = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    await connection.send(frame)
    assert await everything_until_closed(connection) == ([], 4400)


@pytest.mark.parametrize(("label", "frame"), RAW_FRAMES, ids=[label for label, _ in RAW_FRAMES])
async def test_a_frame_that_is_not_a_json_object_is_named_bad_request_on_both_protocols(
    studio: StudioServer, owner: Api, project_id: str, label: str, frame: str | bytes
) -> None:
    # Strawberry's own reasons for these ("WebSocket message must be valid JSON") carried
    # no code, unlike every other bad message; GraphiQL shows the code it finds first.
    connection, _ = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    await connection.send(frame)
    assert await everything_until_closed(connection) == ([], 4400)
    assert (connection.close_reason or "").startswith("BAD_REQUEST: Invalid message: "), (
        connection.close_reason
    )
    legacy, _ = await open_socket(studio, owner, project_id, GRAPHQL_WS)
    await legacy.send(frame)
    received, code = await everything_until_closed(legacy)
    assert code == 4400
    assert (legacy.close_reason or "").startswith("BAD_REQUEST: Invalid message: "), (
        legacy.close_reason
    )
    assert [m["payload"]["extensions"] for m in received] == [{"code": "BAD_REQUEST"}], received


async def test_a_subscribe_before_connection_init_says_to_send_it_first(
    studio: StudioServer, owner: Api, project_id: str
) -> None:
    url = studio.base_url.replace("http://", "ws://") + "/graphql"
    async with connect(url, subprotocols=[Subprotocol(TRANSPORT_WS)]) as connection:
        subscribe = {"query": PROJECT_EVENTS, "variables": {"projectId": project_id}}
        await connection.send(json.dumps({"type": "subscribe", "id": "1", "payload": subscribe}))
        assert await everything_until_closed(connection) == ([], 4401)
        assert connection.close_reason == (
            "UNAUTHENTICATED: send connection_init and wait for connection_ack before subscribe"
        )


@pytest.mark.parametrize(
    ("label", "message"), GRAPHQL_WS_CASES, ids=[label for label, _ in GRAPHQL_WS_CASES]
)
async def test_graphql_ws_refuses_a_malformed_message(
    studio: StudioServer, owner: Api, project_id: str, label: str, message: Any
) -> None:
    connection, _ = await open_socket(studio, owner, project_id, GRAPHQL_WS)
    await connection.send(json.dumps(message))
    received, code = await everything_until_closed(connection)
    assert code == 4400
    assert [m["type"] for m in received] == ["connection_error"], received


@pytest.mark.parametrize(("label", "frame"), RAW_FRAMES, ids=[label for label, _ in RAW_FRAMES])
async def test_graphql_ws_refuses_a_frame_that_is_not_a_json_object(
    studio: StudioServer, owner: Api, project_id: str, label: str, frame: str | bytes
) -> None:
    connection, _ = await open_socket(studio, owner, project_id, GRAPHQL_WS)
    await connection.send(frame)
    received, code = await everything_until_closed(connection)
    assert code == 4400
    assert [m["type"] for m in received] == ["connection_error"], received


async def test_an_unknown_message_type_is_named_in_the_close_reason(
    studio: StudioServer, owner: Api, project_id: str
) -> None:
    connection, _ = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    await connection.send(json.dumps({"type": "hello"}))
    assert await everything_until_closed(connection) == ([], 4400)
    assert connection.close_reason == (
        "BAD_REQUEST: Invalid message: the type is one of 'connection_init', 'ping', 'pong', "
        "'subscribe', 'complete', not 'hello'"
    )


async def test_an_id_as_long_as_allowed_is_answered_under_it(
    studio: StudioServer, owner: Api, project_id: str
) -> None:
    connection, _ = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    longest = "i" * MAX_OPERATION_ID
    await connection.send(json.dumps({"type": "subscribe", "id": longest, "payload": OPERATION}))
    answer = json.loads(await connection.recv())
    assert answer == {"id": longest, "type": "next", "payload": {"data": {"__typename": "Query"}}}
    assert json.loads(await connection.recv()) == {"id": longest, "type": "complete"}
    await connection.close()


async def test_a_malformed_message_costs_no_other_connection(
    studio: StudioServer, owner: Api, project_id: str
) -> None:
    _, bystander = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    connection, _ = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    await connection.send(json.dumps({"type": "subscribe", "id": "1", "payload": "x"}))
    assert await everything_until_closed(connection) == ([], 4400)
    assert (await bystander.ask("{ viewer { name } }"))["data"] == {"viewer": {"name": "Edge"}}
    await bystander.close()


# -- HTTP bodies ---------------------------------------------------------------------------------


def _http_cases() -> Iterator[tuple[str, dict[str, Any]]]:
    json_type = {"Content-Type": "application/json"}
    bodies: list[Any] = [None, [], [{}], [{"query": "{ __typename }"}], 1, 1.5, "x", True]
    for value in bodies:
        yield f"body={json.dumps(value)}", {"content": json.dumps(value), "headers": json_type}
    for label, raw in [
        ("broken", b"{"),
        ("empty", b""),
        ("not-utf8", b"\xff\xfe\xfd"),
        ("nan", b'{"query": "{ __typename }", "variables": {"a": NaN}}'),
        ("infinity", b'{"query": "{ __typename }", "extensions": {"a": -Infinity}}'),
        ("deeply-nested", b"[" * 100_000 + b"]" * 100_000),
        (
            "deeply-nested-variables",
            b'{"query": "{ __typename }", "variables": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001,
        ),
    ]:
        yield f"raw={label}", {"content": raw, "headers": json_type}
    fields: dict[str, tuple[Any, ...]] = {
        "query": (str, None),
        "variables": (dict, None),
        "operationName": (str, None),
        "extensions": (dict, None),
    }
    for field, types in fields.items():
        for value in WRONG:
            if not _allowed(value, types):
                body = {"query": "{ __typename }", field: value}
                yield f"{field}={json.dumps(value)}", {"json": body}
    yield "query-missing", {"json": {"variables": {}}}
    yield "query-null", {"json": {"query": None}}
    valid = json.dumps({"query": "{ __typename }"})
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
    ]:
        yield (
            f"content-type={content_type or 'none'}",
            {
                "content": valid,
                "headers": {"Content-Type": content_type},
            },
        )


HTTP_CASES = list(_http_cases())


def assert_json_refusal(response: httpx.Response) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body["errors"][0]["message"], str)
    assert body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST", body


@pytest.mark.parametrize(("label", "request_args"), HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
async def test_a_body_that_is_not_a_graphql_request_is_a_json_400(
    studio: StudioServer, owner: Api, project_id: str, label: str, request_args: dict[str, Any]
) -> None:
    response = await owner.http.post("/graphql", **request_args)
    assert_json_refusal(response)


@pytest.mark.parametrize(
    "params",
    [
        {"query": "{ __typename }", "variables": "1"},
        {"query": "{ __typename }", "variables": "[]"},
        {"query": "{ __typename }", "variables": "{"},
        {"query": "{ __typename }", "variables": '{"a": NaN}'},
        {"query": "{ __typename }", "extensions": '"x"'},
        {"variables": "{}"},
    ],
    ids=[
        "variables-number",
        "variables-list",
        "variables-broken",
        "variables-nan",
        "extensions-string",
        "no-query",
    ],
)
async def test_get_parameters_that_are_not_a_graphql_request_are_a_json_400(
    studio: StudioServer, owner: Api, params: dict[str, str]
) -> None:
    response = await owner.http.get(
        "/graphql", params=params, headers={"Accept": "application/json"}
    )
    assert_json_refusal(response)


# -- which operation runs ------------------------------------------------------------------------

TWO_OPERATIONS = """
mutation Make { createProject(input: {title: "Sneaky"}) { project { id } } }
query Look { viewer { id } }
"""
TWO_SUBSCRIPTIONS = """
subscription A($projectId: ID!) { projectEvents(projectId: $projectId) { kind } }
subscription B($projectId: ID!) { projectEvents(projectId: $projectId) { sequence } }
"""


async def project_count(api: Api) -> int:
    count: int = (await api.data("{ projects { totalCount } }"))["projects"]["totalCount"]
    return count


@pytest.mark.parametrize("operation_name", [None, "Nope"], ids=["no-name", "unknown-name"])
async def test_a_document_that_does_not_say_which_operation_runs_nothing_over_http(
    studio: StudioServer, owner: Api, operation_name: str | None
) -> None:
    before = await project_count(owner)
    auth = {"Authorization": f"Bearer {owner.token}"}
    posted = await owner.http.post(
        "/graphql",
        json={"query": TWO_OPERATIONS, "operationName": operation_name},
        headers=auth,
    )
    assert_json_refusal(posted)
    assert MASKED not in posted.text
    params = {"query": "query A { viewer { id } } query B { viewer { name } }"}
    if operation_name is not None:
        params["operationName"] = operation_name
    got = await owner.http.get("/graphql", params=params, headers=auth)
    assert_json_refusal(got)
    # Over server-sent events: a BAD_REQUEST in the stream, not a masked fault.
    streamed = await owner.http.post(
        "/graphql",
        json={"query": TWO_OPERATIONS, "operationName": operation_name},
        headers={**auth, "Accept": "text/event-stream"},
    )
    assert "BAD_REQUEST" in streamed.text, streamed.text
    assert MASKED not in streamed.text
    assert await project_count(owner) == before


async def test_a_mutation_over_get_says_to_post_it(studio: StudioServer, owner: Api) -> None:
    before = await project_count(owner)
    got = await owner.http.get(
        "/graphql",
        params={"query": 'mutation { createProject(input: { title: "x" }) { project { id } } }'},
        headers={"Authorization": f"Bearer {owner.token}", "Accept": "application/json"},
    )
    assert got.status_code == 400, got.text
    assert got.json() == {
        "errors": [
            {
                "message": "A mutation cannot be sent with GET: POST it to /graphql as JSON.",
                "extensions": {"code": "BAD_REQUEST"},
            }
        ]
    }
    assert await project_count(owner) == before


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "fragment F on User { id }",
            "This document holds no operation: send a query, mutation or "
            "subscription (`query { ... }`), not only fragments.",
        ),
        (
            "query A { viewer { id } } query B { viewer { name } }",
            "This document holds several operations: name the one to run in `operationName`.",
        ),
    ],
    ids=["none", "several"],
)
async def test_a_document_without_a_chosen_operation_says_which_fault_it_has(
    studio: StudioServer, owner: Api, document: str, message: str
) -> None:
    # Fragments alone used to be told to name an operation in `operationName`.
    auth = {"Authorization": f"Bearer {owner.token}"}
    posted = await owner.http.post("/graphql", json={"query": document}, headers=auth)
    assert posted.status_code == 400, posted.text
    assert posted.json() == {
        "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]
    }


@pytest.mark.parametrize("operation_name", [None, "Nope"], ids=["no-name", "unknown-name"])
async def test_a_document_that_does_not_say_which_operation_runs_nothing_over_websockets(
    studio: StudioServer, owner: Api, project_id: str, operation_name: str | None
) -> None:
    before = await project_count(owner)
    client = await Client.open(studio, owner.token, TRANSPORT_WS)
    try:
        operation_id = "ambiguous"
        await client.send(
            {
                "type": "subscribe",
                "id": operation_id,
                "payload": {"query": TWO_OPERATIONS, "operationName": operation_name},
            }
        )
        message = await client.message(operation_id)
        assert message["type"] == "error", message
        assert codes(client.as_result(message)) == ["BAD_REQUEST"]
        # The connection carries on.
        assert (await client.ask("{ viewer { name } }"))["data"] == {"viewer": {"name": "Edge"}}
    finally:
        await client.close()

    legacy = await Client.open(studio, owner.token, GRAPHQL_WS)
    try:
        await legacy.send(
            {
                "type": "start",
                "id": "ambiguous",
                "payload": {
                    "query": TWO_SUBSCRIPTIONS,
                    "variables": {"projectId": project_id},
                    "operationName": operation_name,
                },
            }
        )
        refused = await legacy.result("ambiguous")
        assert codes(refused) == ["BAD_REQUEST"], refused
        # graphql-ws carries subscriptions only: a query or mutation is told so, not masked.
        for number, query in enumerate(("{ viewer { id } }", CREATE_PROJECT)):
            await legacy.send({"type": "start", "id": f"not-{number}", "payload": {"query": query}})
            told = await legacy.result(f"not-{number}")
            assert codes(told) == ["BAD_REQUEST"], told
    finally:
        await legacy.close()
    assert await project_count(owner) == before


CREATE_PROJECT = 'mutation { createProject(input: { title: "Never" }) { project { id } } }'


# -- anonymous operations ------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (proc(5): fields 14 and 15, in ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


CREATE_SCENE = (
    "mutation($input: CreateSceneInput!) { createScene(input: $input) "
    "{ scene { id } userErrors { code } } }"
)


async def test_an_anonymous_operation_is_refused_before_its_input_is_read(
    studio: StudioServer, project_id: str
) -> None:
    shots = [{"description": f"s{n}"} for n in range(60_000)]
    body = json.dumps(
        {
            "query": CREATE_SCENE,
            "variables": {"input": {"projectId": project_id, "title": "Flood", "shots": shots}},
        }
    ).encode()
    assert len(body) > 1_300_000
    async with httpx.AsyncClient(base_url=studio.base_url, trust_env=False, timeout=60) as http:
        # Warm up (the first request of a process pays for imports and caches).
        await http.post("/graphql", json={"query": CREATE_SCENE, "variables": {"input": {}}})
        spent = []
        for _ in range(3):
            before = cpu_seconds(studio.process.pid)
            response = await http.post(
                "/graphql", content=body, headers={"Content-Type": "application/json"}
            )
            spent.append(cpu_seconds(studio.process.pid) - before)
            assert response.status_code == 200, response.text
            assert codes(response.json()) == ["UNAUTHENTICATED"], response.text[:500]
            assert response.json()["data"] is None
    # Decoding 1.3 MB of JSON is all it may cost; coercing 60,000 inputs took 1.4 s.
    assert min(spent) < 0.25, spent


async def test_a_public_field_does_not_carry_the_rest_of_an_anonymous_document(
    studio: StudioServer, owner: Api
) -> None:
    before = await project_count(owner)
    async with httpx.AsyncClient(base_url=studio.base_url, trust_env=False) as http:
        response = await http.post(
            "/graphql",
            json={
                "query": "mutation($email: String!) { "
                'logIn(input: {email: $email, password: "correct horse battery"}) { token } '
                'createProject(input: {title: "Smuggled"}) { project { id } } }',
                "variables": {"email": owner.email},
            },
        )
        assert codes(response.json()) == ["UNAUTHENTICATED"], response.text
        # Public fields alone answer without a token, fragments and all.
        alone = await http.post(
            "/graphql",
            json={
                "query": "query { ...Meta } fragment Meta on Query { __typename __schema { queryType { name } } }"
            },
        )
        assert alone.json() == {
            "data": {"__typename": "Query", "__schema": {"queryType": {"name": "Query"}}}
        }
        hidden = await http.post(
            "/graphql", json={"query": "query { ...Mine } fragment Mine on Query { viewer { id } }"}
        )
        assert codes(hidden.json()) == ["UNAUTHENTICATED"], hidden.text
    assert await project_count(owner) == before


# -- what a refusal quotes back of the client's input is bounded --------------------------------

LONG = 100_000
# A message quotes at most 40 characters of any one name or value the client sent.
QUOTED_MAX = 40


def assert_quotes_little(text: str) -> None:
    assert "k" * QUOTED_MAX not in text, text[:300]
    assert len(text) < 1_000, text[:300]


async def test_unknown_names_are_quoted_cut_short_in_messages_and_fields(
    studio: StudioServer, owner: Api, project_id: str
) -> None:
    scene = await owner.create_scene(project_id, "Quoted", [{"description": "Wide"}])
    shot_id = scene["shots"][0]["id"]
    generate = (
        "mutation($input: GenerateShotImagesInput!) { generateShotImages(input: $input) "
        "{ iteration { iterationNumber } userErrors { code message field } } }"
    )
    auth = {"Authorization": f"Bearer {owner.token}"}
    cases: list[tuple[dict[str, Any], str]] = [
        ({"params": {"k" * LONG: 1}}, "INVALID_PARAM"),
        ({"model": "k" * LONG}, "UNKNOWN_MODEL"),
    ]
    for extra, code in cases:
        variables = {"input": {"shotId": shot_id, "prompt": "a harbour", **extra}}
        response = await owner.http.post(
            "/graphql", json={"query": generate, "variables": variables}, headers=auth
        )
        assert response.status_code == 200, response.text[:300]
        assert_quotes_little(response.text)
        payload = response.json()["data"]["generateShotImages"]
        assert payload["iteration"] is None
        [error] = payload["userErrors"]
        assert error["code"] == code, error
        assert all(len(part) <= QUOTED_MAX for part in error["field"]), error
        if code == "INVALID_PARAM":
            # The unknown parameter's name is still recognisable: its start, then "…".
            assert error["field"] == ["params", "k" * (QUOTED_MAX - 1) + "…"], error


async def test_a_long_operation_name_or_variable_key_is_quoted_cut_short(
    studio: StudioServer, owner: Api
) -> None:
    auth = {"Authorization": f"Bearer {owner.token}"}
    unnamed = await owner.http.post(
        "/graphql",
        json={"query": TWO_OPERATIONS, "operationName": "k" * LONG},
        headers=auth,
    )
    assert unnamed.status_code == 400, unnamed.text[:300]
    assert_quotes_little(unnamed.text)
    # An over-long list under a long key: the path names the key, cut short.
    listed = await owner.http.post(
        "/graphql",
        json={"query": "{ __typename }", "variables": {"v": {"k" * LONG: [0] * 1_001}}},
        headers=auth,
    )
    assert_quotes_little(listed.text)
    (error,) = listed.json()["errors"]
    assert error["extensions"]["code"] == "TOO_LONG", error
    assert error["extensions"]["field"] == ["v", "k" * (QUOTED_MAX - 1) + "…"], error


# -- bounded like any body: numbers, nesting, size ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"query": "{ __typename }", "variables": {"a": 1e99999}}',
        '{"query": "{ __typename }", "variables": {"a": -1e99999}}',
        '{"query": "{ __typename }", "variables": {"a": ' + "[" * 40 + "]" * 40 + "}}",
    ],
    ids=["infinite", "minus-infinite", "nested-40-deep"],
)
async def test_a_body_with_a_number_json_cannot_hold_or_too_deep_is_a_json_400(
    studio: StudioServer, owner: Api, body: str
) -> None:
    response = await owner.http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert_json_refusal(response)


async def test_a_variable_nested_as_deep_as_json_may_is_accepted_in_a_body(
    studio: StudioServer, owner: Api
) -> None:
    body = '{"query": "{ __typename }", "variables": {"a": ' + "[" * 32 + "]" * 32 + "}}"
    response = await owner.http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text


async def test_a_websocket_message_over_the_body_cap_closes_the_socket(
    studio: StudioServer, owner: Api, project_id: str
) -> None:
    """Held to MAX_REQUEST_BYTES (2 MiB here) after decompression, like an HTTP body."""
    connection, _ = await open_socket(studio, owner, project_id, TRANSPORT_WS)
    huge = {"id": "x" * (2 * 1024 * 1024 + 1), "type": "subscribe", "payload": {}}
    await connection.send(json.dumps(huge))
    assert await everything_until_closed(connection) == ([], 1009)


# -- clients that go away ------------------------------------------------------------------------


async def test_a_client_that_goes_away_mid_operation_is_no_server_error(
    studio: StudioServer, owner: Api, project_id: str
) -> None:
    """A socket closed while its operations still had messages to send: each operation
    whose `next` or `complete` found the socket gone was logged as an ERROR with three
    chained tracebacks ("Exception in worker task"), so any client could fill the
    server's error log by closing early. A client leaving is no fault of the server."""
    query = "{ viewer { id name teams { id name } } projects { totalCount nodes { title } } }"
    before = studio.output()
    for protocol in (TRANSPORT_WS, GRAPHQL_WS):
        kind = "subscribe" if protocol == TRANSPORT_WS else "start"
        subscription = {"query": PROJECT_EVENTS, "variables": {"projectId": project_id}}
        for _ in range(5):
            client = await Client.open(studio, owner.token or "", protocol)
            for n in range(20):
                payload = {"query": query} if protocol == TRANSPORT_WS else subscription
                await client.send({"id": str(n), "type": kind, "payload": payload})
            await client.receive()
            await client.connection.close()
    await owner.mutate(
        "updateProject", {"id": project_id, "title": "Edges again"}, "project { id }"
    )  # the feeds' next event
    await asyncio.sleep(1.0)
    logged = studio.output()[len(before) :]
    faults = ("Exception in worker task", "Task exception was never retrieved")
    for fault in (*faults, "Exception during reset", "Exception closing connection"):
        assert fault not in logged, logged[-3000:]
    await owner.data("{ viewer { id } }")  # and the server serves on
