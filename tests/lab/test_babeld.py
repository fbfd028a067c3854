"""babeld with meshhub's rendered configuration, for real, between two node namespaces."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from bench.netlab import Lab
from node.config import parse_config
from node.net.addressing import address_plan
from node.net.render_babeld import render_babeld
from tests.conftest import require_tool

pytestmark = pytest.mark.root


def node_toml(name: str, address: str, subnet: str) -> str:
    """A node whose only link to the other node is a wired (veth) interface."""
    return (f'[node]\nname = "{name}"\n[mesh]\naddress = "{address}"\n'
            f'wired_interfaces = ["m0"]\n[clients]\nsubnet = "{subnet}"\n'
            '[wifi]\nap_interface = "ap0"\n')


def babel_dump(path: Path) -> str:
    """Ask babeld's local monitoring socket for a ``dump`` and return the text."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        sock.connect(str(path))
        data = b""
        while not data.endswith(b"ok\n"):  # the greeting ends with "ok"
            data += sock.recv(65536)
        sock.sendall(b"dump\n")
        data = b""
        while not data.endswith(b"ok\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode()


def test_two_nodes_learn_each_others_addresses(lab: Lab, tmp_path: Path) -> None:
    require_tool("babeld")
    nodes = {"a": ("node-a", "10.42.0.1", "10.64.1.0/24"),
             "b": ("node-b", "10.42.0.2", "10.64.2.0/24")}
    ns = {key: lab.netns(f"babel{key}") for key in nodes}
    lab.veth(ns["a"], "m0", ns["b"], "m0")
    sockets = {}
    for key, (name, _address, _subnet) in nodes.items():
        cfg = parse_config(node_toml(*nodes[key]))
        plan = address_plan(cfg)
        lab.run(ns[key], "ip", "address", "add", f"{plan.mesh_address}/32", "dev", "lo")
        # The residents' side: a veth (no dummy module here) carrying the client subnet.
        lab.veth(ns[key], "ap0", ns[key], "ap0p")
        lab.run(ns[key], "ip", "address", "add", plan.portal_interface_address, "dev", "ap0")
        sockets[key] = tmp_path / f"{name}.sock"
        conf = tmp_path / f"{name}.conf"
        conf.write_text(render_babeld(cfg, plan, monitor_path=str(sockets[key])))
        lab.start(ns[key], "babeld", "-c", str(conf), "-I", str(tmp_path / f"{name}.pid"),
                  "-S", str(tmp_path / f"{name}.state"), log=tmp_path / f"{name}.log")

    lab.wait_for("babeld's monitoring socket", lambda: all(p.exists() for p in sockets.values()))
    dump = babel_dump(sockets["a"])
    assert "add interface m0 up true" in dump, dump
    # The mesh radio does not exist here: babeld knows it but it stays down.
    assert "add interface mesh0 up false" in dump or "mesh0" not in dump

    def routes() -> str | None:
        out = lab.run(ns["a"], "ip", "-4", "route", "show", "proto", "babel").stdout
        return out if "10.42.0.2" in out and "10.64.2.0/24" in out else None

    out = str(lab.wait_for("node-a to learn node-b's mesh address and client subnet",
                           routes, timeout=30, interval=1))
    assert "10.64.1.0/24" not in out  # its own subnet is not learned back
    lab.wait_for("node-b to learn node-a's mesh address", lambda: "10.42.0.1" in lab.run(
        ns["b"], "ip", "-4", "route", "show", "proto", "babel").stdout, timeout=30, interval=1)
    lab.wait_for("a ping from node-a to node-b's mesh address",
                 lambda: lab.ping(ns["a"], "10.42.0.2"), timeout=10)


def test_the_monitor_reads_a_real_babeld_in_batches(lab: Lab, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """babeld (the real one) writes each line on its own: a neighbour's at each hello, the
    routes at each update. Once the mesh has settled (nothing came or went for the settling
    time), the agent's monitor follows it with a read per batch, not per line, and it saw
    the neighbour and its route while they came."""
    require_tool("babeld")
    from node.mesh.babel_monitor import BabelMonitor
    from node.mesh.state import MeshState
    from tests.node.test_babel_monitor import counting_reads

    ns = {key: lab.netns(f"bmon{key}") for key in "ab"}
    lab.veth(ns["a"], "m0", ns["b"], "m0")
    for number, key in enumerate("ab", start=1):
        lab.run(ns[key], "ip", "address", "add", f"10.42.0.{number}/32", "dev", "lo")
        conf = tmp_path / f"{key}.conf"
        conf.write_text(f"local-path {tmp_path / key}.sock\nrandom-id true\n"
                        "interface m0 type wired hello-interval 0.5 update-interval 2\n"
                        f"redistribute local ip 10.42.0.{number}/32 allow\n"
                        "redistribute local deny\nredistribute deny\n")
        lab.start(ns[key], "babeld", "-c", str(conf), "-I", str(tmp_path / f"{key}.pid"),
                  "-S", str(tmp_path / f"{key}.state"), log=tmp_path / f"{key}.log")
    lab.wait_for("babeld's monitoring socket", (tmp_path / "a.sock").exists)
    reads = counting_reads(monkeypatch)
    state = MeshState("10.42.0.0/16")
    monitor = BabelMonitor(str(tmp_path / "a.sock"), state, batch_seconds=1,
                           settling_seconds=2)
    monitor.start()
    try:
        lab.wait_for("the monitor to see b's route", lambda: "10.42.0.2" in
                     state.node_addresses(), timeout=30, interval=0.5)
        time.sleep(3)  # nothing has come or gone for the settling time: batches now
        before = len(reads), sum(reads)
        time.sleep(6)
        turns, lines = len(reads) - before[0], sum(reads) - before[1]
    finally:
        monitor.stop()
    assert lines >= 12, (turns, lines)  # a hello every 0.5 s, an update every 2 s
    assert turns <= 8, (turns, lines)  # a read a second (line by line: one per line)
