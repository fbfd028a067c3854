"""Benchmark the emergency notice: posted on one end of a 10-node line, seen on every phone.

Run as root: ``.venv/bin/python bench/broadcast.py [--nodes 10] [--rounds 3]``. It builds
a mesh lab (``node.lab.MeshLab``: real agents, gates, babeld, dnsmasq, replication,
portals as ``nobody``; nothing leaves the namespaces) with a phone on every node. Every
phone presses Connect on its node's welcome page, then probes as phones do
(``bench/broadcast_run.py``: Android, Apple and RFC 8908 in turn, every 0.5 s).

Each round, n1 sends a broadcast (``meshhub broadcast send``) and the time until each
phone's probe is sent to the notice is recorded, from the moment the entry was signed
(its ``ts``: the namespaces share the host's clock) and from the command's start (which
adds the CLI's own start-up); then n<last> cancels it and the time until each phone is online
again is recorded. Target (issue 15): every phone <= 10 s after the post.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import percentile  # noqa: E402 (after the path line)


def main() -> None:
    """Build the lab, measure, remove everything."""
    from bench.broadcast_run import press, sent_at, start_probers, stop_probers
    from bench.meshlab import meshhub
    from bench.netlab import Lab, lab_tag
    from node.lab import MeshLab

    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="meshhub-bench-broadcast-"))
    folder.chmod(0o755)
    net, lab, phones = Lab(), None, []
    shown: list[float] = []
    commanded: list[float] = []
    freed: list[float] = []
    try:
        started = time.monotonic()
        lab = MeshLab.up(args.nodes, "line", state_dir=folder / "lab", lab_id=lab_tag(),
                         phones=True, hello_interval=1.0, wait=600)
        print(f"lab up with {args.nodes} nodes and phones: {time.monotonic() - started:.0f} s",
              flush=True)
        names = sorted(lab.state.nodes, key=lambda n: lab.node(n).number)
        for name in names:
            node = lab.node(name)
            press(net, node.phone_ns, f"10.64.{node.number}.1", "/welcome", "Connect")
        meshhub(lab, names[0], "organiser", "add", "bench", "--role", "admin",
                "--password-stdin", stdin="correct horse battery staple\n" * 2)
        net.wait_for("the account on the last node", lambda: "bench" in meshhub(
            lab, names[-1], "organiser", "list"), timeout=120, interval=0.5)
        phones = start_probers(lab)
        for phone in phones:
            phone.wait("online", 0, "online", timeout=60)
        for round_ in range(args.rounds):
            posted = time.monotonic()
            meshhub(lab, names[0], "broadcast", "send", "--as", "bench", "--title",
                    f"Round {round_}", "--body", "Bench.", "--minutes", "30")
            hits = [p.wait("notice", posted, "/emergency", timeout=120) for p in phones]
            signed = sent_at(lab, names[0])
            seen = [p.wall[hit] - signed for p, hit in zip(phones, hits, strict=True)]
            commanded += [hit - posted for hit in hits]
            cancelled = time.monotonic()
            meshhub(lab, names[-1], "broadcast", "cancel", "--as", "bench")
            ended = [p.wait("online", cancelled, "online", timeout=120) - cancelled
                     for p in phones]
            print(f"round {round_}: notice on every phone max {max(seen):.2f} s, "
                  f"online again max {max(ended):.2f} s", flush=True)
            shown += seen
            freed += ended
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(json.dumps({
            "nodes": args.nodes, "rounds": args.rounds, "probe_interval_s": 0.5,
            "command_start_to_notice_s": {"p50": round(percentile(commanded, 0.50), 2),
                                          "p95": round(percentile(commanded, 0.95), 2),
                                          "max": round(max(commanded), 2)},
            "signed_to_notice_s": {"p50": round(percentile(shown, 0.50), 2),
                                 "p95": round(percentile(shown, 0.95), 2),
                                 "max": round(max(shown), 2)},
            "cancel_to_online_s": {"p50": round(percentile(freed, 0.50), 2),
                                   "p95": round(percentile(freed, 0.95), 2),
                                   "max": round(max(freed), 2)},
            "loadavg": load}, indent=2))
    finally:
        stop_probers(phones)
        net.close()
        if lab is not None:
            lab.down()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
