"""What a newcomer sees first: `./dev`'s help, and what `studio serve` prints.

`./dev` without a command prints its header and nothing else; an unknown command
prints it to stderr and exits 2. `studio serve` on a port that is taken says so
(and which port is free) before it migrates or starts anything, even when two are
started at once; so does one whose database cannot be reached. A server that
starts prints one block saying what runs where (an IPv6 address in brackets), and
its built-in emulator is quiet unless EMULATOR_LOG_REQUESTS asks for its requests.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

import migrations
from api.cli import listen_host, listen_socket, listening_address, startup_report
from api.settings import Settings
from services.database import scratch_postgres_database
from tests.conftest import ADMIN_URL, _unavailable
from tests.servers import HOST, StudioServer, free_port, run_studio, studio_env
from tests.test_generation_e2e import Client, finished

REPO = Path(__file__).resolve().parent.parent
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 (what `--host 0` means)

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


@pytest.mark.parametrize("asking", ["-h", "--help", "--he"])
def test_dev_bench_help_starts_no_service_and_installs_nothing(tmp_path: Path, asking: str) -> None:
    """`./dev bench` asking for help (as argparse takes it, abbreviated too) prints the
    usage and neither starts PostgreSQL or Redis, nor installs wrk or the test tools
    (after `./dev serve` only the base install is there): a copy of ./dev
    beside this .venv, with `pg_isready`, `redis-cli` and `apt-get` on PATH noting
    each call. `--he` started them and, as root, ran apt-get before the usage."""
    (tmp_path / "dev").write_text((REPO / "dev").read_text())
    (tmp_path / "pyproject.toml").write_text("")
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "studio"):
        (venv / "bin" / name).symlink_to(Path(sys.executable).parent / name)
    (venv / ".installed-base").touch()  # as after `./dev serve`: no test tools yet
    tools = tmp_path / "tools"
    tools.mkdir()
    calls = tmp_path / "calls"
    for tool in ("pg_isready", "redis-cli", "apt-get"):
        script = tools / tool
        script.write_text(f'#!/bin/sh\necho {tool} >> "{calls}"\n')
        script.chmod(0o755)
    result = subprocess.run(
        ["bash", str(tmp_path / "dev"), "bench", "--mode", "realtime", asking],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: studio bench"), result.stdout
    assert not calls.exists(), calls.read_text()
    assert not (venv / ".installed-dev").exists()  # nor the test tools installed


def test_dev_refuses_an_unknown_command_with_its_usage() -> None:
    result = dev("srve")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "./dev: unknown command 'srve'\n" + header()


def test_the_hot_reads_bench_takes_help_and_one_optional_admin_url() -> None:
    """`.venv/bin/python -m api.bench.hot_reads [ADMIN_URL]`, as the README has it:
    `--help` prints its usage instead of being taken for the admin URL and starting the
    bench, and a second argument is refused before anything runs."""

    def hot_reads(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.bench.hot_reads", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO,
        )

    helped = hot_reads("--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: python -m api.bench.hot_reads [-h] [ADMIN_URL]")
    assert "SQLite:" not in helped.stdout
    refused = hot_reads("postgresql+asyncpg://postgres@127.0.0.1:5432/postgres", "extra")
    assert refused.returncode == 2
    assert "unrecognized arguments: extra" in refused.stderr
    assert refused.stdout == ""


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


def test_two_servers_started_at_once_on_one_port_leave_one_serving(tmp_path: Path) -> None:
    """Both bind (SO_REUSEADDR lets two unlistened sockets share a port); the socket
    listens before anything else starts, so the second is refused then, not later."""
    port = free_port()
    servers = [
        StudioServer(env=studio_env(), cwd=tmp_path / name, name=name, port=port)
        for name in ("first", "second")
    ]
    for server in servers:
        server.cwd.mkdir()
    try:
        for server in servers:
            server.launch()
        deadline = time.monotonic() + 30
        while all(server.running for server in servers):
            assert time.monotonic() < deadline, [server.output() for server in servers]
            time.sleep(0.05)
        [loser] = [server for server in servers if not server.running]
        [winner] = [server for server in servers if server.running]
        assert loser.process.returncode == 1, loser.output()
        lost = loser.output()
        assert f"studio: cannot listen on {HOST}:{port}: address already in use" in lost
        assert "Storyboard Studio is ready" not in lost
        assert "Traceback" not in lost
        winner.wait_ready()
        assert httpx.get(f"{winner.base_url}/readyz", trust_env=False).status_code == 200
    finally:
        for server in servers:
            server.stop()


def test_an_empty_host_is_refused(tmp_path: Path) -> None:
    result = run_studio(
        ["serve", "--host", "", "--port", "8000"], env=studio_env(), cwd=tmp_path, timeout=30
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "argument --host: the host is empty" in result.stderr
    assert not (tmp_path / ".studio").exists()


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0", EVERY_INTERFACE),
        (EVERY_INTERFACE, EVERY_INTERFACE),
        ("localhost", None),
        (" 127.0.0.1 ", None),
    ],
)
def test_a_host_is_looked_up_and_the_address_is_what_is_shown(
    host: str, address: str | None
) -> None:
    """`--host 0` is 0.0.0.0, as getaddrinfo reads it, and is shown as 0.0.0.0."""
    with listen_socket(listen_host(host), 0) as sock:
        shown = listening_address(sock)
        assert shown == (address or shown)
        assert shown in (EVERY_INTERFACE, "127.0.0.1", "::1")
        port = sock.getsockname()[1]
        with socket.create_connection((HOST if shown == EVERY_INTERFACE else shown, port), 2):
            pass  # it listens already


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_a_server_on_ipv6_shows_and_signs_bracketed_urls(tmp_path: Path, host: str) -> None:
    server = StudioServer(
        env=studio_env(EMULATOR_LATENCY_MS="200"), cwd=tmp_path, extra_args=("--host", host)
    )
    server.launch()
    try:
        base = f"http://[::1]:{server.port}"
        deadline = time.monotonic() + 30
        while "Stop it with Ctrl+C." not in server.output():
            assert server.running, server.output()
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        where = block(server.output())
        assert f"listening on [::1]:{server.port}" in server.output()
        assert where["GraphQL"] == f"{base}/graphql (GraphiQL in a browser)"
        assert where["WebSocket"].startswith(f"ws://[::1]:{server.port}/graphql ")
        # Signed media links are built on the same public URL, and work.
        client = Client(base)
        client.sign_up()
        shot_id, _ = client.shot_with_images(1)
        [image] = client.wait(shot_id, finished)
        assert image["status"] == "COMPLETE", image
        link = urlsplit(image["imageUrl"])
        assert (link.hostname, link.port) == ("::1", server.port), image
        assert httpx.get(image["imageUrl"], trust_env=False, timeout=10).status_code == 200
    finally:
        server.stop()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_the_emulator_on_ipv6_shows_a_bracketed_url(tmp_path: Path) -> None:
    emulator = StudioServer(
        env=studio_env(), cwd=tmp_path, command="emulator", extra_args=("--host", "::1")
    )
    emulator.launch()
    try:
        url = f"http://[::1]:{emulator.port}"
        deadline = time.monotonic() + 30
        while f"Replicate emulator at {url} " not in emulator.output():
            assert emulator.running, emulator.output()
            assert time.monotonic() < deadline, emulator.output()
            time.sleep(0.05)
        assert httpx.get(f"{url}/_emulator/health", trust_env=False).status_code == 200
    finally:
        emulator.stop()


def test_a_database_that_cannot_be_reached_is_said_plainly(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://studio:DBPW-hunter2@127.0.0.1:{port}/studio?password=QPW-hunter3"
    result = run_studio(
        ["serve", "--host", HOST, "--port", str(free_port())],
        env=studio_env(DATABASE_URL=url, SECRET_KEY="k" * 40),
        cwd=tmp_path,
        timeout=60,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert result.stderr.startswith(
        "studio: cannot reach the database "
        f"postgresql+asyncpg://studio:***@127.0.0.1:{port}/studio?password=***: "
    ), result.stderr
    assert "Check DATABASE_URL and that the database server is running." in result.stderr
    assert "hunter" not in output
    assert "Traceback" not in output
    assert "Storyboard Studio is ready" not in output


async def test_a_database_not_yet_migrated_is_said_plainly(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(
                scratch_postgres_database(ADMIN_URL, prefix="studio_unmigrated")
            )
        except OSError as error:
            _unavailable("PostgreSQL", error)  # fails under CI=true, as everywhere
        result = run_studio(
            ["serve", "--host", HOST, "--port", str(free_port())],
            env=studio_env(DATABASE_URL=url, SECRET_KEY="k" * 40),
            cwd=tmp_path,
            timeout=60,
        )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "is at migration none, not " in result.stderr
    assert result.stderr.endswith(": run `studio migrate` first.\n"), result.stderr
    assert "Traceback" not in output
    assert "Storyboard Studio is ready" not in output


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
    # Neither server's own start-up lines (the emulator's, uvicorn's): the block says
    # it all, after one line for the migrations a fresh database needed.
    assert "Started server process" not in output, output
    assert "Uvicorn running on" not in output, output
    before = output[: output.index("Storyboard Studio is ready")].strip().splitlines()
    assert len(before) == 1, output
    head = migrations.head_revision()
    assert before[0].endswith(f" INFO studio: database migrated from empty to {head}"), output
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
    # Its requests, not its own start-up.
    assert "Started server process" not in output, output


def test_the_start_up_block_shows_no_password_or_secret_query_value(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql+asyncpg://studio@db.internal/studio?password=QUERYPW",
        event_bus_url="redis://cache.internal:6379/0?password=BUSQPW",
        replicate_api_token="r8_token",
        replicate_base_url="https://user:BASEPW@replicate.internal",
        public_url="https://user:PUBPW@studio.example.com",
        media_root=tmp_path / "media",
    )
    report = startup_report(
        settings,
        host="::1",
        port=8000,
        public_url=settings.resolved_public_url("::1", 8000),
        replicate_url="https://user:BASEPW@replicate.internal",
    )
    for secret in ("QUERYPW", "BUSQPW", "BASEPW", "PUBPW"):
        assert secret not in report, report
    where = block(report)
    assert where["Database"] == "postgresql+asyncpg://studio@db.internal/studio?password=***"
    assert where["Event bus"] == "redis://cache.internal:6379/0?password=***"
    assert where["Replicate"] == "Replicate-compatible API at https://user:***@replicate.internal"
    assert where["GraphQL"] == "https://user:***@studio.example.com/graphql (GraphiQL in a browser)"
    assert "listening on [::1]:8000" in report


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


def test_the_access_log_shows_no_signature_of_a_signed_link(tmp_path: Path) -> None:
    server = StudioServer(env=studio_env(EMULATOR_LATENCY_MS="100"), cwd=tmp_path)
    server.launch()
    try:
        deadline = time.monotonic() + 30
        while "Stop it with Ctrl+C." not in server.output():
            assert server.running, server.output()
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        client = Client(server.base_url)
        client.sign_up()
        shot_id, _ = client.shot_with_images(1)
        [image] = client.wait(shot_id, finished)
        assert image["status"] == "COMPLETE", image
        link = image["imageUrl"]
        assert httpx.get(link, trust_env=False, timeout=10).status_code == 200
        found = re.search(r"signature=([0-9a-f]+)", link)
        assert found is not None, link
        signature = found.group(1)
        deadline = time.monotonic() + 10
        while "GET /media/" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        assert "signature=..." in server.output()
        assert signature not in server.output()
    finally:
        server.stop()
