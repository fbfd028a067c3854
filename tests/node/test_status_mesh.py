"""`meshhub status` shows the mesh; `status --mesh` asks every node babeld knows, at once.

The "nodes" are small HTTP servers on loopback addresses (127.0.0.2, 127.0.0.3 ...:
Linux routes all of 127/8 to lo, so no root is needed) serving health documents
made by the real collector, whose mesh part comes from a real :class:`MeshState`
fed babeld lines, with the mesh range set to 127.0.0.0/8.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import cli, health_cmd
from node.cli.health_cmd import describe, describe_mesh
from node.health import Collector
from node.health.document import check_document, mesh_targets
from node.mesh import MeshState
from tests.node.test_health_collector import fake_sources, settings
from tests.node.test_health_mesh_alerts import fixture_lines, mesh_service


def document(name: str, mesh: Any = None, when: float = 1_800_000_000.0) -> dict[str, Any]:
    doc = Collector(settings(node_name=name), fake_sources(mesh=lambda: mesh,
                                                          clock=lambda: when)).sample()
    doc["alerts"] = []
    return doc


def loopback_mesh(own: int, others: list[int]) -> dict[str, Any]:
    """A MeshState's health part naming 127.0.0.N nodes (one neighbour, routes to all)."""
    state = MeshState("127.0.0.0/8")
    state.reset(connected=True)
    state.feed(["add neighbour n1 address fe80::2 if m0 reach ffff ureach 0000 rxcost 96 "
                "txcost 96 cost 96",
                f"add xroute x prefix 127.0.0.{own}/32 from 0.0.0.0/0 metric 0"]
               + [f"add route r{n} prefix 127.0.0.{n}/32 from 0.0.0.0/0 installed yes id x "
                  f"metric {96 * i + 96} refmetric {96 * i} via fe80::2 if m0"
                  for i, n in enumerate(others)])
    health = state.health()
    assert health is not None
    return health


class FakeAgent(http.server.BaseHTTPRequestHandler):
    """Serves the server's ``doc`` at /api/health after ``delay`` seconds.

    ``busy``/``peak`` count the requests being answered at once across all fake agents:
    more than one proves the nodes were asked at the same time (a witness that holds on
    a loaded machine, where a wall-clock bound would not).
    """

    lock = threading.Lock()
    busy = 0
    peak = 0

    def do_GET(self) -> None:
        server: Any = self.server
        with FakeAgent.lock:
            FakeAgent.busy += 1
            FakeAgent.peak = max(FakeAgent.peak, FakeAgent.busy)
        try:
            time.sleep(server.delay)
        finally:
            with FakeAgent.lock:
                FakeAgent.busy -= 1
        server.asked += 1
        body = json.dumps(server.doc).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    """A fake agent that says nothing when a client gives up on it (a timed-out ask)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Agents:
    """Fake agents on loopback addresses; every one stopped at the end.

    The mesh's agents share one port, so :meth:`claim` binds that port on every
    address first and holds it: no other test can take it before a fake serves
    there, and an address claimed but never served refuses connections.
    """

    def __init__(self) -> None:
        self.servers: dict[str, Any] = {}
        self.threads: list[threading.Thread] = []
        self.held: dict[tuple[str, int], socket.socket] = {}

    def claim(self, hosts: list[str], attempts: int = 20) -> int:
        """Bind one port on each of ``hosts`` (bound, not yet listening); returns the port."""
        for _ in range(attempts):
            first = socket.socket()
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            bound = [first]
            try:
                for host in hosts[1:]:
                    sock = socket.socket()
                    bound.append(sock)
                    sock.bind((host, port))
            except OSError:  # that port is taken on another address: try another port
                for sock in bound:
                    sock.close()
                continue
            self.held.update({(host, port): sock for host, sock in zip(hosts, bound, strict=True)})
            return port
        raise AssertionError(f"no port free on all of {hosts} in {attempts} tries")

    def serve(self, host: str, port: int, doc: dict[str, Any], delay: float = 0.0) -> Any:
        """A fake agent on ``host``:``port`` (a claimed one) or on a port of its own (0)."""
        server: Any = QuietServer((host, port), FakeAgent,
                                                      bind_and_activate=False)
        if port:
            server.socket.close()
            server.socket = self.held.pop((host, port))
            server.server_address = server.socket.getsockname()
            server.server_name, server.server_port = host, port
        else:
            server.server_bind()
        server.server_activate()
        server.doc, server.delay, server.asked = doc, delay, 0
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        self.servers[f"{host}:{server.server_port}"] = server
        self.threads.append(thread)
        return server

    def hang(self, host: str, port: int) -> None:
        """A node whose agent accepts connections and never answers (a claimed address)."""
        self.held[(host, port)].listen(8)

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join()
        for sock in self.held.values():
            sock.close()


@pytest.fixture
def agents() -> Iterator[Agents]:
    found = Agents()
    try:
        yield found
    finally:
        found.close()


def config(tmp_path: Path, port: int, peers: list[str]) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nname = "n1"\ndata_dir = "{tmp_path / "data"}"\n'
                    f"[agent]\nport = {port}\npeers = {json.dumps(peers)}\n")
    return path


def test_status_prints_the_mesh_section(tmp_path: Path) -> None:
    service = mesh_service(tmp_path)
    lines = fixture_lines("monitor-neighbour-killed.txt")
    dying = next(i for i, line in enumerate(lines) if "cost 65535" in line)
    service.state.feed(lines[:dying + 1])
    text = "\n".join(describe(document("n2", service.health()), "agent"))
    assert "mesh      1 neighbour(s), 1 route(s), 1 other node(s) reachable; babeld down" in text
    assert ("  10.42.0.1       fe80::4c4e:f8ff:fe87:2c46 on m-1  cost 96 (rx 96, tx 96)  "
            "reach 16/16") in text
    assert "fe80::b498:47ff:fec6:9f02 on m-3  cost 65535 (rx 65535, tx 96)" in text
    assert "unusable (babeld no longer hears it)" in text
    assert "  nodes: 10.42.0.1" in text
    assert describe_mesh(None) == [
        "mesh      no data (mesh.routing is off, or babeld is not running or not read yet)"]


def test_mesh_targets_come_from_routes_and_zeroconf_peers() -> None:
    mesh = {"neighbours": [], "routes": 3, "nodes": ["10.42.0.2", "10.42.0.3", "bad host"],
            "peers": ["http://10.42.0.2:9190", "ftp://x", 7]}
    assert mesh_targets({"mesh": mesh}, 9180) == ["10.42.0.2:9190", "10.42.0.3:9180"]
    assert mesh_targets({"mesh": None}) == [] and mesh_targets(None) == []
    many = {"mesh": {"nodes": [f"10.42.{i // 250}.{i % 250 + 1}" for i in range(1000)]}}
    assert len(mesh_targets(many)) == 256


def test_a_malformed_mesh_part_is_refused() -> None:
    good = document("n2", loopback_mesh(2, [1]))
    assert check_document(good) == []
    for bad, problem in (("yes", "mesh is neither null nor an object"),
                         ({"neighbours": [1], "routes": 1, "nodes": []}, "mesh.neighbours"),
                         ({"neighbours": [], "routes": "1", "nodes": []}, "mesh.routes"),
                         ({"neighbours": [], "routes": 1, "nodes": [1]}, "mesh.nodes")):
        assert any(problem in p for p in check_document({**good, "mesh": bad})), bad


def test_status_mesh_asks_every_node_babeld_knows_at_once(
        tmp_path: Path, agents: Agents, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_cmd, "MESH_TIMEOUT", 3.0)  # far above the 0.45 s answers
    port = agents.claim([f"127.0.0.{n}" for n in range(1, 8)])
    own = agents.serve("127.0.0.1", port, document("n1", loopback_mesh(1, [2, 3, 4, 5, 6, 7])))
    for n in (2, 3, 4, 5):
        agents.serve(f"127.0.0.{n}", port, document(f"n{n}", loopback_mesh(n, [1])),
                     delay=0.45)
    agents.hang("127.0.0.6", port)  # accepts, never answers; 127.0.0.7: nothing listens
    peer = agents.serve("127.0.0.8", 0, document("n8", None))  # only in agent.peers
    twin = agents.serve("127.0.0.1", 0, agents.servers[f"127.0.0.2:{port}"].doc)  # n2 again
    path = config(tmp_path, port, [f"127.0.0.8:{peer.server_port}",
                                   f"127.0.0.1:{twin.server_port}", f"127.0.0.3:{port}"])
    monkeypatch.setattr(FakeAgent, "peak", 0)
    result = CliRunner().invoke(cli, ["--config", str(path), "status", "--mesh"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["node", "address", "state", "temp", "disk", "clients", "neigh",
                                "routes", "alerts", "version"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert lines[1].startswith("n1 ") and f"127.0.0.1:{port}" in lines[1]
    assert rows[f"127.0.0.8:{peer.server_port}"].startswith("n8 ")
    for n in (3, 4, 5):
        row = rows[f"127.0.0.{n}:{port}"]
        assert row.startswith(f"n{n} ") and row.split()[6:8] == ["1", "1"]  # neigh, routes
    assert "unreachable" in rows[f"127.0.0.6:{port}"] + rows[f"127.0.0.7:{port}"]
    # n2 answered under two addresses (agent.peers has the other): listed once.
    assert [line.split()[1] for line in lines if line.startswith("n2 ")] == [
        f"127.0.0.1:{twin.server_port}"]
    assert len(lines) == 1 + 8
    assert own.asked == 1 and agents.servers[f"127.0.0.3:{port}"].asked == 1
    # Asked one after another, the four agents that each take 0.45 s would never overlap.
    assert FakeAgent.peak >= 4, FakeAgent.peak  # the four slow agents were asked together
    as_json = CliRunner().invoke(cli, ["--config", str(path), "status", "--mesh", "--json"])
    rows_json = {row["target"]: row for row in json.loads(as_json.stdout)}  # not stderr
    assert rows_json[f"127.0.0.1:{port}"]["neighbours"] == 1
    assert rows_json[f"127.0.0.1:{port}"]["routes"] == 6
    assert rows_json[f"127.0.0.8:{peer.server_port}"]["neighbours"] is None


def test_status_mesh_with_node_asks_only_that_node(tmp_path: Path, agents: Agents) -> None:
    port = agents.claim(["127.0.0.1", "127.0.0.2", "127.0.0.3"])
    agents.serve("127.0.0.1", port, document("n1", loopback_mesh(1, [2, 3])))
    two = agents.serve("127.0.0.2", port, document("n2", loopback_mesh(2, [1])))
    three = agents.serve("127.0.0.3", port, document("n3", loopback_mesh(3, [1])))
    path = config(tmp_path, port, [f"127.0.0.3:{port}"])
    result = CliRunner().invoke(cli, ["--config", str(path), "status", "--mesh",
                                      "--node", f"127.0.0.2:{port}"])
    assert result.exit_code == 0, result.output
    assert [line.split()[0] for line in result.output.splitlines()[1:]] == ["n1", "n2"]
    assert two.asked == 1 and three.asked == 0


def test_status_mesh_without_a_local_agent_asks_the_peers(tmp_path: Path,
                                                         agents: Agents) -> None:
    port = agents.claim(["127.0.0.1"])  # held, never served: no local agent
    peer = agents.serve("127.0.0.2", 0, document("n2", loopback_mesh(2, [1])))
    path = config(tmp_path, port, [f"127.0.0.2:{peer.server_port}"])
    result = CliRunner().invoke(cli, ["--config", str(path), "status", "--mesh"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "down" in lines[1] and "unreachable" in lines[1]
    assert lines[2].startswith("n2 ") and len(lines) == 3


def test_prometheus_config_lists_every_node_the_mesh_knows(tmp_path: Path,
                                                           agents: Agents) -> None:
    port = agents.claim(["127.0.0.1"])
    agents.serve("127.0.0.1", port, document("n1", loopback_mesh(1, [2, 3, 4])))
    path = config(tmp_path, port, ["127.0.0.9:9180"])
    out = tmp_path / "targets.json"
    result = CliRunner().invoke(cli, ["--config", str(path), "prometheus-config", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (group,) = json.loads(out.read_text())
    assert set(group["targets"]) == {f"127.0.0.{n}:{port}" for n in (1, 2, 3, 4)} | {
        "127.0.0.9:9180"}
