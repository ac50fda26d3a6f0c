"""Realtime figures for `studio bench`: subscription latency and memory over WebSocket.

Three kinds of process, so that no side's work is counted in another's:

- the server, a real `studio serve` on SQLite, with the event bus under test;
- a Replicate emulator (`studio emulator`) whose predictions take an hour, so every
  image gets a prediction ID and then stays PENDING until a webhook moves it;
- receivers, each holding some of the subscribers (one WebSocket per
  subscription unless multiplexed) and noting when each frame arrives.

A sample posts one signed "processing" webhook for one PENDING image: one
SHOT_IMAGE_UPDATED event, which every subscriber of the project receives. Its
latency runs from just before the POST to the frame's arrival at the last (and at
the first) subscriber, on the machine-wide monotonic clock every process shares.
Memory is the server's RSS (VmRSS) with idle subscriptions open, less its RSS
with none after a warm-up; CPU is the server's own user and system time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from api.bench.processes import (
    EMULATOR_READY,
    EMULATOR_TOKEN,
    STARTED,
    post_webhook,
    studio_process,
)
from api.environment import studio_env

REDIS_URL = "redis://127.0.0.1:6379/0"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"realtime bench webhook signing!!").decode()
PROTOCOL = Subprotocol("graphql-transport-ws")
SUBSCRIBE = "subscription($p: ID!) { projectEvents(projectId: $p) { sequence kind } }"
SAMPLES = {1: 50, 100: 50, 1000: 20}
WARM_UP = 2  # deliveries before each series that are not counted
RECEIVERS = 2  # processes sharing 1,000 subscribers; one is enough below that
OPEN_AT_ONCE = 50  # connections a receiver opens (and subscribes on) concurrently
SETTLE = 1.0  # seconds the server is left alone before its RSS is read
FILE_LIMIT = 4096
PER_EVENT = 30.0  # seconds a frame may take before the run is given up
HOUR_MS = "3600000"


# --- processes ------------------------------------------------------------------------


def _raise_file_limit() -> None:
    """Enough descriptors for 1,000 sockets here, in the server and in the receivers."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FILE_LIMIT if hard == resource.RLIM_INFINITY else min(FILE_LIMIT, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@contextlib.contextmanager
def _emulator(directory: Path) -> Iterator[str]:
    env = studio_env(
        EMULATOR_LATENCY_MS=HOUR_MS,
        REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        REPLICATE_API_TOKEN=EMULATOR_TOKEN,
    )
    with studio_process("emulator", env, directory, EMULATOR_READY) as (url, _):
        yield url


@contextlib.contextmanager
def _server(directory: Path, name: str, emulator_url: str, bus_url: str) -> Iterator[_Server]:
    """`studio serve` on its own SQLite file; only webhooks move its generations.

    PUBLIC_URL stays unset so that the emulator posts no webhooks of its own, and
    the poller waits an hour, so every event of a sample comes from its webhook.
    """
    env = studio_env(
        DATABASE_URL=f"sqlite+aiosqlite:///{directory / name}.db",
        SECRET_KEY=secrets.token_urlsafe(48),
        REPLICATE_BASE_URL=emulator_url,
        REPLICATE_API_TOKEN=EMULATOR_TOKEN,
        REPLICATE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        GENERATION_POLL_SECONDS="3600",
        EVENT_BUS_URL=bus_url,
        STUDIO_DATA_DIR=str(directory / name),
        LOG_LEVEL="WARNING",
        # 1,000 WebSockets plus the bench's own HTTP connection: past MAX_CONNECTIONS
        # (default 1000) uvicorn answers the webhook POST with 503.
        MAX_CONNECTIONS=str(FILE_LIMIT - 200),
    )
    with studio_process("serve", env, directory, "/readyz") as (url, pid):
        yield _Server(url, pid)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# --- the server, through its API ------------------------------------------------------


@dataclass
class _Server:
    base_url: str
    pid: int
    token: str = ""
    project_id: str = ""
    pending: list[str] = field(default_factory=list)  # prediction IDs of PENDING images

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/graphql"


async def _graphql(
    client: httpx.AsyncClient, token: str | None, query: str, variables: dict[str, Any]
) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    response.raise_for_status()
    answer = response.json()
    if answer.get("errors"):
        raise RuntimeError(answer["errors"][0]["message"])
    return answer["data"]


async def _seed(client: httpx.AsyncClient, server: _Server, shots: int, variants: int) -> None:
    """A project whose shots have `shots` x `variants` PENDING images with prediction IDs."""
    signed = await _graphql(
        client,
        None,
        "mutation($i: SignUpInput!) { signUp(input: $i) { token } }",
        {
            "i": {
                "email": f"realtime-{secrets.token_hex(4)}@example.com",
                "password": "bench password",
                "name": "Bench",
            }
        },
    )
    server.token = signed["signUp"]["token"]
    made = await _graphql(
        client,
        server.token,
        'mutation { createProject(input: {title: "Realtime"}) { project { id } } }',
        {},
    )
    server.project_id = made["createProject"]["project"]["id"]
    scene = await _graphql(
        client,
        server.token,
        "mutation($i: CreateSceneInput!) { createScene(input: $i) { scene { shots { id } } } }",
        {
            "i": {
                "projectId": server.project_id,
                "title": "S",
                "shots": [{"initialPrompt": "a"}] * shots,
            }
        },
    )
    for shot in scene["createScene"]["scene"]["shots"]:
        # One iteration at a time: the dispatcher claims a batch per round, and the
        # next round is an hour away.
        started = await _graphql(
            client,
            server.token,
            "mutation($s: ID!, $n: Int!) { generateShotImages(input: {shotId: $s, "
            "variantCount: $n}) { userErrors { message } } }",
            {"s": shot["id"], "n": variants},
        )
        errors = started["generateShotImages"]["userErrors"]
        if errors:
            raise RuntimeError(errors[0]["message"])
        server.pending.extend(await _submitted(client, server.token, shot["id"], variants))


async def _submitted(client: httpx.AsyncClient, token: str, shot_id: str, count: int) -> list[str]:
    deadline = time.monotonic() + STARTED
    while True:
        found = await _graphql(
            client,
            token,
            "query($s: ID!) { node(id: $s) { ... on Shot { images { predictionId status } } } }",
            {"s": shot_id},
        )
        images = found["node"]["images"]
        ids = [i["predictionId"] for i in images if i["predictionId"] and i["status"] == "PENDING"]
        if len(ids) == count:
            return ids
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(ids)} of {count} images were submitted in time")
        await asyncio.sleep(0.05)


async def _deliver(client: httpx.AsyncClient, prediction_id: str) -> None:
    """A signed "processing" webhook for the prediction, as Replicate posts it."""
    body = json.dumps({"id": prediction_id, "status": "processing", "output": None}).encode()
    await post_webhook(
        client, WEBHOOK_SECRET, f"msg_{secrets.token_hex(8)}", int(time.time()), body
    )


# --- receivers (each its own process) -------------------------------------------------


@dataclass
class _Tally:
    """Arrivals per event; one line out once every subscriber of this process has it."""

    subscribers: int
    out: IO[str]
    arrivals: dict[int, list[float]] = field(default_factory=dict)

    def arrive(self, sequence: int, at: float) -> None:
        entry = self.arrivals.setdefault(sequence, [0, at, at])
        entry[0] += 1
        entry[1], entry[2] = min(entry[1], at), max(entry[2], at)
        if entry[0] == self.subscribers:
            del self.arrivals[sequence]
            self.out.write(json.dumps({"sequence": sequence, "first": entry[1], "last": entry[2]}))
            self.out.write("\n")
            self.out.flush()


async def _open(config: dict[str, Any], gate: asyncio.Semaphore) -> tuple[ClientConnection, int]:
    """One signed-in connection with its subscriptions started; the SNAPSHOT's sequence."""
    async with gate:
        websocket = await connect(
            config["url"], subprotocols=[PROTOCOL], ping_interval=None, open_timeout=60
        )
        init = {"authorization": f"Bearer {config['token']}"}
        await websocket.send(json.dumps({"type": "connection_init", "payload": init}))
        if json.loads(await websocket.recv()).get("type") != "connection_ack":
            raise RuntimeError("the server did not acknowledge connection_init")
        snapshot = 0
        # One subscription at a time per socket, each after the previous one's SNAPSHOT:
        # 20 sockets each sending 50 subscribes at once waited over 30 s for one of
        # SQLite's 15 pooled connections, and the server completed them with an error.
        for n in range(config["per_connection"]):
            query = config.get("query", SUBSCRIBE)
            payload = {"query": query, "variables": {"p": config["project"]}}
            await websocket.send(
                json.dumps({"id": str(n), "type": "subscribe", "payload": payload})
            )
            message = json.loads(await websocket.recv())
            if message.get("type") != "next" or not message["payload"].get("data"):
                raise RuntimeError(f"expected a SNAPSHOT, got {str(message)[:300]}")
            snapshot = message["payload"]["data"]["projectEvents"]["sequence"]
        return websocket, snapshot


async def _listen(websocket: ClientConnection, tally: _Tally) -> None:
    async for raw in websocket:
        at = time.monotonic()
        message = json.loads(raw)
        kind = message.get("type")
        if kind == "next":
            tally.arrive(message["payload"]["data"]["projectEvents"]["sequence"], at)
        elif kind == "ping":
            await websocket.send('{"type":"pong"}')
        elif kind in ("error", "complete"):
            raise RuntimeError(f"a subscription ended: {message}")


async def _receive(config: dict[str, Any]) -> None:
    out = sys.stdout
    gate = asyncio.Semaphore(OPEN_AT_ONCE)
    opened = await asyncio.gather(*(_open(config, gate) for _ in range(config["connections"])))
    sockets = [websocket for websocket, _ in opened]
    tally = _Tally(config["connections"] * config["per_connection"], out)
    listeners = [asyncio.create_task(_listen(websocket, tally)) for websocket in sockets]
    out.write(json.dumps({"ready": len(sockets), "sequence": opened[-1][1]}) + "\n")
    out.flush()
    told = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
    done, _ = await asyncio.wait([told, *listeners], return_when=asyncio.FIRST_COMPLETED)
    try:
        for task in done:
            if task is not told:
                task.result()
                raise RuntimeError("a connection closed")
    finally:
        await asyncio.gather(*(websocket.close() for websocket in sockets), return_exceptions=True)
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


def receive() -> None:
    """A receiver process: the configuration is argv[1]; a line on stdin ends it."""
    asyncio.run(_receive(json.loads(sys.argv[1])))


class _Receivers:
    """Subscribers spread over receiver processes; their per-event reports, merged."""

    def __init__(self, processes: list[asyncio.subprocess.Process], logs: list[Path]) -> None:
        self.processes = processes
        self.logs = logs

    async def _line(self, index: int, within: float) -> dict[str, Any]:
        stream = self.processes[index].stdout
        assert stream is not None
        line = await asyncio.wait_for(stream.readline(), within)
        if not line:
            await self.processes[index].wait()
            output = self.logs[index].read_text(errors="replace").strip().splitlines()
            raise RuntimeError(f"a receiver stopped: {output[-1] if output else 'no output'}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ready(self, within: float = 300) -> None:
        await asyncio.gather(*(self._line(n, within) for n in range(len(self.processes))))

    async def next_event(self) -> tuple[float, float]:
        """When the next event reached the first and the last subscriber."""
        reports = await asyncio.gather(
            *(self._line(n, PER_EVENT) for n in range(len(self.processes)))
        )
        if len({report["sequence"] for report in reports}) != 1:
            raise RuntimeError(f"receivers saw different events: {reports}")
        return min(r["first"] for r in reports), max(r["last"] for r in reports)

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None and process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.write(b"stop\n")
                    process.stdin.close()
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


@contextlib.asynccontextmanager
async def _receivers(
    server: _Server,
    directory: Path,
    *,
    connections: int,
    per_connection: int = 1,
    query: str = SUBSCRIBE,
    ready_within: float = 300,
) -> AsyncIterator[_Receivers]:
    count = RECEIVERS if connections * per_connection >= 1000 else 1
    shares = [connections // count + (n < connections % count) for n in range(count)]
    processes: list[asyncio.subprocess.Process] = []
    logs: list[Path] = []
    group = _Receivers(processes, logs)
    try:
        for share in shares:
            config = {
                "url": server.ws_url,
                "token": server.token,
                "project": server.project_id,
                "connections": share,
                "per_connection": per_connection,
                "query": query,
            }
            logs.append(directory / f"receiver-{secrets.token_hex(3)}.log")
            with logs[-1].open("wb") as log:
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-c",
                        "from api.bench.realtime import receive; receive()",
                        json.dumps(config),
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=log,
                    )
                )
        await group.ready(ready_within)
        yield group
    finally:
        await group.close()


# --- measuring ------------------------------------------------------------------------


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _line(name: str, figure: str, detail: str) -> str:
    return f"  {name:<46} {figure}   ({detail})"


async def _latency(
    client: httpx.AsyncClient,
    server: _Server,
    receivers: _Receivers,
    subscribers: int,
    bus: str,
    samples: int | None = None,
) -> str:
    firsts: list[float] = []
    lasts: list[float] = []
    samples = SAMPLES[subscribers] if samples is None else samples
    for n in range(WARM_UP + samples):
        prediction = server.pending.pop()
        start = time.monotonic()
        await _deliver(client, prediction)
        first, last = await receivers.next_event()
        if n >= WARM_UP:
            firsts.append((first - start) * 1000)
            lasts.append((last - start) * 1000)
    lasts.sort()
    who = "subscriber" if subscribers == 1 else "subscribers"
    detail = f"n={samples}"
    if subscribers > 1:
        detail += f"; first subscriber p50 {statistics.median(firsts):.1f} ms"
    return _line(
        f"webhook->frame, {bus}, {subscribers:>5,} {who}",
        f"p50 {statistics.median(lasts):7.2f} ms   p99 {_percentile(lasts, 0.99):7.2f} ms",
        detail,
    )


async def _warm(
    client: httpx.AsyncClient,
    server: _Server,
    directory: Path,
    bus: str,
    samples: int | None = None,
) -> str:
    """The 1-subscriber series; it also warms the server up for the memory figures."""
    async with _receivers(server, directory, connections=1) as receivers:
        return await _latency(client, server, receivers, 1, bus, samples)


async def _idle_rss(server: _Server) -> float:
    await asyncio.sleep(SETTLE)
    return _rss_mb(server.pid)


@dataclass
class _Series:
    latency: list[str]
    cost: list[str]
    memory: str


async def _bus_series(directory: Path, emulator_url: str, bus_url: str, bus: str) -> _Series:
    """Latency with 1, 1,000 and 100 subscribers; the server's memory and CPU for the 1,000."""
    needed = sum(SAMPLES.values()) + WARM_UP * len(SAMPLES)
    with _server(directory, bus.split()[0], emulator_url, bus_url) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=60, trust_env=False
        ) as client:
            await _seed(client, server, -(-needed // 12), 12)
            one = await _warm(client, server, directory, bus)
            before = await _idle_rss(server)
            opening = _cpu_seconds(server.pid)
            async with _receivers(server, directory, connections=1000) as receivers:
                opening = _cpu_seconds(server.pid) - opening
                after = await _idle_rss(server)
                busy = _cpu_seconds(server.pid)
                thousand = await _latency(client, server, receivers, 1000, bus)
                busy = _cpu_seconds(server.pid) - busy
            async with _receivers(server, directory, connections=100) as receivers:
                hundred = await _latency(client, server, receivers, 100, bus)
    events = WARM_UP + SAMPLES[1000]
    cost = [
        _line(
            f"CPU per event and subscriber, {bus}",
            f"{busy / events:7.3f} ms",
            f"the server's; {busy / events * 1000:.0f} ms per event for 1,000 subscribers",
        ),
        _line(
            f"CPU per subscription opened, {bus}",
            f"{opening:7.1f} ms",
            "the server's: connect, sign in, subscribe, SNAPSHOT; 1,000 opened",
        ),
    ]
    memory = _line(
        f"RSS per 1,000 idle subscriptions, {bus}",
        f"{after - before:7.1f} MB",
        f"one WebSocket each; {before:.0f} MB -> {after:.0f} MB",
    )
    return _Series([one, hundred, thousand], cost, memory)


async def _multiplexed(directory: Path, emulator_url: str) -> str:
    with _server(directory, "multiplexed", emulator_url, "memory://") as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=60, trust_env=False
        ) as client:
            await _seed(client, server, 1, 12)
            await _warm(client, server, directory, "memory bus", samples=12 - WARM_UP)
            before = await _idle_rss(server)
            async with _receivers(server, directory, connections=10, per_connection=100):
                after = await _idle_rss(server)
    return _line(
        "RSS per 1,000 idle subscriptions, 10 sockets",
        f"{after - before:7.1f} MB",
        f"100 on each WebSocket, memory bus; {before:.0f} MB -> {after:.0f} MB",
    )


WRITES = 20  # writes timed per series
WRITERS_SUBSCRIBERS = (0, 1000, 5000)
PER_SOCKET = 50  # subscriptions per WebSocket in the write series


async def _rename(client: httpx.AsyncClient, server: _Server, n: int) -> float:
    """One write to the project (one PROJECT_UPDATED event); its round trip in ms."""
    start = time.monotonic()
    await _graphql(
        client,
        server.token,
        "mutation($i: UpdateProjectInput!) { updateProject(input: $i) { project { id } } }",
        {"i": {"id": server.project_id, "title": f"Realtime {n}"}},
    )
    return (time.monotonic() - start) * 1000


async def _writes_under(
    client: httpx.AsyncClient, server: _Server, directory: Path, subscribers: int
) -> str:
    """WRITES writes back to back while `subscribers` follow the project; their latency.

    Each write is sent as soon as the previous one answered, so from the second
    on it competes with the fan-out of the ones before; every event must then
    still reach every subscriber.
    """
    times: list[float] = []
    fanout = 0.0
    if subscribers == 0:
        for n in range(WARM_UP + WRITES):
            elapsed = await _rename(client, server, n)
            if n >= WARM_UP:
                times.append(elapsed)
    else:
        sockets = -(-subscribers // PER_SOCKET)
        async with _receivers(
            server, directory, connections=sockets, per_connection=subscribers // sockets
        ) as receivers:
            for n in range(WARM_UP):
                await _rename(client, server, n)
                await receivers.next_event()
            start = time.monotonic()
            for n in range(WRITES):
                times.append(await _rename(client, server, n))
            last = start
            for _ in range(WRITES):
                last = (await receivers.next_event())[1]
            fanout = last - start
    times.sort()
    detail = f"n={WRITES}, sent back to back"
    if subscribers:
        detail += f"; every event at every subscriber {fanout:.1f} s after the first write"
    return _line(
        f"write latency, {subscribers:>5,} subscribers",
        f"p50 {statistics.median(times):7.2f} ms   p99 {_percentile(times, 0.99):7.2f} ms",
        detail,
    )


async def write_latency(directory: Path, emulator_url: str) -> list[str]:
    """A write's round trip with 0, 1,000 and 5,000 subscribers on its project (memory bus)."""
    with _server(directory, "writes", emulator_url, "memory://") as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=120, trust_env=False
        ) as client:
            await _seed(client, server, 1, 1)
            return [
                await _writes_under(client, server, directory, subscribers)
                for subscribers in WRITERS_SUBSCRIBERS
            ]


async def _redis_unreachable() -> str | None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except Exception as error:
        return f"{REDIS_URL} is unreachable: {error}"
    finally:
        await client.aclose()
    return None


async def run_all() -> list[str]:
    """The realtime figures, as lines to print."""
    _raise_file_limit()
    series: list[_Series] = []
    missing: list[str] = []
    failures = (RuntimeError, TimeoutError, OSError, httpx.HTTPError)
    with (
        tempfile.TemporaryDirectory(prefix="studio-realtime-") as name,
        _emulator(Path(name)) as emulator_url,
    ):
        directory = Path(name)
        try:
            series.append(await _bus_series(directory, emulator_url, "memory://", "memory bus"))
        except failures as error:
            missing.append(f"  {'memory bus':<46} not measured ({error})")
        try:
            multiplexed = await _multiplexed(directory, emulator_url)
        except failures as error:
            multiplexed = f"  {'RSS, 10 multiplexed sockets':<46} not measured ({error})"
        try:
            writes = await write_latency(directory, emulator_url)
        except failures as error:
            writes = [f"  {'write latency':<46} not measured ({error})"]
        reason = await _redis_unreachable()
        if reason is None:
            try:
                series.append(await _bus_series(directory, emulator_url, REDIS_URL, "Redis bus"))
            except failures as error:
                reason = str(error)
        if reason is not None:
            missing.append(f"  {'Redis bus':<46} not measured ({reason})")
    lines = [line for one in series for line in one.latency]
    lines.append(
        "  (latency: from just before the webhook's POST to the frame at the last subscriber; "
        f"server, emulator and receivers share {os.cpu_count()} CPUs)"
    )
    lines += [line for one in series for line in one.cost]
    lines += [one.memory for one in series[:1]]
    lines.append(multiplexed)
    lines += [one.memory for one in series[1:]]
    lines += writes
    return lines + missing
