"""What a newcomer sees first: `./dev`'s help, and what `studio serve` prints.

`./dev` without a command prints its header and nothing else; an unknown command
prints it to stderr and exits 2. `studio serve` on a port that is taken says so
(and which port is free) before it migrates or starts anything. A server that
starts prints one block saying what runs where, and its built-in emulator is
quiet unless EMULATOR_LOG_REQUESTS asks for its requests.
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.cli import startup_report
from api.settings import Settings
from tests.servers import HOST, StudioServer, run_studio, studio_env
from tests.test_generation_e2e import Client, finished

REPO = Path(__file__).resolve().parent.parent

# -- ./dev --------------------------------------------------------------------------------


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ./dev with `args` (its help needs no .venv, so nothing is installed)."""
    return subprocess.run(
        ["bash", str(REPO / "dev"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def header() -> str:
    """The comment block at the top of ./dev, without its `# ` marks."""
    lines = []
    for line in (REPO / "dev").read_text().splitlines()[1:]:
        if not line.startswith("#"):
            break
        lines.append(re.sub(r"^# ?", "", line))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("args", [(), ("help",), ("--help",), ("-h",)])
def test_dev_help_prints_its_header_and_nothing_else(args: tuple[str, ...]) -> None:
    result = dev(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout == header()
    assert "./dev serve" in result.stdout
    assert "set -euo" not in result.stdout
    assert result.stderr == ""


def test_dev_refuses_an_unknown_command_with_its_usage() -> None:
    result = dev("srve")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "./dev: unknown command 'srve'\n" + header()


# -- a port that is taken -----------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind((HOST, 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path, taken_port: int) -> None:
    result = run_studio(
        ["serve", "--host", HOST, "--port", str(taken_port)],
        env=studio_env(),
        cwd=tmp_path,
        timeout=30,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"cannot listen on {HOST}:{taken_port}: address already in use" in result.stderr
    suggested = re.search(r"--port (\d+) is free now", result.stderr)
    assert suggested is not None, result.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, int(suggested.group(1))))  # it is free indeed
    assert "Traceback" not in output
    # Nothing ran: no migration, no emulator, no server.
    assert not (tmp_path / ".studio" / "studio.db").exists()
    assert "Started server process" not in output
    assert "Storyboard Studio is ready" not in output


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("192.0.2.1", "192.0.2.1 is not an address of this machine"),  # RFC 5737 TEST-NET-1
        ("no-such-host.invalid", "is not a known host name"),
    ],
)
def test_an_address_that_cannot_be_had_is_refused_clearly(
    tmp_path: Path, host: str, says: str
) -> None:
    result = run_studio(
        ["serve", "--host", host, "--port", "8000"], env=studio_env(), cwd=tmp_path, timeout=30
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert says in result.stderr, result.stderr
    assert "--host" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    result = run_studio(["serve", "--port", "70000"], env=studio_env(), cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert "70000 is not a port: use 1-65535" in result.stderr


# -- the start-up block and a quiet emulator ------------------------------------------------


def generate_one_shot(server: StudioServer) -> None:
    """Sign up and generate two images through the built-in emulator, to completion."""
    client = Client(server.base_url)
    client.sign_up()
    shot_id, _ = client.shot_with_images(2)
    images = client.wait(shot_id, finished)
    assert [image["status"] for image in images] == ["COMPLETE"] * 2, images


def served(tmp_path: Path, name: str, **settings: str) -> str:
    """Everything an embedded-default server printed, from start to stop, with one generation."""
    server = StudioServer(
        env=studio_env(EMULATOR_LATENCY_MS="200", **settings), cwd=tmp_path, name=name
    )
    server.start()
    try:
        generate_one_shot(server)
        assert httpx.get(f"{server.base_url}/readyz", trust_env=False).status_code == 200
    finally:
        server.stop()
    return server.output()


def block(output: str) -> dict[str, str]:
    """The start-up block's `Label: value` lines."""
    start = output.index("Storyboard Studio is ready")
    end = output.index("Stop it with Ctrl+C.", start)
    pairs = [line.strip().split(":", 1) for line in output[start:end].splitlines()[1:]]
    return {label: value.strip() for label, value in pairs}


def test_the_start_up_block_says_what_runs_where_and_the_emulator_is_quiet(
    tmp_path: Path,
) -> None:
    output = served(tmp_path, "first-start")
    assert output.count("Storyboard Studio is ready") == 1, output
    # One server's start-up, not two (the emulator's is not logged).
    assert output.count("Started server process") == 1, output
    assert "Uvicorn running on" not in output, output
    where = block(output)
    port = re.search(r"listening on 127\.0\.0\.1:(\d+)", output)
    assert port is not None, output
    public = f"http://127.0.0.1:{port.group(1)}"
    data = (tmp_path / ".studio").resolve()
    emulator = re.fullmatch(
        r"built-in Replicate emulator at (http://127\.0\.0\.1:\d+) \(quiet; "
        r"EMULATOR_LOG_REQUESTS=true logs its requests\)",
        where["Replicate"],
    )
    assert emulator is not None, where
    assert where == {
        "GraphQL": f"{public}/graphql (GraphiQL in a browser)",
        "WebSocket": f"ws://127.0.0.1:{port.group(1)}/graphql (graphql-transport-ws, graphql-ws)",
        "Editor": f"{public}/",
        "Readiness": f"{public}/readyz",
        "Database": f"embedded SQLite file {data / 'studio.db'}",
        "Event bus": "memory:// (this process only)",
        "Replicate": where["Replicate"],
        "Data": str(data),
        "Media": str(data / "media"),
    }
    # The emulator answered every call of the generation, and logged none of them;
    # nor did the HTTP client that made them.
    assert "/v1/" not in output, output
    assert "/files/" not in output, output
    assert "httpx" not in output, output
    # The server's own requests are logged as before.
    assert '"POST /graphql HTTP/1.1" 200' in output, output


def test_the_emulator_logs_its_requests_when_asked(tmp_path: Path) -> None:
    output = served(tmp_path, "emulator-logged", EMULATOR_LOG_REQUESTS="true")
    assert "(its requests logged)" in block(output)["Replicate"]
    assert re.search(r'"POST /v1/models/[^ ]+/predictions HTTP/1.1" 201', output), output
    assert re.search(r'"GET /v1/predictions/\w+ HTTP/1.1" 200', output), output
    # Its requests, not its own start-up: still one server's.
    assert output.count("Started server process") == 1, output


def test_the_start_up_block_shows_no_password_or_token(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql+asyncpg://studio:db-secret@db.internal:5432/studio",
        event_bus_url="redis://:bus-secret@cache.internal:6379/0",
        replicate_api_token="r8_token-secret",
        media_root=tmp_path / "media",
    )
    report = startup_report(
        settings,
        host="0.0.0.0",  # noqa: S104
        port=8000,
        public_url="https://studio.example.com",
        replicate_url="https://api.replicate.com",
    )
    assert "secret" not in report, report
    where = block(report)
    assert where["Database"] == "postgresql+asyncpg://studio:***@db.internal:5432/studio"
    assert where["Event bus"] == "redis://:***@cache.internal:6379/0"
    assert where["Replicate"] == "Replicate at https://api.replicate.com"
    assert (
        where["WebSocket"] == "wss://studio.example.com/graphql (graphql-transport-ws, graphql-ws)"
    )
    assert where["Media"] == str((tmp_path / "media").resolve())
    assert "Data" not in where  # only the embedded default keeps its files there
    assert "listening on 0.0.0.0:8000" in report
