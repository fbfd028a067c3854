"""The DHCP diagnostic's packets, parsing and verdicts (the real exchange: tests/lab)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from node.diag import SCAPY_HINT
from node.diag.dhcp import (
    DhcpReport,
    build_discover,
    build_request,
    dhcp_options,
    format_report,
    message_type,
    parse_offer,
)
from node.diag.link import random_local_mac
from tests.conftest import require_root, require_tool

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def offer(server: str, mac: str, offered: str, xid: int = 7, captive: bool = True) -> Packet:
    options: list[object] = [("message-type", "offer"), ("server_id", server),
                             ("lease_time", 3600), ("subnet_mask", "255.255.255.0"),
                             ("router", server), ("name_server", server, "9.9.9.9"),
                             ("domain", b"mesh")]
    if captive:
        options.append(("captive-portal", f"http://{server}/api/captive".encode()))
    options.append("end")
    frame = (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=server, dst="255.255.255.255")
             / UDP(sport=67, dport=68) / BOOTP(op=2, xid=xid, yiaddr=offered)
             / DHCP(options=options))
    return Ether(bytes(frame))  # as it comes off the wire


def test_the_discover_is_a_broadcast_asking_for_option_114() -> None:
    frame = Ether(bytes(build_discover("02:00:00:00:00:01", "06:11:22:33:44:55", 0xABCDEF)))
    assert frame[Ether].dst == "ff:ff:ff:ff:ff:ff" and frame[Ether].src == "02:00:00:00:00:01"
    assert (frame[IP].src, frame[IP].dst) == ("0.0.0.0", "255.255.255.255")
    assert (frame[UDP].sport, frame[UDP].dport) == (68, 67)
    assert frame[BOOTP].xid == 0xABCDEF and frame[BOOTP].flags == 0x8000  # broadcast replies
    assert frame[BOOTP].chaddr[:6] == bytes.fromhex("061122334455")
    assert message_type(frame) == 1
    assert 114 in dhcp_options(frame)["param_req_list"][0]


def test_the_request_names_the_chosen_server() -> None:
    chosen = parse_offer(offer("10.64.7.1", "02:00:00:00:07:01", "10.64.7.100"))
    frame = Ether(bytes(build_request("02:00:00:00:00:01", "02:00:00:00:00:01", 7, chosen)))
    options = dhcp_options(frame)
    assert message_type(frame) == 3
    assert options["requested_addr"] == ("10.64.7.100",)
    assert options["server_id"] == ("10.64.7.1",)


def test_an_offer_is_read_field_by_field() -> None:
    read = parse_offer(offer("10.64.7.1", "02:00:00:00:07:01", "10.64.7.100"))
    assert read.server_id == "10.64.7.1" and read.server_mac == "02:00:00:00:07:01"
    assert read.offered == "10.64.7.100" and str(read.subnet) == "10.64.7.0/24"
    assert read.router == ("10.64.7.1",) and read.dns == ("10.64.7.1", "9.9.9.9")
    assert read.lease_seconds == 3600 and read.domain == "mesh"
    assert read.captive_url == "http://10.64.7.1/api/captive"
    assert parse_offer(offer("192.0.2.1", "02:66:00:00:00:01", "192.0.2.50",
                             captive=False)).captive_url is None


def test_servers_other_than_the_expected_one_are_rogue() -> None:
    ours = parse_offer(offer("10.64.7.1", "02:00:00:00:07:01", "10.64.7.100"))
    theirs = parse_offer(offer("192.0.2.1", "02:66:00:00:00:01", "192.0.2.50", captive=False))
    report = DhcpReport([ours, theirs], expected="10.64.7.1", chaddr="02:00:00:00:00:01",
                        timeout=6)
    assert report.rogues == [theirs]
    text = format_report(report)
    rogue_line = next(line for line in text.splitlines() if "server 192.0.2.1" in line)
    assert "ROGUE" in rogue_line and "02:66:00:00:00:01" in rogue_line
    assert "option 114 (captive API): absent" in text
    assert "1 rogue server(s): only 10.64.7.1 should answer here" in text
    # With no expectation, two servers are a problem in themselves.
    unsure = DhcpReport([ours, theirs])
    assert unsure.rogues == [ours, theirs]
    assert "More than one DHCP server answers" in format_report(unsure)
    assert DhcpReport([ours]).rogues == []
    alone = format_report(DhcpReport([ours], expected="10.64.7.1"))
    assert "ROGUE" not in alone and "No rogue DHCP server heard." in alone


def test_random_macs_are_unicast_and_locally_administered() -> None:
    for _ in range(50):
        first = int(random_local_mac().split(":")[0], 16)
        assert first & 0x01 == 0 and first & 0x02 == 0x02


def test_without_cap_net_raw_the_command_says_so() -> None:
    require_root()
    require_tool("setpriv")
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
         str(BIN / "meshhub"), "diag", "dhcp", "lo", "--timeout", "1"],
        capture_output=True, text=True, cwd="/", check=False, timeout=60)
    assert result.returncode == 1, result
    assert "needs CAP_NET_RAW" in result.stderr and "Traceback" not in result.stderr


def test_without_scapy_the_command_says_how_to_install_it() -> None:
    code = ("import sys\n"
            "sys.modules['scapy'] = None  # as if meshhub were installed without the extra\n"
            "from node.cli import main\n"
            "main(['diag', 'dhcp', 'lo'])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=False, timeout=60,
                            env={**os.environ, "MESHHUB_CONFIG": "/nonexistent/node.toml"})
    assert result.returncode == 1
    assert f"meshhub: error: {SCAPY_HINT}" in result.stderr
    assert "pip install 'meshhub[diagnostics]'" in result.stderr
