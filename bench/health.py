"""Benchmark of the health collector and the agent's /metrics.

Prints ``name: value unit (target: ...)`` lines:

- CPU time of one sample on this machine's real sources, and what that is as a
  share of one core at the default interval (target: under 1 %);
- RSS the health code adds to a process that already has Python and psutil
  (target: under 15 MB);
- /metrics response time with 20 sensors and 50 interfaces simulated through
  the collector's injectable sources (the agent served by waitress, over
  loopback, keep-alive connection).

Run: ``.venv/bin/python bench/health.py``
"""

from __future__ import annotations

import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SAMPLES = 200
REQUESTS = 300


def rss() -> int:
    return psutil.Process().memory_info().rss


def main() -> None:
    baseline = rss()
    from node.agent import Agent, node_sources
    from node.config import parse_config
    from node.health import NetCounters, SensorReading
    from node.health.api import create_app  # noqa: F401 (counted in the RSS)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = parse_config(f'[node]\ndata_dir = "{tmp}"\n[agent]\nport = 19180\n')
        interval = cfg.health.interval_seconds
        agent = Agent(cfg, sources=node_sources(cfg), port=0)
        monitor = agent.monitor
        monitor.tick()
        start = time.process_time()
        for _ in range(SAMPLES):
            monitor.tick()
        per_sample = (time.process_time() - start) / SAMPLES
        added = rss() - baseline
        monitor.close()

        print(f"collector_cpu_per_sample: {per_sample * 1000:.2f} ms (real sources, this machine)")
        print(f"collector_cpu_share: {per_sample / interval * 100:.3f} % of one core at "
              f"{interval} s (target: < 1 %)")
        print(f"collector_added_rss: {added / 2**20:.1f} MB (target: < 15 MB)")

        sensors = [SensorReading(f"power{i}", "power", "ina226", True,
                                 {"bus_voltage_volts": 12.0, "current_amperes": 0.4,
                                  "power_watts": 4.8}) for i in range(20)]
        interfaces = {f"veth{i}": NetCounters(i * 1000, i * 900, i, i, 0, 0) for i in range(50)}
        sources = node_sources(cfg)
        sources.sensors = lambda: sensors
        sources.net_counters = lambda: interfaces
        served = Agent(parse_config(f'[node]\ndata_dir = "{tmp}/b"\n'), sources=sources, port=0)
        served.start()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
            times = []
            size = 0
            for _ in range(REQUESTS):
                begin = time.perf_counter()
                conn.request("GET", "/metrics")
                body = conn.getresponse().read()
                times.append(time.perf_counter() - begin)
                size = len(body)
            conn.close()
        finally:
            served.stop()
        times.sort()
        print(f"metrics_response_p50: {statistics.median(times) * 1000:.2f} ms "
              f"(20 sensors, 50 interfaces, {size} bytes; target: well under a scrape timeout)")
        print(f"metrics_response_p95: {times[int(len(times) * 0.95)] * 1000:.2f} ms")


if __name__ == "__main__":
    main()
