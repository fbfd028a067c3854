"""Portal throughput and latency with 10,000 listings and 5,000 library items loaded.

The portal (waitress, ``python -m portal serve``) and nginx are pinned to
core 0, wrk (50 connections, one thread) to core 1. Each page is measured

* directly against waitress,
* through the production front (nginx + micro-cache + X-Accel for files),
* and as the same bytes served by nginx as static files (the ceiling),

all in the same run, and the ratios printed one per line as
``name: value unit (target: ...)``. Not a timed test: figures move from run
to run and machine to machine; compare within one run.

    python bench/portal.py            # 10 s per measurement
    python bench/portal.py --quick    # 3 s per measurement
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    NGINX,
    listening_socket,
    load,
    nginx_on_core0,
    portal_process,
    stop,
    tools_missing,
    wait_for_http,
    write_config,
)
from portal.nginx import render_site

WRK_SCRIPT = """
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT rps=%f bps=%f p50=%d p95=%d p99=%d errors=%d non2xx=%d\\n",
    summary.requests / seconds, summary.bytes / seconds,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, summary.errors.status))
end
"""
_RESULT = re.compile(r"RESULT rps=([\d.]+) bps=([\d.]+) p50=(\d+) p95=(\d+) p99=(\d+) "
                     r"errors=(\d+) non2xx=(\d+)")


def wrk(url: str, seconds: int, script: Path, connections: int = 50) -> dict[str, float]:
    """Run wrk on core 1 against ``url``; rps, bytes/s and latency percentiles (ms).

    One request first, unmeasured: it fills nginx's page cache (and the portal's).
    Without it the first 50 requests of a run wait on nginx's cache lock, which
    re-checks every 500 ms, and a 3 s run then reports a p95 of ~320 ms that no
    reader sees in steady state (expired pages are served stale while one
    request refreshes them: ``proxy_cache_use_stale updating``).
    """
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - loopback
        while response.read(1 << 20):
            pass
    result = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         "--timeout", "30s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 120)
    match = _RESULT.search(result.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result for {url}:\n{result.stdout}{result.stderr}")
    rps, bps, p50, p95, p99, errors, non2xx = (float(g) for g in match.groups())
    return {"rps": rps, "bps": bps, "p50": p50 / 1000, "p95": p95 / 1000, "p99": p99 / 1000,
            "errors": errors, "non2xx": non2xx}


def line(name: str, value: float, unit: str, target: str = "") -> None:
    """Print one figure: ``name: value unit (target: ...)``."""
    suffix = f" (target: {target})" if target else ""
    print(f"{name}: {value:.{0 if value >= 100 else 2}f} {unit}{suffix}", flush=True)


def report(name: str, figures: dict[str, float], *, download: bool = False) -> None:
    """The throughput and latency lines of one measurement."""
    if download:  # a 100 MB download outlasts a short run: latencies mean little
        line(f"{name}_throughput", figures["bps"] / 1e6, "MB/s")
    else:
        line(f"{name}_rps", figures["rps"], "requests/s")
        for pct in ("p50", "p95", "p99"):
            line(f"{name}_{pct}", figures[pct], "ms")
    if figures["errors"] or figures["non2xx"]:
        line(f"{name}_errors", figures["errors"] + figures["non2xx"], "responses")


def main(argv: list[str] | None = None) -> int:
    """Load the data, start everything pinned, measure, print, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per measurement")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=None,
                        help="portal.threads (default: the node.toml default)")
    parser.add_argument("--big-mb", type=int, default=100, help="size of the download")
    args = parser.parse_args(argv)
    seconds = args.duration or (3 if args.quick else 10)
    if tools_missing("bench/portal.py", "wrk", "taskset", NGINX):
        return 2

    with tempfile.TemporaryDirectory(prefix="meshhub-bench-") as tmp:
        folder = Path(tmp)
        config = write_config(folder, threads=args.threads)
        ids = load(config, big_mb=args.big_mb)
        print(f"# loaded 10000 listings, 5000 library items; download {args.big_mb} MB; "
              f"{seconds} s per measurement", flush=True)
        script = folder / "report.lua"
        script.write_text(WRK_SCRIPT)
        pages = {"home": "/", "listings": "/listings/for-sale?page=3",
                 "search": "/search?q=bicycle+garden"}
        download = f"/library/{ids['big_item']}/download"

        with portal_process(folder / "node.toml") as (_, portal_port):
            direct = f"http://127.0.0.1:{portal_port}"
            static = folder / "static-copy"
            static.mkdir()
            for name, path in pages.items():
                with urllib.request.urlopen(direct + path, timeout=30) as response:  # noqa: S310
                    (static / f"{name}.html").write_bytes(response.read())
            big = Path(ids["library_dir"]) / ids["big_sha"][:2] / ids["big_sha"]
            os.link(big, static / "big.wav")
            nginx, front_port, static_port = start_nginx(folder, config, ids["library_dir"],
                                                         portal_port, static)
            try:
                front = f"http://127.0.0.1:{front_port}"
                ceiling = f"http://127.0.0.1:{static_port}"
                results: dict[str, dict[str, float]] = {}
                for name, path in pages.items():
                    results[f"{name}_nginx_static"] = wrk(f"{ceiling}/{name}.html", seconds,
                                                          script)
                    results[f"{name}_front"] = wrk(front + path, seconds, script)
                    results[f"{name}_waitress"] = wrk(direct + path, seconds, script)
                    for kind in ("nginx_static", "front", "waitress"):
                        report(f"{name}_{kind}", results[f"{name}_{kind}"])
                results["download_nginx_static"] = wrk(f"{ceiling}/big.wav", seconds, script)
                results["download_front"] = wrk(front + download, seconds, script)
                results["download_waitress"] = wrk(direct + download, seconds, script)
                for kind in ("nginx_static", "front", "waitress"):
                    report(f"download_{kind}", results[f"download_{kind}"], download=True)
            finally:
                stop(nginx)

    print("# ratios against nginx serving the same bytes as static files", flush=True)
    for name in ("home", "listings", "search"):
        ceiling_rps = results[f"{name}_nginx_static"]["rps"]
        line(f"{name}_front_vs_nginx", 100 * results[f"{name}_front"]["rps"] / ceiling_rps,
             "%", ">= 25%" if name != "search" else "")
        line(f"{name}_waitress_vs_nginx",
             100 * results[f"{name}_waitress"]["rps"] / ceiling_rps, "%",
             ">= 25%" if name != "search" else "")
    ceiling_bps = results["download_nginx_static"]["bps"]
    line("download_front_vs_nginx", 100 * results["download_front"]["bps"] / ceiling_bps, "%",
         ">= 80%")
    line("download_waitress_vs_nginx",
         100 * results["download_waitress"]["bps"] / ceiling_bps, "%")
    line("search_p95_waitress", results["search_waitress"]["p95"], "ms", "<= 20 ms")
    line("search_p95_front", results["search_front"]["p95"], "ms", "<= 20 ms")
    return 0


def start_nginx(folder: Path, config: object, library_dir: str, portal_port: int,
                static: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """nginx on core 0: the node's site and plain files; (process, site port, files port).

    nginx inherits both listening sockets (its ``NGINX`` variable), bound here to
    ports of their own: no port is released and bound again.
    """
    front, files = listening_socket(), listening_socket()
    front_port, static_port = front.getsockname()[1], files.getsockname()[1]
    prefix = folder / "nginx"
    prefix.mkdir()
    site = render_site(config, library_dir=library_dir,  # type: ignore[arg-type]
                       listen=f"127.0.0.1:{front_port}", cache_dir=prefix / "cache",
                       portal_address=f"127.0.0.1:{portal_port}")
    site += (f"\nserver {{\n    listen 127.0.0.1:{static_port};\n    access_log off;\n"
             f"    sendfile on;\n    tcp_nopush on;\n    root {static};\n}}\n")
    process = nginx_on_core0(prefix, site, (front, files))
    wait_for_http(f"http://127.0.0.1:{front_port}/", process)
    wait_for_http(f"http://127.0.0.1:{static_port}/home.html", process)
    return process, front_port, static_port


if __name__ == "__main__":
    sys.exit(main())
