"""The emergency notice, for real: posted on n1, on the screen of every phone of the mesh.

A 3-node line (``meshhub lab up --phones``): real agents (gates in nftables, babeld,
dnsmasq, replication), portals as ``nobody``. Every phone has pressed Connect and is
online; each probes as a phone does (Android, Apple, RFC 8908: bench/broadcast_run.py).
An admin sends an emergency broadcast on n1 with ``meshhub broadcast send``; the test
waits until every phone's probe is sent to the notice and records how long after the
post that was. Then: the sign-in sheet shows the notice with "I have read this"; the
gate holds the phone back (a connection to another site is brought to the notice, the
mesh is closed); pressing the button lets it through again with no new Connect, while
the others stay held; cancelling on n3 ends it on every node.
"""

from __future__ import annotations

import secrets
import time

import pytest

from bench.broadcast_run import press, sent_at, start_probers, stop_probers
from bench.meshlab import meshhub
from bench.netlab import Lab
from node.lab import MeshLab

pytestmark = pytest.mark.root

#: A bound that a loaded CI machine keeps (the lab's processes compete for 2 cores with
#: everything else); the figures against issue 15's target of 10 s are printed here and
#: measured on 10 nodes by bench/broadcast.py.
BOUND_SECONDS = 60
OUTSIDE = "203.0.113.7"  # another site (TEST-NET-3): no such host in the lab
PASSWORD = "correct horse battery staple\n"


def test_a_broadcast_from_n1_reaches_every_phone_and_reading_it_lets_one_through(
        phone_lab: tuple[MeshLab, Lab]) -> None:
    lab, net = phone_lab
    names = sorted(lab.state.nodes, key=lambda n: lab.node(n).number)
    first, last = names[0], names[-1]
    # Every phone accepts the house rules on its own node, as its sign-in sheet does.
    for name in names:
        node = lab.node(name)
        answer = press(net, node.phone_ns, f"10.64.{node.number}.1", "/welcome", "Connect")
        assert answer["status"] == 303 and answer["headers"]["location"] == "/connected", answer
    meshhub(lab, first, "organiser", "add", "lab", "--role", "admin", "--password-stdin",
            stdin=PASSWORD * 2)
    # The account must have reached the last node (it checks the sender's permission).
    net.wait_for(f"the admin account on {last}", lambda: "lab" in meshhub(
        lab, last, "organiser", "list"), timeout=60, interval=0.5)

    phones = start_probers(lab)
    try:
        started = time.monotonic()
        for phone in phones:
            phone.wait("online answer", started, "online", timeout=30)

        title = f"Boil water {secrets.token_hex(3)}"
        posted = time.monotonic()  # before the command starts: its own start-up counts
        notice = meshhub(lab, first, "broadcast", "send", "--as", "lab", "--title", title,
                         "--body", "The water is unsafe until **Friday**.", "--minutes", "30")
        hits = {p.name: p.wait("emergency notice", posted, "/emergency", timeout=BOUND_SECONDS)
                for p in phones}
        signed = sent_at(lab, first)
        seen = {p.name: p.wall[hits[p.name]] - signed for p in phones}
        print(f"broadcast signed on {first} -> each phone's probe shows the notice (s): "
              + ", ".join(f"{n} {s:.2f}" for n, s in seen.items())
              + f"; from the command's start: {max(hits.values()) - posted:.2f}")
        assert all(s > 0 for s in seen.values()), seen  # seen after it was signed

        # The sheet opens on the notice; the gate holds the accepted phone back.
        phone = lab.node(last).phone_ns
        portal = f"10.64.{lab.node(last).number}.1"
        page = net.http(phone, portal, "/emergency")
        assert page is not None and title in page["body"] and "I have read this" in \
            page["body"], page
        # Its Markdown as its portal renders it (its agent stored a stand-in: the text
        # escaped, shown meanwhile; portal/rendering.py looks every 0.2 s).
        net.wait_for("the notice's Markdown rendered", lambda: "<strong>Friday</strong>" in (
            net.http(phone, portal, "/emergency") or {}).get("body", ""), timeout=10,
            interval=0.2)
        api = net.http(phone, portal, "/api/captive")
        assert api is not None and '"captive": true' in api["body"] and \
            f"http://{portal}/emergency" in api["body"], api
        elsewhere = net.http(phone, OUTSIDE, "/")
        assert elsewhere is not None and elsewhere["headers"].get("location") == \
            f"http://{portal}/emergency", elsewhere
        assert not net.tcp_open(phone, "10.42.0.1", 8080)  # n1's hub across the mesh
        assert notice in meshhub(lab, last, "broadcast", "show")

        # "I have read this": through again, with no new Connect; the others stay held.
        read_at = time.monotonic()
        answer = press(net, phone, portal, "/emergency", "I have read this")
        assert answer["status"] == 303 and answer["headers"]["location"] == "/connected", answer
        reader = next(p for p in phones if p.name == f"p{lab.node(last).number}")
        reader.wait("online answer after reading", read_at, "online", timeout=10)
        net.wait_for("n1's hub across the mesh", lambda: net.tcp_open(phone, "10.42.0.1",
                                                                       8080), timeout=10)
        assert all("/emergency" in p.state() for p in phones if p is not reader)

        # Cancelled on the last node: every phone of the mesh is online again.
        cancelled = time.monotonic()
        meshhub(lab, last, "broadcast", "cancel", "--as", "lab")
        ended = {p.name: p.wait("online answer after the cancel", cancelled, "online",
                                timeout=BOUND_SECONDS) - cancelled
                 for p in phones if p is not reader}
        assert reader.state() == "online"
        print(f"cancel on {last} -> each phone online again (s): "
              + ", ".join(f"{n} {s:.2f}" for n, s in ended.items()))
    finally:
        stop_probers(phones)
