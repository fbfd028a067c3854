"""Accept once, roam everywhere, for real: a phone accepted on n1 walks to n3 and is let
through there with no sheet.

A 3-node line (``meshhub lab up --phones``): real agents (gate, babeld, dnsmasq with its
lease hook, roaming gossip between the agents), portals as ``nobody``. The phone of n1
presses Connect on n1's welcome page; the acceptance travels to n3 as a keyed tag over
two hops; the phone is re-cabled to n3's access point (same MAC), takes a lease there,
and its very first probe gets the "online" answer. n3's own phone, never accepted, is
still sent to the welcome page. The MAC's tag is never written to any file of the lab.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bench.netlab import Lab
from node.lab import MeshLab
from node.roam import day_key, day_number, device_tag

pytestmark = pytest.mark.root

PROBE = {"Host": "connectivitycheck.gstatic.com"}


def roam_status(lab: MeshLab, name: str) -> dict:
    """The node's ``/roam/v1/status`` (counts only), from inside its namespace."""
    node = lab.node(name)
    result = lab.exec(name, ["curl", "-s", "-m", "2",
                             f"http://{node.mesh_address}:9180/roam/v1/status"],
                      capture_output=True, timeout=10)
    return json.loads(result.stdout) if result.returncode == 0 and result.stdout else {}


def test_accepted_on_n1_the_phone_is_let_through_on_n3_without_the_sheet(
        phone_lab: tuple[MeshLab, Lab]) -> None:
    lab, net = phone_lab
    phone, portal1, portal3 = lab.namespace("p1"), "10.64.1.1", "10.64.3.1"
    state = Path(lab.state.state_dir)

    # Connect on n1, as the sign-in sheet does.
    page = net.http(phone, portal1, "/welcome")
    assert page is not None and page["status"] == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page["body"])
    assert token
    answer = net.http(phone, portal1, "/welcome", body=f"csrf_token={token.group(1)}",
                      headers={"Cookie": page["headers"]["set-cookie"].split(";", 1)[0],
                               "Content-Type": "application/x-www-form-urlencoded"})
    assert answer is not None and answer["status"] == 303, answer
    # The gossip reached n3, two hops away (a count: the status never shows a tag).
    net.wait_for("n3 to learn of the acceptance",
                 lambda: roam_status(lab, "n3").get("known", 0) >= 1, timeout=20)

    # The resident walks to n3: new link, same MAC, a lease from n3's dnsmasq.
    lab.move_phone("p1", "n3")
    started = time.monotonic()
    lease = lab.phone_dhcp("p1")
    assert lease["ip"].startswith("10.64.3.")
    first = net.http(phone, portal3, "/generate_204", headers=PROBE)
    passed = time.monotonic() - started
    assert first is not None and first["status"] == 204, (first, roam_status(lab, "n3"))
    assert passed < 10, f"{passed:.2f} s from the DHCP request to the first probe's answer"
    allowed = lab.exec("n3", ["nft", "list", "set", "inet", "meshhub", "allowed"],
                       capture_output=True, timeout=10).stdout
    assert lease["ip"] in allowed
    assert roam_status(lab, "n3")["counters"].get("let_through", 0) >= 1
    # The real agent's /metrics carries the gossip's counts (never a tag): n3 took the
    # announcement and refused nothing.
    metrics = lab.exec("n3", ["curl", "-s", "-m", "2", "http://10.42.0.3:9180/metrics"],
                       capture_output=True, timeout=10).stdout
    received = re.search(r"^meshhub_roam_received_announcements_total (\S+)$", metrics, re.M)
    assert received and float(received.group(1)) >= 1, metrics
    assert re.findall(r'^meshhub_roam_refused_announcements_total\{reason="[a-z-]+"\} (\S+)$',
                      metrics, re.M) == ["0.0"] * 6, metrics

    # n3's own phone, never accepted anywhere, still meets the sheet.
    lab.phone_dhcp("p3")
    other = net.http(lab.namespace("p3"), portal3, "/generate_204", headers=PROBE)
    assert other is not None and other["status"] == 302, other

    # Privacy: the tag is in no file of the lab (store, logs, leases, configuration).
    mac = json.loads(lab.exec("p1", ["ip", "-j", "link", "show", "wlan0"],
                              capture_output=True, timeout=10).stdout)[0]["address"]
    secret = bytes.fromhex((state / "n1" / "data" / "roaming.secret").read_text().strip())
    tag = device_tag(day_key(secret, day_number(time.time())), mac)
    for path in state.rglob("*"):
        if path.is_file() and not path.is_socket():
            assert tag.encode() not in path.read_bytes(), path
    assert tag not in metrics
