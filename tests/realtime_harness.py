"""Clients for the realtime tests: GraphQL over HTTP, and graphql-transport-ws over WebSocket.

    api = Api(server.base_url)
    token = await api.sign_up()
    async with await Socket.open(server, token) as socket:
        feed = await socket.subscribe(PROJECT_EVENTS, {"projectId": project_id})
        snapshot = await feed.next()

Every wait is bounded: a feed that stops delivering fails the test with what it
got so far instead of hanging it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import secrets
import socket as sockets
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.factories import PASSWORD
from tests.servers import StudioServer

WAIT = 15.0
PROTOCOL = "graphql-transport-ws"

PROJECT_EVENTS = """
subscription($projectId: ID!, $after: String) {
  projectEvents(projectId: $projectId, after: $after) {
    cursor sequence kind nodeId changes at projectId
    node { id __typename }
  }
}
"""

ITERATION_STATUS = """
subscription($shotId: ID!, $after: String) {
  iterationStatus(shotId: $shotId, after: $after) {
    cursor
    shot { id }
    iterations { iterationNumber status images { id status imageUrl } }
    image { id status imageUrl shot { id } }
  }
}
"""

ANIMATION_STATUS = """
subscription($projectId: ID!, $after: String) {
  animationStatus(projectId: $projectId, after: $after) {
    cursor
    selections { id animationStatus }
    selection { id animationStatus }
    progress { shotsWithSelections animationProgress }
  }
}
"""


# -- GraphQL over HTTP ---------------------------------------------------------------------


def _input_type(mutation: str) -> str:
    """The input type of a mutation: `createScene` takes CreateSceneInput, some share one."""
    for prefix, shared in (("reorder", "ReorderInput"), ("delete", "DeleteInput")):
        if mutation.startswith(prefix):
            return shared
    return mutation[0].upper() + mutation[1:] + "Input"


class Api:
    """GraphQL over HTTP against one server, as one signed-in user (once `sign_up` ran)."""

    def __init__(self, base_url: str, token: str = "") -> None:
        self.base_url = base_url
        self.token = token
        self.email = ""
        self.user_id = ""
        self.http = httpx.AsyncClient(base_url=base_url, timeout=60.0, trust_env=False)

    def as_user(self, token: str) -> Api:
        return Api(self.base_url, token)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The data of an operation that must succeed without top-level errors."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def mutate(self, name: str, input: dict[str, Any] | None, selection: str) -> Any:
        """The payload of `name(input:)` (or of `name` without input); no userErrors allowed."""
        if input is None:
            query = f"mutation {{ {name} {{ {selection} userErrors {{ code message }} }} }}"
        else:
            query = (
                f"mutation($input: {_input_type(name)}!) {{ {name}(input: $input) "
                f"{{ {selection} userErrors {{ code message }} }} }}"
            )
        payload = (await self.data(query, {"input": input} if input is not None else None))[name]
        assert payload["userErrors"] == [], payload["userErrors"]
        return payload

    async def sign_up(self, name: str = "Rae") -> Api:
        """A new account; this client is now signed in as it."""
        email = f"{name.lower()}-{secrets.token_hex(5)}@example.com"
        payload = await self.mutate(
            "signUp", {"email": email, "password": PASSWORD, "name": name}, "token user { id }"
        )
        self.token = payload["token"]
        self.email = email
        self.user_id = payload["user"]["id"]
        return self

    async def join(self, inviter: Api, team_id: str, role: str = "EDITOR") -> None:
        """Join `team_id` at `role`: `inviter` (a manager) invites, this user accepts."""
        invited = await inviter.mutate(
            "inviteTeamMember", {"teamId": team_id, "role": role}, "code"
        )
        await self.mutate("acceptInvitation", {"code": invited["code"]}, "team { id }")

    async def remove(self, member: Api, team_id: str) -> None:
        """Take `member` out of `team_id` (this user manages it)."""
        await self.mutate(
            "removeTeamMember", {"teamId": team_id, "userId": member.user_id}, "team { id }"
        )

    async def create_project(self, title: str = "Harbour", team_id: str | None = None) -> str:
        project_input: dict[str, Any] = {"title": title}
        if team_id is not None:
            project_input["teamId"] = team_id
        payload = await self.mutate("createProject", project_input, "project { id }")
        project_id: str = payload["project"]["id"]
        return project_id

    async def create_scene(
        self, project_id: str, title: str, shots: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """The new scene as `{id, shots: [{id}]}`."""
        payload = await self.mutate(
            "createScene",
            {"projectId": project_id, "title": title, "shots": shots},
            "scene { id shots { id } }",
        )
        scene: dict[str, Any] = payload["scene"]
        return scene

    async def rename_scene(self, scene_id: str, title: str) -> None:
        await self.mutate("updateScene", {"id": scene_id, "title": title}, "scene { id }")

    async def create_shot(self, scene_id: str, description: str) -> str:
        payload = await self.mutate(
            "createShot", {"sceneId": scene_id, "description": description}, "shot { id }"
        )
        shot_id: str = payload["shot"]["id"]
        return shot_id

    async def generate(self, shot_id: str, count: int = 6) -> list[str]:
        payload = await self.mutate(
            "generateShotImages",
            {"shotId": shot_id, "prompt": "a lighthouse in fog", "variantCount": count},
            "images { id status }",
        )
        return [image["id"] for image in payload["images"]]


# -- graphql-transport-ws --------------------------------------------------------------------


class SubscriptionEnded(AssertionError):
    """A feed ended (complete, error, or the socket closed) where a message was expected."""


class Feed:
    """One subscription on a socket: its `next` messages in order, or how it ended."""

    def __init__(self, socket: Socket, operation_id: str) -> None:
        self.socket = socket
        self.id = operation_id
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.received: collections.deque[dict[str, Any]] = collections.deque(maxlen=5)

    async def message(self, within: float = WAIT) -> dict[str, Any]:
        """The next protocol message of this subscription (next, error or complete)."""
        try:
            return await asyncio.wait_for(self._take(), within)
        except TimeoutError:
            raise AssertionError(
                f"no message on subscription {self.id} within {within:.0f} s; "
                f"last received: {json.dumps(list(self.received))}"
            ) from None

    async def _take(self) -> dict[str, Any]:
        while self.queue.empty():
            await self.socket.pump()
        return self.queue.get_nowait()

    async def next(self, within: float = WAIT) -> dict[str, Any]:
        """The data of the next `next` message, which must carry no errors."""
        message = await self.message(within)
        if message.get("type") != "next" or "errors" in message.get("payload", {}):
            raise SubscriptionEnded(f"expected data on subscription {self.id}, got {message}")
        data: dict[str, Any] = message["payload"]["data"]
        self.received.append(data)
        return data

    async def take(self, count: int, within: float = WAIT) -> list[dict[str, Any]]:
        return [await self.next(within) for _ in range(count)]

    async def until(
        self, done: Callable[[dict[str, Any]], bool], *, within: float = 60.0, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """Messages up to and including the first for which `done` is true."""
        got: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + within
        while len(got) < limit:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"condition not met within {within:.0f} s; last: {got[-3:]}"
            got.append(await self.next(min(left, WAIT)))
            if done(got[-1]):
                return got
        raise AssertionError(f"condition not met within {limit} messages; last: {got[-3:]}")

    async def error_codes(self, within: float = WAIT) -> list[str]:
        """How the feed ended with errors: their codes (an `error`, or `next` + `complete`)."""
        message = await self.message(within)
        if message.get("type") == "error":
            errors = message["payload"]
        else:
            assert message.get("type") == "next", message
            errors = message["payload"].get("errors")
            assert errors, f"expected errors on subscription {self.id}, got {message}"
            ending = await self.message(within)
            assert ending == {"id": self.id, "type": "complete"}, ending
        return [error.get("extensions", {}).get("code") for error in errors]

    async def completed(self, within: float = WAIT) -> None:
        """The server ended this subscription without an error."""
        message = await self.message(within)
        assert message == {"id": self.id, "type": "complete"}, message


async def close_code(connection: ClientConnection, within: float = WAIT) -> int | None:
    """Wait for the server to close `connection`, reading past any message; its close code.

    None if it closed without one; `TimeoutError` if it is still open after `within` s.
    """
    try:
        async with asyncio.timeout(within):
            while True:
                await connection.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    raise AssertionError("unreachable")  # pragma: no cover


class Socket:
    """A graphql-transport-ws connection; messages are routed to their subscription's feed."""

    _ids = itertools.count(1)

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.feeds: dict[str, Feed] = {}
        self._reading = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        server: StudioServer,
        *,
        origin: str | None = None,
        sock: sockets.socket | None = None,
        max_queue: int | None = 16,
    ) -> Socket:
        """The WebSocket, opened but not signed in (no connection_init yet)."""
        url = server.base_url.replace("http://", "ws://") + "/graphql"
        extra: dict[str, Any] = {"sock": sock} if sock is not None else {}
        connection = await asyncio.wait_for(
            connect(
                url,
                subprotocols=[PROTOCOL],  # type: ignore[list-item]
                origin=origin,  # type: ignore[arg-type]
                max_queue=max_queue,
                open_timeout=WAIT,
                ping_interval=None,
                max_size=None,
                **extra,
            ),
            WAIT,
        )
        assert connection.subprotocol == PROTOCOL
        return cls(connection)

    @classmethod
    async def open(cls, server: StudioServer, token: str, **options: Any) -> Socket:
        """A signed-in connection: connection_init with the token, acknowledged."""
        socket = await cls.connect(server, **options)
        await socket.init({"authorization": f"Bearer {token}"})
        ack = await socket.receive()
        assert ack.get("type") == "connection_ack", ack
        return socket

    async def init(self, payload: dict[str, Any] | None) -> None:
        message: dict[str, Any] = {"type": "connection_init"}
        if payload is not None:
            message["payload"] = payload
        await self.send(message)

    async def send(self, message: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(message))

    async def receive(self, within: float = WAIT) -> dict[str, Any]:
        """The next message that is not a ping or pong (answering pings)."""
        while True:
            raw = await asyncio.wait_for(self.connection.recv(), within)
            message: dict[str, Any] = json.loads(raw)
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            if message.get("type") == "pong":
                continue
            return message

    async def pump(self) -> None:
        """Read one message and hand it to its feed (one reader at a time)."""
        async with self._reading:
            try:
                message = await self.receive(within=3600)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                raise SubscriptionEnded(f"the socket closed (code {code})") from closed
            feed = self.feeds.get(str(message.get("id")))
            assert feed is not None, f"a message for no subscription: {message}"
            feed.queue.put_nowait(message)

    async def subscribe(self, query: str, variables: dict[str, Any]) -> Feed:
        operation_id = str(next(self._ids))
        feed = Feed(self, operation_id)
        self.feeds[operation_id] = feed
        await self.send(
            {
                "id": operation_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables},
            }
        )
        return feed

    async def close_code(self, within: float = WAIT) -> int | None:
        """Wait for the server to close the connection; its close code."""
        return await close_code(self.connection, within)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.connection.close(), 5)

    async def __aenter__(self) -> Socket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
