"""The lab's internet: an "isp" namespace cabled to the uplink nodes (``lab up --uplinks``).

The isp namespace ``mhl-<id>-isp`` stands in for the internet. It holds
:data:`INTERNET_ADDRESS` on its ``lo`` and serves a one-line page there, naming the
address the request came from (the uplink cable that carried it: ``curl
198.18.0.80`` from a phone tells which gateway it used), and a resolver (dnsmasq)
that answers every name with that address; every node of the lab forwards its
accepted residents' names there (``clients.dns_servers``). It has one veth
cable per uplink node: ``up0`` in the node (``198.51.100.4k+2/30``, a default route
towards the isp with protocol ``dhcp``, as a DHCP client on a home router's line
installs) and ``up-nK`` in the isp. Nothing of it touches the host's own network: the
isp knows only its cables, and the nodes' masquerade hides the residents behind the
addresses of those cables.

``lab uplink cut nK`` takes the isp's end of the cable down, as a router switched off
or a cable pulled: the node's ``up0`` loses its carrier (its routes stay, flagged
``linkdown``), and only the agent's check tells the mesh. ``lab uplink cut nK --silent``
leaves the cable up but drops everything the isp receives on it, as an outage behind
the router: only the check's TCP connection notices.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from node.lab.netns import LabError, ip_batch, run

if TYPE_CHECKING:
    from node.lab.lab import LabNode, LabState, MeshLab

#: The lab's "internet": a web server and a resolver in the isp namespace, reached
#: through an uplink. From 198.18.0.0/15 (RFC 2544, for testing networks): dnsmasq's
#: rebind protection refuses answers in the documentation blocks (TEST-NETs).
INTERNET_ADDRESS = "198.18.0.80"
#: The cables' block (TEST-NET-2): a /30 per uplink node, numbered by the node.
CABLES = ipaddress.IPv4Network("198.51.100.0/24")
#: The uplink interface in an uplink node.
UPLINK_IF = "up0"
#: What the web server in the isp answers, with the client's address filled in.
INTERNET_PAGE = "the internet, reached from {}\n"
_TABLE = "lab_isp"


def isp_namespace(state: LabState) -> str:
    """The lab's isp namespace (``mhl-ID-isp``)."""
    return f"{state.ns_prefix}isp"


def cable(number: int) -> tuple[str, str]:
    """The isp's and the node's address on node ``number``'s cable."""
    if not 1 <= number <= 63:
        raise LabError(f"n{number}: only n1..n63 can have an uplink in the lab")
    base = int(CABLES.network_address) + 4 * number
    return str(ipaddress.IPv4Address(base + 1)), str(ipaddress.IPv4Address(base + 2))


def uplink_toml(node: LabNode, state: LabState) -> str:
    """The lines a node of a lab with uplinks adds to its ``[clients]``: the internet's
    resolver and, on an uplink node, the uplink, its cost and its check (the internet's
    web server; quicker checks than a real node's unless ``--timings defaults``)."""
    if not state.uplinks:
        return ""
    # Every node forwards its accepted residents' names to the internet's resolver.
    dns = f'dns_servers = ["{INTERNET_ADDRESS}"]\n'
    if node.name not in state.uplinks:
        return dns
    quick = "" if state.timings == "defaults" else "uplink_check_seconds = 1.0\n"
    return (f'{dns}uplink_interface = "{UPLINK_IF}"\n'
            f'uplink_check = ["{INTERNET_ADDRESS}:80"]\n'
            f"uplink_cost = {state.uplinks[node.name]}\n{quick}")


def build_isp(lab: MeshLab) -> None:
    """Make the isp namespace, its web server and one cable per uplink node."""
    st = lab.state
    isp = isp_namespace(st)
    run("ip", "netns", "add", isp)
    ip_batch(isp, ["link set lo up", f"address add {INTERNET_ADDRESS}/32 dev lo"])
    for name in st.uplinks:
        node = lab.node(name)
        theirs, ours = cable(node.number)
        run("ip", "-n", node.ns, "link", "add", UPLINK_IF, "type", "veth", "peer", "name",
            f"up-{name}", "netns", isp)
        ip_batch(isp, [f"address add {theirs}/30 dev up-{name}", f"link set up-{name} up"])
        ip_batch(node.ns, [f"address add {ours}/30 dev {UPLINK_IF}", f"link set {UPLINK_IF} up",
                           f"route add default via {theirs} dev {UPLINK_IF} proto dhcp"])
    log = (Path(st.state_dir) / "isp.log").open("ab")
    with log:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", isp, sys.executable, "-m", "node.lab.uplinks", "serve",
             INTERNET_ADDRESS], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    # The internet's resolver: every name is the web server (dnsmasq, in the foreground).
    dns = subprocess.Popen(
        ["ip", "netns", "exec", isp, "dnsmasq", "--keep-in-foreground", "--no-resolv",
         "--no-hosts", f"--listen-address={INTERNET_ADDRESS}", "--bind-interfaces",
         f"--address=/#/{INTERNET_ADDRESS}", "--pid-file="], stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    st.isp_pids = [proc.pid, dns.pid]
    st.save()


def serve(address: str, port: int = 80) -> None:
    """The isp's web server: every GET answers :data:`INTERNET_PAGE` (runs in the isp)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = INTERNET_PAGE.format(self.client_address[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: a benchmark's thousands of requests would fill the log."""

    ThreadingHTTPServer((address, port), Handler).serve_forever()


def set_uplink(lab: MeshLab, name: str, up: bool, silent: bool = False) -> None:
    """Cut node ``name``'s uplink (``up`` false) or restore it: the isp's end of the
    cable down, or with ``silent`` everything arriving on it dropped (see above)."""
    st = lab.state
    if name not in st.uplinks:
        raise LabError(f"{name} has no uplink in lab {st.id}; uplinks: "
                       + (", ".join(st.uplinks) or "none (start it with --uplinks)"))
    isp, end = isp_namespace(st), f"up-{name}"
    run("ip", "netns", "exec", isp, "nft", "delete", "table", "netdev", f"{_TABLE}_{name}",
        check=False)
    run("ip", "-n", isp, "link", "set", end, "up")
    if up:
        return
    if not silent:
        run("ip", "-n", isp, "link", "set", end, "down")
        return
    run("ip", "netns", "exec", isp, "nft", "-f", "-", stdin=(
        f"table netdev {_TABLE}_{name} {{\n"
        f"\tchain in {{ type filter hook ingress device \"{end}\" priority 0; policy drop; }}\n"
        "}\n"))


def probe(address: str, interval: float, timeout: float = 0.5) -> None:
    """A phone's steady use of the internet (runs in a phone's namespace): every
    ``interval`` seconds a new connection and GET to ``address``, one line per try on
    stdout: the monotonic time it started and the cable address the isp saw, or ``-``
    when nothing came back within ``timeout``."""
    import http.client
    import re
    import time

    while True:
        started = time.monotonic()
        seen = "-"
        try:
            conn = http.client.HTTPConnection(address, 80, timeout=timeout)
            conn.request("GET", "/")
            found = re.search(r"reached from (\S+)", conn.getresponse().read().decode())
            seen = found.group(1) if found else "-"
            conn.close()
        except (OSError, http.client.HTTPException):
            pass
        print(f"{started:.3f} {seen}", flush=True)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        probe(sys.argv[2], float(sys.argv[3]))
