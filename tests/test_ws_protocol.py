"""permessage-deflate as `studio serve` runs it (api/ws_protocol.py), on a real socket.

The server is the whole app under uvicorn with the options `studio serve` gives it
(`api.cli._uvicorn_options`); the client is a `websockets` client whose inflater
records, for each message, whether it came compressed (RSV1). Small messages come
uncompressed, large ones compressed, and both decode to what was sent, in any
order: skipping a message leaves the compression context as it was (RFC 7692 §6).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)
from websockets.frames import Frame, Opcode
from websockets.typing import ExtensionParameter

import migrations
from api.app import create_app
from api.cli import _uvicorn_options
from api.ports import free_port
from api.settings import Settings
from api.ws_protocol import COMPRESS_MIN_BYTES
from services.database import Database
from tests.realtime_harness import Api
from tests.servers import serving_in_process
from tests.test_shared_feeds import WITH_PLANNER, Running, server, setup, until

pytestmark = pytest.mark.e2e

__all__ = ["server"]  # the fixture, shared

SECRET_KEY = "websocket protocol tests secret key, long enough to be accepted"


class _Recording(PerMessageDeflate):
    """The client's inflater, noting (compressed, text) for each data message."""

    seen: list[tuple[bool, str]]

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        compressed = frame.rsv1
        decoded = super().decode(frame, max_size=max_size)
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            self.seen.append((compressed, bytes(decoded.data).decode()))
        return decoded


class _RecordingFactory(ClientPerMessageDeflateFactory):
    def __init__(self) -> None:
        super().__init__(client_max_window_bits=True)
        self.seen: list[tuple[bool, str]] = []

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        negotiated = super().process_response_params(params, accepted_extensions)
        recording = _Recording(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            negotiated.compress_settings,
        )
        recording.seen = self.seen
        return recording


async def _serve(database_url: str, **settings: Any) -> AsyncIterator[str]:
    migrated = Database(database_url)
    try:
        await migrations.upgrade_to_head(migrated)
    finally:
        await migrated.dispose()
    config = Settings(_env_file=None, database_url=database_url, secret_key=SECRET_KEY, **settings)
    port = free_port()
    app = create_app(config, port=port)
    async with serving_in_process(app, port, **_uvicorn_options(config)):
        yield f"127.0.0.1:{port}"


@pytest.fixture
async def address(sqlite_url: str) -> AsyncIterator[str]:
    async for served in _serve(sqlite_url):
        yield served


@pytest.fixture
async def uncompressed_address(sqlite_url: str) -> AsyncIterator[str]:
    async for served in _serve(sqlite_url, websocket_compression=False):
        yield served


async def _token(address: str) -> str:
    async with Api(f"http://{address}") as api:
        await api.sign_up("Wes")
        return api.token


async def _open(address: str, factory: _RecordingFactory | None) -> ClientConnection:
    token = await _token(address)
    socket = await connect(
        f"ws://{address}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        extensions=[factory] if factory else None,
        compression=None,
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    return socket


# The schema's type names: a few KB.
LARGE = "{ __schema { types { name } } }"


async def _query(socket: ClientConnection, ident: str, query: str) -> dict[str, Any]:
    await socket.send(json.dumps({"id": ident, "type": "subscribe", "payload": {"query": query}}))
    message: dict[str, Any] = json.loads(await socket.recv())
    assert message["type"] == "next", message
    assert json.loads(await socket.recv()) == {"id": ident, "type": "complete"}
    return message


async def test_small_messages_go_uncompressed_and_large_ones_compressed(address: str) -> None:
    factory = _RecordingFactory()
    socket = await _open(address, factory)
    try:
        for round_ in range(3):  # small and large, interleaved: the context stays in step
            await socket.send(json.dumps({"type": "ping"}))
            assert json.loads(await socket.recv()) == {"type": "pong"}
            large = await _query(socket, f"large-{round_}", LARGE)
            assert {"name": "Project"} in large["payload"]["data"]["__schema"]["types"]
            small = await _query(socket, f"small-{round_}", "{ __typename }")
            assert small["payload"] == {"data": {"__typename": "Query"}}
    finally:
        await socket.close()
    assert factory.seen, "permessage-deflate was not negotiated"
    for compressed, text in factory.seen:
        assert compressed == (len(text.encode()) >= COMPRESS_MIN_BYTES), (compressed, len(text))
    assert any(compressed for compressed, _ in factory.seen)
    assert any(not compressed for compressed, _ in factory.seen)


async def test_without_compression_nothing_is_negotiated(uncompressed_address: str) -> None:
    factory = _RecordingFactory()
    socket = await _open(uncompressed_address, factory)
    try:
        large = await _query(socket, "large", LARGE)
        assert len(json.dumps(large)) >= COMPRESS_MIN_BYTES
        assert socket.protocol.extensions == []
    finally:
        await socket.close()
    assert factory.seen == []


@pytest.fixture
async def one_unsigned_address(sqlite_url: str) -> AsyncIterator[str]:
    async for served in _serve(sqlite_url, max_unsigned_websockets_per_address=1):
        yield served


async def test_a_refused_handshake_is_answered_and_logs_no_error(
    one_unsigned_address: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the unsigned-WebSocket cap a handshake gets 429 (an HTTP response through
    the ASGI `websocket.http.response` extension) and the server logs nothing at ERROR:
    any client can send such handshakes, so each must not cost a log line of alarm."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    first = await connect(
        f"ws://{one_unsigned_address}/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
    )
    try:
        for _ in range(3):
            with pytest.raises(InvalidStatus) as refused:
                await connect(
                    f"ws://{one_unsigned_address}/graphql",
                    subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                )
            assert refused.value.response.status_code == 429
    finally:
        await first.close()
    await asyncio.sleep(0.1)  # the refused connections' tasks end after their response
    assert any("429" in record.getMessage() for record in caplog.records)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


async def _subscribed(
    base_url: str, token: str, factory: _RecordingFactory, project_id: str
) -> ClientConnection:
    socket = await connect(
        base_url.replace("http://", "ws://") + "/graphql",
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        extensions=[factory],
        compression=None,
        max_size=None,
    )
    await socket.send(
        json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
    )
    assert json.loads(await socket.recv())["type"] == "connection_ack"
    subscribe = {"query": WITH_PLANNER, "variables": {"projectId": project_id}}
    await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
    first = json.loads(await socket.recv())
    assert first["payload"]["data"]["projectEvents"]["kind"] == "SNAPSHOT", first
    return socket


async def test_shared_frames_written_at_once_decode_small_and_large(server: Running) -> None:
    """Shared frames go out through the protocol's `write_now` (api/fanout.py): a small
    one as the same bytes, framed once, to every subscription of the same id, and
    uncompressed; a large one compressed by each socket's own context, in step with
    the small ones around it. Every one decodes to its event."""
    owner, project_id, scene_id, _ = await setup(server)
    factories = [_RecordingFactory(), _RecordingFactory()]
    opened = [await _subscribed(server.base_url, owner.token, f, project_id) for f in factories]
    try:
        await until(lambda: server.members() == [2], "both parked")
        followers = [f for group in server.fanout._groups.values() for f in group._members.values()]
        assert all(follower._write_now is not None for follower in followers)
        for round_ in range(3):
            await owner.rename_scene(scene_id, f"Quay {round_}")
            planner = f"{round_}" + "p" * (2 * COMPRESS_MIN_BYTES)
            await owner.mutate(
                "updateProject", {"id": project_id, "promptPlannerData": planner}, "project { id }"
            )
            for socket in opened:
                small, large = [json.loads(await socket.recv()) for _ in range(2)]
                assert small["id"] == large["id"] == "1"
                assert small["payload"]["data"]["projectEvents"]["kind"] == "SCENE_UPDATED"
                event = large["payload"]["data"]["projectEvents"]
                assert event["node"]["promptPlannerData"] == planner
    finally:
        for socket in opened:
            await socket.close()
    for factory in factories:
        sizes = [(compressed, len(text.encode())) for compressed, text in factory.seen]
        shared = sizes[2:]  # after the ack and the snapshot
        assert len(shared) == 6
        for compressed, size in shared:
            assert compressed == (size >= COMPRESS_MIN_BYTES), (compressed, size)
        assert any(compressed for compressed, _ in shared)
        assert any(not compressed for compressed, _ in shared)
