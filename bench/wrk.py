"""wrk over many distinct paths: the load generator of bench/ (pinned to its own core).

wrk requests one URL unless told otherwise; a benchmark that asks for one page
measures a cache. :func:`run_paths` gives wrk a Lua script that picks a path at
random from a list for every request, and reports requests/s, p50/p95/p99 and
non-2xx answers. The percentiles are of the latencies wrk measured, without the
correction wrk 4 applies before printing them (:func:`measured_latencies`).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HISTOGRAM_LUA", "LUA", "WrkResult", "histogram_percentile", "measured_latencies",
           "run_paths"]

#: Appended to a script's ``done``: wrk's latency histogram as printed (``value:count``
#: pairs, microseconds), for :func:`measured_latencies`. It replaces the global ``done``
#: wrk calls, calling the script's own first.
HISTOGRAM_LUA = r"""
local script_done = done
done = function(summary, latency, requests)
  if script_done then script_done(summary, latency, requests) end
  local pairs = {}
  for i = 1, #latency do
    local value, count = latency(i)
    pairs[#pairs + 1] = string.format("%d:%d", value, count)
  end
  io.write(string.format("HISTOGRAM duration=%d requests=%d timeouts=%d %s\n",
    summary.duration, summary.requests, summary.errors.timeout, table.concat(pairs, " ")))
end
"""

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
""" + HISTOGRAM_LUA
_HISTOGRAM = re.compile(r"HISTOGRAM duration=(\d+) requests=(\d+) timeouts=(\d+) ?([\d: ]*)")


def measured_latencies(output: str, connections: int) -> dict[int, int]:
    """The latencies wrk measured (microseconds: count), without its own correction.

    Before printing, wrk 4 "corrects" its histogram for coordinated omission
    (``stats_correct``): every latency L longer than twice the mean interval between
    a connection's requests, e = duration / (requests / connections), also counts
    at L - e, L - 2e, ... down to e, for requests a client sending at a fixed rate
    would have sent meanwhile. In this closed loop the few requests that reach the
    portal (hundreds of ms on a saturated core) then add more made-up samples than
    the thousands of files sent around them: the street's p95 through the front
    came out at 1.8 s where nginx's own log of the same load had 95 % of requests
    answered within 8 ms, and wrk's mean latency 15-25 times above connections /
    rate, which no closed loop allows. The correction adds the counts of L + e,
    L + 2e, ... to L (for L > e), so the measured count at L is the printed count
    at L less the printed count at L + e. Checked: the measured counts add up to
    the requests answered (less those over the timeout, never counted).
    """
    found = _HISTOGRAM.search(output)
    if found is None:
        raise RuntimeError(f"wrk printed no latency histogram:\n{output[-2000:]}")
    duration, requests, timeouts = (int(g) for g in found.groups()[:3])
    printed = {int(v): int(c) for v, c in (pair.split(":") for pair in found.group(4).split())}
    per_connection = requests // connections
    step = duration // per_connection if per_connection else 0
    if step <= 0:
        return printed
    measured = {value: count - (printed.get(value + step, 0) if value > step else 0)
                for value, count in printed.items()}
    measured = {value: count for value, count in measured.items() if count}
    if any(count < 0 for count in measured.values()) or \
            sum(measured.values()) != requests - timeouts:
        raise RuntimeError(f"wrk's latency histogram does not undo to {requests} requests "
                           f"(got {sum(measured.values())}): not wrk 4's correction?")
    return measured


def histogram_percentile(counts: dict[int, int], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of a histogram ``value: count``."""
    total = sum(counts.values())
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return float(value)
    return math.nan


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
    requests, duration, _, _, _, errors, status = found.groups()
    latencies = measured_latencies(done.stdout, connections)
    p50, p95, p99 = (histogram_percentile(latencies, f) for f in (0.50, 0.95, 0.99))
    return WrkResult(rps=int(requests) / float(duration), p50_ms=p50 / 1000,
                     p95_ms=p95 / 1000, p99_ms=p99 / 1000, errors=int(errors),
                     bad_status=int(status), requests=int(requests))
