"""Benchmark the captive gate: Connect to first packet, and the cost of a set update.

Run as root: ``.venv/bin/python bench/gate.py``. It builds a lab (network namespaces,
nothing leaves them): a node namespace with the rendered gate and a bridge standing
in for the access point, an "uplink" namespace, and 100 phone namespaces, each with
its own MAC and address. The allow set is first filled with 900 other devices, so the
100 phones bring it to 1,000.

* ``connect_to_first_packet``: for each phone, one after another, a prober in the
  phone's namespace sends an ICMP echo to the uplink every millisecond; the time runs
  from the portal's request on the gate's socket (``GateClient.allow``: socket, MAC
  lookup, ``nft`` transaction) to the first echo reply (CLOCK_MONOTONIC is shared by
  all namespaces).
* ``set_update_ms``: ``GateManager.allow`` alone, with 250 and with 1,000 devices in
  the set: constant when the set is a hash of elements, not a rule per device.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHONES = 100
FILL = 900
PORTAL = "10.64.0.1"
UPLINK = "198.51.100.2"
TOML = """
[node]
name = "bench-node"
[wifi]
ap_interface = "ap0"
[mesh]
address = "10.42.0.7"
[clients]
subnet = "10.64.0.0/20"
dhcp_range_start = 2
dhcp_range_end = 4000
uplink_interface = "up0"
[gate]
socket = "{sock}"
"""

PROBER = """
import socket, struct, sys, time
sys.path.insert(0, {root!r})
ident = 4242
payload = b"meshhub-bench"
def packet(seq):
    data = struct.pack(">BBHHH", 8, 0, 0, ident, seq) + payload + b"\\0"
    total = sum(struct.unpack(f">{{len(data) // 2}}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return struct.pack(">BBHHH", 8, 0, ~(total + (total >> 16)) & 0xFFFF, ident, seq) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.001)
print("ready", flush=True)
seq, deadline = 0, time.monotonic() + 10
while time.monotonic() < deadline:
    seq = (seq + 1) % 65536
    s.sendto(packet(seq), ({uplink!r}, 0))
    try:
        reply = s.recv(2048)
    except OSError:
        continue
    icmp = reply[(reply[0] & 0x0F) * 4:]
    if icmp[0] == 0:
        print(time.monotonic(), flush=True)
        break
"""


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def inner(sock: str, phones: list[tuple[str, str, str]]) -> None:
    """Runs inside the node namespace: the gate's socket, client, and measurements."""
    from node.config import parse_config
    from node.gate import GateClient, GateManager
    from node.gate.server import GateServer

    cfg = parse_config(TOML.format(sock=sock))
    manager = GateManager.from_config(cfg)
    server = GateServer(Path(sock), lambda r: manager.allow(r.ip))
    server.start()
    try:
        def fill(count: int, start: int) -> None:
            lines = [f"add element inet meshhub allowed {{ 10.64.{8 + (start + i) // 250}."
                     f"{1 + (start + i) % 250} . 02:aa:00:00:{(start + i) // 256:02x}:"
                     f"{(start + i) % 256:02x} }}" for i in range(count)]
            subprocess.run(["nft", "-f", "-"], input="\n".join(lines) + "\n", text=True,
                           check=True)

        def update_cost(label: str) -> None:
            times = []
            for i in range(50):
                start = time.perf_counter()
                manager.allow(f"10.64.15.{i + 1}", mac=f"02:bb:00:00:00:{i:02x}")
                times.append((time.perf_counter() - start) * 1000)
            print(f"set_update_ms_{label}_p50: {pct(times, 50):.1f} ms (target: constant)")
            print(f"set_update_ms_{label}_p95: {pct(times, 95):.1f} ms (target: constant)")

        fill(250, 0)
        update_cost("250_clients")
        fill(FILL - 250 - 50, 250)
        client = GateClient(sock, timeout=5)
        latencies = []
        for ns, ip, _mac in phones:
            prober = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c",
                                       PROBER.format(root=str(ROOT), uplink=UPLINK)],
                                      stdout=subprocess.PIPE, text=True)
            assert prober.stdout is not None
            assert prober.stdout.readline().strip() == "ready"
            time.sleep(0.02)  # the prober is sending (and being dropped)
            start = time.monotonic()
            client.allow(ip)
            first = float(prober.stdout.readline())
            prober.wait(timeout=5)
            latencies.append((first - start) * 1000)
        print(f"connect_to_first_packet_p50: {pct(latencies, 50):.1f} ms "
              f"(target: p95 < 100 ms at 1,000 clients)")
        print(f"connect_to_first_packet_p95: {pct(latencies, 95):.1f} ms "
              f"(target: < 100 ms at 1,000 clients)")
        print(f"allow_set_size: {len(manager.elements())} elements (target: 1000)")
        update_cost("1000_clients")
    finally:
        server.stop()


def main() -> None:
    """Build the lab, run :func:`inner` in the node namespace, clean up."""
    import tempfile

    from bench.netlab import Lab
    from node.config import parse_config
    from node.net import build_plan

    lab = Lab()
    folder = Path(tempfile.mkdtemp(prefix="meshhub-bench-gate-"))
    try:
        sock = str(folder / "gate.sock")
        node, uplink = lab.netns("node"), lab.netns("uplink")
        lab.run(node, "ip", "link", "add", "ap0", "type", "bridge")
        lab.run(node, "ip", "link", "set", "ap0", "up")
        lab.run(node, "ip", "address", "add", f"{PORTAL}/20", "dev", "ap0")
        lab.veth(node, "up0", uplink, "eth0")
        lab.run(node, "ip", "address", "add", "198.51.100.1/24", "dev", "up0")
        lab.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.run(uplink, "ip", "address", "add", f"{UPLINK}/24", "dev", "eth0")
        lab.run(uplink, "ip", "route", "add", "10.64.0.0/10", "via", "198.51.100.1")
        plan = build_plan(parse_config(TOML.format(sock=sock)), net_dir=folder)
        plan.write_to(folder)
        lab.run(node, "nft", "-f", str(folder / "gate.nft"))
        phones = []
        for i in range(PHONES):
            ns = lab.netns(f"p{i}")
            mac, ip = f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", f"10.64.1.{i + 1}"
            lab.veth(node, f"ap0p{i}", ns, "wlan0", mac_b=mac)
            lab.run(node, "ip", "link", "set", f"ap0p{i}", "master", "ap0")
            lab.run(ns, "ip", "address", "add", f"{ip}/20", "dev", "wlan0")
            lab.run(ns, "ip", "route", "add", "default", "via", PORTAL)
            lab.ping(ns, PORTAL)  # the node learns the phone's MAC
            phones.append((ns, ip, mac))
        spec = ";".join(",".join(p) for p in phones)
        result = lab.run(node, sys.executable, __file__, "--inner", sock, spec, timeout=600)
        print(result.stdout, end="")
    finally:
        lab.close()
        subprocess.run(["rm", "-rf", str(folder)], check=False)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        inner(sys.argv[2], [tuple(p.split(",")) for p in sys.argv[3].split(";")])  # type: ignore
    else:
        main()
