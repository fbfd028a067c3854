"""Replays (issue 17, items 6 and 7): a hostile resident against the access point.

A node namespace runs what a node runs for its residents — the rendered nftables
gate, the rendered dnsmasq (with its lease hook), the agent with the gate's socket and
the portal as ``nobody`` — behind a bridge standing in for the radio (ports isolated
like ``ap_isolate``). Phones are namespaces with busybox ``udhcpc`` and ``arping``.

* **Takeover**: an unaccepted device claimed an accepted phone's address in ARP; the
  node's neighbour entry moved to it and the phone's requests timed out.
* **Starvation**: one unaccepted device took 156 of 241 leases in 50 s by asking with
  ever new client identifiers.

Both attacks are bounded (a few ARP packets; at most :data:`FLOOD_TRIES` DHCP
exchanges within :data:`FLOOD_SECONDS`) and stay inside the namespaces.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.netlab import SERVING_TOML, Lab, access_point, nobody_root, start_serving_node
from tests.conftest import require_tool

pytestmark = pytest.mark.root

PORTAL = "10.64.7.1"
ALICE_MAC, MALLORY_MAC, BOB_MAC = "02:00:00:00:0a:01", "02:00:00:00:0b:02", "02:00:00:00:0c:03"
BIN = Path(sys.executable).parent
#: The starvation try: DHCP exchanges, and seconds, at most.
FLOOD_TRIES, FLOOD_SECONDS = 24, 60

UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
printf '{{"ip":"%s"}}\\n' "$ip" > "{out}"
"""


@dataclass
class AccessPoint:
    """The running node and its three residents' namespaces."""

    lab: Lab
    root: Path
    node: str
    alice: str
    mallory: str
    bob: str

    def lease(self, ns: str, *extra: str, configure: bool = True,
              tries: int = 5) -> str | None:
        """One DHCP exchange with busybox ``udhcpc`` in ``ns`` (``tries`` discovers a
        second apart: dnsmasq pings a new address for up to 3 s before offering it):
        the address, or None."""
        work = self.root / f"dhcp-{secrets.token_hex(4)}"
        work.mkdir()
        out, script = work / "lease.json", work / "udhcpc.sh"
        script.write_text(UDHCPC_SCRIPT.format(out=out), encoding="utf-8")
        script.chmod(0o755)
        done = self.lab.run(ns, "busybox", "udhcpc", "-i", "wlan0", "-n", "-q",
                            "-t", str(tries), "-T", "1", "-A", "1", "-s", str(script), *extra,
                            check=False, timeout=20)
        if done.returncode != 0 or not out.exists():
            return None
        ip = str(json.loads(out.read_text(encoding="utf-8"))["ip"])
        if configure:
            self.lab.run(ns, "ip", "address", "replace", f"{ip}/24", "dev", "wlan0")
            self.lab.run(ns, "ip", "route", "replace", "default", "via", PORTAL)
        return ip

    def logs(self) -> str:
        """The node's dnsmasq and agent logs, for failure messages."""
        return "\n".join(f"--- {name}\n" + (self.root / name).read_text(errors="replace")[-3000:]
                         for name in ("dnsmasq.log", "agent.log") if (self.root / name).exists())

    def leases(self) -> list[list[str]]:
        """The lines of the node's dnsmasq lease file, split."""
        path = self.root / "data" / "dnsmasq.leases"
        return [line.split() for line in path.read_text().splitlines()] if path.exists() else []

    def counter(self, family: str, table: str, name: str) -> int:
        """Packets counted by a named nftables counter of the node."""
        out = self.lab.run(self.node, "nft", "-j", "list", "counter", family, table,
                           name).stdout
        return int(next(item["counter"]["packets"] for item in json.loads(out)["nftables"]
                        if "counter" in item))

    def neighbour(self, ip: str) -> str | None:
        """The MAC the node's neighbour table holds for ``ip`` on ``ap0``."""
        out = self.lab.run(self.node, "ip", "-j", "neigh", "show", "dev", "ap0", "to",
                           ip).stdout
        return next((e.get("lladdr") for e in json.loads(out or "[]") if e.get("lladdr")), None)


@pytest.fixture
def ap(lab: Lab) -> Iterator[AccessPoint]:
    require_tool("nft", "dnsmasq", "busybox", "curl", "setpriv")
    with nobody_root(lab, "meshhub-ap-") as root:
        node, alice, mallory, bob = (lab.netns(n) for n in ("node", "alice", "mallory", "bob"))
        access_point(lab, node, [(alice, "wlan0", ALICE_MAC), (mallory, "wlan0", MALLORY_MAC),
                                 (bob, "wlan0", BOB_MAC)])
        lab.run(node, "ip", "address", "add", f"{PORTAL}/24", "dev", "ap0")
        start_serving_node(lab, node, root, SERVING_TOML.format(root=root), PORTAL)
        yield AccessPoint(lab, root, node, alice, mallory, bob)


def test_an_arp_claim_cannot_take_over_an_accepted_phones_address(ap: AccessPoint) -> None:
    lab = ap.lab
    alice_ip = ap.lease(ap.alice)
    assert alice_ip, f"alice took no lease:\n{ap.logs()}"
    lab.wait_for("the gate binding alice's lease (dnsmasq's hook)",
                 lambda: ALICE_MAC in lab.run(ap.node, "nft", "list", "set", "arp",
                                              "meshhub_arp", "leased").stdout)
    lab.run(ap.node, str(BIN / "meshhub"), "-c", str(ap.root / "node.toml"), "gate",
            "allow", alice_ip)
    page = lab.http(ap.alice, PORTAL, "/connected")
    assert page is not None and page["status"] == 200, "alice is accepted and served"
    assert ap.neighbour(alice_ip) == ALICE_MAC

    # mallory, not accepted, claims alice's address: asking for the portal's MAC with
    # alice's address as sender, and announcing it (gratuitous ARP), three times each.
    assert ap.lease(ap.mallory), "mallory is a resident too, with her own lease"
    lab.run(ap.mallory, "ip", "address", "add", f"{alice_ip}/32", "dev", "wlan0")
    lab.run(ap.mallory, "busybox", "arping", "-c", "3", "-w", "4", "-I", "wlan0", "-s",
            alice_ip, PORTAL, check=False, timeout=10)
    lab.run(ap.mallory, "busybox", "arping", "-U", "-c", "3", "-w", "4", "-I", "wlan0", "-s",
            alice_ip, alice_ip, check=False, timeout=10)

    assert ap.counter("arp", "meshhub_arp", "arp_spoofed_dropped") >= 3
    assert ap.neighbour(alice_ip) == ALICE_MAC, "the node still sends alice's packets to her"
    for _ in range(3):
        page = lab.http(ap.alice, PORTAL, "/connected")
        assert page is not None and page["status"] == 200, "alice is still served"


def test_one_device_cannot_starve_the_pool(ap: AccessPoint) -> None:
    taken: list[str] = []
    started = time.monotonic()
    for _ in range(FLOOD_TRIES):
        if time.monotonic() - started > FLOOD_SECONDS:
            break
        # A new client identifier each time: to a server that keys leases by it,
        # a new device each time.
        client_id = "0x3d:01" + secrets.token_hex(6)
        ip = ap.lease(ap.mallory, "-C", "-x", client_id, configure=False, tries=4)
        if ip:
            taken.append(ip)
    leases = ap.leases()
    mallorys = [line for line in leases if line[1] == MALLORY_MAC]
    assert taken, "mallory got her own lease"
    assert len(set(taken)) == 1 and len(mallorys) == 1, (taken, leases)
    assert ap.counter("inet", "meshhub", "dhcp_limited") > 0, "the flood was rate-limited"
    # An honest newcomer still gets an address at once.
    assert ap.lease(ap.bob), "bob got a lease"
    assert len({line[2] for line in ap.leases()}) == 2
