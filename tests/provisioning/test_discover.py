"""``meshhub-provision discover``: nodes announced with the node's own zeroconf code
(node.mesh.discovery) in one network namespace, found from a neighbour namespace over veth."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.images import make_registry
from node.identity import Identity, fingerprint
from provisioning.discover import SeenNode, registry_verdict
from tests.conftest import require_root, require_tool

ANNOUNCE = textwrap.dedent("""
    import sys
    from node.mesh.discovery import Announcement, Discovery
    from node.identity import fingerprint
    name, key, state, address = sys.argv[1:5]
    a = Announcement(name=name, mesh_address=address, agent_port=9180, public_key=key,
                     fingerprint=fingerprint(key), version="0.1.0", role=state)
    d = Discovery(a, [address])
    d.start()
    print("up", flush=True)
    sys.stdin.read()
    d.close()
""")


def ns(name: str, *argv: str) -> None:
    subprocess.run(["ip", "netns", "exec", name, *argv], check=True, capture_output=True)


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    require_root()
    require_tool("ip")
    suffix = secrets.token_hex(3)
    node_ns, laptop_ns = f"mh-node-{suffix}", f"mh-laptop-{suffix}"
    veth = f"vd{suffix}"
    try:
        for name in (node_ns, laptop_ns):
            subprocess.run(["ip", "netns", "add", name], check=True)
            ns(name, "ip", "link", "set", "lo", "up")
        subprocess.run(["ip", "link", "add", f"{veth}a", "netns", node_ns, "type", "veth",
                        "peer", "name", f"{veth}b", "netns", laptop_ns], check=True)
        ns(node_ns, "ip", "addr", "add", "10.99.0.1/24", "dev", f"{veth}a")
        ns(laptop_ns, "ip", "addr", "add", "10.99.0.2/24", "dev", f"{veth}b")
        ns(node_ns, "ip", "link", "set", f"{veth}a", "up")
        ns(laptop_ns, "ip", "link", "set", f"{veth}b", "up")
        yield node_ns, laptop_ns
    finally:
        for name in (node_ns, laptop_ns):
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


@pytest.mark.root
def test_discover_finds_nodes_and_flags_unregistered_keys(namespaces: tuple[str, str],
                                                          tmp_path: Path) -> None:
    node_ns, laptop_ns = namespaces
    reg = make_registry(tmp_path, ("elm-1", "elm-2"), revoke=("elm-2",))
    keys = {n: tomllib.loads((reg / "nodes" / f"{n}.toml").read_text())["public_key"]
            for n in ("elm-1", "elm-2")}
    stranger = Identity.generate().public_key
    announced = [("elm-1", keys["elm-1"], "setup"), ("oak-9", stranger, "node"),
                 ("elm-2", keys["elm-2"], "node")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = []
    try:
        for name, key, state in announced:
            proc = subprocess.Popen(["ip", "netns", "exec", node_ns, sys.executable, "-c",
                                     ANNOUNCE, name, key, state, "10.99.0.1"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                    env=env)
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        result = subprocess.run(
            ["ip", "netns", "exec", laptop_ns, sys.executable, "-c",
             "from provisioning.cli import main; main()", "discover", "--timeout", "4",
             "--registry", str(reg), "--interface", "10.99.0.2"],
            capture_output=True, text=True, env=env, timeout=60, check=False)
    finally:
        for proc in procs:
            proc.communicate(input="", timeout=20)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert "elm-1" in lines and "oak-9" in lines and "elm-2" in lines, result.stdout
    assert "10.99.0.1:9180" in lines["elm-1"] and "setup" in lines["elm-1"]
    assert fingerprint(keys["elm-1"]) in lines["elm-1"]
    assert lines["elm-1"].rstrip().endswith("registered")
    assert "FLAGGED: key not in the registry" in lines["oak-9"]
    assert "FLAGGED: key of revoked node elm-2" in lines["elm-2"]
    assert "2 node(s) flagged" in result.stdout


def test_verdicts_cover_every_way_a_key_can_be_wrong() -> None:
    good, other = Identity.generate().public_key, Identity.generate().public_key
    registered = {"elm-1": {"name": "elm-1", "public_key": good, "status": "active"}}

    def seen(name: str, key: str, fp: str | None = None) -> SeenNode:
        return SeenNode(f"{name}._meshhub._tcp.local.", name, ("10.42.0.1",), 9180, key,
                        fingerprint(key) if fp is None else fp, "0.1.0", "node")

    assert registry_verdict(seen("elm-1", good), registered) == "registered"
    assert "differs from the registered key" in registry_verdict(seen("elm-1", other), registered)
    assert "registered as elm-1" in registry_verdict(seen("elm-7", good), registered)
    assert "fingerprint does not match" in registry_verdict(
        seen("elm-1", good, fingerprint(other)), registered)
