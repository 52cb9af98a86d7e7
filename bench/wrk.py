"""Drive wrk (Debian's `wrk` package) with a POST body and headers, and read its summary as JSON.

The Lua script reads the body and headers from environment variables, so one script serves every
target; its `done` hook prints one `BENCH_JSON {...}` line with the totals and latency percentiles.
Given several addresses, wrk's threads connect to them in turn (thread 1 to the first, thread 2 to the
second, ...): one load generator spread evenly over several servers, as a load balancer would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

LUA = r"""
local function read(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

wrk.method = "POST"
wrk.body = read(os.getenv("BENCH_BODY_FILE"))
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
local auth = os.getenv("BENCH_AUTHORIZATION")
if auth and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local addresses = os.getenv("BENCH_ADDRESSES")
if addresses and addresses ~= "" then
  local targets, started = {}, 0
  for host, port in string.gmatch(addresses, "([^,]+):(%d+)") do
    table.insert(targets, {host, port})
  end
  setup = function(thread)
    local target = targets[started % #targets + 1]
    started = started + 1
    thread.addr = wrk.lookup(target[1], target[2])[1]
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_us: int
    connect_errors: int
    read_errors: int
    write_errors: int
    status_errors: int  # answers with a status >= 400
    timeouts: int
    p50_us: int
    p90_us: int
    p99_us: int
    mean_us: float
    max_us: int

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def failures(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.status_errors + self.timeouts

    def as_dict(self) -> dict:
        return {**asdict(self), "rps": round(self.rps, 1), "failures": self.failures}


def available() -> bool:
    return shutil.which("wrk") is not None


class Wrk:
    """Runs wrk against URLs with one fixed body; `run()` returns the parsed summary."""

    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        self._dir = tempfile.mkdtemp(prefix="rtserve-wrk-")
        self.script = Path(self._dir) / "post.lua"
        self.script.write_text(LUA)
        self.body_file = Path(self._dir) / "body"
        self.body_file.write_bytes(body)
        self.content_type = content_type

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def command(
        self, url: str, connections: int, duration: float, timeout: float = 10.0, addresses: Sequence[str] = ()
    ) -> list[str]:
        threads = max(1, min(connections, 2), len(addresses))  # one thread per address at least
        return [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={timeout:g}s",
            "--latency",
            "-s",
            str(self.script),
            url,
        ]

    def run(
        self, url: str, connections: int, duration: float, authorization: str = "", addresses: Sequence[str] = ()
    ) -> WrkResult:
        """Load `url` (its path, on each of `addresses`, "host:port", if given) and return wrk's summary."""
        env = {
            **os.environ,
            "BENCH_BODY_FILE": str(self.body_file),
            "BENCH_CONTENT_TYPE": self.content_type,
            "BENCH_AUTHORIZATION": authorization,
            "BENCH_ADDRESSES": ",".join(addresses),
        }
        completed = subprocess.run(
            self.command(url, connections, duration, addresses=addresses),
            env=env,
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=False,
        )
        for line in completed.stdout.splitlines():
            if line.startswith("BENCH_JSON "):
                return WrkResult(**json.loads(line.removeprefix("BENCH_JSON ")))
        output = f"{completed.stdout}\n{completed.stderr}"
        raise RuntimeError(f"wrk printed no summary (exit {completed.returncode}):\n{output}")
