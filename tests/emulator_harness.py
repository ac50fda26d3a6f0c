"""Servers for the emulator's tests: the emulator and a webhook receiver, over real HTTP.

`ThreadedServer` runs an ASGI app with uvicorn on a free 127.0.0.1 port in a
background thread with its own event loop (so a test may block, e.g. decoding a
video, without stalling the server), and stops it again. The port is bound before
the app is built, so the app may know its own URL.

    with EmulatorServer(latency_ms=300) as server:
        client = replicate.Client(api_token="t", base_url=server.url)
        server.config.failure_rate = 1.0       # in-process fault change

`WebhookReceiver` records every POST to `/hook/{name}` and can answer the first N
of a name with 500, to exercise retries.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from api.ports import bound_socket
from services.replicate.emulator import Emulator, EmulatorConfig, create_emulator_app
from services.replicate.gateway import ReplicateGateway
from services.replicate.guards import CircuitBreaker

HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

T = TypeVar("T")


def quick_gateway(base_url: str, api_token: str | None, **options: Any) -> ReplicateGateway:
    """A gateway to an emulator at `base_url` that retries fast and gives up soon.

    Three tries 10 to 50 ms apart; its breaker opens after three failures in a row,
    for half a second. `options` are further `ReplicateGateway` arguments.
    """
    return ReplicateGateway(
        api_token=api_token,
        base_url=base_url,
        backoff_base=0.01,
        backoff_cap=0.05,
        max_attempts=3,
        breaker=CircuitBreaker(threshold=3, cooldown=0.5),
        **options,
    )


class ThreadedServer:
    """uvicorn serving `app_factory(base_url)` on a free port, in a thread of its own."""

    def __init__(self, app_factory: Callable[[str], ASGIApp], name: str = "server") -> None:
        self.name = name
        self._socket = bound_socket(HOST)
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.app = app_factory(self.url)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                lifespan="on",
                timeout_graceful_shutdown=5,
                # Leave the process's logging alone: a log_level would reset the global
                # uvicorn loggers, for every other server in this process too.
                log_config=None,
                log_level=None,
                access_log=False,
            )
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=name, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name} stopped before it started")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start within {START_TIMEOUT} s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to shut down (running the lifespan's shutdown) and wait for it."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT)
        self._socket.close()
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {STOP_TIMEOUT} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class EmulatorServer(ThreadedServer):
    """The emulator on its own port; `config` and `emulator` are the live objects."""

    def __init__(self, **settings: Any) -> None:
        self.config: EmulatorConfig
        self.emulator: Emulator

        def build(url: str) -> ASGIApp:
            self.config = EmulatorConfig(public_url=url, **settings)
            app = create_emulator_app(self.config)
            self.emulator = app.state.emulator
            return app

        super().__init__(build, name="emulator")


@dataclass(frozen=True)
class Received:
    """One request the webhook receiver got, and what it answered."""

    name: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class WebhookReceiver(ThreadedServer):
    """Records POSTs to `/hook/{name}`; `fail_first[name] = N` answers the first N with 500."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.fail_first: dict[str, int] = {}
        self._lock = threading.Lock()

        async def hook(request: Request) -> Response:
            name = request.path_params["name"]
            body = await request.body()
            with self._lock:
                failures_left = self.fail_first.get(name, 0)
                if failures_left > 0:
                    self.fail_first[name] = failures_left - 1
                status = 500 if failures_left > 0 else 200
                self.requests.append(Received(name, dict(request.headers), body, status))
            return Response(status_code=status)

        super().__init__(
            lambda _: Starlette(routes=[Route("/hook/{name}", hook, methods=["POST"])]), "receiver"
        )

    def hook_url(self, name: str) -> str:
        return f"{self.url}/hook/{name}"

    def received(self, name: str, *, accepted_only: bool = True) -> list[Received]:
        with self._lock:
            return [
                item
                for item in self.requests
                if item.name == name and (item.status == 200 or not accepted_only)
            ]


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    within: float = 15.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Await `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)
