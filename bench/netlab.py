"""A tiny lab of network namespaces joined by veth pairs, for the root-only tests.

Every namespace gets a random suffix so parallel or aborted runs never clash;
:meth:`Lab.close` kills every process the lab started and deletes every namespace
(which removes their veth pairs), and is safe to call twice.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.waiting import wait_for
from node.runtime import agent_environment, portal_environment

#: Seconds a client run in a namespace may take beyond its own deadline (starting Python or
#: curl under ``ip netns exec`` on a loaded machine) before it counts as no answer.
CLIENT_START_MARGIN = 30


def lab_tag() -> str:
    """A name suffix unique to this process (its pid) and, within it, random.

    Namespaces live in the machine's one list: two test runs at once (two people, or
    pytest-xdist's workers) must never pick the same names.
    """
    return f"{os.getpid():x}{secrets.token_hex(2)}"


class Lab:
    """Namespaces, links and processes created for one test, all removed by :meth:`close`."""

    def __init__(self) -> None:
        self.tag = lab_tag()
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def netns(self, role: str) -> str:
        """Create a namespace named after ``role`` (with the lab's suffix); lo is brought up."""
        name = f"mh-{role}-{self.tag}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        self.run(name, "ip", "link", "set", "lo", "up")
        return name

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str,
             mac_a: str | None = None, mac_b: str | None = None) -> None:
        """A veth pair created directly inside the two namespaces (never in the host's)."""
        argv = ["ip", "-n", ns_a, "link", "add", if_a]
        if mac_a:
            argv += ["address", mac_a]
        argv += ["type", "veth", "peer", "name", if_b, "netns", ns_b]
        if mac_b:
            argv += ["address", mac_b]
        subprocess.run(argv, check=True)
        self.run(ns_a, "ip", "link", "set", if_a, "up")
        self.run(ns_b, "ip", "link", "set", if_b, "up")

    def run(self, ns: str, *argv: str, check: bool = True,
            timeout: float = 15) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``ns`` and wait for it."""
        return subprocess.run(["ip", "netns", "exec", ns, *argv], check=check, text=True,
                              capture_output=True, timeout=timeout)

    def _answer(self, ns: str, argv: list[str], timeout: float
                ) -> subprocess.CompletedProcess[str] | None:
        """Run a client whose own deadline is ``timeout``; None if it did not end in time.

        The client gives up by itself; the margin above that covers starting it in the
        namespace, which takes seconds on a loaded machine (``ip netns exec`` + curl hit a
        7 s margin in CI under load): a client that outlives the margin counts as no answer,
        as its own timeout would have, rather than a traceback.
        """
        try:
            return self.run(ns, *argv, check=False, timeout=timeout + CLIENT_START_MARGIN)
        except subprocess.TimeoutExpired:
            return None

    def start(self, ns: str, *argv: str, log: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a long-running process inside ``ns`` (``env``: its environment, default
        this one's); :meth:`close` ends it."""
        out = log.open("wb") if log else subprocess.DEVNULL
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
        if log:
            out.close()  # type: ignore[union-attr]
        self.processes.append(proc)
        return proc

    def http_server(self, ns: str, directory: Path, bind: str, port: int,
                    body: str) -> subprocess.Popen[bytes]:
        """A python http.server in ``ns`` whose index page is ``body``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "index.html").write_text(body, encoding="utf-8")
        return self.start(ns, sys.executable, "-m", "http.server", str(port), "--bind", bind,
                          "--directory", str(directory))

    def curl(self, ns: str, url: str, timeout: float = 2) -> str | None:
        """The body fetched from ``url`` inside ``ns``, or None when nothing answered."""
        result = self._answer(ns, ["curl", "-s", "-m", str(timeout), "-g", url], timeout)
        return result.stdout if result and result.returncode == 0 else None

    def http(self, ns: str, host: str, path: str, *, port: int = 80,
             headers: dict[str, str] | None = None, body: str | None = None,
             timeout: float = 3) -> dict[str, Any] | None:
        """One HTTP request from ``ns`` (no redirects followed): ``status``, ``headers``
        (lower-case names), ``body``; or None when nothing answered."""
        code = ("import http.client, json, sys\n"
                f"c = http.client.HTTPConnection({host!r}, {port}, timeout={timeout})\n"
                f"c.request({'POST' if body is not None else 'GET'!r}, {path!r}, "
                f"body={body!r}, headers={headers or {}!r})\n"
                "r = c.getresponse()\n"
                "print(json.dumps({'status': r.status, 'body': r.read().decode('latin-1'), "
                "'headers': {k.lower(): v for k, v in r.getheaders()}}))\n")
        result = self._answer(ns, [sys.executable, "-c", code], timeout)
        return json.loads(result.stdout) if result and result.returncode == 0 else None

    def tcp_open(self, ns: str, host: str, port: int, timeout: float = 2) -> bool:
        """Whether a TCP connection from ``ns`` to ``host:port`` is accepted."""
        code = ("import socket,sys\n"
                f"s=socket.create_connection(({host!r},{port}),timeout={timeout})\n")
        result = self._answer(ns, [sys.executable, "-c", code], timeout)
        return result is not None and result.returncode == 0

    def dns_a(self, ns: str, server: str, name: str, timeout: float = 2,
              tcp: bool = False) -> str | None:
        """The first A record for ``name`` from ``server`` (port 53, UDP or ``tcp``) as
        seen from ``ns``."""
        code = f"from bench.netlab import _dns_query; print(_dns_query({server!r}, "\
               f"{name!r}, {timeout}, {tcp!r}) or '')"
        root = str(Path(__file__).resolve().parents[2])
        result = self._answer(ns, [sys.executable, "-c", f"import sys; sys.path.insert(0, "
                                   f"{root!r})\n{code}"], timeout)
        return (result.stdout.strip() or None) if result else None

    def ping(self, ns: str, host: str, timeout: float = 1.5) -> bool:
        """Whether ``host`` answers one ICMP echo from ``ns`` (no ping binary needed)."""
        root = str(Path(__file__).resolve().parents[2])
        code = (f"import sys; sys.path.insert(0, {root!r})\n"
                f"from bench.netlab import _ping; sys.exit(0 if _ping({host!r}, {timeout}) "
                "else 1)")
        result = self._answer(ns, [sys.executable, "-c", code], timeout)
        return result is not None and result.returncode == 0

    def wait_for(self, what: str, predicate: Callable[[], object], timeout: float = 10,
                 interval: float = 0.2) -> object:
        """Poll ``predicate`` until it returns something true; fail naming ``what``."""
        return wait_for(what, predicate, timeout, interval)

    def close(self) -> None:
        """End every process and delete every namespace this lab made (idempotent)."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
        self.processes.clear()
        for name in reversed(self.namespaces):
            # Kill anything still inside (a daemon that forked), then delete the namespace.
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
        self.namespaces.clear()


def _dns_query(server: str, name: str, timeout: float, tcp: bool = False) -> str | None:
    """Send one A query over UDP (or TCP) and return the first A record, or None (no answer)."""
    query_id = secrets.randbits(16)
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    packet += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet += struct.pack(">HH", 1, 1)
    try:
        if tcp:
            with socket.create_connection((server, 53), timeout=timeout) as conn:
                conn.sendall(struct.pack(">H", len(packet)) + packet)
                reply = b""
                while len(reply) < 2 or len(reply) < 2 + struct.unpack(">H", reply[:2])[0]:
                    chunk = conn.recv(2048)
                    if not chunk:
                        return None
                    reply += chunk
                reply = reply[2:]
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout)
                sock.sendto(packet, (server, 53))
                reply, _ = sock.recvfrom(2048)
    except OSError:
        return None
    answers = struct.unpack(">H", reply[6:8])[0]
    pos = len(packet)
    for _ in range(answers):
        pos = pos + 2 if reply[pos] & 0xC0 == 0xC0 else reply.index(b"\0", pos) + 1
        rtype, _cls, _ttl, size = struct.unpack(">HHIH", reply[pos:pos + 10])
        pos += 10
        if rtype == 1 and size == 4:
            return socket.inet_ntoa(reply[pos:pos + 4])
        pos += size
    return None


def _ping(host: str, timeout: float) -> bool:
    """Send one ICMP echo request over a raw socket and wait for its reply."""
    ident, payload = secrets.randbits(16), b"meshhub-lab"
    header = struct.pack(">BBHHH", 8, 0, 0, ident, 1)
    data = header + payload + b"\0" * (len(payload) % 2)
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    checksum = ~(total + (total >> 16)) & 0xFFFF
    packet = struct.pack(">BBHHH", 8, 0, checksum, ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (host, 0))
        except OSError:  # no route at all
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply, _ = sock.recvfrom(2048)
            except OSError:
                return False
            icmp = reply[(reply[0] & 0x0F) * 4:]
            if icmp[0] == 0 and struct.unpack(">H", icmp[4:6])[0] == ident:
                return True
    return False


# --- a node as meshhub renders it (gate, dnsmasq, portal, agent) ---------------------------

#: ``node.toml`` of a lab node: access point ``ap0``, residents' subnet 10.64.7.0/24 with
#: leases .100-.120, the portal address 10.64.7.1.
NODE_TOML = """
[node]
name = "lab-node"
[wifi]
ap_interface = "ap0"
[mesh]
address = "10.42.0.7"
[clients]
subnet = "10.64.7.0/24"
dhcp_range_start = 100
dhcp_range_end = 120
"""

#: ``node.toml`` of a lab node that runs its agent (with the gate socket) and its portal
#: (on 10.64.7.1:8080, as ``nobody``); format with ``root``. ``[clients]`` comes last so
#: a test can append keys to it (e.g. ``uplink_interface``).
SERVING_TOML = """
[node]
name = "lab-node"
data_dir = "{root}/data"
[portal]
listen = "10.64.7.1"
port = 8080
[wifi]
ap_interface = "ap0"
[mesh]
address = "10.42.0.7"
[gate]
portal_port = 8080
management_ports = [22]
enabled = true
socket = "{root}/run/gate.sock"
portal_user = "nobody"
[health]
services = []
[clients]
subnet = "10.64.7.0/24"
dhcp_range_start = 100
dhcp_range_end = 120
"""

#: The uid and gid the lab's portal runs as (``nobody``: the gate socket's other user).
NOBODY = 65534
_BIN = Path(sys.executable).parent


def apply_gate(lab: Lab, ns: str, cfg: Any, etc: Path) -> Path:
    """Render meshhub's network files for ``cfg`` (a NodeConfig) into ``etc`` and load
    the gate's nftables ruleset inside ``ns``; the path of ``gate.nft``."""
    from node.net import build_plan  # not at import: netlab also runs inside namespaces

    written = build_plan(cfg, net_dir=etc).write_to(etc)
    gate = next((path for path in written if path.name == "gate.nft"), None)
    assert gate is not None, f"the network plan wrote no gate.nft: {written}"
    lab.run(ns, "nft", "-f", str(gate))
    return gate


def start_dnsmasq(lab: Lab, ns: str, etc: Path, work: Path, *, name: str = "dnsmasq",
                  leases: tuple[Path, Path] | None = None, source: str = "dnsmasq.conf",
                  upstream: str | None = None) -> subprocess.Popen[bytes]:
    """Start the ``source`` file rendered into ``etc`` (by :func:`apply_gate`) inside ``ns``.

    Its copy, pid file and log are ``work/<name>.conf``, ``.pid``, ``.log``; the host's
    resolvers are never read: ``no-resolv``, or with ``upstream`` (a lab address, the
    "internet" of the test) a resolv file naming only that server. ``leases`` =
    (rendered path, lab path) moves the lease file, e.g. out of a data folder that does
    not exist here.
    """
    conf = (etc / source).read_text(encoding="utf-8")
    resolv = "no-resolv"
    if upstream is not None:
        (work / f"{name}.resolv").write_text(f"nameserver {upstream}\n", encoding="utf-8")
        resolv = f"resolv-file={work / f'{name}.resolv'}"
    conf = conf.replace("resolv-file=/etc/resolv.conf", resolv)
    if leases is not None:
        conf = conf.replace(str(leases[0]), str(leases[1]))
    (work / f"{name}.conf").write_text(conf, encoding="utf-8")
    return lab.start(ns, "dnsmasq", "--keep-in-foreground", "--user=root", "--log-dhcp",
                     "--log-facility=-", f"--conf-file={work / f'{name}.conf'}",
                     f"--pid-file={work / f'{name}.pid'}", log=work / f"{name}.log")


def access_point(lab: Lab, node: str, stations: list[tuple[str, str, str]]) -> None:
    """A bridge ``ap0`` in ``node`` with one veth port per (namespace, interface, MAC) station.

    The ports are "isolated", as hostapd's ``ap_isolate`` keeps Wi-Fi clients apart
    (stations never reach each other at layer 2).
    """
    lab.run(node, "ip", "link", "add", "ap0", "type", "bridge")
    for index, (ns, interface, mac) in enumerate(stations, start=1):
        lab.veth(node, f"ap0p{index}", ns, interface, mac_b=mac)
        lab.run(node, "ip", "link", "set", f"ap0p{index}", "master", "ap0")
        lab.run(node, "ip", "link", "set", "dev", f"ap0p{index}", "type", "bridge_slave",
                "isolated", "on")
    lab.run(node, "ip", "link", "set", "ap0", "up")


@contextlib.contextmanager
def nobody_root(lab: Lab, prefix: str) -> Iterator[Path]:
    """A temporary node folder the portal (as ``nobody``) can use; removed, after
    :meth:`Lab.close` ended the processes using it, when the block ends."""
    # pytest's tmp_path is private to root.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        root.chmod(0o755)
        yield root
    finally:
        lab.close()
        shutil.rmtree(root, ignore_errors=True)


def start_serving_node(lab: Lab, ns: str, root: Path, toml: str, address: str) -> None:
    """Run a node in ``ns`` from ``toml`` (written to ``root/node.toml``): the rendered gate
    and dnsmasq, the portal as ``nobody`` and the agent with its gate socket.

    ``ap0`` must exist with ``address``, the portal's address, on it.
    """
    from node.config import load_config

    (root / "data").mkdir()
    (root / "run").mkdir()
    subprocess.run(["chown", f"{NOBODY}:{NOBODY}", str(root / "data")], check=True)
    (root / "node.toml").write_text(toml, encoding="utf-8")
    apply_gate(lab, ns, load_config(root / "node.toml"), root / "etc")
    start_dnsmasq(lab, ns, root / "etc", root)
    # The portal first: it creates the node's data files as its own user. Started as its
    # unit starts it (node/runtime.py: Python at the portal's optimisation level).
    lab.start(ns, "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
              str(_BIN / "meshhub-portal"), "serve", "-c", str(root / "node.toml"),
              log=root / "portal.log", env=portal_environment())
    lab.wait_for("the portal (as nobody)",
                 lambda: lab.http(ns, address, "/about", port=8080), timeout=30)
    lab.start(ns, str(_BIN / "meshhub"), "-c", str(root / "node.toml"), "agent",
              log=root / "agent.log", env=agent_environment())  # as its unit starts it
    lab.wait_for("the agent's gate socket", (root / "run" / "gate.sock").exists, timeout=20)
