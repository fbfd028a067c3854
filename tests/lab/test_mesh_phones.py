"""A resident's phone on a lab node, for real: DHCP, the portal sheet, Connect, the mesh.

A 3-node line (``meshhub lab up --phones``); every node is complete: its agent loads
the nftables gate and runs babeld and dnsmasq, and its portal runs as ``nobody``. The
phone on n3 takes its lease from n3's dnsmasq with busybox ``udhcpc``, meets n3's
welcome page, presses Connect, and then reaches the hub on n3 and on n1 across the
mesh — but never n1's management ports. Everything is removed even when a test fails.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.netlab import Lab
from node.lab import MeshLab
from tests.lab.conftest import phone_mesh

pytestmark = pytest.mark.root

PORTAL = "10.64.3.1"  # n3's address on its access point
N1 = "10.42.0.1"  # n1's mesh address
N3 = "10.42.0.3"  # n3's mesh address (the phone's own node)
OUTSIDE = "203.0.113.7"  # anywhere else (TEST-NET-3): no such host in the lab


class Phones:
    """The running lab, its phone on n3, and request helpers (from :mod:`bench.netlab`)."""

    def __init__(self, mesh: MeshLab, net: Lab, root: Path) -> None:
        self.mesh, self.net, self.root = mesh, net, root
        self.phone = mesh.namespace("p3")

    def get(self, host: str, path: str, port: int = 80, **kwargs: object) -> dict:
        answer = self.net.http(self.phone, host, path, port=port, **kwargs)  # type: ignore[arg-type]
        assert answer is not None, f"no answer from {host}:{port}{path}\n{self.logs()}"
        return answer

    def logs(self) -> str:
        parts = []
        for name in ("agent.log", "portal.log", "run/dnsmasq.log"):
            path = Path(self.mesh.state.state_dir) / "n3" / name
            if path.exists():
                parts.append(f"--- n3/{name}\n" + path.read_text(errors="replace")[-2000:])
        return "\n".join(parts)


@pytest.fixture(scope="module")
def phones() -> Iterator[Phones]:
    with phone_mesh("phones") as mesh:
        net = Lab()
        try:
            yield Phones(mesh, net, Path(mesh.state.state_dir).parent)
        finally:
            net.close()


def meshhub(mesh: MeshLab, node: str, *args: str, stdin: str | None = None) -> str:
    from node.lab.lab import _program

    result = mesh.exec(node, [*_program("meshhub"), "-c", mesh.node(node).config, *args],
                       capture_output=True, input=stdin, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def connect(p: Phones) -> dict:
    """Open n3's welcome page and press Connect, as the phone's sign-in sheet does."""
    page = p.get(PORTAL, "/welcome")
    assert page["status"] == 200
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page["body"])
    assert token, "no Connect form on the welcome page"
    cookie = page["headers"]["set-cookie"].split(";", 1)[0]
    return p.get(PORTAL, "/welcome", body=f"csrf_token={token.group(1)}",
                 headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})


def test_every_lab_node_runs_the_whole_node(phones: Phones) -> None:
    mesh = phones.mesh
    assert mesh.state.portal_user == "nobody"
    for name in mesh.state.nodes:
        gate = mesh.exec(name, ["nft", "list", "set", "inet", "meshhub", "allowed"],
                         capture_output=True, timeout=10)
        assert gate.returncode == 0, (name, gate.stderr)  # the agent loaded the gate
        run_dir = Path(mesh.state.state_dir) / name / "run"
        assert "DHCP, IP range" in (run_dir / "dnsmasq.log").read_text(), name
        assert (run_dir / "gate.sock").is_socket(), name
        pid = mesh.node(name).pids["portal"]
        portal = mesh.exec(name, ["ps", "-o", "user=", "-p", str(pid)],
                           capture_output=True, timeout=10)
        assert portal.stdout.strip() == "nobody", name
        # Python -OO as on a node, from bytecode 'lab up' made (nobody could not write it),
        # without column tables; the agent as its unit runs it too.
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"PYTHONOPTIMIZE=2" in environ and b"PYTHONNODEBUGRANGES=1" in environ
        agent = Path(f"/proc/{mesh.node(name).pids['agent']}/environ").read_bytes()
        assert {b"PYTHONOPTIMIZE=2", b"PYTHONNODEBUGRANGES=1"} <= set(agent.split(b"\0"))
    app = Path(__file__).resolve().parents[2] / "portal" / "app.py"
    assert Path(importlib.util.cache_from_source(str(app), optimization=2)).exists()
    # No radio in a namespace: the agent started no hostapd.
    assert not (Path(mesh.state.state_dir) / "n3" / "run" / "hostapd.log").exists()


def test_the_phone_gets_its_lease_from_n3(phones: Phones) -> None:
    lease = phones.mesh.node("n3").phone_lease
    assert ipaddress.IPv4Address(lease["ip"]) in ipaddress.IPv4Network("10.64.3.0/24")
    assert (lease["router"], lease["dns"], lease["serverid"]) == (PORTAL, PORTAL, PORTAL)
    assert lease["opt114"] == f"http://{PORTAL}/api/captive"  # RFC 8910
    leases = Path(phones.mesh.state.state_dir) / "n3" / "data" / "dnsmasq.leases"
    assert lease["ip"] in leases.read_text()  # n3's own dnsmasq handed it out
    route = phones.mesh.exec("p3", ["ip", "-4", "route", "show", "default"],
                             capture_output=True, timeout=10).stdout
    assert f"via {PORTAL}" in route


def test_probe_connect_then_the_mesh_hub_but_not_its_management(phones: Phones) -> None:
    p, net, phone = phones, phones.net, phones.phone
    welcome = f"http://{PORTAL}/welcome"
    # n3's DNS answers every name with its portal (no uplink) ...
    assert net.dns_a(phone, PORTAL, "connectivitycheck.gstatic.com") == PORTAL
    # ... and a probe sent anywhere is brought to n3's welcome page.
    for address in (PORTAL, OUTSIDE):
        probe = p.get(address, "/generate_204", headers={"Host": "connectivitycheck.gstatic.com"})
        assert (probe["status"], probe["headers"].get("location")) == (302, welcome), probe
    # An address literal is another site too (docs/lab.md's example), not the hub.
    outside = p.get(OUTSIDE, "/")
    assert (outside["status"], outside["headers"].get("location")) == (302, welcome), outside
    assert not net.tcp_open(phone, N1, 8080)  # nothing beyond the portal before Connect
    assert not net.tcp_open(phone, N3, 8080)  # not even n3's hub at its mesh address

    # Something listening on n1's ssh port, to show it is the gate that keeps the phone out.
    ssh = net.http_server(p.mesh.node("n1").ns, p.root / "ssh-standin", "0.0.0.0", 22, "ssh")
    try:
        net.wait_for("n1's port 22 from n3", lambda: net.tcp_open(p.mesh.node("n3").ns, N1, 22))
        _connect_and_look(p)
    finally:
        ssh.terminate()
        ssh.wait(timeout=5)


def _connect_and_look(p: Phones) -> None:
    """After Connect: the hub here and across the mesh, never the management ports."""
    net, phone = p.net, p.phone

    answer = connect(p)
    assert (answer["status"], answer["headers"]["location"]) == (303, "/connected"), p.logs()
    assert not net.tcp_open(phone, OUTSIDE, 80)  # n3 has no uplink: there is no outside
    assert p.get(PORTAL, "/generate_204",
                 headers={"Host": "connectivitycheck.gstatic.com"})["status"] == 204

    # The hub on n3, and n1's hub across the mesh (two hops), as any accepted device.
    assert p.get(PORTAL, "/about")["status"] == 200
    far = p.get(N1, "/about", port=8080)
    assert far["status"] == 200 and re.search(r"<dd>\s*n1\s*</dd>", far["body"]), far["body"][:500]
    # n3's own hub at its mesh address too (a link shared from another node's page).
    own = p.get(N3, "/about", port=8080)
    assert own["status"] == 200 and re.search(r"<dd>\s*n3\s*</dd>", own["body"]), own
    # Never the management ports: n1's agent and ssh (n3 itself reaches both).
    assert net.tcp_open(p.mesh.node("n3").ns, N1, 9180)
    assert not net.tcp_open(phone, N1, 9180)
    assert not net.tcp_open(phone, N1, 22)
    assert not net.tcp_open(phone, PORTAL, 9180)  # nor n3's own agent


def test_a_notice_posted_on_n1_reaches_the_phone_through_n3(phones: Phones) -> None:
    mesh = phones.mesh
    if "lab" not in meshhub(mesh, "n1", "organiser", "list").split():
        meshhub(mesh, "n1", "organiser", "add", "lab", "--role", "admin", "--password-stdin",
                stdin="correct horse battery staple\ncorrect horse battery staple\n")
    title = f"Water off on Elm Street {secrets.token_hex(3)}"
    meshhub(mesh, "n1", "post", "notice", "--as", "lab", "--title", title, "--body", "9 to 12.")
    phones.net.wait_for("the notice on the phone, from n3's portal", lambda: title in (
        phones.net.http(phones.phone, PORTAL, "/notices/") or {}).get("body", ""), timeout=45,
        interval=0.5)


def test_a_second_dhcp_gives_the_same_address(phones: Phones) -> None:
    before = phones.mesh.node("n3").phone_lease["ip"]
    assert phones.mesh.phone_dhcp("p3")["ip"] == before
