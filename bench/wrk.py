"""wrk over many distinct paths: the load generator of bench/ (pinned to its own core).

wrk requests one URL unless told otherwise; a benchmark that asks for one page
measures a cache. :func:`run_paths` gives wrk a Lua script that picks a path at
random from a list for every request, and reports requests/s, p50/p95/p99 and
non-2xx answers.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LUA", "WrkResult", "run_paths"]

#: Random paths from a file (argument 1), seeded (argument 2); one RESULT line at the end.
LUA = r"""
local paths = {}
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(tonumber(args[2] or "1"))
end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%f p50_us=%d p95_us=%d p99_us=%d errors=%d status=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(95), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""
_RESULT = re.compile(r"RESULT requests=(\d+) seconds=([\d.]+) p50_us=(\d+) p95_us=(\d+) "
                     r"p99_us=(\d+) errors=(\d+) status=(\d+)")


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: requests/s, latency percentiles (ms), socket errors, non-2xx/3xx answers."""

    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    bad_status: int
    requests: int


def run_paths(base_url: str, paths: list[str], *, seconds: float = 5, connections: int = 4,
              core: int | None = 1, seed: int = 1, timeout_s: int = 10) -> WrkResult:
    """Run wrk (one thread, ``connections`` keep-alive connections) over random ``paths``."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="meshhub-wrk-") as tmp:
        script = Path(tmp) / "paths.lua"
        script.write_text(LUA, encoding="utf-8")
        listing = Path(tmp) / "paths.txt"
        listing.write_text("".join(p + "\n" for p in paths), encoding="utf-8")
        duration = f"{max(1, round(seconds))}s"  # wrk takes whole seconds only
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--timeout", f"{timeout_s}s",
                   "-s", str(script), base_url, "--", str(listing), str(seed)]
        if core is not None:
            command = ["taskset", "-c", str(core), *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              timeout=seconds + timeout_s + 30)
    found = _RESULT.search(done.stdout)
    if found is None:
        raise RuntimeError(f"wrk printed no result for {base_url}:\n{done.stdout}{done.stderr}")
    requests, duration, p50, p95, p99, errors, status = found.groups()
    return WrkResult(rps=int(requests) / float(duration), p50_ms=int(p50) / 1000,
                     p95_ms=int(p95) / 1000, p99_ms=int(p99) / 1000, errors=int(errors),
                     bad_status=int(status), requests=int(requests))
