"""The captive gate for real: the rendered nftables ruleset in a node namespace,
a phone namespace on the access-point side, an "uplink" namespace standing in for
the internet (addresses from TEST-NET-2, nothing leaves the namespaces)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.netlab import NODE_TOML, Lab, apply_gate
from node.config import parse_config
from tests.conftest import require_tool

pytestmark = pytest.mark.root

PHONE_MAC = "02:00:00:00:00:50"
SPOOF_MAC = "02:00:00:00:00:66"
PHONE_IP = "10.64.7.50"
PORTAL = "10.64.7.1"
UPLINK_HOST = "198.51.100.2"

#: netlab's lab node (its ``[clients]`` comes last) with an uplink and ssh as management.
LAB_TOML = NODE_TOML + """uplink_interface = "up0"
[gate]
management_ports = [22]
"""


@dataclass
class GateLab:
    """The namespaces of one gate test."""

    lab: Lab
    node: str
    phone: str
    uplink: str

    def allow(self, ip: str, mac: str, timeout: str = "60s") -> None:
        """What the gate does when a resident accepts: one set element."""
        self.lab.run(self.node, "nft", "add", "element", "inet", "meshhub", "allowed",
                     f"{{ {ip} . {mac} timeout {timeout} }}")

    def counter(self, name: str) -> int:
        """Packets counted so far by the gate's named counter ``name``."""
        out = self.lab.run(self.node, "nft", "list", "counter", "inet", "meshhub", name).stdout
        return int(re.search(r"\bpackets (\d+)", out).group(1))  # type: ignore[union-attr]


def build(lab: Lab, tmp_path: Path) -> GateLab:
    """The topology with the rendered gate applied and the stand-in servers running."""
    require_tool("nft", "curl")
    node, phone, uplink = lab.netns("node"), lab.netns("phone"), lab.netns("uplink")
    lab.veth(node, "ap0", phone, "wlan0", mac_b=PHONE_MAC)
    lab.veth(node, "up0", uplink, "eth0")
    lab.run(node, "ip", "address", "add", f"{PORTAL}/24", "dev", "ap0")
    lab.run(node, "ip", "address", "add", "198.51.100.1/24", "dev", "up0")
    lab.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    lab.run(uplink, "ip", "address", "add", f"{UPLINK_HOST}/24", "dev", "eth0")
    lab.run(phone, "ip", "address", "add", f"{PHONE_IP}/24", "dev", "wlan0")
    lab.run(phone, "ip", "route", "add", "default", "via", PORTAL)

    apply_gate(lab, node, parse_config(LAB_TOML), tmp_path / "etc")

    # The portal stand-in listens on IPv4 and IPv6 ("::" is dual-stack); a fake ssh port.
    lab.http_server(node, tmp_path / "portal", "::", 80, "portal")
    lab.http_server(node, tmp_path / "mgmt", PORTAL, 22, "management")
    lab.http_server(uplink, tmp_path / "web", UPLINK_HOST, 80, "uplink")
    lab.http_server(uplink, tmp_path / "other", UPLINK_HOST, 8080, "other-port")
    lab.start(uplink, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
              "--bind-interfaces", f"--listen-address={UPLINK_HOST}", "--port=53",
              f"--pid-file={tmp_path / 'outside-dns.pid'}", "--address=/#/203.0.113.9")
    lab.wait_for("the portal stand-in",
                 lambda: lab.curl(node, f"http://{PORTAL}/") == "portal")
    lab.wait_for("the uplink web server",
                 lambda: lab.curl(uplink, f"http://{UPLINK_HOST}/") == "uplink")
    lab.wait_for("the uplink's port 8080",
                 lambda: lab.curl(uplink, f"http://{UPLINK_HOST}:8080/") == "other-port")
    lab.wait_for("the outside resolver (asked from the node, not through the gate)",
                 lambda: lab.dns_a(node, UPLINK_HOST, "example.org") == "203.0.113.9")
    lab.wait_for("the management stand-in",
                 lambda: lab.curl(node, f"http://{PORTAL}:22/") == "management")
    return GateLab(lab, node, phone, uplink)


def test_unaccepted_phone_only_reaches_the_portal(lab: Lab, tmp_path: Path) -> None:
    gl = build(lab, tmp_path)
    # Port 80 to anywhere is answered by the portal.
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}/") == "portal"
    assert lab.curl(gl.phone, "http://203.0.113.80/") == "portal"
    assert gl.counter("portal_redirected") >= 2
    # Other ports and protocols towards the uplink: nothing.
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}:8080/") is None
    assert lab.ping(gl.phone, PORTAL)  # the node itself answers a ping ...
    assert not lab.ping(gl.phone, UPLINK_HOST)  # ... the outside does not
    assert gl.counter("unaccepted_dropped") > 0
    # DNS only to the node: the outside resolver is unreachable over UDP and TCP.
    assert lab.dns_a(gl.phone, UPLINK_HOST, "example.org") is None
    assert not lab.tcp_open(gl.phone, UPLINK_HOST, 53)
    assert gl.counter("outside_dns_dropped") > 0
    # Never the node's management port.
    assert lab.curl(gl.phone, f"http://{PORTAL}:22/") is None
    assert gl.counter("management_dropped") > 0


def test_ipv6_gives_no_way_around_the_gate(lab: Lab, tmp_path: Path) -> None:
    gl = build(lab, tmp_path)

    def node_link_local() -> str | None:
        out = lab.run(gl.node, "ip", "-6", "-o", "address", "show", "dev", "ap0",
                      "scope", "link").stdout
        if "fe80::" not in out or "tentative" in out:
            return None
        return out.split()[3].split("/")[0]

    address = lab.wait_for("the node's IPv6 link-local address", node_link_local)
    lab.wait_for("the phone's IPv6 link-local address", lambda: "tentative" not in lab.run(
        gl.phone, "ip", "-6", "address", "show", "dev", "wlan0").stdout)
    # The portal stand-in does answer IPv6 (from the node itself) ...
    assert lab.curl(gl.node, f"http://[{address}%ap0]/") == "portal"
    # ... but not the phone, not even after it is accepted for IPv4.
    assert lab.curl(gl.phone, f"http://[{address}%wlan0]/") is None
    gl.allow(PHONE_IP, PHONE_MAC)
    assert lab.curl(gl.phone, f"http://[{address}%wlan0]/") is None
    assert gl.counter("ipv6_dropped") > 0


def test_accepted_phone_reaches_the_uplink_but_not_outside_dns(lab: Lab,
                                                             tmp_path: Path) -> None:
    gl = build(lab, tmp_path)
    gl.allow(PHONE_IP, PHONE_MAC)
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}/") == "uplink"
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}:8080/") == "other-port"
    assert lab.ping(gl.phone, UPLINK_HOST)
    # DNS stays with the node's resolver after acceptance too.
    assert lab.dns_a(gl.phone, UPLINK_HOST, "example.org") is None
    assert not lab.tcp_open(gl.phone, UPLINK_HOST, 53)
    # And the management port stays closed.
    assert lab.curl(gl.phone, f"http://{PORTAL}:22/") is None


def test_spoofed_mac_with_an_allowed_address_gets_nothing(lab: Lab, tmp_path: Path) -> None:
    gl = build(lab, tmp_path)
    gl.allow(PHONE_IP, PHONE_MAC)
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}/") == "uplink"
    # Another device takes the accepted address but has its own MAC.
    lab.run(gl.phone, "ip", "link", "set", "wlan0", "address", SPOOF_MAC)
    lab.run(gl.node, "ip", "neigh", "flush", "dev", "ap0")
    # The link itself works (it is redirected to the portal like any stranger) ...
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}/") == "portal"
    # ... but the uplink is out of reach.
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}:8080/") is None


def test_expiry_sends_the_phone_back_to_the_portal(lab: Lab, tmp_path: Path) -> None:
    gl = build(lab, tmp_path)
    gl.allow(PHONE_IP, PHONE_MAC, timeout="3s")
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}/") == "uplink"
    lab.wait_for("the allow-set element to expire", lambda: PHONE_IP not in lab.run(
        gl.node, "nft", "list", "set", "inet", "meshhub", "allowed").stdout, timeout=10)
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}/") == "portal"
    assert lab.curl(gl.phone, f"http://{UPLINK_HOST}:8080/") is None


def test_reapplying_the_gate_keeps_accepted_phones(lab: Lab, tmp_path: Path) -> None:
    gl = build(lab, tmp_path)
    gl.allow(PHONE_IP, PHONE_MAC)
    before = lab.run(gl.node, "nft", "list", "chain", "inet", "meshhub", "from_clients").stdout
    lab.run(gl.node, "nft", "-f", str(tmp_path / "etc" / "gate.nft"))
    after = lab.run(gl.node, "nft", "list", "chain", "inet", "meshhub", "from_clients").stdout
    assert before.count("drop") == after.count("drop")  # rules replaced, not duplicated
    assert PHONE_IP in lab.run(gl.node, "nft", "list", "set", "inet", "meshhub",
                               "allowed").stdout
    lab.wait_for("the allowed phone to reach the uplink after the reload",
                 lambda: lab.curl(gl.phone, f"http://{UPLINK_HOST}/") == "uplink")
