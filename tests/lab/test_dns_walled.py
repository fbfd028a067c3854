"""No DNS past the gate, for real: on a node with an uplink, a phone that has not accepted
never makes a name leave the node; once accepted, its names reach the upstream resolver.

Namespaces: the node (meshhub's rendered gate, its forwarding dnsmasq and the walled
resolver), a phone on ``ap0``, and "the internet" on ``up0``: a stub resolver (dnsmasq
with ``log-queries``) at a TEST-NET address, which logs every name it is asked and
answers every one with 198.18.0.80. Nothing is connected to the host's network.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from bench.netlab import NODE_TOML, Lab, apply_gate, start_dnsmasq
from node.config import parse_config
from tests.conftest import require_tool

pytestmark = pytest.mark.root

PORTAL = "10.64.7.1"
PHONE, PHONE_MAC = "10.64.7.50", "02:00:00:00:00:51"
# The answer: an address of the benchmarking range (RFC 2544), never contacted; dnsmasq's
# rebind protection (stop-dns-rebind) rightly refuses private and TEST-NET answers.
UPSTREAM, OUTSIDE_ANSWER = "198.51.100.53", "198.18.0.80"


def _asked(log: Path, name: str) -> bool:
    """Whether the stub upstream logged a query for ``name``."""
    return f"query[A] {name} from" in log.read_text(encoding="utf-8", errors="replace")


def test_unaccepted_phone_names_never_reach_the_upstream_accepted_ones_do(
        lab: Lab, tmp_path: Path) -> None:
    require_tool("dnsmasq", "nft")
    node, phone, internet = lab.netns("node"), lab.netns("phone"), lab.netns("inet")
    lab.veth(node, "ap0", phone, "wlan0", mac_b=PHONE_MAC)
    lab.veth(node, "up0", internet, "eth0")
    lab.run(node, "ip", "address", "add", f"{PORTAL}/24", "dev", "ap0")
    lab.run(node, "ip", "address", "add", "198.51.100.1/24", "dev", "up0")
    lab.run(internet, "ip", "address", "add", f"{UPSTREAM}/24", "dev", "eth0")
    lab.run(phone, "ip", "address", "add", f"{PHONE}/24", "dev", "wlan0")
    lab.run(phone, "ip", "route", "add", "default", "via", PORTAL)

    # "The internet": a resolver that writes down every name it is asked.
    upstream_log = tmp_path / "upstream.log"
    lab.start(internet, "dnsmasq", "--keep-in-foreground", "--user=root", "--log-facility=-",
              "--log-queries", "--no-resolv", "--no-hosts", "--bind-interfaces",
              f"--listen-address={UPSTREAM}", f"--address=/#/{OUTSIDE_ANSWER}",
              f"--pid-file={tmp_path / 'upstream.pid'}", log=upstream_log)

    cfg = parse_config(NODE_TOML + 'uplink_interface = "up0"\n')
    etc = tmp_path / "etc"
    apply_gate(lab, node, cfg, etc)
    leases = (cfg.data_dir / "dnsmasq.leases", tmp_path / "leases")
    start_dnsmasq(lab, node, etc, tmp_path, leases=leases, upstream=UPSTREAM)
    start_dnsmasq(lab, node, etc, tmp_path, name="dnsmasq-walled",
                  source="dnsmasq-walled.conf")
    lab.wait_for("the stub upstream resolver",
                 lambda: lab.dns_a(internet, UPSTREAM, "ready.example") == OUTSIDE_ANSWER)

    # Not accepted: every name, over UDP and TCP, is the portal, answered by the node.
    tag = secrets.token_hex(4)
    walled = [f"tunnel-{tag}-udp.example.org", f"tunnel-{tag}-tcp.example.org",
              "connectivitycheck.gstatic.com"]
    for name, tcp in zip(walled, (False, True, False), strict=True):
        assert lab.wait_for(f"the walled answer for {name}",
                            lambda n=name, t=tcp: lab.dns_a(phone, PORTAL, n, tcp=t)) == PORTAL
    counter = lab.run(node, "nft", "list", "counter", "inet", "meshhub", "dns_walled").stdout
    assert "packets 0 " not in counter, counter

    # Accepted (the element the gate's allow adds): its names go out and come back.
    lab.run(node, "nft", "add", "element", "inet", "meshhub", "allowed",
            f"{{ {PHONE} . {PHONE_MAC} }}")
    for tcp in (False, True):
        name = f"accepted-{tag}-{'tcp' if tcp else 'udp'}.example.org"
        assert lab.wait_for(f"the upstream's answer for {name}",
                            lambda n=name, t=tcp: lab.dns_a(phone, PORTAL, n, tcp=t)) \
            == OUTSIDE_ANSWER
        assert _asked(upstream_log, name)  # the witness that the log shows what arrives
    for name in walled:
        assert not _asked(upstream_log, name), f"{name} leaked to the upstream"

    # Another MAC with the accepted address is a stranger again: walled.
    lab.run(node, "nft", "delete", "element", "inet", "meshhub", "allowed",
            f"{{ {PHONE} . {PHONE_MAC} }}")
    lab.run(node, "nft", "add", "element", "inet", "meshhub", "allowed",
            f"{{ {PHONE} . 02:00:00:00:00:99 }}")
    late = f"after-{tag}.example.org"
    assert lab.dns_a(phone, PORTAL, late) == PORTAL
    assert not _asked(upstream_log, late)
