"""What the benchmarks share: `studio` subprocesses, signed webhooks."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from api.ports import free_port
from services.replicate.signatures import sign

STARTED = 30.0  # seconds a process may take to come up
EMULATOR_READY = "/_emulator/health"  # the rest of its API needs its token
# The token the benches' `studio emulator` processes want, and their servers send.
EMULATOR_TOKEN = "r8_" + secrets.token_urlsafe(24)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextlib.contextmanager
def studio_process(
    command: str,
    env: dict[str, str],
    directory: Path,
    ready_path: str,
    arguments: Sequence[str] = (),
) -> Iterator[tuple[str, int]]:
    """`studio COMMAND [ARGUMENTS]` on a free port until the block ends: its base URL and
    process ID."""
    port = free_port()
    studio = Path(sys.executable).with_name("studio")
    log_path = directory / f"{command}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 (our own command)
            [str(studio), command, "--host", "127.0.0.1", "--port", str(port), *arguments],
            env=env,
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTED
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}{ready_path}", timeout=2, trust_env=False).is_success:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                output = log_path.read_text(errors="replace").strip().splitlines()
                last = output[-1] if output else "no output"
                raise RuntimeError(f"`studio {command}` did not get ready: {last}")
            time.sleep(0.05)
        yield base_url, process.pid
    finally:
        stop(process)


async def post_webhook(
    client: httpx.AsyncClient, secret: str, webhook_id: str, stamp: int, body: bytes
) -> None:
    """Post a webhook body to the client's server, signed as Replicate signs it."""
    response = await client.post(
        "/webhooks/replicate",
        content=body,
        headers={
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, webhook_id, stamp, body),
        },
    )
    response.raise_for_status()
