"""A phone goes from DHCP to the portal sheet to "Connect" to success, for real.

The node namespace runs the rendered gate (nftables), the rendered dnsmasq, the agent
(``meshhub agent`` with ``gate.enabled``: its gate socket) and the portal under waitress
as the unprivileged user ``nobody`` (the socket's only other permitted user). Two
phones hang off a bridge named like the access point; its ports are "isolated", as
hostapd's ``ap_isolate`` keeps Wi-Fi clients apart (no radio exists here). An "uplink"
namespace stands in for the internet. Nothing leaves the namespaces.

Probes are sent two ways: to an outside address (the gate's port-80 redirect brings
them to the portal) and to the portal's address with the probe's ``Host`` (what an
offline node's DNS answers for every name). After acceptance, outside addresses reach
the real outside (here the uplink stand-in), so the success answers are checked on the
portal's address.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.netlab import SERVING_TOML, Lab, access_point, nobody_root, start_serving_node
from tests.conftest import require_tool

pytestmark = pytest.mark.root

PORTAL = "10.64.7.1"
UPLINK_HOST = "198.51.100.2"
PHONE_MAC, OTHER_MAC = "02:00:00:00:00:50", "02:00:00:00:00:66"
BIN = Path(sys.executable).parent

TOML = SERVING_TOML + 'uplink_interface = "up0"\n'  # appended to [clients]

#: (path, Host header, expected status, expected exact body) once accepted.
PROBES = [
    ("/hotspot-detect.html", "captive.apple.com", 200,
     "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"),
    ("/generate_204", "connectivitycheck.gstatic.com", 204, ""),
    ("/gen_204", "www.google.com", 204, ""),
    ("/connecttest.txt", "www.msftconnecttest.com", 200, "Microsoft Connect Test"),
    ("/ncsi.txt", "www.msftncsi.com", 200, "Microsoft NCSI"),
    ("/success.txt", "detectportal.firefox.com", 200, "success\n"),
    ("/check_network_status.txt", "nmcheck.gnome.org", 200, "NetworkManager is online\n"),
]

UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || exit 0
printf '{{"ip":"%s","router":"%s","opt114":"%s"}}\\n' "$ip" "$router" "$opt114" > "{out}"
"""


@dataclass
class Captive:
    """The running lab."""

    lab: Lab
    root: Path
    node: str
    phone: str
    other: str
    uplink: str
    phone_ip: str

    def probe(self, ns: str, path: str, host: str, address: str = PORTAL) -> dict:
        answer = self.lab.http(ns, address, path, headers={"Host": host})
        assert answer is not None, f"no answer to {host}{path} at {address}"
        return answer

    def logs(self) -> str:
        """The agent's and the portal's logs, for failure messages."""
        return "\n".join(f"--- {name}\n" + (self.root / name).read_text(errors="replace")[-3000:]
                         for name in ("agent.log", "portal.log") if (self.root / name).exists())

    def meshhub(self, *args: str) -> str:
        return self.lab.run(self.node, str(BIN / "meshhub"), "-c", str(self.root / "node.toml"),
                            *args).stdout


@pytest.fixture
def captive(lab: Lab) -> Iterator[Captive]:
    require_tool("nft", "dnsmasq", "busybox", "curl", "setpriv")
    with nobody_root(lab, "meshhub-captive-") as root:
        yield build(lab, root)


def build(lab: Lab, root: Path) -> Captive:
    node, phone, other, uplink = (lab.netns(n) for n in ("node", "phone", "other", "uplink"))
    access_point(lab, node, [(phone, "wlan0", PHONE_MAC), (other, "wlan0", OTHER_MAC)])
    lab.veth(node, "up0", uplink, "eth0")
    lab.run(node, "ip", "address", "add", f"{PORTAL}/24", "dev", "ap0")
    lab.run(node, "ip", "address", "add", "198.51.100.1/24", "dev", "up0")
    lab.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    lab.run(uplink, "ip", "address", "add", f"{UPLINK_HOST}/24", "dev", "eth0")
    lab.run(uplink, "ip", "route", "add", "10.64.0.0/10", "via", "198.51.100.1")
    start_serving_node(lab, node, root, TOML.format(root=root), PORTAL)
    lab.http_server(uplink, root / "web", UPLINK_HOST, 80, "uplink")
    lab.http_server(uplink, root / "other-port", UPLINK_HOST, 8080, "other-port")
    lab.wait_for("the uplink's servers",
                 lambda: lab.curl(uplink, f"http://{UPLINK_HOST}:8080/") == "other-port")

    # The phones join: a real DHCP client, asking for option 114.
    lease = take_lease(lab, phone, root / "phone")
    assert bytes.fromhex(lease["opt114"]).decode() == f"http://{PORTAL}/api/captive"
    assert lease["router"] == PORTAL
    take_lease(lab, other, root / "other")
    return Captive(lab, root, node, phone, other, uplink, lease["ip"])


def take_lease(lab: Lab, ns: str, work: Path) -> dict:
    """Take a lease with busybox ``udhcpc`` in ``ns`` and configure it, as a phone does."""
    work.mkdir()
    out, script = work / "lease.json", work / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT.format(out=out), encoding="utf-8")
    script.chmod(0o755)
    lab.run(ns, "busybox", "udhcpc", "-i", "wlan0", "-n", "-q", "-t", "5", "-T", "1",
            "-O", "114", "-s", str(script), timeout=30)
    lease = json.loads(out.read_text(encoding="utf-8"))
    lab.run(ns, "ip", "address", "add", f"{lease['ip']}/24", "dev", "wlan0")
    lab.run(ns, "ip", "route", "add", "default", "via", PORTAL)
    return lease


def connect(c: Captive, ns: str) -> dict:
    """Open the welcome page and press Connect, as the phone's sign-in sheet does."""
    page = c.lab.http(ns, PORTAL, "/welcome")
    assert page is not None and page["status"] == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page["body"])
    assert token, "no Connect form on the welcome page"
    cookie = page["headers"]["set-cookie"].split(";", 1)[0]
    answer = c.lab.http(ns, PORTAL, "/welcome", body=f"csrf_token={token.group(1)}",
                        headers={"Cookie": cookie,
                                 "Content-Type": "application/x-www-form-urlencoded"})
    assert answer is not None
    return answer


def test_phone_from_dhcp_to_portal_to_connect_to_success(captive: Captive) -> None:
    c, lab = captive, captive.lab
    welcome = f"http://{PORTAL}/welcome"
    # Before acceptance: every probe, sent anywhere, is sent to the welcome page.
    for path, host, _status, _body in PROBES:
        for address in (PORTAL, UPLINK_HOST, "203.0.113.7"):
            answer = c.probe(c.phone, path, host, address)
            assert (answer["status"], answer["headers"].get("location")) == (302, welcome), \
                (path, address, answer, c.logs())
            assert answer["headers"]["cache-control"] == "private, no-store"
    apple = lab.http(c.phone, UPLINK_HOST, "/abc/def.html",
                     headers={"Host": "www.thinkdifferent.us",
                              "User-Agent": "CaptiveNetworkSupport-443 wispr"})
    assert apple is not None and apple["headers"]["location"] == welcome
    assert json.loads(c.probe(c.phone, "/api/captive", PORTAL)["body"])["captive"] is True
    # The outside is out of reach.
    assert lab.curl(c.phone, f"http://{UPLINK_HOST}:8080/") is None
    assert not lab.ping(c.phone, UPLINK_HOST)

    # Connect.
    answer = connect(c, c.phone)
    assert (answer["status"], answer["headers"]["location"]) == (303, "/connected")
    listed = c.meshhub("gate", "list")
    assert c.phone_ip in listed and PHONE_MAC in listed  # bound to the phone's MAC

    # Every probe now gets exactly its success answer ...
    for path, host, status, body in PROBES:
        answer = c.probe(c.phone, path, host)
        assert (answer["status"], answer["body"]) == (status, body), path
        assert answer["headers"]["cache-control"] == "private, no-store"
    api = c.probe(c.phone, "/api/captive", PORTAL)
    assert api["headers"]["content-type"] == "application/captive+json"
    data = json.loads(api["body"])
    assert data["captive"] is False and 0 < data["seconds-remaining"] <= 1440 * 60
    # ... and the outside answers on every port.
    assert lab.curl(c.phone, f"http://{UPLINK_HOST}/") == "uplink"
    assert lab.curl(c.phone, f"http://{UPLINK_HOST}:8080/") == "other-port"
    assert lab.ping(c.phone, UPLINK_HOST)

    # The other phone, not accepted, is still held back, and cannot reach the first.
    assert c.probe(c.other, "/generate_204", "x")["status"] == 302
    assert lab.curl(c.other, f"http://{UPLINK_HOST}:8080/") is None
    lab.http_server(c.phone, c.root / "phone-web", "0.0.0.0", 8000, "phone")
    lab.wait_for("the phone's own server",
                 lambda: lab.curl(c.phone, "http://127.0.0.1:8000/") == "phone")
    assert not lab.ping(c.other, c.phone_ip)
    assert lab.curl(c.other, f"http://{c.phone_ip}:8000/") is None
    other_ip = lab.run(c.other, "ip", "-4", "-o", "address", "show", "dev", "wlan0"
                       ).stdout.split()[3].split("/")[0]
    assert not lab.ping(c.phone, other_ip)

    # The other phone takes the accepted phone's address (without its MAC): nothing, not
    # even the portal (the address is leased to another MAC: tests/security replays this).
    lab.run(c.phone, "ip", "address", "flush", "dev", "wlan0")
    lab.run(c.other, "ip", "address", "flush", "dev", "wlan0")
    lab.run(c.other, "ip", "address", "add", f"{c.phone_ip}/24", "dev", "wlan0")
    lab.run(c.other, "ip", "route", "replace", "default", "via", PORTAL)
    lab.run(c.node, "ip", "neigh", "flush", "dev", "ap0")
    assert lab.http(c.other, PORTAL, "/generate_204",
                    headers={"Host": "connectivitycheck.gstatic.com"}) is None
    assert lab.curl(c.other, f"http://{UPLINK_HOST}:8080/") is None


def test_expiry_brings_the_portal_sheet_back(captive: Captive) -> None:
    c, lab = captive, captive.lab
    assert connect(c, c.phone)["status"] == 303
    assert c.probe(c.phone, "/generate_204", "connectivitycheck.gstatic.com")["status"] == 204
    # A technician shortens the phone's time (through the same GateManager).
    c.meshhub("gate", "allow", c.phone_ip, "--for", "3s")
    lab.wait_for("the phone's time to run out", lambda: c.probe(
        c.phone, "/generate_204", "connectivitycheck.gstatic.com")["status"] == 302, timeout=15)
    assert lab.curl(c.phone, f"http://{UPLINK_HOST}:8080/") is None
    assert json.loads(c.probe(c.phone, "/api/captive", PORTAL)["body"])["captive"] is True
