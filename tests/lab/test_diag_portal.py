"""``meshhub diag portal`` for real, against a whole offline node.

The node namespace runs what a node runs (as tests/lab/test_captive_e2e.py sets it
up, but without an uplink, the usual case): the rendered gate (nftables) and
dnsmasq, the agent with its gate socket, and the portal under waitress as
``nobody``. The technician's laptop hangs off the access-point bridge and runs the
diagnostic: before acceptance every system would open the sign-in sheet; after
``meshhub gate allow`` every system would consider itself online.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.netlab import SERVING_TOML, Lab, access_point, nobody_root, start_serving_node
from node.captive_probes import PROBES
from tests.conftest import require_tool

pytestmark = pytest.mark.root

PORTAL = "10.64.7.1"
LAPTOP_MAC = "02:00:00:00:77:02"
BIN = Path(sys.executable).parent


@dataclass
class Node:
    """The running node and the laptop beside it."""

    lab: Lab
    root: Path
    node: str
    laptop: str

    def meshhub(self, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.lab.run(ns, str(BIN / "meshhub"), "-c", str(self.root / "node.toml"),
                            *args, check=False, timeout=60)

    def diag_portal(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.meshhub(self.laptop, "diag", "portal", "eth0", "--timeout", "3", *args)

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n" + (self.root / name).read_text(errors="replace")[-2000:]
                         for name in ("agent.log", "portal.log", "dnsmasq.log")
                         if (self.root / name).exists())


@pytest.fixture
def offline_node(lab: Lab) -> Iterator[Node]:
    require_tool("nft", "dnsmasq", "setpriv")
    with nobody_root(lab, "meshhub-diag-") as root:
        node, laptop = lab.netns("node"), lab.netns("laptop")
        access_point(lab, node, [(laptop, "eth0", LAPTOP_MAC)])
        lab.run(node, "ip", "address", "add", f"{PORTAL}/24", "dev", "ap0")
        start_serving_node(lab, node, root, SERVING_TOML.format(root=root), PORTAL)
        yield Node(lab, root, node, laptop)


def test_a_phone_would_see_the_sheet_then_be_online(offline_node: Node) -> None:
    n = offline_node
    rules_before = n.lab.run(n.laptop, "ip", "rule").stdout

    result = n.diag_portal("--json")
    assert result.returncode == 0, (result.stdout, result.stderr, n.logs())
    report = json.loads(result.stdout)
    lease = report["lease"]["offer"]
    assert lease["server_id"] == PORTAL and lease["captive_url"] == f"http://{PORTAL}/api/captive"
    assert report["borrowed"] is True
    assert report["api"]["captive"] is True
    assert report["api"]["user_portal_url"] == f"http://{PORTAL}/welcome"
    assert [p["system"] for p in report["probes"]] == [p.system for p in PROBES]
    for probe in report["probes"]:
        assert probe["result"] == "sign-in", (probe, n.logs())
        assert probe["address"] == PORTAL  # an offline node's DNS answers every name
        assert probe["location"] == f"http://{PORTAL}/welcome"
    assert report["summary"] == "a resident would see the sign-in sheet."
    # Nothing is left on the laptop: the borrowed address and its rule are gone.
    assert n.lab.run(n.laptop, "ip", "-4", "address", "show", "dev", "eth0").stdout.count(
        "inet ") == 0
    assert n.lab.run(n.laptop, "ip", "rule").stdout == rules_before

    # The plain-language text a technician reads.
    text = n.diag_portal().stdout
    assert (f"- Apple (iPhone, iPad, Mac): the sign-in sheet would open (redirected to "
            f"http://{PORTAL}/welcome)") in text
    assert "held back: phones that read it would open" in text
    assert "In short: a resident would see the sign-in sheet." in text

    # The resident presses Connect (here: the technician lets the laptop through).
    allowed = n.meshhub(n.node, "gate", "allow", lease["offered"], "--mac", LAPTOP_MAC)
    assert allowed.returncode == 0, allowed.stderr
    after = json.loads(n.diag_portal("--json").stdout)
    assert after["lease"]["offer"]["offered"] == lease["offered"]  # the same lease again
    assert [p["result"] for p in after["probes"]] == ["online"] * len(PROBES), (after, n.logs())
    assert after["api"]["captive"] is False
    assert after["summary"].startswith("a resident's phone would consider itself online")


def test_a_laptop_holding_its_lease_keeps_it(offline_node: Node) -> None:
    """When the interface already has the leased address nothing is added or removed."""
    n = offline_node
    first = json.loads(n.diag_portal("--json").stdout)
    address = first["lease"]["offer"]["offered"]
    n.lab.run(n.laptop, "ip", "address", "add", f"{address}/24", "dev", "eth0")
    again = json.loads(n.diag_portal("--json").stdout)
    assert again["borrowed"] is False
    assert {p["result"] for p in again["probes"]} == {"sign-in"}
    assert f"inet {address}/24" in n.lab.run(n.laptop, "ip", "address").stdout


def test_no_dhcp_server_is_said_plainly(lab: Lab, tmp_path: Path) -> None:
    laptop, other = lab.netns("laptop"), lab.netns("quiet")
    lab.veth(laptop, "eth0", other, "eth0")
    result = lab.run(laptop, str(BIN / "meshhub"), "diag", "portal", "eth0", "--timeout", "1",
                     check=False, timeout=60)
    assert result.returncode == 1
    assert "meshhub: error: no DHCP server answered on eth0" in result.stderr
    assert "Traceback" not in result.stderr
