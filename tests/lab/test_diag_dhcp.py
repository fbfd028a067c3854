"""``meshhub diag dhcp`` for real: the node's dnsmasq and a rogue one on the same segment.

A "switch" namespace bridges three veths: the node (the rendered gate and dnsmasq,
as tests/lab/test_dhcp.py runs them), a rogue dnsmasq handing out a TEST-NET
subnet, and the technician's laptop, where the diagnostic runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.netlab import NODE_TOML, Lab, apply_gate, start_dnsmasq
from node.config import parse_config
from tests.conftest import require_tool

pytestmark = pytest.mark.root

BIN = Path(sys.executable).parent
NODE_MAC, ROGUE_MAC, LAPTOP_MAC = "02:00:00:00:07:01", "02:00:00:00:66:01", "02:00:00:00:77:01"


def start_node(lab: Lab, tmp_path: Path, node: str) -> None:
    """The gate and the dnsmasq that meshhub renders for the node."""
    cfg = parse_config(NODE_TOML)
    lab.run(node, "ip", "address", "add", "10.64.7.1/24", "dev", "ap0")
    apply_gate(lab, node, cfg, tmp_path / "etc")
    start_dnsmasq(lab, node, tmp_path / "etc", tmp_path, name="node-dnsmasq",
                  leases=(cfg.data_dir / "dnsmasq.leases", tmp_path / "node.leases"))


def start_rogue(lab: Lab, tmp_path: Path, rogue: str):  # type: ignore[no-untyped-def]
    """A home router's DHCP server, plugged in where it should not be."""
    lab.run(rogue, "ip", "address", "add", "198.51.100.1/24", "dev", "eth0")
    return lab.start(rogue, "dnsmasq", "--keep-in-foreground", "--user=root", "--port=0",
                     "--conf-file=/dev/null", "--interface=eth0", "--bind-interfaces",
                     "--dhcp-range=198.51.100.50,198.51.100.60,255.255.255.0,5m",
                     "--dhcp-option=3,198.51.100.1", "--dhcp-option=6,198.51.100.53",
                     f"--dhcp-leasefile={tmp_path / 'rogue.leases'}",
                     f"--pid-file={tmp_path / 'rogue.pid'}", "--log-facility=-",
                     log=tmp_path / "rogue-dnsmasq.log")


def diag(lab: Lab, ns: str, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    (tmp_path / "node.toml").write_text(NODE_TOML, encoding="utf-8")
    return lab.run(ns, str(BIN / "meshhub"), "-c", str(tmp_path / "node.toml"), "diag",
                   "dhcp", "eth0", "--timeout", "5", *args, check=False, timeout=30)


def test_both_servers_are_listed_and_the_rogue_is_flagged(lab: Lab, tmp_path: Path) -> None:
    require_tool("dnsmasq", "nft")
    switch, node, rogue, laptop = (lab.netns(n) for n in ("switch", "node", "rogue", "laptop"))
    lab.run(switch, "ip", "link", "add", "br0", "type", "bridge")
    for ns, inside, mac, port in ((node, "ap0", NODE_MAC, "pnode"),
                                  (rogue, "eth0", ROGUE_MAC, "progue"),
                                  (laptop, "eth0", LAPTOP_MAC, "plaptop")):
        lab.veth(ns, inside, switch, port, mac_a=mac)
        lab.run(switch, "ip", "link", "set", port, "master", "br0")
    lab.run(switch, "ip", "link", "set", "br0", "up")
    start_node(lab, tmp_path, node)
    rogue_dnsmasq = start_rogue(lab, tmp_path, rogue)

    result = diag(lab, laptop, tmp_path, "--json")
    logs = "".join((tmp_path / f).read_text() for f in ("node-dnsmasq.log", "rogue-dnsmasq.log"))
    assert result.returncode == 2, (result.stdout, result.stderr, logs)
    report = json.loads(result.stdout)
    assert report["expected"] == "10.64.7.1"  # from node.toml's address plan
    assert report["client_mac"] == LAPTOP_MAC
    offers = {o["server_id"]: o for o in report["offers"]}
    assert set(offers) == {"10.64.7.1", "198.51.100.1"}, report
    ours, theirs = offers["10.64.7.1"], offers["198.51.100.1"]
    assert ours["rogue"] is False and theirs["rogue"] is True
    assert (ours["server_mac"], theirs["server_mac"]) == (NODE_MAC, ROGUE_MAC)
    assert ours["offered"].startswith("10.64.7.")
    assert 100 <= int(ours["offered"].split(".")[3]) <= 120
    assert ours["router"] == ["10.64.7.1"] and ours["dns"] == ["10.64.7.1"]
    assert ours["lease_seconds"] == 3600
    assert ours["captive_url"] == "http://10.64.7.1/api/captive"
    assert theirs["offered"].startswith("198.51.100.") and theirs["router"] == ["198.51.100.1"]
    assert theirs["dns"] == ["198.51.100.53"] and theirs["lease_seconds"] == 300
    assert theirs["captive_url"] is None

    # The text a technician reads: the rogue's line is flagged, with its MAC.
    text = diag(lab, laptop, tmp_path, "--expect", "10.64.7.1", "--random-mac").stdout
    rogue_line = next(line for line in text.splitlines() if "198.51.100.1 " in line)
    assert "ROGUE" in rogue_line and ROGUE_MAC in rogue_line, text
    assert "(expected)" in next(line for line in text.splitlines() if "server 10.64.7.1" in line)
    assert "option 114 (captive API): http://10.64.7.1/api/captive" in text
    assert "1 rogue server(s)" in text

    # The rogue unplugged: only the node answers, and all is well.
    rogue_dnsmasq.terminate()
    rogue_dnsmasq.wait(timeout=5)
    result = diag(lab, laptop, tmp_path)
    assert result.returncode == 0, result.stdout
    assert "ROGUE" not in result.stdout and "No rogue DHCP server heard." in result.stdout


def test_no_server_at_all_is_said_plainly(lab: Lab, tmp_path: Path) -> None:
    laptop, other = lab.netns("laptop"), lab.netns("quiet")
    lab.veth(laptop, "eth0", other, "eth0")
    result = diag(lab, laptop, tmp_path, "--timeout", "1")
    assert result.returncode == 3
    assert "no DHCP server answered" in result.stdout
