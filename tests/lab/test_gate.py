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


def build(lab: Lab, tmp_path: Path, toml: str = LAB_TOML) -> GateLab:
    """The topology with the gate rendered from ``toml`` applied and the stand-in servers
    running."""
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

    apply_gate(lab, node, parse_config(toml), tmp_path / "etc")

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


#: The per-device caps of :func:`test_a_device_cap_holds_a_phone_to_its_speed`, kbit/s.
CAP_DOWN_KBIT, CAP_UP_KBIT = 2000, 1000
#: Bytes each way: about 4 s at the cap.
DOWNLOAD_BYTES, UPLOAD_BYTES = 1_000_000, 500_000
#: What the uplink's sink answers once the upload is in: its size (so the time counts
#: delivery, not the phone's socket buffer).
SINK = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], 9000))
server.listen()
while True:
    conn, _ = server.accept()
    try:
        size = int(conn.recv(16).decode())
    except ValueError:  # a probe that only connects
        conn.close()
        continue
    got = 0
    while got < size:
        data = conn.recv(65536)
        if not data:
            break
        got += len(data)
    conn.sendall(str(got).encode())
    conn.close()
"""
#: Two uploads in a row; the second one's speed (the first empties the cap's bucket).
UPLOAD = """
import socket, sys, time
size = int(sys.argv[2])
for _ in range(2):
    began = time.monotonic()
    conn = socket.create_connection((sys.argv[1], 9000), timeout=30)
    conn.sendall(str(size).encode().ljust(16))
    conn.sendall(b"u" * size)
    assert int(conn.recv(32).decode()) == size
    conn.close()
print(size * 8 / 1000 / (time.monotonic() - began))
"""


def test_a_device_cap_holds_a_phone_to_its_speed(lab: Lab, tmp_path: Path) -> None:
    """With ``clients.device_download_kbit`` / ``device_upload_kbit`` set, an accepted
    phone downloads and uploads at most at its cap once its first second or so is used
    up (nftables' byte limit holds a second of the rate plus the burst), and gets most
    of the cap (TCP fits a policer with a quarter second's burst); the same transfers
    without the caps are many times faster (this lab's cables have no speed of their
    own)."""
    import sys

    capped = LAB_TOML.replace("[gate]\n", f"device_download_kbit = {CAP_DOWN_KBIT}\n"
                                           f"device_upload_kbit = {CAP_UP_KBIT}\n[gate]\n")
    gl = build(lab, tmp_path, capped)
    gl.allow(PHONE_IP, PHONE_MAC)
    (tmp_path / "web" / "big").write_bytes(b"b" * DOWNLOAD_BYTES)
    lab.start(gl.uplink, sys.executable, "-c", SINK, UPLINK_HOST)
    lab.wait_for("the uplink's sink", lambda: lab.tcp_open(gl.uplink, UPLINK_HOST, 9000))

    def download_kbit() -> float:
        """The second of two downloads in a row (the first empties the cap's bucket)."""
        url = f"http://{UPLINK_HOST}/big"
        out = lab.run(gl.phone, "curl", "-sf", "-m", "30", "-w",
                      "%{size_download} %{speed_download}\n", "-o", "/dev/null", url,
                      "-o", "/dev/null", url, timeout=90).stdout
        size, speed = out.splitlines()[-1].split()
        assert int(size) == DOWNLOAD_BYTES, out
        return float(speed) * 8 / 1000

    def upload_kbit() -> float:
        return float(lab.run(gl.phone, sys.executable, "-c", UPLOAD, UPLINK_HOST,
                             str(UPLOAD_BYTES), timeout=60).stdout)

    down, up = download_kbit(), upload_kbit()
    dropped = gl.counter("device_cap_dropped")
    # Without the caps (the gate applied again: accepted phones stay accepted).
    apply_gate(lab, gl.node, parse_config(LAB_TOML), tmp_path / "etc-uncapped")
    free_down, free_up = download_kbit(), upload_kbit()
    figures = (f"download {down:.0f} kbit/s (cap {CAP_DOWN_KBIT}), upload {up:.0f} "
               f"(cap {CAP_UP_KBIT}), {dropped} packets dropped; without the caps: "
               f"{free_down:.0f} / {free_up:.0f}")
    print(figures)
    # At most the cap, plus what the bucket refilled between the two transfers (0.1 s is
    # 5 %, and a loaded machine starts the second one later), and most of it.
    assert 0.6 * CAP_DOWN_KBIT <= down <= 1.15 * CAP_DOWN_KBIT, figures
    assert 0.6 * CAP_UP_KBIT <= up <= 1.15 * CAP_UP_KBIT, figures
    assert dropped > 0, figures
    assert free_down > 4 * CAP_DOWN_KBIT and free_up > 4 * CAP_UP_KBIT, figures
