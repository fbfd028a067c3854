"""Benchmark uplink failover: how long the mesh's residents are without the internet when
the gateway they use loses its uplink, and how soon they are back on it.

Run as root, under the heavy lock: ``flock /work/heavy.lock .venv/bin/python
bench/uplink.py [--runs 5]``. It builds a mesh lab (``node.lab.MeshLab``: real
agents, gates, babeld, dnsmasq, portals) of 3 nodes in a ring (each linked to both
others), with phones; n1 and n2 are cabled to the lab's internet (an isp namespace with
a web server, :mod:`node.lab.uplinks`), n1 as the main uplink and n2 as a backup
(``clients.uplink_cost = 1024``), so n3 uses n1 while it works. (In a line n1 - n2 - n3
n3's traffic would leave through n2 all along: a gateway on the way sends it out of its
own uplink.) The nodes run a real node's defaults
(``--timings defaults``: the uplink is checked every 2 s, two failures withdraw it).

The phone of n3 is accepted, then fetches a page from the internet every 100 ms over
a new connection, each with a 0.5 s timeout (:func:`node.lab.uplinks.probe`); the page
names the cable that carried it. Each run cuts n1's uplink, alternately by taking
the cable down (a router switched off) and silently (the line stays up, nothing
comes back: only the agent's TCP check can tell), then restores it:

* ``failover``: from the cut until the phone's first page through n2;
* ``failback``: from the restore until its first page through n1 again;
* ``lost_fetches``: the phone's fetches that got nothing during a failover.

While it measures, the phone of n1 downloads from the internet without pause (the
load on the gateway being cut) and the machine's load average is printed on every
line. Target (docs/uplink.md): failover <= 10 s at the defaults.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import Report, load_average, median  # noqa: E402 (after the path line)

if TYPE_CHECKING:
    from node.lab import MeshLab

#: The bound on the gap at a real node's defaults (check every 2 s, 2 failures in a row,
#: 1 s per check, then babeld's retraction crossing the mesh).
FAILOVER_TARGET_SECONDS = 10.0


class PhoneProbe:
    """A phone fetching from the lab's internet without pause, read line by line: each
    try as (time received, cable address or None)."""

    def __init__(self, lab: MeshLab, phone: str, interval: float = 0.1) -> None:
        from node.lab.uplinks import INTERNET_ADDRESS

        self.tries: list[tuple[float, str | None]] = []
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", lab.namespace(phone), sys.executable, "-m",
             "node.lab.uplinks", "probe", INTERNET_ADDRESS, str(interval)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            seen = line.split()[-1]
            with self._lock:
                self.tries.append((time.monotonic(), None if seen == "-" else seen))

    def first_since(self, since: float, via: str, timeout: float) -> float | None:
        """When the first fetch through cable ``via`` came back after ``since``; None if
        none did within ``timeout`` seconds (waits on the phone's lines)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [t for t, seen in self.tries if t >= since and seen == via]
            if found:
                return found[0]
            if self._proc.poll() is not None:
                raise RuntimeError("the phone's fetcher stopped")
            time.sleep(0.05)
        return None

    def lost_between(self, start: float, end: float) -> int:
        """Fetches that came back with nothing between ``start`` and ``end``."""
        with self._lock:
            return sum(1 for t, seen in self.tries if start <= t <= end and seen is None)

    def close(self) -> None:
        """Stop fetching."""
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)


def cable_of(name: str) -> str:
    """The node's address on its cable to the isp: what the internet sees of its uplink."""
    from node.lab.uplinks import cable

    return cable(int(name[1:]))[1]


def accept_phone(lab: MeshLab, node: str) -> str:
    """Let node's phone through its gate (as the portal's Connect does); its address."""
    from node.gate.client import GateClient

    lease = lab.node(node).phone_lease
    GateClient(Path(lab.state.state_dir) / node / "run" / "gate.sock").allow(lease["ip"])
    return lease["ip"]


def failover(lab: MeshLab, probe: PhoneProbe, *, main: str, backup: str, silent: bool,
             timeout: float = 60) -> tuple[float, float, int]:
    """Cut ``main``'s uplink and restore it once the phone is through ``backup``:
    (failover seconds, failback seconds, fetches lost in the failover)."""
    from node.lab.uplinks import set_uplink

    before = time.monotonic()
    if probe.first_since(before, cable_of(main), timeout) is None:
        raise AssertionError(f"the phone does not reach the internet through {main}")
    cut = time.monotonic()
    set_uplink(lab, main, up=False, silent=silent)
    over = probe.first_since(cut, cable_of(backup), timeout)
    if over is None:
        set_uplink(lab, main, up=True)
        raise AssertionError(f"no fetch through {backup} within {timeout:g} s of the cut")
    lost = probe.lost_between(cut, over)
    restored = time.monotonic()
    set_uplink(lab, main, up=True)
    back = probe.first_since(restored, cable_of(main), timeout)
    if back is None:
        raise AssertionError(f"no fetch through {main} within {timeout:g} s of the restore")
    return over - cut, back - restored, lost


def _download(lab: MeshLab, phone: str, stop: threading.Event) -> None:
    """The gateway's own phone keeps fetching (the load on the node being cut)."""
    from node.lab.uplinks import INTERNET_ADDRESS

    while not stop.is_set():
        lab.exec(phone, ["curl", "-s", "-o", "/dev/null", "-m", "1",
                         f"http://{INTERNET_ADDRESS}/"], capture_output=True, timeout=10)


def main() -> int:
    """Build the lab, measure ``--runs`` failovers, remove everything."""
    from node.lab import MeshLab

    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="meshhub-bench-uplink-"))
    folder.chmod(0o755)
    lab = probe = None
    stop = threading.Event()
    report = Report()
    try:
        started = time.monotonic()
        lab = MeshLab.up(3, "ring", state_dir=folder / "lab", phones=True, wait=300,
                         timings="defaults", uplinks={"n1": 0, "n2": 1024})
        print(f"# lab up in {time.monotonic() - started:.0f} s (load {load_average():.1f})")
        accept_phone(lab, "n3")
        accept_phone(lab, "n1")
        probe = PhoneProbe(lab, "p3")
        loader = threading.Thread(target=_download, args=(lab, "p1", stop), daemon=True)
        loader.start()
        gaps: list[float] = []
        backs: list[float] = []
        lost: list[int] = []
        for run in range(args.runs):
            silent = bool(run % 2)
            gap, back, missed = failover(lab, probe, main="n1", backup="n2", silent=silent)
            print(f"# run {run + 1} ({'silent' if silent else 'cable down'}): failover "
                  f"{gap:.2f} s, failback {back:.2f} s, {missed} fetches lost "
                  f"(load {load_average():.1f})", flush=True)
            gaps.append(gap)
            backs.append(back)
            lost.append(missed)
        note = f"median of {len(gaps)} runs, half silent; max {max(gaps):.2f} s"
        report.at_most("uplink_failover", median(gaps), "s", FAILOVER_TARGET_SECONDS, note,
                       limit_text="defaults: check every 2 s, 2 failures")
        report.info("uplink_failback", median(backs), "s", f"median of {len(backs)} runs")
        report.info("uplink_lost_fetches", median(lost), "fetches",
                    "median per failover, one fetch every 100 ms")
    finally:
        stop.set()
        if probe is not None:
            probe.close()
        if lab is not None:
            lab.down()
        shutil.rmtree(folder, ignore_errors=True)
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
