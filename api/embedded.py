"""The built-in Replicate emulator, served on a loopback port inside this process.

The server talks to it over real HTTP exactly as it talks to Replicate, so the
whole workflow runs offline through the same code. Like Replicate, it answers
only requests with its API token (a random one made for each run), so nothing
else on the machine can read its webhook secret or its predictions.

It is quiet: its uvicorn server's start and stop lines are never logged, and its
line per request (with the emulator's own INFO notes, and the HTTP client's line
for each call to it) only with `log_requests` (EMULATOR_LOG_REQUESTS); its
warnings and errors always are.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import secrets
from collections.abc import AsyncIterator, Iterator

import uvicorn

from api.ports import bound_socket
from services.replicate.emulator import EmulatorConfig, create_emulator_app

HOST = "127.0.0.1"

# uvicorn's loggers are process-wide and shared with the main server, so the
# emulator's records are told apart by where they are made: everything its server
# does (start-up, each connection and request, shutdown) runs in its task or in
# tasks and callbacks scheduled from it, which all inherit this variable's value
# (asyncio runs callbacks in the context they were scheduled from; PEP 567).
# None outside the emulator; inside it, whether its requests are logged.
_logs_requests: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "embedded_emulator_logs_requests", default=None
)


class _EmulatorLogFilter(logging.Filter):
    """Drops the embedded emulator's records below WARNING, unless they are about its
    requests (`about_requests`) and those are to be logged."""

    def __init__(self, *, about_requests: bool) -> None:
        super().__init__()
        self.about_requests = about_requests

    def filter(self, record: logging.LogRecord) -> bool:
        logs_requests = _logs_requests.get()
        if logs_requests is None or record.levelno >= logging.WARNING:
            return True
        return logs_requests and self.about_requests


class _CallsToEmulatorFilter(logging.Filter):
    """Drops the HTTP client's INFO line for each call made to a quiet embedded emulator.

    Those calls are made from the server's own tasks, so the context does not tell
    them apart: the URL in httpx's message does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.quiet: set[str] = set()  # base URLs of the emulators running quietly

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or not self.quiet:
            return True
        message = record.getMessage()
        return not any(f" {base_url}/" in message for base_url in self.quiet)


_CALLS = _CallsToEmulatorFilter()
_ABOUT_REQUESTS = _EmulatorLogFilter(about_requests=True)
_FILTERS: dict[str, tuple[logging.Filter, ...]] = {
    # uvicorn's start-up and shutdown lines: never wanted twice in one log.
    "uvicorn.error": (_EmulatorLogFilter(about_requests=False),),
    # A line per request, and the emulator's own notes on them.
    "uvicorn.access": (_ABOUT_REQUESTS,),
    "studio.emulator": (_ABOUT_REQUESTS,),
    "studio.emulator.webhooks": (_ABOUT_REQUESTS,),
    # Calls to the emulator, and the emulator's own (its webhooks).
    "httpx": (_CALLS, _ABOUT_REQUESTS),
}


def _filter_emulator_records() -> None:
    """Install the filters (once) on every logger the emulator's records go to."""
    for name, log_filters in _FILTERS.items():
        logger = logging.getLogger(name)
        for log_filter in log_filters:
            if log_filter not in logger.filters:
                logger.addFilter(log_filter)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the main one."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def embedded_emulator(
    *, latency_ms: int, log_requests: bool = False, seed: int | None = None
) -> AsyncIterator[tuple[str, EmulatorConfig]]:
    """Run the emulator; yield its base URL and its (live, changeable) configuration.

    Its `config.api_token` is the token every API call must carry. Without
    `log_requests` only its warnings and errors are logged. `seed` makes its random
    choices (injected faults, webhook order) the same on every run.
    """
    sock = bound_socket(HOST)
    port: int = sock.getsockname()[1]
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
            create_emulator_app(config),
            host=HOST,
            port=port,
            log_config=None,
            log_level=None,
        )
    )
    _filter_emulator_records()
    if not log_requests:
        _CALLS.quiet.add(base_url)
    context = contextvars.copy_context()
    context.run(_logs_requests.set, log_requests)
    task = asyncio.create_task(
        server.serve(sockets=[sock]), name="replicate-emulator", context=context
    )
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
            await asyncio.sleep(0.02)
        yield base_url, config
    finally:
        server.should_exit = True
        try:
            await task
        finally:
            sock.close()
            _CALLS.quiet.discard(base_url)
