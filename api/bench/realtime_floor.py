"""Realtime fan-out against its floor: `studio serve` beside a server that only writes frames.

The floor server is a minimal Starlette app on the same uvicorn (and the same
WebSocket settings, permessage-deflate offered as ours offers it), in its own
process, speaking just enough graphql-transport-ws to accept subscribers: it
acknowledges `connection_init`, answers each `subscribe` with one `next`, and
on a POST to `/trigger` encodes one `next` payload and writes it to every
socket (only the subscription's id differs from frame to frame). Nothing can
deliver an event to the same subscribers faster on this uvicorn: that is the
floor.

Ours is a real `studio serve` on SQLite whose event comes from a signed
webhook, as in `api.bench.realtime` (whose processes, seeding and receivers are
used here). Both servers get the same number of subscribers from the same
arrangement of receiver processes, one server at a time, alternating (floor,
ours, floor, ours), so the noisy machine weighs on both alike.

Figures: webhook-to-last-frame p50 and p99 for both and their ratios (goal: p50
<= 1.5x, p99 <= 2x the floor), our server's CPU per event per subscriber (utime
+ stime from /proc/<pid>/stat over N events, divided by N x subscribers; goal
<= 30 us), and our server's RSS holding 10,000 idle subscriptions (100 sockets
x 100; goal < 1 GiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from api.bench import realtime
from api.bench.processes import STARTED, stop
from api.ports import free_port

SUBSCRIBERS = 1000
SAMPLES = 40  # events timed per series
ROUNDS = 2  # floor, ours, floor, ours
IDLE_SOCKETS = 100
IDLE_PER_SOCKET = 100  # 10,000 idle subscriptions in all
IDLE_OPENING = 1200.0  # seconds the 10,000 may take to open
NODE_SAMPLES = 20
# Each event also reads the image it names (3 reads per subscriber when unshared).
WITH_NODE = (
    "subscription($p: ID!) { projectEvents(projectId: $p) { sequence kind "
    "node { ... on ShotImage { status imageUrl } } } }"
)

# --- the floor server (its own process) -----------------------------------------------


def _floor_app() -> Any:
    """The floor: accept graphql-transport-ws subscribers; `/trigger` writes one frame to each.

    A frame is written as `api.fanout` writes a shared one: with the protocol's
    `write_now` (no coroutine; the frame's bytes made once per event for every
    subscription of the same id), or, when that must wait, with `send`.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    from api.fanout import TRANSPORT_WRITE, TransportSend
    from api.ws_protocol import TextMessage

    # Each subscriber: its socket, its JSON id, its protocol's write_now.
    subscribers: list[tuple[WebSocket, str, Any]] = []
    state = {"sequence": 0}

    def payload(sequence: int, kind: str) -> str:
        data = {"data": {"projectEvents": {"sequence": sequence, "kind": kind}}}
        return json.dumps(data, separators=(",", ":"))

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="graphql-transport-ws")
        write_now = websocket.scope.get(TRANSPORT_WRITE)
        mine: list[tuple[WebSocket, str, Any]] = []
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                kind = message.get("type")
                if kind == "connection_init":
                    await websocket.send_text('{"type":"connection_ack"}')
                elif kind == "ping":
                    await websocket.send_text('{"type":"pong"}')
                elif kind == "subscribe":
                    ident = json.dumps(message["id"])
                    first = payload(state["sequence"], "SNAPSHOT")
                    await websocket.send_text(f'{{"id":{ident},"type":"next","payload":{first}}}')
                    mine.append((websocket, ident, write_now))
                    subscribers.append(mine[-1])
        except WebSocketDisconnect:
            pass
        finally:
            for entry in mine:
                subscribers.remove(entry)

    async def trigger(request: Request) -> PlainTextResponse:
        state["sequence"] += 1
        body = payload(state["sequence"], "SHOT_IMAGE_UPDATED")  # encoded once
        frames: dict[str, TextMessage] = {}  # and framed once per id
        for websocket, ident, write_now in list(subscribers):
            frame = frames.get(ident)
            if frame is None:
                frame = frames[ident] = TextMessage(
                    f'{{"id":{ident},"type":"next","payload":{body}}}'
                )
            if write_now is not None and write_now(frame):
                continue
            with contextlib.suppress(Exception):
                await websocket.send_text(frame.text)
        return PlainTextResponse("sent")

    async def ready(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            WebSocketRoute("/graphql", socket),
            Route("/trigger", trigger, methods=["POST"]),
            Route("/readyz", ready),
        ],
        middleware=[Middleware(TransportSend)],
    )


def floor_main() -> None:
    """The floor server process: port in argv[1]; uvicorn as `studio serve` configures it."""
    import uvicorn

    from api.ws_protocol import StudioWebSocketProtocol

    uvicorn.run(
        _floor_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        limit_concurrency=realtime.FILE_LIMIT - 200,
        ws=StudioWebSocketProtocol,  # as `studio serve` (api/ws_protocol.py)
        ws_per_message_deflate=True,  # as WEBSOCKET_COMPRESSION's default
    )


@contextlib.contextmanager
def _floor(directory: Path) -> Iterator[realtime._Server]:
    port = free_port()
    log_path = directory / f"floor-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [
                sys.executable,
                "-c",
                "from api.bench.realtime_floor import floor_main; floor_main()",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTED
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/readyz", timeout=2, trust_env=False).is_success:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the floor server did not get ready")
            time.sleep(0.05)
        yield realtime._Server(base_url, process.pid, token="-", project_id="-")  # noqa: S106
    finally:
        stop(process)


# --- measuring ------------------------------------------------------------------------


async def _series(
    receivers: realtime._Receivers, fire: Any, samples: int
) -> tuple[list[float], int]:
    """Webhook-to-last-frame in ms for `samples` events after the warm-up; events fired."""
    lasts: list[float] = []
    for n in range(realtime.WARM_UP + samples):
        start = time.monotonic()
        await fire()
        _, last = await receivers.next_event()
        if n >= realtime.WARM_UP:
            lasts.append((last - start) * 1000)
    return lasts, realtime.WARM_UP + samples


async def _floor_round(directory: Path) -> tuple[list[float], float]:
    """The floor's latencies, and its CPU seconds per event per subscriber."""
    with _floor(directory) as floor:
        async with (
            httpx.AsyncClient(base_url=floor.base_url, timeout=60, trust_env=False) as client,
            realtime._receivers(floor, directory, connections=SUBSCRIBERS) as receivers,
        ):

            async def fire() -> None:
                (await client.post("/trigger")).raise_for_status()

            busy = realtime._cpu_seconds(floor.pid)
            lasts, events = await _series(receivers, fire, SAMPLES)
            busy = realtime._cpu_seconds(floor.pid) - busy
            return lasts, busy / (events * SUBSCRIBERS)


async def _our_round(
    client: httpx.AsyncClient,
    server: realtime._Server,
    directory: Path,
    *,
    query: str = realtime.SUBSCRIBE,
    samples: int,
) -> tuple[list[float], float]:
    """Our latencies, and our CPU seconds per event per subscriber."""
    async with realtime._receivers(
        server, directory, connections=SUBSCRIBERS, query=query
    ) as receivers:

        async def fire() -> None:
            await realtime._deliver(client, server.pending.pop())

        busy = realtime._cpu_seconds(server.pid)
        lasts, events = await _series(receivers, fire, samples)
        busy = realtime._cpu_seconds(server.pid) - busy
    return lasts, busy / (events * SUBSCRIBERS)


async def _idle_rss(server: realtime._Server, directory: Path) -> tuple[float, float]:
    """Our RSS in MB with no subscriptions, then with 10,000 idle ones."""
    before = await realtime._idle_rss(server)
    async with realtime._receivers(
        server,
        directory,
        connections=IDLE_SOCKETS,
        per_connection=IDLE_PER_SOCKET,
        ready_within=IDLE_OPENING,
    ):
        after = await realtime._idle_rss(server)
    return before, after


_RECORD = re.compile(r"\d{4}-\d\d-\d\d ")


def _logged_errors(directory: Path, server: realtime._Server) -> str:
    """What our server logged as errors (each record's first line and its exception's
    last), as lines to print under a figure it failed: the log goes with the run's
    temporary folder."""
    port = server.base_url.rsplit(":", 1)[1]
    try:
        lines = (directory / f"serve-{port}.log").read_text(errors="replace").splitlines()
    except OSError:
        return ""
    found: list[str] = []
    for n, text in enumerate(lines):
        if " ERROR " not in text:
            continue
        found.append(text)
        following = lines[n + 1 :]
        # The record's traceback runs up to the next record (which starts with its date).
        end = next((i for i, t in enumerate(following) if _RECORD.match(t)), len(following))
        tail = [t for t in following[:end] if t and not t.startswith((" ", "Traceback"))]
        if tail:
            found.append(tail[-1])
    return "".join(f"\n    server log: {text}" for text in found[-6:])


def _p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return statistics.median(ordered) if share == 0.5 else realtime._percentile(ordered, share)


line = realtime._line
_FAILURES = (RuntimeError, TimeoutError, OSError, httpx.HTTPError)


async def _measure(directory: Path) -> list[str]:
    floor: list[float] = []
    ours: list[float] = []
    cpu: list[float] = []
    floor_cpu: list[float] = []
    needed = ROUNDS * (realtime.WARM_UP + SAMPLES) + realtime.WARM_UP + NODE_SAMPLES + 2
    with (
        realtime._emulator(directory) as emulator_url,
        realtime._server(directory, "ours", emulator_url, "memory://") as server,
    ):
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=60, trust_env=False
        ) as client:
            await realtime._seed(client, server, -(-needed // 12), 12)
            for _ in range(ROUNDS):
                lasts, per = await _floor_round(directory)
                floor += lasts
                floor_cpu.append(per)
                lasts, per = await _our_round(client, server, directory, samples=SAMPLES)
                ours += lasts
                cpu.append(per)
            try:
                node, node_cpu = await _our_round(
                    client, server, directory, query=WITH_NODE, samples=NODE_SAMPLES
                )
                with_node = line(
                    f"studio serve, {SUBSCRIBERS:,} subscribers reading the node",
                    f"p50 {_p(node, 0.5):7.2f} ms   p99 {_p(node, 0.99):7.2f} ms",
                    f"n={len(node)}; node {{ ... on ShotImage {{ status imageUrl }} }}; "
                    f"CPU {node_cpu * 1e6:.1f} us per event per subscriber",
                )
            except _FAILURES as error:
                with_node = f"  {'reading the node':<46} not measured ({error})"
            try:
                before, after = await _idle_rss(server, directory)
                idle = line(
                    f"RSS with {IDLE_SOCKETS * IDLE_PER_SOCKET:,} idle subscriptions, ours",
                    f"{after:7.1f} MB",
                    f"{IDLE_SOCKETS} sockets x {IDLE_PER_SOCKET}; {before:.0f} MB with none; "
                    "goal < 1024",
                )
            except _FAILURES as error:
                idle = f"  {'RSS with idle subscriptions, ours':<46} not measured ({error})"
                idle += _logged_errors(directory, server)
    n = len(ours)
    f50, f99, o50, o99 = _p(floor, 0.5), _p(floor, 0.99), _p(ours, 0.5), _p(ours, 0.99)
    per_us = statistics.median(cpu) * 1e6
    return [
        line(
            f"floor server, {SUBSCRIBERS:,} subscribers",
            f"p50 {f50:7.2f} ms   p99 {f99:7.2f} ms",
            f"n={len(floor)}; one frame encoded per event, written to every socket",
        ),
        line(
            f"studio serve, {SUBSCRIBERS:,} subscribers",
            f"p50 {o50:7.2f} ms   p99 {o99:7.2f} ms",
            f"n={n}; from just before the webhook's POST to the last subscriber's frame",
        ),
        line("ours / floor", f"p50 {o50 / f50:7.2f} x    p99 {o99 / f99:7.2f} x", "goal 1.5x, 2x"),
        line(
            "CPU per event per subscriber, ours",
            f"{per_us:7.1f} us",
            f"utime+stime over {ROUNDS} x {realtime.WARM_UP + SAMPLES} events; goal <= 30 us; "
            f"the floor's {statistics.median(floor_cpu) * 1e6:.1f} us",
        ),
        with_node,
        idle,
    ]


async def main_figures() -> list[str]:
    """The realtime-against-floor figures as lines to print; a line saying
    "not measured" (and why) when the run could not complete."""
    realtime._raise_file_limit()
    with tempfile.TemporaryDirectory(prefix="studio-floor-") as name:
        try:
            return await _measure(Path(name))
        except _FAILURES as error:
            return [f"  {'realtime against the floor':<46} not measured ({error})"]


if __name__ == "__main__":
    sys.stdout.write("\n".join(asyncio.run(main_figures())) + "\n")
