"""Mesh benchmarks in the lab (root): propagation, idle traffic, re-convergence, start-up, memory.

Run with ``sudo .venv/bin/python -m bench.mesh`` (every part) or choose parts with
``--parts startup,memory`` (``ring``, ``startup``, ``memory``, ``idle``, ``propagation``);
``--radio`` measures the radio lab instead (:mod:`bench.mesh_radio`).
Prints ``name: value unit (target: ...)``. Start-up (d) is the time ``MeshLab.up`` takes
until every agent and portal answers and babeld routes connect all 20 nodes; every node
is complete (gate loaded, babeld and dnsmasq running, portal as ``nobody`` when the
temporary folder allows it).
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from node.lab import MeshLab

PARTS = ("ring", "startup", "memory", "idle", "propagation")


def report(name: str, value: float | str, unit: str, target: str) -> None:
    """One result line."""
    text = f"{value:.2f}" if isinstance(value, float) else value
    print(f"{name}: {text} {unit} (target: {target})", flush=True)


def link_bytes(mesh: MeshLab) -> int:
    """Bytes sent on every lab link so far (each link counted once, from its lower end)."""
    total = 0
    for a, b in mesh.state.links:
        out = mesh.exec(a, ["cat", f"/sys/class/net/m-{b}/statistics/tx_bytes"],
                        capture_output=True, timeout=10).stdout
        out_b = mesh.exec(b, ["cat", f"/sys/class/net/m-{a}/statistics/tx_bytes"],
                          capture_output=True, timeout=10).stdout
        total += int(out or 0) + int(out_b or 0)
    return total


def line_benchmarks(root: Path, parts: set[str]) -> None:
    """(d) start-up, (a) propagation end to end, (b) idle bytes, (e) memory: a 20-node line."""
    started = time.monotonic()
    mesh = MeshLab.up(20, "line", state_dir=root / "line", hello_interval=4.0, wait=180)
    try:
        report("lab_startup_20_nodes", time.monotonic() - started, "s", "<= 30 s")
        if "memory" in parts:
            memory(mesh)
        if "idle" in parts:
            idle(mesh)
        if "propagation" in parts:
            propagation(mesh)
    finally:
        mesh.down()


def idle(mesh: MeshLab) -> None:
    """(b) bytes per second and link while nothing changes."""
    before, t0 = link_bytes(mesh), time.monotonic()
    time.sleep(30)
    rate = (link_bytes(mesh) - before) / (time.monotonic() - t0) / len(mesh.state.links)
    report("idle_bytes_per_link", rate, "B/s", "<= 1024 B/s (hello 4 s, sync round 10 s)")


def propagation(mesh: MeshLab, far: str = "n20", posts: int = 20) -> None:
    """(a) a post on n1 until ``far``'s portal shows it, p50/p95 over ``posts`` posts."""
    from bench.meshlab import meshhub as run
    from bench.meshlab import organiser, portal_page

    actor = organiser(mesh, "n1")
    times = []
    for _ in range(posts):
        title = f"Bench {secrets.token_hex(4)}"
        t = time.monotonic()
        run(mesh, "n1", "post", "notice", "--as", actor, "--title", title, "--body", "b")
        while title not in portal_page(mesh, far, "/notices/"):
            if time.monotonic() - t > 60:
                break
            time.sleep(0.1)
        times.append(time.monotonic() - t)
    times.sort()
    report("post_to_far_end_p50", statistics.median(times), "s", "")
    report("post_to_far_end_p95", times[int(0.95 * (len(times) - 1))], "s", "<= 5 s")


def memory(mesh: MeshLab) -> None:
    """(e) resident memory of one node's agent + portal (unique set size, like smem USS),
    after the portal has served the residents' main pages (its templates and translations
    are loaded on first use, about 8 MiB)."""
    import psutil

    from bench.meshlab import portal_page

    for path in ("/", "/notices/", "/listings/", "/library/", "/about", "/welcome"):
        portal_page(mesh, "n10", path)
    total = 0
    for role, pid in sorted(mesh.node("n10").pids.items()):
        uss = psutil.Process(pid).memory_full_info().uss
        report(f"node_{role}_memory", uss / 2**20, "MiB", "part of the line below")
        total += uss
    report("node_agent_plus_portal_memory", total / 2**20, "MiB", "<= 60 MiB")


def ring_benchmark(root: Path) -> None:
    """(c) time until all pairs reach each other after the middle node of a 10-ring dies."""
    hello = 1.0
    mesh = MeshLab.up(10, "ring", state_dir=root / "ring", hello_interval=hello, portal=False,
                      wait=120)
    try:
        from bench.meshlab import agent_name

        mesh.kill("n5")
        t = time.monotonic()
        others = [n for n in mesh.state.nodes if n != "n5"]
        pending = [(a, b) for a in others for b in others if a < b]
        while pending and time.monotonic() - t < 120:
            pending = [(a, b) for a, b in pending if agent_name(mesh, a, b) != b]
        report("ring10_reconverge_after_kill", time.monotonic() - t, "s",
               f"report next to hello interval {hello:g} s")
    finally:
        mesh.down()


def main() -> None:
    """Run the chosen parts (default: every part) once."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, of: {', '.join(PARTS)}")
    parser.add_argument("--radio", action="store_true",
                        help="the radio lab instead (bench/mesh_radio.py; needs mac80211_hwsim)")
    args = parser.parse_args()
    if args.radio:
        from bench.mesh_radio import main as radio_main

        radio_main()
        return
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(parts - set(PARTS)))}")
    root = Path(tempfile.mkdtemp(prefix="meshhub-bench-mesh-"))
    root.chmod(0o755)  # the lab's portals run as nobody
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        if "ring" in parts:
            ring_benchmark(root)
        if parts - {"ring"}:
            line_benchmarks(root, parts)
    finally:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
