"""The built-in Replicate emulator, served on a loopback port inside this process.

The server talks to it over real HTTP exactly as it talks to Replicate, so the
whole workflow runs offline through the same code. Like Replicate, it answers
only requests with its API token (a random one made for each run), so nothing
else on the machine can read its webhook secret or its predictions.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn

from services.emulator import EmulatorConfig, create_emulator_app

HOST = "127.0.0.1"


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the main one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def embedded_emulator(
    *, latency_ms: int, seed: int | None = None
) -> AsyncIterator[tuple[str, EmulatorConfig]]:
    """Run the emulator; yield its base URL and its (live, changeable) configuration.

    Its `config.api_token` is the token every API call must carry. `seed` makes its
    random choices (injected faults, webhook order) the same on every run.
    """
    port = _free_port()
    base_url = f"http://{HOST}:{port}"
    config = EmulatorConfig(
        latency_ms=latency_ms,
        public_url=base_url,
        api_token="r8_" + secrets.token_urlsafe(32),
        seed=seed,
    )
    server = _QuietServer(
        # No logging config of its own: uvicorn's loggers are process-wide, and the
        # main server's must keep working.
        uvicorn.Config(
            create_emulator_app(config), host=HOST, port=port, log_config=None, log_level=None
        )
    )
    task = asyncio.create_task(server.serve(), name="replicate-emulator")
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.02)
    try:
        yield base_url, config
    finally:
        server.should_exit = True
        await task
