"""Run real `studio` processes for end-to-end tests.

`StudioServer` starts `studio serve` on a free port of 127.0.0.1 with the
environment and working directory you give it, waits until `/healthz` answers,
and stops it again. Its combined stdout and stderr go to a log file (never a
pipe, so a chatty server cannot block on a full buffer). Several can run at once:
`launch()` each, then `wait_ready()` each, or simply `start()` one.

    with StudioServer(env=studio_env(), cwd=tmp_path, log_dir=tmp_path) as server:
        httpx.get(f"{server.base_url}/healthz")

`run_studio()` runs a command that is expected to finish (`migrate`, `schema`, or
a `serve` that must refuse to start) and returns its result.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from api.environment import studio_env as studio_env  # the tests import it from here
from api.ports import free_port as free_port  # the tests import it from here

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
_PORT_RETRIES = 3
_serial = itertools.count(1)
_running: set[StudioServer] = set()


def studio_executable() -> Path:
    """The `studio` console script of the interpreter running the tests."""
    return Path(sys.executable).with_name("studio")


def run_studio(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run `studio ARGS` to completion; stdout and stderr are captured separately.

    A command that outlives `timeout` is killed and `subprocess.TimeoutExpired` raised.
    """
    return subprocess.run(
        [str(studio_executable()), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServerError(RuntimeError):
    """The server did not come up (or did not go down); the message has its output."""


class StudioServer:
    """One `studio serve` (or `studio emulator`) process on 127.0.0.1."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_dir: Path | None = None,
        name: str = "studio",
        extra_args: Sequence[str] = (),
        command: str = "serve",
        ready_path: str = "/healthz",
        port: int | None = None,
    ) -> None:
        self.fixed_port = port
        self.command = command
        self.ready_path = ready_path
        self.env = dict(env)
        self.cwd = cwd
        self.log_dir = log_dir if log_dir is not None else cwd
        self.name = name
        self.extra_args = tuple(extra_args)
        self.port = 0
        self.log_path = self.log_dir / f"{name}-{next(_serial)}.log"
        self._process: subprocess.Popen[bytes] | None = None

    # -- state ---------------------------------------------------------------

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise ServerError(f"{self.name} was never launched")
        return self._process

    @property
    def base_url(self) -> str:
        if not self.port:
            raise ServerError(f"{self.name} was never launched")
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- life cycle ------------------------------------------------------------

    def launch(self) -> StudioServer:
        """Start the process on a free port without waiting for it to answer."""
        if self.running:
            raise ServerError(f"{self.name} is already running at {self.base_url}")
        self.port = self.fixed_port or free_port()
        self.log_path = self.log_dir / f"{self.name}-{next(_serial)}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(studio_executable()),
            self.command,
            "--host",
            HOST,
            "--port",
            str(self.port),
            *self.extra_args,
        ]
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT
            )
        _running.add(self)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> StudioServer:
        """Wait until `GET <ready_path>` answers 200; raise `ServerError` with the output if not."""
        process = self.process
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while True:
                code = process.poll()
                if code is not None:
                    raise ServerError(
                        f"{self.name} exited with code {code} before answering {self.ready_path}; "
                        f"output:\n{self.output()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(self.ready_path).status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    self.stop()
                    raise ServerError(
                        f"{self.name} did not answer {self.ready_path} within {timeout:.0f} s; "
                        f"output:\n{self.output()}"
                    )
                time.sleep(_POLL_INTERVAL)

    def start(self, timeout: float = START_TIMEOUT) -> StudioServer:
        """Launch and wait until ready; retry on another port if the one picked was taken."""
        for attempt in range(1, _PORT_RETRIES + 1):
            self.launch()
            try:
                return self.wait_ready(timeout)
            except ServerError:
                lost_port_race = "address already in use" in self.output().lower()
                if not lost_port_race or attempt == _PORT_RETRIES:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; return the exit code (None if never launched)."""
        process = self._process
        if process is None:
            return None
        _running.discard(self)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        return process.returncode

    def restart(self, timeout: float = START_TIMEOUT) -> StudioServer:
        """Stop, then start again with the same settings (on a new port)."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> StudioServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<StudioServer {self.name} {state} port={self.port} log={self.log_path}>"


@atexit.register
def _stop_leftovers() -> None:
    """A safety net: fixtures stop their servers, but never leave one behind."""
    for server in list(_running):
        server.stop(timeout=2.0)


@contextlib.asynccontextmanager
async def serving_in_process(app: Any, port: int, **options: Any) -> AsyncIterator[str]:
    """`app` served by uvicorn in this process on 127.0.0.1:`port` (with its lifespan;
    `options` as `uvicorn.Config` takes them, no logging set-up of its own by default)
    until the block ends: its base URL. In process, so a test may look into the app's
    state; signals are left to the test runner. Whatever stops the server from starting
    is raised."""
    import uvicorn

    from api.embedded import _QuietServer

    options = {"log_config": None, "lifespan": "on", **options}
    server = _QuietServer(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
