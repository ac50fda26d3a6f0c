"""`studio bench --mode side-by-side`: the nested storyboard read, ours against
PostGraphile 5.1.5, on one PostgreSQL database (issue 12).

On a scratch database it seeds one project of 10 scenes x 8 shots x 2 iterations of
6 images (`storyboard_tree`), starts `studio serve` (one process, request limits off,
LOG_LEVEL=WARNING) and PostGraphile (amber preset, one Node process, `postgraphile`),
checks that each answers its read whole, then loads each with wrk (`wrk`) at 1 and at
10 connections: a short warm-up each, then runs interleaved, ours, peer, ours, peer,
ours, peer, so that both see the same noise of a shared machine. It prints each run's
medians (req/s, p50, p99) and the ratio ours/peer.

Then SQL round trips per request: each server is started again with its database
connection through a counting proxy (`round_trips`), sent 10 requests to warm up and
then 50 one after another; what it sent to PostgreSQL in an idle window as long as
those 50 took (housekeeping; our generation poller is set to an hour for this part)
is subtracted. Then `studio serve --workers 2`
against PostGraphile, when serve has that option, and our read served from SQLite.

Prints figures and asserts nothing; every figure that cannot be had is printed as
"not measured (reason)" and makes the run exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from api.bench import postgraphile, wrk
from api.bench.processes import EMULATOR_READY, EMULATOR_TOKEN, studio_process
from api.bench.round_trips import CountingProxy, MessageCounts
from api.bench.storyboard_tree import IMAGES, SeededProject, check_ours, check_peer, seed
from api.environment import studio_env
from services.database import scratch_postgres_database

RUNS = 3  # runs per server and concurrency, interleaved
CONCURRENCIES = (1, 10)
WARM_UP_SECONDS = 3.0
COUNTED = 50  # sequential requests whose SQL is counted
COUNT_WARM_UP = 10  # every pooled connection's statement cache sees the read
REQUEST_TIMEOUT = 60.0
OURS_NAME = "studio serve"
PEER_NAME = f"PostGraphile {postgraphile.VERSION}"
NOT_MEASURED = "not measured"
SETTLE_SECONDS = 60.0
SETTLE_STEP = 0.25
IDLE_TICKS = 2  # in SETTLE_STEP: under a tenth of a core at 100 ticks a second
MESSAGES = ("S", "Q", "H", "P", "B")
"""Message types shown per request: Sync, Query, Flush, Parse, Bind."""

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Target:
    """A server under load: its name, GraphQL endpoint, request body and headers, the
    check of its answer, and its process ID."""

    name: str
    endpoint: str
    payload: dict[str, Any]
    headers: dict[str, str]
    check: Check
    pid: int


@dataclass
class Cell:
    """The runs of one server at one concurrency, or why there are none."""

    runs: list[wrk.LoadRun] = field(default_factory=list)
    problem: str | None = None

    def median(self, value: Callable[[wrk.LoadRun], float]) -> float | None:
        """The median of `value` over the runs; None when not measured."""
        if self.problem is not None or not self.runs:
            return None
        return statistics.median(value(run) for run in self.runs)


@dataclass(frozen=True)
class Sql:
    """What one server sent PostgreSQL per request, or why it is not known."""

    round_trips: float | None = None
    statements: float | None = None
    parses: float | None = None
    connections: int = 0
    idle_round_trips: int = 0
    per_type: dict[str, float] = field(default_factory=dict)
    problem: str | None = None


class Report:
    """Lines printed as they come; counts those that say a figure is not measured."""

    def __init__(self) -> None:
        self.unmeasured = 0

    def line(self, text: str = "") -> None:
        self.unmeasured += text.count(NOT_MEASURED)
        print(text, flush=True)


# --- servers -------------------------------------------------------------------------


def _ours_env(database_url: str, directory: Path, **settings: str) -> dict[str, str]:
    return studio_env(
        DATABASE_URL=database_url,
        SECRET_KEY=secrets.token_urlsafe(48),
        STUDIO_DATA_DIR=str(directory / "studio-data"),
        LOG_LEVEL="WARNING",
        **settings,
    )


@contextlib.contextmanager
def _ours(
    database_url: str,
    directory: Path,
    seeded: SeededProject,
    arguments: Sequence[str] = (),
    **settings: str,
) -> Iterator[Target]:
    env = _ours_env(database_url, directory, **settings)
    with contextlib.ExitStack() as stack:
        if "--workers" in arguments:
            # Several workers share what one process would keep to itself, as a
            # deployment of them must: the event bus (Redis), and one Replicate emulator
            # of their own instead of one inside each worker.
            if _redis_answers():
                env["EVENT_BUS_URL"] = "redis://127.0.0.1:6379/0"
            emulator_env = studio_env(REPLICATE_API_TOKEN=EMULATOR_TOKEN)
            emulator_url, _ = stack.enter_context(
                studio_process("emulator", emulator_env, directory, EMULATOR_READY)
            )
            env.update(REPLICATE_BASE_URL=emulator_url, REPLICATE_API_TOKEN=EMULATOR_TOKEN)
        base_url, pid = stack.enter_context(
            studio_process("serve", env, directory, "/readyz", arguments)
        )
        yield Target(
            OURS_NAME if not arguments else f"{OURS_NAME} {' '.join(arguments)}",
            f"{base_url}/graphql",
            seeded.ours(),
            {"Authorization": f"Bearer {seeded.token}"},
            check_ours,
            pid,
        )


@contextlib.contextmanager
def _peer(
    node: Path, database_url: str, directory: Path, seeded: SeededProject
) -> Iterator[Target]:
    with postgraphile.serve(node, database_url, directory) as (endpoint, pid):
        yield Target(PEER_NAME, endpoint, seeded.peer(), {}, check_peer, pid)


def _redis_answers() -> bool:
    """Whether the local Redis (127.0.0.1:6379) answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def serve_has_workers() -> bool:
    """Whether `studio serve` takes `--workers` (its --help says so)."""
    studio = Path(sys.executable).with_name("studio")
    done = subprocess.run(  # noqa: S603 (our own command)
        [str(studio), "serve", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return "--workers" in done.stdout


def _ask(client: httpx.Client, target: Target) -> tuple[str | None, int]:
    """Send the target its read once: what is wrong with the answer (None: nothing),
    and its size in bytes."""
    try:
        answer = client.post(target.endpoint, json=target.payload, headers=target.headers)
    except httpx.HTTPError as error:
        return f"no answer: {error!r}", 0
    if answer.status_code != httpx.codes.OK:
        return f"HTTP {answer.status_code}: {answer.text[:200]}", len(answer.content)
    try:
        body = answer.json()
    except json.JSONDecodeError:
        return f"not JSON: {answer.text[:200]}", len(answer.content)
    return target.check(body), len(answer.content)


def _verify(target: Target) -> tuple[str | None, int]:
    with httpx.Client(timeout=REQUEST_TIMEOUT, trust_env=False) as client:
        return _ask(client, target)


# --- load ----------------------------------------------------------------------------


def _cpu_ticks(pid: int) -> int:
    """CPU time (clock ticks, user and system) of a process and its children so far;
    0 once it is gone. Linux's /proc/PID/stat, fields 14 and 15."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            # After the name: state, ppid, ..., utime (11th), stime (12th).
            if stat.parent.name == str(pid) or fields[1] == str(pid):
                total += int(fields[11]) + int(fields[12])
    return total


def settle(pid: int) -> None:
    """Wait (at most SETTLE_SECONDS) until the server has finished the requests a run
    left in flight: its CPU use stays under a tenth of a core for a quarter second. So
    no run pays for the one before it, of the other server."""
    deadline = time.monotonic() + SETTLE_SECONDS
    ticks = _cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(SETTLE_STEP)
        now = _cpu_ticks(pid)
        if now - ticks <= IDLE_TICKS:
            return
        ticks = now


def _interleaved(targets: Sequence[Target], seconds: float) -> dict[tuple[str, int], Cell]:
    """Warm each target up, then per concurrency run them in turn, RUNS rounds."""
    cells = {(t.name, c): Cell() for t in targets for c in CONCURRENCIES}
    for target in targets:
        with contextlib.suppress(wrk.LoadUnavailable):
            wrk.run(
                target.endpoint,
                target.payload,
                headers=target.headers,
                connections=max(CONCURRENCIES),
                seconds=min(WARM_UP_SECONDS, seconds),
            )
    for connections in CONCURRENCIES:
        for _ in range(RUNS):
            for target in targets:
                cell = cells[target.name, connections]
                if cell.problem is not None:
                    continue
                try:
                    settle(target.pid)
                    run = wrk.run(
                        target.endpoint,
                        target.payload,
                        headers=target.headers,
                        connections=connections,
                        seconds=seconds,
                    )
                except wrk.LoadUnavailable as error:
                    cell.problem = str(error)
                    continue
                if not run.clean:
                    cell.problem = (
                        f"{run.bad} bad answers and {run.errors} socket errors "
                        f"in {run.requests} requests"
                    )
                else:
                    cell.runs.append(run)
    return cells


def _per_second(run: wrk.LoadRun) -> float:
    return run.per_second


def _p50(run: wrk.LoadRun) -> float:
    return run.p50_ms


def _p99(run: wrk.LoadRun) -> float:
    return run.p99_ms


def _ms(value: float | None) -> str:
    return f"{value:9.2f}" if value is not None else f"{'-':>9}"


def _rate(value: float | None) -> str:
    return f"{value:9.1f}" if value is not None else f"{'-':>9}"


def _ratio(ours: float | None, peer: float | None) -> str:
    if ours is None or peer is None or peer == 0:
        return f"{'-':>9}"
    return f"{ours / peer:8.2f}x"


def _load_table(
    report: Report, cells: dict[tuple[str, int], Cell], ours: str, peer: str | None
) -> None:
    report.line(
        f"  {'server':<28} {'c':>3} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}   req/s of each run"
    )
    if peer is not None:
        report.line("  (ratio ours/peer: req/s above 1x, and p50 and p99 below 1x, favour ours)")
    for connections in CONCURRENCIES:
        for name in (ours, peer):
            if name is None:
                continue
            cell = cells[name, connections]
            if cell.problem is not None:
                report.line(f"  {name:<28} {connections:>3} {NOT_MEASURED} ({cell.problem})")
                continue
            each = " ".join(f"{run.per_second:.1f}" for run in cell.runs)
            report.line(
                f"  {name:<28} {connections:>3} {_rate(cell.median(_per_second))}"
                f" {_ms(cell.median(_p50))} {_ms(cell.median(_p99))}"
                f"   {each}"
            )
        if peer is not None:
            mine, theirs = cells[ours, connections], cells[peer, connections]
            ratios = " ".join(
                _ratio(mine.median(value), theirs.median(value))
                for value in (_per_second, _p50, _p99)
            )
            report.line(f"  {'ratio ours/peer':<28} {connections:>3} {ratios}")


# --- SQL round trips -----------------------------------------------------------------


def _through(database_url: str, proxy: CountingProxy) -> str:
    url = make_url(database_url)
    return url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def _count_sql(proxy: CountingProxy, target: Target) -> Sql:
    """Send the target its read COUNTED times in a row; what it sent PostgreSQL per
    request, less what it sends idle in a window as long."""
    with httpx.Client(timeout=REQUEST_TIMEOUT, trust_env=False) as client:
        for _ in range(COUNT_WARM_UP):
            problem, _size = _ask(client, target)
            if problem:
                return Sql(problem=problem)
        before = proxy.counts()
        started = time.perf_counter()
        for _ in range(COUNTED):
            problem, _size = _ask(client, target)
            if problem:
                return Sql(problem=problem)
        elapsed = time.perf_counter() - started
        during = proxy.counts() - before
    quiet = proxy.counts()
    time.sleep(elapsed)
    idle = proxy.counts() - quiet
    sent = MessageCounts({k: during.of(k) - idle.of(k) for k in during.by_type}, during.connections)
    return Sql(
        round_trips=sent.round_trips / COUNTED,
        statements=sent.statements / COUNTED,
        parses=sent.parses / COUNTED,
        connections=during.connections,
        idle_round_trips=idle.round_trips,
        per_type={kind: sent.of(kind) / COUNTED for kind in MESSAGES},
    )


def _sql_line(name: str, sql: Sql) -> str:
    if sql.problem is not None or sql.round_trips is None:
        return f"  {name:<28} {NOT_MEASURED} ({sql.problem})"
    return (
        f"  {name:<28} {sql.round_trips:11.2f} {sql.statements or 0:11.2f}"
        f" {sql.parses or 0:8.2f} {sql.connections:12d} {sql.idle_round_trips:14d}   "
        + " ".join(f"{kind} {sql.per_type.get(kind, 0):.2f}" for kind in MESSAGES)
    )


# --- the run ---------------------------------------------------------------------------


def _summary(
    report: Report,
    cells: dict[tuple[str, int], Cell],
    sql: dict[str, Sql],
    names: Sequence[str],
) -> None:
    """The issue's table: one row per server, and a row of ratios."""
    heads = ["", "req/s c=1", "p50 c=1", "p99 c=1", "req/s c=10", "p50 c=10", "p99 c=10"]
    report.line("| " + " | ".join([*heads, "SQL round trips per request"]) + " |")
    report.line("|" + " --- |" * (len(heads) + 1))

    def figures(name: str) -> list[float | None]:
        values: list[float | None] = []
        for connections in CONCURRENCIES:
            cell = cells.get((name, connections), Cell(problem="-"))
            values += [
                cell.median(_per_second),
                cell.median(_p50),
                cell.median(_p99),
            ]
        trips = sql.get(name, Sql(problem="-")).round_trips
        return [*values, trips]

    def text(value: float | None, unit: str) -> str:
        if value is None:
            return "-"  # its "not measured" line is above
        return f"{value:,.1f}{unit}" if unit else f"{value:,.1f}"

    units = ["", " ms", " ms", "", " ms", " ms", ""]
    rows = {name: figures(name) for name in names}
    for name, values in rows.items():
        report.line(
            "| "
            + " | ".join([name, *(text(v, u) for v, u in zip(values, units, strict=True))])
            + " |"
        )
    if len(names) == 2:  # ours and the peer
        mine, theirs = rows[names[0]], rows[names[1]]
        pairs = zip(mine, theirs, strict=True)
        ratios = [f"{a / b:.2f}x" if a is not None and b else "-" for a, b in pairs]
        report.line("| " + " | ".join(["ours/peer", *ratios]) + " |")


def _postgres_part(
    report: Report,
    database_url: str,
    seeded: SeededProject,
    node: Path | None,
    peer_problem: str | None,
    directory: Path,
    seconds: float,
) -> None:
    cells: dict[tuple[str, int], Cell] = {}
    sql: dict[str, Sql] = {}
    report.line(
        f"Load: wrk, {seconds:g} s per run, {RUNS} runs per server and concurrency, "
        "interleaved ours/peer; medians"
    )
    with contextlib.ExitStack() as stack:
        peer: Target | None = None
        if node is not None:
            try:
                peer = stack.enter_context(_peer(node, database_url, directory, seeded))
            except postgraphile.PeerUnavailable as error:
                peer_problem = str(error)
        if peer is not None:
            problem, size = _verify(peer)
            if problem:
                peer_problem, peer = f"its answer is wrong: {problem}", None
            else:
                report.line(f"  {PEER_NAME}: answer checked, {size:,} bytes")
        try:
            with _ours(database_url, directory, seeded) as ours:
                problem, size = _verify(ours)
                if problem:
                    raise RuntimeError(f"its answer is wrong: {problem}")
                report.line(f"  {OURS_NAME}: answer checked, {size:,} bytes")
                if wrk.wrk_path() is None:
                    raise RuntimeError("wrk is not installed (Debian package `wrk`)")
                cells = _interleaved([ours] + ([peer] if peer else []), seconds)
        except RuntimeError as error:
            report.line(f"  {OURS_NAME}: {NOT_MEASURED} ({error})")
        if peer is None:
            report.line(f"  {PEER_NAME}: {NOT_MEASURED} ({peer_problem})")
        elif wrk.wrk_path() is None:
            report.line(f"  {PEER_NAME}: {NOT_MEASURED} (wrk is not installed)")
        if cells:
            _load_table(report, cells, OURS_NAME, PEER_NAME if peer else None)

        report.line()
        report.line(f"`studio serve --workers 2` against {PEER_NAME}:")
        workers_name = f"{OURS_NAME} --workers 2"
        if not serve_has_workers():
            report.line(f"  {workers_name}: {NOT_MEASURED}: serve has no --workers")
        elif wrk.wrk_path() is None:
            report.line(f"  {workers_name}: {NOT_MEASURED} (wrk is not installed)")
        else:
            try:
                with _ours(database_url, directory, seeded, ("--workers", "2")) as ours2:
                    problem, _size = _verify(ours2)
                    if problem:
                        raise RuntimeError(f"its answer is wrong: {problem}")
                    cells2 = _interleaved([ours2] + ([peer] if peer else []), seconds)
                _load_table(report, cells2, ours2.name, PEER_NAME if peer else None)
            except RuntimeError as error:
                report.line(f"  {workers_name}: {NOT_MEASURED} ({error})")

    report.line()
    report.line(
        f"SQL per request ({COUNTED} requests in a row through a counting proxy, after "
        f"{COUNT_WARM_UP} to warm up; less what the server sends idle in as long):"
    )
    report.line(
        f"  {'server':<28} {'round trips':>11} {'statements':>11} {'parses':>8}"
        f" {'connections':>12} {'idle r/trips':>14}   messages per request"
    )
    upstream = make_url(database_url)
    with CountingProxy(upstream.host or "127.0.0.1", upstream.port or 5432) as proxy:
        proxied = _through(database_url, proxy)
        try:
            # No generation runs here: the engine's sweep (every 2 s by default, some 20
            # round trips) would only blur the idle window subtracted below.
            with _ours(proxied, directory, seeded, GENERATION_POLL_SECONDS="3600") as ours:
                sql[OURS_NAME] = _count_sql(proxy, ours)
        except RuntimeError as error:
            sql[OURS_NAME] = Sql(problem=str(error))
        report.line(_sql_line(OURS_NAME, sql[OURS_NAME]))
        if node is None or peer_problem is not None:
            sql[PEER_NAME] = Sql(problem=peer_problem or "PostGraphile is not installed")
        else:
            try:
                with _peer(node, proxied, directory, seeded) as peer_counted:
                    sql[PEER_NAME] = _count_sql(proxy, peer_counted)
            except postgraphile.PeerUnavailable as error:
                sql[PEER_NAME] = Sql(problem=str(error))
        report.line(_sql_line(PEER_NAME, sql[PEER_NAME]))
    report.line()
    report.line("Summary (medians; ratio ours/peer):")
    _summary(report, cells, sql, [OURS_NAME, PEER_NAME])


def _sqlite_part(
    report: Report, seeded: SeededProject, url: str, directory: Path, seconds: float
) -> None:
    """Our read served from the same tree on SQLite (the embedded default); no peer."""
    name = f"{OURS_NAME} on SQLite"
    report.line(f"The same read served from SQLite (ours only; {RUNS} runs in a row, medians):")
    try:
        with _ours(url, directory, seeded) as ours:
            problem, size = _verify(ours)
            if problem:
                raise RuntimeError(f"its answer is wrong: {problem}")
            report.line(f"  {name}: answer checked, {size:,} bytes")
            if wrk.wrk_path() is None:
                raise RuntimeError("wrk is not installed (Debian package `wrk`)")
            target = dataclasses.replace(ours, name=name)
            cells = _interleaved([target], seconds)
    except RuntimeError as error:
        report.line(f"  {name}: {NOT_MEASURED} ({error})")
        return
    _load_table(report, cells, name, None)


def run(postgres_admin_url: str | None, *, seconds: float) -> int:
    """Print every figure of the side-by-side bench; the number not measured."""
    report = Report()
    report.line(
        f"Side by side: the nested storyboard read of one project ({IMAGES} images), "
        f"ours against {PEER_NAME} (amber preset, one Node process)"
    )
    if postgres_admin_url is None:
        report.line(f"  {NOT_MEASURED} (needs --postgres ADMIN_URL)")
        return report.unmeasured
    node: Path | None = None
    peer_problem: str | None = None
    try:
        node = postgraphile.install()
        report.line(
            f"  peer: {postgraphile.cache_folder()} (Node {postgraphile.node_version(node)})"
        )
    except postgraphile.PeerUnavailable as error:
        peer_problem = str(error)
    wrk_path = wrk.wrk_path()
    report.line(f"  load: {wrk_path or 'wrk is not installed'}")
    report.line(f"  machine: {_machine()} at the start")
    with (
        tempfile.TemporaryDirectory(prefix="studio-peer-") as name,
        asyncio.Runner() as runner,
    ):
        directory = Path(name)
        scratch = scratch_postgres_database(postgres_admin_url, prefix="studio_peer")
        try:
            database_url = runner.run(scratch.__aenter__())
        except (OSError, asyncpg.PostgresError) as error:
            report.line(f"PostgreSQL: {NOT_MEASURED} ({error})")
            return report.unmeasured
        try:
            try:
                seeded = runner.run(seed(database_url))
            except (RuntimeError, OSError, asyncpg.PostgresError, SQLAlchemyError) as error:
                report.line(f"PostgreSQL: {NOT_MEASURED} (seeding failed: {error})")
            else:
                report.line(f"  database: {_server_version(runner, database_url)}")
                report.line()
                _postgres_part(report, database_url, seeded, node, peer_problem, directory, seconds)
        finally:
            runner.run(scratch.__aexit__(None, None, None))
        report.line()
        sqlite_url = f"sqlite+aiosqlite:///{directory / 'side-by-side.db'}"
        try:
            seeded = runner.run(seed(sqlite_url))
        except (RuntimeError, OSError, SQLAlchemyError) as error:
            report.line(f"SQLite: {NOT_MEASURED} (seeding failed: {error})")
        else:
            _sqlite_part(report, seeded, sqlite_url, directory, seconds)
    report.line(f"  machine: {_machine()} at the end")
    return report.unmeasured


def _machine() -> str:
    """Cores and the 1-minute load average: how shared the machine was."""
    return f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"


def _server_version(runner: asyncio.Runner, database_url: str) -> str:
    async def version() -> str:
        url = make_url(database_url)
        connection = await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
        )
        try:
            return str(await connection.fetchval("SHOW server_version"))
        finally:
            await connection.close()

    return f"PostgreSQL {runner.run(version())}"


def main(postgres_admin_url: str | None, *, seconds: float = 10.0) -> None:
    """Run the side-by-side bench; exit 1 when a figure could not be measured."""
    unmeasured = run(postgres_admin_url, seconds=seconds)
    if unmeasured:
        print(f"{unmeasured} figure(s) not measured: see above.", file=sys.stderr)
        sys.exit(1)
