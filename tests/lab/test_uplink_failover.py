"""Uplink failover, for real: the mesh's residents keep the internet when the gateway they
use loses its uplink, and come back to it when it returns.

A 3-node ring (``meshhub lab up --phones --uplinks n1,n2=1024``): real agents, gates,
babeld and dnsmasq. n1 and n2 are cabled to the lab's internet, an isp namespace whose
web server names the cable each request came through; n1 is the main uplink, n2 a
backup. The phone of n3, accepted by n3's gate, fetches from the internet every 100 ms
(:class:`bench.uplink.PhoneProbe`). n1's uplink is cut, once by taking the cable down
and once silently (nothing comes back; only the agent's TCP check can tell); each time
the phone's fetches go through n2 within the bound, n1's ``/metrics`` and health
document say the uplink is down and withdrawn, and the phone of n1 itself reaches the
internet through n2. Restored, the fetches go through n1 again. n3, without an uplink,
forwards its accepted phone's names to the internet's resolver, before and during the
cut. The gates are never touched: an unaccepted phone still meets the portal, and its
names get the portal's address.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from bench.netlab import Lab
from bench.uplink import PhoneProbe, accept_phone, cable_of, failover
from node.lab import MeshLab
from node.lab.uplinks import INTERNET_ADDRESS, set_uplink
from tests.lab.conftest import phone_mesh

pytestmark = pytest.mark.root


@pytest.fixture
def mesh() -> Iterator[MeshLab]:
    with phone_mesh("uplink", 3, "ring", uplinks={"n1": 0, "n2": 1024}) as lab:
        yield lab


def metrics(lab: MeshLab, name: str) -> dict[str, float]:
    """The node's ``meshhub_uplink_*`` series, from its real agent."""
    node = lab.node(name)
    text = lab.exec(name, ["curl", "-s", "-m", "3", f"http://{node.mesh_address}:9180/metrics"],
                    capture_output=True, timeout=15).stdout
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(meshhub_uplink_\w+) (\S+)$", text, re.M)}


def fetch(net: Lab, lab: MeshLab, phone: str) -> str | None:
    """What the internet answers the phone (the cable it came through), or None."""
    return net.curl(lab.namespace(phone), f"http://{INTERNET_ADDRESS}/", timeout=2)


def test_residents_keep_the_internet_through_the_other_uplink(mesh: MeshLab) -> None:
    lab, net = mesh, Lab()
    try:
        # n3's own phone, never accepted: the gate sends it to the portal, not outside.
        assert "reached from" not in (fetch(net, lab, "p3") or "")
        accept_phone(lab, "n3")
        accept_phone(lab, "n1")
        net.wait_for("n3's phone to reach the internet through n1",
                     lambda: cable_of("n1") in (fetch(net, lab, "p3") or ""), timeout=60)
        # Names too: n3 has no uplink, and forwards an accepted phone's names over the mesh
        # to the internet's resolver (clients.dns_servers).
        assert net.dns_a(lab.namespace("p3"), "10.64.3.1", "news.example.org") \
            == INTERNET_ADDRESS
        net.wait_for("n1 to announce its uplink",
                     lambda: metrics(lab, "n1").get("meshhub_uplink_announced") == 1, 30)
        probe = PhoneProbe(lab, "p3")
        try:
            for silent in (False, True):
                gap, back, _lost = failover(lab, probe, main="n1", backup="n2",
                                            silent=silent, timeout=60)
                # failover() returns once the phone's traffic went through n2: how fast
                # (target: 10 s) is bench/uplink.py's figure, not a
                # wall-clock assert that a loaded machine decides.
                assert gap <= 60, f"{gap:.2f} s to fail over"
                # Back on n1 (failover() waits at most 60 s): 1.2-5.6 s in 28 lab restores
                # since nodes render babeld's smoothing-half-life as 1 s; with babeld's 4 s
                # a route retracted during the cut took 19-24 s (docs/uplink.md, "Failing
                # back").
                assert back <= 60
            # While cut, what technicians see and what n1's own resident gets.
            cut = time.monotonic()
            set_uplink(lab, "n1", up=False, silent=True)
            assert probe.first_since(cut, cable_of("n2"), 60) is not None
            # A health sample taken since this third cut (the one before may still be
            # from the second, also down) counts it.
            seen: dict[str, float] = {}
            net.wait_for("n1's /metrics to count the third withdrawal",
                         lambda: seen.update(metrics(lab, "n1")) or
                         seen.get("meshhub_uplink_withdrawals_total") == 3, 30)
            assert seen["meshhub_uplink_up"] == 0 and seen["meshhub_uplink_announced"] == 0
            assert metrics(lab, "n2")["meshhub_uplink_announced"] == 1
            # n1's own resident goes out through n2 too. One fetch with curl's 2 s limit
            # got no answer in a fresh-clone CI run (s7r3, two workers beside a QEMU
            # guest): n1 takes babeld's route via n2 once its own is demoted; how fast is
            # bench/uplink.py's figure, so this waits like the steps above.
            net.wait_for("n1's own phone to reach the internet through n2",
                         lambda: cable_of("n2") in (fetch(net, lab, "p1") or ""), timeout=30)
            assert net.dns_a(lab.namespace("p3"), "10.64.3.1", "cut.example.org") \
                == INTERNET_ADDRESS
            health = lab.agent_health("n1", timeout=5) or {}
            uplink = health["network"]["uplink"]  # type: ignore[index]
            assert uplink["healthy"] is False and "no answer" in uplink["reason"], uplink
            assert "uplink_down" in [a["kind"] for a in health["alerts"]], health["alerts"]  # type: ignore[index]
            set_uplink(lab, "n1", up=True)
            assert probe.first_since(time.monotonic(), cable_of("n1"), 60) is not None
        finally:
            probe.close()
        # The gate was never part of it: an unaccepted phone still meets the portal, and
        # its names never leave n2 (the walled resolver answers them with the portal).
        answer = fetch(net, lab, "p2") or ""
        assert "reached from" not in answer and "/welcome" in answer
        assert net.dns_a(lab.namespace("p2"), "10.64.2.1", "tunnel.example.org") \
            == "10.64.2.1"
    finally:
        net.close()
