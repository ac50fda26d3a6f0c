"""Load with `wrk` (https://github.com/wg/wrk): one GraphQL POST, over and over, from
another process.

A Lua script sets the method, body and headers, checks every response (HTTP 200 with
no `"errors"` in it; anything else is counted as bad) and prints one line at the end
with what `done()` sees: requests, duration, and the 50th and 99th latency percentiles
in microseconds (wrk's `latency:percentile`, as `--latency` prints them). wrk's
`--timeout` is raised to 30 s so that a slow server's answers are measured, not
dropped.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT = "30s"
MARK = "WRK_RESULT"
SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{headers}
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
bad = 0
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local total_bad = 0
  for _, thread in ipairs(threads) do
    total_bad = total_bad + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format("{mark} %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(99)), total_bad,
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


class LoadUnavailable(Exception):
    """wrk is not installed, or a run could not be made or read; the message says why."""


@dataclass(frozen=True)
class LoadRun:
    """One wrk run: requests completed in `seconds`, latency percentiles in ms, and the
    responses that were not a clean 200 (`bad`) or failed on the socket (`errors`)."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    bad: int
    errors: int

    @property
    def per_second(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        """Whether every response was a 200 without GraphQL errors, and some came."""
        return self.requests > 0 and self.bad == 0 and self.errors == 0


def wrk_path() -> str | None:
    """The `wrk` executable on PATH (Debian's package `wrk`), or None."""
    return shutil.which("wrk")


def script(payload: dict[str, Any], headers: dict[str, str]) -> str:
    """The Lua script POSTing `payload` as JSON with `headers` and checking answers."""
    body = json.dumps(payload, separators=(",", ":"))
    if "]==]" in body:
        raise ValueError("the body holds the Lua string's closing bracket")
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    return SCRIPT.format(body=body, headers=lines, mark=MARK)


def run(
    url: str,
    payload: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    connections: int,
    seconds: float,
) -> LoadRun:
    """Run wrk against `url` for `seconds` with `connections` (one thread, two from 2
    connections up). Raises LoadUnavailable when wrk is missing, fails, or prints no
    result."""
    wrk = wrk_path()
    if wrk is None:
        raise LoadUnavailable("wrk is not installed (Debian package `wrk`)")
    threads = 1 if connections < 2 else 2  # two cores here
    with tempfile.TemporaryDirectory(prefix="studio-wrk-") as directory:
        path = Path(directory) / "post.lua"
        path.write_text(script(payload, headers or {}))
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={TIMEOUT}",
            "-s",
            str(path),
            url,
        ]
        try:
            done = subprocess.run(  # noqa: S603 (our own command line)
                command, capture_output=True, text=True, timeout=seconds + 60, check=False
            )
        except subprocess.TimeoutExpired:
            raise LoadUnavailable(f"wrk did not finish within {seconds + 60:.0f} s") from None
    return parse(done.stdout, done.stderr, done.returncode)


def parse(stdout: str, stderr: str = "", returncode: int = 0) -> LoadRun:
    """The result line the script prints; LoadUnavailable if there is none."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            requests, micros, p50, p99, bad, errors = (int(n) for n in line.split()[1:7])
            return LoadRun(requests, micros / 1e6, p50 / 1000, p99 / 1000, bad, errors)
    said = (stderr.strip() or stdout.strip() or "no output").splitlines()[-1]
    raise LoadUnavailable(f"wrk printed no result (exit {returncode}): {said}")
