"""The burst: 500 phones open the welcome page, then one notice, within 10 s, on one Pi core.

An emergency notice or a street party: everyone joins at once. 500 phones
arrive at random moments over 10 s; each opens a connection, asks for the
welcome page (the captive portal's house rules and Connect button; its form
gives the phone a session cookie for the CSRF token), then, on the same
connection and with that cookie, one notice page. 1 % of the phones send a
malformed request instead (a bad query string, a 10 KB header, a broken Range,
an unknown language). The portal and nginx run pinned to core 0 inside a
cgroup holding them to the CPU of **one Pi Zero 2 W core** (below); the phones
are an asyncio client on core 1.

The budget. A Pi Zero 2 W has four Cortex-A53 cores at 1.0 GHz, the core of a
Pi 3B+ at 1.4 GHz. Published figures:

* sysbench cpu, one thread: Pi 3B+ 687 events/s, Pi 4 (Cortex-A72, 1.5 GHz)
  1,478 (leoncode.co.uk, "Raspberry Pi CPU Benchmarks"), so a Pi Zero 2 W core
  does about 687 x 1.0/1.4 = 491, and a Pi 4 core is 3.0 times as fast;
* the benchmarks game's n-body in Python, 5 million steps, on a Pi 4 at
  1.5 GHz: 158 s (chaitanyamehta.github.io, "Performance Analysis of
  Languages on Raspberry Pi"), hence about 476 s on a Pi Zero 2 W core.

This script times the same n-body here (CPU time, 500,000 steps, x 10) and
gives the cgroup that share of one core (``cpu.max`` on cgroup v2,
``cpu.cfs_quota_us`` on v1): Python on this machine then runs about as fast as
on the Pi. An estimate, within tens of per cent (docs/serving.md says which way
each uncertainty leans); ``--budget-scale 0.5`` runs on half of it, to show how
much the verdict depends on it.

The agent is not started: none of the burst's requests reach it (a new phone's
welcome page is a file nginx sends, portal/welcome_file.py; the notice a page
file). The agent with its gate, mesh and zeroconf belongs in the lab's network
namespaces, not on this machine's own network; its background work is not counted.

Targets: no error, no 5xx, p95 of the well-formed requests <= 1 s. Each run's
figures are taken over all 500 phones; the run is repeated (default 5) and the
medians reported.

    python bench/burst.py [--runs 5] [--phones 500] [--seconds 10] [--budget-scale 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import load, portal_process, tools_missing, write_config
from bench.measure import (
    MIN_RUNS,
    Report,
    children_of,
    cpu_seconds,
    load_average,
    median,
    percentile,
)
from bench.street import NGINX, add_street, nginx, wait_for_page_files

#: n-body, 5 million steps, Python, one Pi 4 core at 1.5 GHz (seconds; see above).
PI4_NBODY_SECONDS = 158.3
#: How much faster a Pi 4 core is than a Pi Zero 2 W core (sysbench, see above).
PI4_OVER_ZERO2 = 1478 / (687 * 1.0 / 1.4)
PERIOD_US = 100_000
LANGUAGES = ["en-GB,en;q=0.9", "es-ES,es;q=0.9", "ar,en;q=0.5", "fr-FR,fr;q=0.9", "pl"]


def nbody(steps: int) -> float:
    """The benchmarks game's n-body (its Python program, condensed): returns the energy."""
    pi, days = 3.141592653589793, 365.24
    mass = 4 * pi * pi
    bodies = [[[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], mass],
              [[4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01],
               [1.66007664274403694e-03 * days, 7.69901118419740425e-03 * days,
                -6.90460016972063023e-05 * days], 9.54791938424326609e-04 * mass],
              [[8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01],
               [-2.76742510726862411e-03 * days, 4.99852801234917238e-03 * days,
                2.30417297573763929e-05 * days], 2.85885980666130812e-04 * mass],
              [[1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01],
               [2.96460137564761618e-03 * days, 2.37847173959480950e-03 * days,
                -2.96589568540237556e-05 * days], 4.36624404335156298e-05 * mass],
              [[1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01],
               [2.68067772490389322e-03 * days, 1.62824170038242295e-03 * days,
                -9.51592254519715870e-05 * days], 5.15138902046611451e-05 * mass]]
    pairs = [(bodies[i], bodies[j]) for i in range(5) for j in range(i + 1, 5)]
    dt = 0.01
    for _ in range(steps):
        for ([x1, y1, z1], v1, m1), ([x2, y2, z2], v2, m2) in pairs:
            dx, dy, dz = x1 - x2, y1 - y2, z1 - z2
            mag = dt * ((dx * dx + dy * dy + dz * dz) ** -1.5)
            b1, b2 = m1 * mag, m2 * mag
            v1[0] -= dx * b2
            v1[1] -= dy * b2
            v1[2] -= dz * b2
            v2[0] += dx * b1
            v2[1] += dy * b1
            v2[2] += dz * b1
        for r, [vx, vy, vz], _m in bodies:
            r[0] += dt * vx
            r[1] += dt * vy
            r[2] += dt * vz
    return sum(m * (v[0] ** 2 + v[1] ** 2 + v[2] ** 2) / 2 for _, v, m in bodies)


def pi_share() -> tuple[float, float]:
    """(share of one core here equal to one Pi Zero 2 W core, n-body seconds here)."""
    start = time.process_time()
    nbody(500_000)
    here = (time.process_time() - start) * 10
    return here / (PI4_NBODY_SECONDS * PI4_OVER_ZERO2), here


@contextlib.contextmanager
def cpu_budget(share: float) -> Iterator[tuple[Path, str]]:
    """A cgroup limited to ``share`` of one core: (its folder, how it was set)."""
    quota = max(1000, int(share * PERIOD_US))
    name = f"meshhub-burst-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup")
    if (v2 / "cgroup.controllers").exists():
        group = v2 / name
        group.mkdir()
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        how = f"cgroup v2 cpu.max = {quota} {PERIOD_US}"
    else:
        group = Path("/sys/fs/cgroup/cpu") / name
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
        how = f"cgroup v1 cpu.cfs_quota_us = {quota} per {PERIOD_US} us"
    try:
        yield group, how
    finally:
        parent = group.parent / "cgroup.procs"
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                parent.write_text(pid)
        group.rmdir()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """One HTTP/1.1 response read to its end: (status, lower-cased headers)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            key, _, value = line.partition(":")
            headers.setdefault(key.strip().lower(), value.strip())
            if key.strip().lower() == "set-cookie":
                headers.setdefault("cookies", "")
                headers["cookies"] += value.split(";")[0] + "; "
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers


def _request(path: str, language: str, cookie: str = "", extra: str = "") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: hub.mesh",
             "User-Agent: Mozilla/5.0 (Linux; Android 14) Mobile", "Accept-Encoding: gzip",
             f"Accept-Language: {language}"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def phone(port: int, delay: float, notice: str, bad: bool, rng: random.Random,
                latencies: list[float], problems: dict[str, int]) -> None:
    """One phone: welcome, then the notice with the welcome page's cookie."""
    await asyncio.sleep(delay)
    language = rng.choice(LANGUAGES)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
    except (OSError, TimeoutError):
        problems["connect"] += 1
        return
    try:
        if bad:
            writer.write(rng.choice([
                _request("/welcome?page=%ZZ", language), _request("/welcome", "zz;q=banana"),
                _request(f"/notices/{notice}", language, extra="Range: bytes=9-3"),
                _request("/welcome", language, extra="X-Padding: " + "x" * 10_000)]))
            await writer.drain()
            status, _ = await asyncio.wait_for(_read_response(reader), 30)
            problems["5xx"] += status >= 500
            return
        cookie = ""
        for path in ("/welcome", f"/notices/{notice}"):
            start = time.perf_counter()
            writer.write(_request(path, language, cookie))
            await writer.drain()
            status, headers = await asyncio.wait_for(_read_response(reader), 30)
            latencies.append((time.perf_counter() - start) * 1000)
            cookie = headers.get("cookies", "").strip("; ") or cookie
            if status != 200:
                problems["5xx" if status >= 500 else "other status"] += 1
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        problems["broken or timed out"] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def burst(port: int, phones: int, seconds: float, notice: str,
                seed: int) -> tuple[list[float], dict[str, int], float]:
    """All phones, arriving uniformly at random over ``seconds``: latencies, problems, span."""
    rng = random.Random(seed)
    latencies: list[float] = []
    problems = {"connect": 0, "5xx": 0, "other status": 0, "broken or timed out": 0}
    bad = set(rng.sample(range(phones), max(1, phones // 100)))
    start = time.perf_counter()
    await asyncio.gather(*(phone(port, rng.uniform(0, seconds), notice, n in bad,
                                 random.Random(rng.random()), latencies, problems)
                           for n in range(phones)))
    return latencies, problems, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Calibrate, load, start, throttle, burst ``--runs`` times, report medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=MIN_RUNS)
    parser.add_argument("--phones", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="multiply the Pi core's share by this (0.5: a core half as fast; "
                             "how much the verdict depends on the estimate)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/burst.py: needs root (a cgroup holds the portal and nginx to one Pi core)",
              file=sys.stderr)
        return 2
    if tools_missing("bench/burst.py", "taskset", NGINX):
        return 2
    os.sched_setaffinity(0, {1})  # the phones (and the calibration) on core 1
    report = Report()
    share, here = pi_share()
    report.info("pi_zero2_core_share", share * 100, "% of one core here",
                f"n-body 5M steps: {here:.1f} s CPU here, "
                f"{PI4_NBODY_SECONDS * PI4_OVER_ZERO2:.0f} s estimated on a Pi Zero 2 W"
                + (f"; the budget scaled by {args.budget_scale:g}: "
                   f"{share * args.budget_scale * 100:.2f} %" if args.budget_scale != 1.0 else ""))
    share *= args.budget_scale
    with tempfile.TemporaryDirectory(prefix="meshhub-burst-") as tmp:
        folder = Path(tmp)
        config = write_config(folder)
        ids = load(config, listings=300, items=50, big_mb=1)
        add_street(config)
        from node.hub import open_hub

        store, _ = open_hub(config)
        notice = store.notices()[0].id
        store.close()
        static = folder / "static"
        static.mkdir()
        with (portal_process(folder / "node.toml") as (portal, portal_port),
              nginx(folder, config, ids["library_dir"], portal_port, static) as (front, _, master)):
            wait_for_page_files(config)
            workers = children_of(master)  # its workers, cache manager and loader
            with cpu_budget(share) as (group, how):
                for pid in [portal.pid, *workers]:
                    (group / "cgroup.procs").write_text(str(pid))
                runs, used = [], []
                for run in range(args.runs):
                    before = cpu_seconds(portal.pid), cpu_seconds(*workers), throttled(group)
                    latencies, problems, span = asyncio.run(
                        burst(front, args.phones, args.seconds, notice, seed=run))
                    runs.append((latencies, problems, span, load_average()))
                    used.append((cpu_seconds(portal.pid) - before[0],
                                 cpu_seconds(*workers) - before[1], throttled(group) - before[2]))
    p95 = median(percentile(r[0], 0.95) for r in runs)
    errors = median(sum(r[1].values()) for r in runs)
    fivexx = sum(r[1]["5xx"] for r in runs)
    note = (f"{args.phones} phones in {args.seconds:.0f} s, median of {len(runs)}; {how}; "
            f"p50 {median(percentile(r[0], 0.5) for r in runs):.0f} ms; last phone done after "
            f"{median(r[2] for r in runs):.1f} s; loads {', '.join(f'{r[3]:.0f}' for r in runs)}")
    report.at_most("burst_p95", p95, "ms", 1000, note)
    portal_ms, nginx_ms = (median(u[i] for u in used) * 1000 / args.phones for i in (0, 1))
    report.info("burst_cpu_per_phone", portal_ms + nginx_ms, "ms of CPU here",
                f"portal {portal_ms:.3f}, nginx {nginx_ms:.3f} ms per phone (welcome + notice); "
                f"budget periods throttled {median(u[2] for u in used):.0f}; median of {len(used)}")
    report.at_most("burst_errors", errors, "phones", 0,
                   "; ".join(f"{k} {median(r[1][k] for r in runs):.0f}" for k in runs[0][1]))
    report.at_most("burst_5xx", fivexx, "responses", 0, "all runs, malformed 1 % included")
    return report.exit_code()


def throttled(group: Path) -> int:
    """How many of the cgroup's periods ran out of budget so far (``cpu.stat``)."""
    for line in (group / "cpu.stat").read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == "nr_throttled":
            return int(value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
