"""Slow and numerous clients: a body that trickles in gets 408, connections past
the cap get 503, and the nginx configuration we ship (deploy/nginx.conf) cuts
off a client that sends its headers a byte at a time while GraphQL over HTTP
and WebSocket pass through it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from tests.conftest import IN_CI
from tests.realtime_harness import PROJECT_EVENTS, Api, Socket
from tests.servers import HOST, StudioServer, free_port, studio_env

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
NGINX_CONF = REPO / "deploy" / "nginx.conf"
SECRET_KEY = "slow client tests secret key, long enough to be accepted"


def studio(tmp: Path, name: str, **settings: str) -> StudioServer:
    env = studio_env(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / f'{name}.db'}", SECRET_KEY=SECRET_KEY, **settings
    )
    return StudioServer(env=env, cwd=tmp, name=name)


@contextlib.contextmanager
def running(server: StudioServer) -> Iterator[StudioServer]:
    with server:
        yield server


def connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=10)


def read_until_closed(sock: socket.socket, within: float) -> bytes:
    """Everything the server sends until it closes the connection; fails after `within` s."""
    sock.settimeout(within)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def is_open(sock: socket.socket) -> bool:
    """Whether the peer has neither closed the connection nor sent anything."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


# -- our own ASGI layer and uvicorn's cap ------------------------------------------------------


def test_a_body_that_does_not_arrive_in_time_gets_408_and_a_closed_connection(
    tmp_path: Path,
) -> None:
    with running(studio(tmp_path, "body", BODY_READ_TIMEOUT_SECONDS="1.5")) as server:
        body = b'{"query": "{ __typename }"}'
        # In time, even in pieces: answered as usual.
        with connect(server.port) as sock:
            sock.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Connection: close\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            for piece in (body[:10], body[10:]):
                time.sleep(0.3)
                sock.sendall(piece)
            assert read_until_closed(sock, 10).startswith(b"HTTP/1.1 200")

        # Ten bytes of a declared thousand, then nothing.
        with connect(server.port) as sock:
            sock.sendall(
                b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + body[:10]
            )
            started = time.monotonic()
            answer = read_until_closed(sock, 10)  # the server closes it: no hang
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b"connection: close" in answer.lower()
        assert json_error(answer)["extensions"]["code"] == "REQUEST_TIMEOUT"
        assert 1.0 < waited < 6.0, waited
        # The server is fine afterwards.
        assert httpx.get(f"{server.base_url}/healthz", trust_env=False).status_code == 200


def json_error(answer: bytes) -> dict[str, Any]:
    """The one error of a raw HTTP answer's JSON body (GraphQL's error shape)."""
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    (error,) = json.loads(body)["errors"]
    assert isinstance(error, dict)
    return error


def test_every_refusal_at_the_edge_has_the_json_error_shape(tmp_path: Path) -> None:
    """A body over the cap (declared or streamed) and a method GraphQL does not take
    are refused with a JSON body whose error carries `extensions.code`, as every other
    refusal; they had a message only (413), or plain text (405 from the router)."""
    with running(studio(tmp_path, "edge", MAX_REQUEST_BYTES="1000")) as server:
        url = f"{server.base_url}/graphql"
        body = json.dumps({"query": "{ __typename }", "variables": {"p": "x" * 2000}}).encode()
        with httpx.Client(trust_env=False, timeout=10) as client:
            declared = client.post(url, content=body, headers={"Content-Type": "application/json"})
            streamed = client.post(
                url,
                content=iter([body[:600], body[600:]]),
                headers={"Content-Type": "application/json"},
            )
            for refused in (declared, streamed):
                assert refused.status_code == 413, refused.text
                assert refused.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
            for method in ("PUT", "DELETE", "PATCH", "HEAD"):
                refused = client.request(method, url, content=b"{}")
                assert refused.status_code == 405, (method, refused.text)
                assert refused.headers["allow"] == "GET, POST", method
                if method != "HEAD":
                    assert refused.headers["content-type"] == "application/json", method
                    error = refused.json()["errors"][0]
                    assert error["extensions"]["code"] == "BAD_REQUEST", method


def closed_while_trickling(sock: socket.socket, *, within: float) -> tuple[bool, bytes]:
    """Send a byte every 0.25 s; whether the server closed the connection within `within` s.

    Also returns what it answered meanwhile.
    """
    received = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"x")
        except OSError:  # reset: closed
            return True, received
        readable, _, _ = select.select([sock], [], [], 0.25)
        if readable:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return True, received
            if not chunk:
                return True, received
            received += chunk
    return False, received


UNREAD_BODIES = {
    # Routes that never read the body, answers given before it is read, and both framings.
    "health probe": b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab",
    "readiness probe": b"GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab",
    "editor page": b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab",
    "media 404": b"GET /media/x?expires=1&signature=x HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 100000\r\n\r\nab",
    "media 405": b"POST /media/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab",
    "413 on a declared length": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 100000000\r\n\r\nab",
    "413 on graphql": b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000000\r\n\r\nab",
    "chunked body to a probe": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n10000\r\nab",
    "429 before the body": b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\nab",
}


def test_an_answer_given_before_the_body_is_read_closes_the_connection(tmp_path: Path) -> None:
    """The 408 deadline only times bodies the app reads; any other answer must not wait."""
    settings = {"BODY_READ_TIMEOUT_SECONDS": "30", "RATE_LIMIT_GRAPHQL": "1/minute"}
    with running(studio(tmp_path, "unread", **settings)) as server:
        with httpx.Client(base_url=server.base_url, trust_env=False) as http:
            http.post("/graphql", json={"query": "{ __typename }"})  # the minute's one request
        for case, request in UNREAD_BODIES.items():
            with connect(server.port) as sock:
                sock.sendall(request)
                closed, answer = closed_while_trickling(sock, within=5.0)
            assert closed, (case, answer)
            head = answer.split(b"\r\n\r\n")[0].lower()
            assert head.startswith(b"http/1.1 "), (case, answer)
            assert b"connection: close" in head, (case, answer)
            assert not head.startswith(b"http/1.1 5"), (case, answer)
        # A body read whole keeps its connection; so does a request without one.
        with connect(server.port) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.5)
            assert b"connection: close" not in sock.recv(65536).lower()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            time.sleep(0.5)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            assert is_open(sock)


def test_connections_past_the_cap_get_503(tmp_path: Path) -> None:
    with running(studio(tmp_path, "cap", MAX_CONNECTIONS="4")) as server:
        idle = [connect(server.port) for _ in range(4)]
        try:
            time.sleep(0.3)  # let the server accept them all
            with httpx.Client(base_url=server.base_url, trust_env=False) as http:
                refused = http.get("/healthz")
            assert refused.status_code == 503, refused.text
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.3)
        with httpx.Client(base_url=server.base_url, trust_env=False) as http:
            assert http.get("/healthz").status_code == 200


async def test_websockets_past_the_cap_are_refused_with_503(tmp_path: Path) -> None:
    """uvicorn's cap lets WebSocket upgrades through; ours counts them."""
    with running(studio(tmp_path, "wscap", MAX_CONNECTIONS="3")) as server:
        sockets = [await Socket.connect(server) for _ in range(3)]
        try:
            with pytest.raises(InvalidStatus) as refused:
                await Socket.connect(server)
            assert refused.value.response.status_code == 503
        finally:
            for ws in sockets[1:]:
                await ws.close()
        # Room again (once the server has seen the closes): a new one is accepted.
        deadline = time.monotonic() + 10
        while True:
            try:
                again = await Socket.connect(server)
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "no room after closing two sockets"
                await asyncio.sleep(0.1)
        await again.close()
        await sockets[0].close()


async def _closed_with(connection: ClientConnection, within: float) -> int | None:
    """The close code the server sends within `within` s (None if it keeps the socket open)."""
    try:
        while True:
            await asyncio.wait_for(connection.recv(), within)
    except TimeoutError:
        return None
    except ConnectionClosed:
        return connection.close_code


async def test_websockets_that_do_not_sign_in_are_closed_soon_and_capped_per_address(
    tmp_path: Path,
) -> None:
    """An idle socket used to stay a minute (graphql-ws: forever), as many as the rate allowed."""
    settings = {"WEBSOCKET_INIT_TIMEOUT_SECONDS": "1.5", "MAX_UNSIGNED_WEBSOCKETS_PER_ADDRESS": "3"}
    with running(studio(tmp_path, "idlews", **settings)) as server:
        async with Api(server.base_url) as anonymous:
            api = await anonymous.sign_up()
        url = server.base_url.replace("http://", "ws://") + "/graphql"
        signed = await Socket.open(server, api.token)  # signed in: no longer counted
        legacy = await ws_connect(url, subprotocols=[Subprotocol("graphql-ws")], ping_interval=None)
        idle = [await Socket.connect(server) for _ in range(2)]
        with pytest.raises(InvalidStatus) as refused:
            await Socket.connect(server)
        assert refused.value.response.status_code == 429
        # Both subprotocols close a socket that never signed in, with 4408.
        codes = await asyncio.gather(
            _closed_with(legacy, 10), *(_closed_with(ws.connection, 10) for ws in idle)
        )
        assert codes == [4408, 4408, 4408]
        # Their places are free again; the signed-in socket was left alone.
        again = await Socket.connect(server)
        await again.close()
        # A graphql-ws socket stops counting once acknowledged, too.
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {api.token}"}}
        acknowledged = []
        for _ in range(3):
            ws = await ws_connect(url, subprotocols=[Subprotocol("graphql-ws")], ping_interval=None)
            await ws.send(json.dumps(init))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            acknowledged.append(ws)
        waiting = [await Socket.connect(server) for _ in range(3)]
        for ws in acknowledged:
            await ws.close()
        for waiting_socket in waiting:
            await waiting_socket.close()
        await signed.send({"type": "ping"})
        pong = await asyncio.wait_for(signed.connection.recv(), 5)
        assert json.loads(pong) == {"type": "pong"}
        await signed.close()


# -- nginx in front ----------------------------------------------------------------------------


@dataclass
class Proxy:
    """Where nginx listens; enough of a StudioServer for the realtime clients."""

    port: int

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        message = "nginx is not installed (./dev test installs it as root with apt-get)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def render(conf: str, *, upstream: int, listen: int, workdir: Path) -> str:
    """The shipped configuration with this test's ports and scratch paths, nothing else."""
    replacements = {
        "server 127.0.0.1:8000;": f"server {HOST}:{upstream};",
        "listen 80;": f"listen {HOST}:{listen};",
        "http {\n": "http {\n"
        + "".join(
            f"    {kind}_temp_path {workdir / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"    access_log {workdir / 'access.log'};\n",
    }
    for old, new in replacements.items():
        assert conf.count(old) == 1, f"deploy/nginx.conf no longer has {old!r}"
        conf = conf.replace(old, new)
    return conf


@contextlib.contextmanager
def nginx_in_front(upstream: StudioServer, workdir: Path) -> Iterator[Proxy]:
    binary = nginx_binary()
    workdir.mkdir()
    proxy = Proxy(free_port())
    config = workdir / "nginx.conf"
    config.write_text(
        render(NGINX_CONF.read_text(), upstream=upstream.port, listen=proxy.port, workdir=workdir)
    )
    globals_ = f"daemon off; pid {workdir / 'nginx.pid'}; error_log {workdir / 'error.log'};"
    if os.geteuid() == 0:
        globals_ += " user root;"  # workers must reach this test's scratch directories
    log = (workdir / "stderr.log").open("wb")
    process = subprocess.Popen(
        [binary, "-p", str(workdir), "-c", str(config), "-g", globals_],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=proxy.base_url, trust_env=False, timeout=2) as http:
            while True:
                assert process.poll() is None, (workdir / "stderr.log").read_text()
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/healthz").status_code == 200:
                        break
                assert time.monotonic() < deadline, "nginx did not come up"
                time.sleep(0.1)
        yield proxy
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def header_timeout() -> float:
    found = re.search(r"^\s*client_header_timeout\s+(\d+)s;", NGINX_CONF.read_text(), re.M)
    assert found, "deploy/nginx.conf sets no client_header_timeout"
    return float(found[1])


async def test_nginx_cuts_off_slow_headers_and_passes_graphql_and_websockets(
    tmp_path: Path,
) -> None:
    limit = header_timeout()
    with (
        running(studio(tmp_path, "upstream")) as server,
        nginx_in_front(server, tmp_path / "nginx") as proxy,
    ):
        # Two clients sending their headers a byte a second: one through nginx, one
        # straight to uvicorn (which has no header timeout of its own).
        through, direct = connect(proxy.port), connect(server.port)
        started = time.monotonic()
        cut_off_after: float | None = None
        try:
            for sock in (through, direct):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            while cut_off_after is None and time.monotonic() - started < limit + 10:
                for sock in (through, direct):
                    with contextlib.suppress(OSError):
                        sock.sendall(b"X")
                if not is_open(through):
                    cut_off_after = time.monotonic() - started
                await asyncio.sleep(1)
            assert cut_off_after is not None, "nginx never closed the slow client"
            assert limit - 1 <= cut_off_after <= limit + 5, cut_off_after
            rest = read_until_closed(through, 5)  # closed, with at most a 408
            assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest
            assert is_open(direct), "uvicorn closed the slow client itself"
        finally:
            through.close()
            direct.close()

        # Normal traffic passes: GraphQL over HTTP, and a subscription over WebSocket.
        async with Api(proxy.base_url) as anonymous:
            api = await anonymous.sign_up()
            project_id = await api.create_project("Through nginx")
            assert (await api.data("{ viewer { id } }"))["viewer"]["id"] == api.user_id
            async with await Socket.open(cast(StudioServer, proxy), api.token) as ws:
                feed = await ws.subscribe(PROJECT_EVENTS, {"projectId": project_id})
                first = (await feed.next())["projectEvents"]
                assert first["kind"] == "SNAPSHOT"
                await api.create_scene(project_id, "Quay", [])
                live = (await feed.next())["projectEvents"]
                assert live["kind"] == "SCENE_CREATED"
