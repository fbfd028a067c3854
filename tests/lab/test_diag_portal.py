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
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from node.captive_probes import PROBES
from node.config import load_config
from node.net import build_plan
from tests.conftest import require_tool
from tests.lab.netlab import Lab

pytestmark = pytest.mark.root

PORTAL = "10.64.7.1"
LAPTOP_MAC = "02:00:00:00:77:02"
NOBODY = 65534
BIN = Path(sys.executable).parent
TOML = """
[node]
name = "lab-node"
data_dir = "{root}/data"
[portal]
listen = "10.64.7.1"
port = 8080
[wifi]
ap_interface = "ap0"
[mesh]
address = "10.42.0.7"
[clients]
subnet = "10.64.7.0/24"
dhcp_range_start = 100
dhcp_range_end = 120
[gate]
portal_port = 8080
management_ports = [22]
enabled = true
socket = "{root}/run/gate.sock"
portal_user = "nobody"
[health]
services = []
"""


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
    root = Path(tempfile.mkdtemp(prefix="meshhub-diag-"))  # the portal runs as nobody
    try:
        root.chmod(0o755)
        (root / "data").mkdir()
        (root / "run").mkdir()
        subprocess.run(["chown", f"{NOBODY}:{NOBODY}", str(root / "data")], check=True)
        (root / "node.toml").write_text(TOML.format(root=root), encoding="utf-8")
        cfg = load_config(root / "node.toml")
        node, laptop = lab.netns("node"), lab.netns("laptop")
        lab.run(node, "ip", "link", "add", "ap0", "type", "bridge")
        lab.veth(node, "ap0p1", laptop, "eth0", mac_b=LAPTOP_MAC)
        lab.run(node, "ip", "link", "set", "ap0p1", "master", "ap0")
        lab.run(node, "ip", "link", "set", "ap0", "up")
        lab.run(node, "ip", "address", "add", f"{PORTAL}/24", "dev", "ap0")
        build_plan(cfg, net_dir=root / "etc").write_to(root / "etc")
        lab.run(node, "nft", "-f", str(root / "etc" / "gate.nft"))
        lab.start(node, "dnsmasq", "--keep-in-foreground", "--user=root",
                  f"--conf-file={root / 'etc' / 'dnsmasq.conf'}",
                  f"--pid-file={root / 'dnsmasq.pid'}", log=root / "dnsmasq.log")
        lab.start(node, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                  str(BIN / "meshhub-portal"), "serve", "-c", str(root / "node.toml"),
                  log=root / "portal.log")
        lab.wait_for("the portal", lambda: lab.http(node, PORTAL, "/about", port=8080),
                     timeout=30)
        lab.start(node, str(BIN / "meshhub"), "-c", str(root / "node.toml"), "agent",
                  log=root / "agent.log")
        lab.wait_for("the agent's gate socket", (root / "run" / "gate.sock").exists,
                     timeout=20)
        yield Node(lab, root, node, laptop)
    finally:
        lab.close()  # processes first, then the files they used
        shutil.rmtree(root, ignore_errors=True)


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
    assert [p["result"] for p in after["probes"]] == ["online"] * len(PROBES), after
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
