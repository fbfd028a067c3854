"""`meshhub sync now` / `sync status`, and the agent serving /sync/v1 beside its health API."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from click.testing import CliRunner

from bench.waiting import wait_for
from node.agent import Agent
from node.cli import cli
from node.config import load_config
from node.identity import load_or_create_identity
from tests.node.test_health_collector import fake_sources
from tests.node.test_sync_support import make_node, notice


def node_toml(tmp_path: Path, name: str, port: int, peers: list[str], keys: list[str]) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[node]\nname = "{name}"\ndata_dir = "{tmp_path / name}"\n'
                    f"[trust]\nnode_keys = {json.dumps(keys)}\n"
                    f"[agent]\nport = {port}\n"
                    f"[sync]\npeers = {json.dumps(peers)}\ninterval_seconds = 3600\n")
    return path


def test_sync_now_pulls_from_a_peer_and_prints_what_was_exchanged(tmp_path: Path) -> None:
    own = load_or_create_identity(tmp_path / "me")
    from node.identity import Identity

    peer = make_node(tmp_path, "peer", Identity.generate(), [own])
    try:
        peer.store.append("notice.post", notice(), actor="ada")
        config = node_toml(tmp_path, "me", 1, [], [peer.identity.public_key])
        runner = CliRunner()
        result = runner.invoke(cli, ["--config", str(config), "sync", "now", "--peer", peer.url])
        assert result.exit_code == 0, result.output
        assert f"{peer.url}: pulled, 1 new entries" in result.output
        assert "library files: 0 fetched" in result.output
        again = runner.invoke(cli, ["--config", str(config), "sync", "now", "--peer", peer.url,
                                    "--json"])
        assert json.loads(again.output)["peers"][0]["outcome"] == "in sync"
        status = runner.invoke(cli, ["--config", str(config), "sync", "status"])
        assert status.exit_code == 0 and "1 entries" in status.output
        assert "agent not reachable" in status.output
    finally:
        peer.close()
    config = node_toml(tmp_path, "me", 1, [], [])
    failed = CliRunner().invoke(cli, ["--config", str(config), "sync", "now", "--peer",
                                      peer.url])
    assert failed.exit_code == 1 and "failed" in failed.output


def test_two_agents_replicate_over_their_own_api(tmp_path: Path) -> None:
    from tests.node.test_agent import listening_socket

    sockets = {"a": listening_socket(), "b": listening_socket()}  # held: no other test takes one
    ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
    keys = {n: load_or_create_identity(tmp_path / n).public_key for n in ports}
    agents = {}
    try:
        for name, other in (("a", "b"), ("b", "a")):
            cfg = load_config(node_toml(tmp_path, name, ports[name],
                                        [f"http://127.0.0.1:{ports[other]}"], [keys[other]]))
            agents[name] = Agent(cfg, sources=fake_sources(clock=time.time),
                                 interval_seconds=0.5, listen_socket=sockets[name])
            agents[name].start()
        a, b = agents["a"], agents["b"]
        with urllib.request.urlopen(f"{a.url}/sync/v1/digest", timeout=5) as response:  # noqa: S310
            assert json.loads(response.read())["count"] == 0
        with urllib.request.urlopen(f"{a.url}/api/health", timeout=5) as response:  # noqa: S310
            assert response.status == 200
        post = a.sync.store.append("notice.post", notice(), actor="ada")
        wait_for("the notice on b",
                 lambda: b.sync.store.notice(post["id"]) is not None, timeout=30)
        status = CliRunner().invoke(cli, ["--config", str(tmp_path / "b.toml"), "sync", "status"])
        assert "[from the agent]" in status.output and f"127.0.0.1:{ports['a']}" in status.output
    finally:
        for agent in agents.values():
            agent.stop()
        for name in sockets.keys() - agents.keys():
            sockets[name].close()
