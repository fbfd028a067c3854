"""Replay (issue 17, item 4, the portal's side): slowloris against the portal.

Where phones reach the portal's waitress directly (the lab; a node without nginx),
200 connections that each send a header line every two seconds kept every one of
waitress's connections busy and the portal stopped answering. The node's gate now
lets one address hold at most 16 connections to the hub's ports; the attack below
(one resident's device, :data:`SLOW_CONNECTIONS` connections for at most
:data:`ATTACK_SECONDS`) must leave the portal answering another phone at once.
With nginx in front the same attack is nginx's to absorb (tests/portal/test_nginx.py
serves through it; docs/serving.md).
"""

from __future__ import annotations

import json
import sys

from node.net.render_nftables import HUB_CONNECTIONS_PER_ADDRESS
from tests.security.test_access_point import (
    PORTAL,
    AccessPoint,
    ap,  # noqa: F401 - the node and its residents
)

SLOW_CONNECTIONS, ATTACK_SECONDS = 200, 20
PORT = 8080  # the lab's portal: waitress, with no nginx in front

#: The attacker: open the connections, report, then trickle a header line on each.
ATTACK = """
import json, socket, sys, time
host, port, count, seconds, report = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \\
    float(sys.argv[4]), sys.argv[5]
held = []
for _ in range(count):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect((host, port))
        s.sendall(b"GET / HTTP/1.1\\r\\nHost: hub.mesh\\r\\n")
        held.append(s)
    except OSError:
        s.close()
open(report, "w").write(json.dumps({"opened": len(held)}) + "\\n")
end = time.monotonic() + seconds
while time.monotonic() < end and held:
    time.sleep(2)
    for s in list(held):
        try:
            s.sendall(b"X-Slow: 1\\r\\n")
        except OSError:
            held.remove(s)
            s.close()
open(report, "a").write(json.dumps({"still_open": len(held)}) + "\\n")
"""


def test_one_device_with_200_slow_connections_cannot_silence_the_portal(
        ap: AccessPoint) -> None:  # noqa: F811 - the fixture imported above
    lab = ap.lab
    assert ap.lease(ap.alice) and ap.lease(ap.mallory), "both are residents with a lease"
    assert lab.http(ap.alice, PORTAL, "/about", port=PORT) is not None
    report = ap.root / "slowloris.json"
    attack = lab.start(ap.mallory, sys.executable, "-c", ATTACK, PORTAL, str(PORT),
                       str(SLOW_CONNECTIONS), str(ATTACK_SECONDS), str(report),
                       log=ap.root / "slowloris.log")
    lab.wait_for("the slow connections to be opened", report.exists, timeout=60)
    opened = json.loads(report.read_text().splitlines()[0])["opened"]
    assert attack.poll() is None, "the attack is still under way"
    for _ in range(5):
        page = lab.http(ap.alice, PORTAL, "/about", port=PORT, timeout=3)
        assert page is not None and page["status"] == 200, "the portal answers alice"
    assert opened <= HUB_CONNECTIONS_PER_ADDRESS, opened
    assert ap.counter("inet", "meshhub", "hub_conn_limited") >= SLOW_CONNECTIONS - opened
    attack.wait(timeout=ATTACK_SECONDS + 30)
