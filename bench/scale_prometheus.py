"""Prometheus's own cost of watching the mesh (issue 19 item 4): the ``prometheus`` part
of ``bench/scale.py``.

A lab grid of ``--prom-nodes`` agents (``--no-portal``, a real node's defaults) and
Debian's ``prometheus`` beside it (:mod:`node.lab.observer`: its own namespace, cabled to
n1, the targets and rules ``meshhub prometheus-config`` writes), scraping every
``--prom-interval`` seconds. Once every node is ``up == 1``, over ``--prom-window``
seconds: the CPU the Prometheus process used (share of one core) and its RSS, and from
Prometheus's own series the median and slowest scrape of a node and the samples and
bytes one scrape carries.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.measure import cpu_seconds
from bench.meshlab import defaults_grid
from node.lab.observer import Observer

Report = Callable[[str, "float | str", str, str], None]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``prometheus`` part's options."""
    parser.add_argument("--prom-nodes", type=int, default=200,
                        help="prometheus: the grid's size")
    parser.add_argument("--prom-interval", type=float, default=15.0,
                        help="prometheus: scrape interval, seconds")
    parser.add_argument("--prom-window", type=float, default=120.0,
                        help="prometheus: seconds its CPU is measured over")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def run_prometheus(args: argparse.Namespace, root: Path, report: Report) -> None:
    """Every figure of the module docstring, in one lab."""
    count = args.prom_nodes
    mesh = defaults_grid(count, root / "prom")
    observer: Observer | None = None
    try:
        observer = Observer.attach(mesh, "n1", interval=args.prom_interval, folder=root)
        deadline = time.monotonic() + 300
        while len(observer.write_targets()) < count:  # as nodes join, the technician re-runs
            if time.monotonic() > deadline:
                raise RuntimeError("n1's prometheus-config did not list every node in 300 s")
            time.sleep(args.prom_interval)  # the next health sample names more nodes
        while True:
            up = observer.query('up{job="meshhub"}') or {}
            if sum(1 for v in up.values() if v == 1) == count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sum(up.values()):g} of {count} nodes up in "
                                   "Prometheus after 300 s")
            time.sleep(1)
        assert observer.process is not None
        pid = observer.process.pid
        before, started = cpu_seconds(pid), time.monotonic()
        time.sleep(args.prom_window)  # the measuring window
        cpu = 100 * (cpu_seconds(pid) - before) / (time.monotonic() - started)
        report(f"prometheus_cpu_{count}_nodes", cpu, "% of a core",
               f"(scraping every {args.prom_interval:g} s)")
        report(f"prometheus_rss_{count}_nodes", _rss_mib(pid), "MiB", "(context)")
        durations = list((observer.query("scrape_duration_seconds") or {}).values())
        report("prometheus_scrape_seconds_p50", statistics.median(durations), "s",
               "(one node's /metrics, through the mesh)")
        report("prometheus_scrape_seconds_max", max(durations), "s", "(context)")
        samples = list((observer.query("scrape_samples_scraped") or {}).values())
        report("prometheus_samples_per_node", statistics.median(samples), "samples",
               "(one scrape)")
        sizes = list((observer.query("scrape_body_size_bytes") or {}).values())
        if sizes:  # Prometheus 2.42 has it only with --enable-feature=extra-scrape-metrics
            report("prometheus_bytes_per_scrape", statistics.median(sizes), "B", "(one node)")
    finally:
        if observer is not None:
            observer.close()
        mesh.down()
