"""A node driven only through the documented wire formats, by a peer that imports no ``node``.

The peer (``wire.py``) reproduces entry-format.md's test vector, then runs
as a registered node would: it notifies a real ``meshhub agent``, which
pulls its notice (signing each request as replication.md §2 says), asks the
peer for the body it first received erased, and serves the notice back
byte for byte, with the digest the docs define.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.waiting import wait_for
from tests.conformance.wire import Peer, PeerServer, canonical, digest, fingerprint, sha256_hex

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_test_vector() -> None:
    peer = Peer(bytes(range(32)))
    assert peer.public == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    body = {"title": "Water off", "body": "Tuesday 9\u201312, Elm Street.", "urgent": True}
    wire = peer.entry("notice.post", body, actor="ada", ts=1735689600000)
    assert canonical(body) == '{"body":"Tuesday 9–12, Elm Street.","title":"Water off",' \
                              '"urgent":true}'.encode()
    assert wire["header"]["body_hash"] == \
        "80d1ff2d884d587036622ca302be119a11e8075e912c0b0dee6cd31a0a244f6d"
    assert wire["id"] == "a3b1dbe5c69a71dd45b6e137de825a415727d697b0a5a5de85e8cfe5e938ad5c"
    assert wire["sig"] == ("83045c6a12eb755a152011494b5cae226e83878c70795b1e28bbf129c263cc4e"
                           "bd16f3670fdce8cd3f4d4fb5dd598f87a128558366a12eabae34cf72b6be4a0f")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[int, Peer]]:
    """A ``meshhub agent`` trusting the peer's key, on a socket this test holds."""
    peer = Peer()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\nname = "conformance"\ndata_dir = "{tmp_path / "data"}"\n'
                      f"[agent]\nport = {port}\n[trust]\nnode_keys = [\"{peer.public}\"]\n"
                      "[sync]\ninterval_seconds = 3600\n")

    def as_systemd_does() -> None:
        os.dup2(listener.fileno(), 3)
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")

    proc = subprocess.Popen([str(Path(sys.executable).parent / "meshhub"), "--config",
                             str(config), "agent"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, close_fds=False,
                            preexec_fn=as_systemd_does)
    listener.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = peer.request(port, "GET", "/sync/v1/digest")
                if status == 200:
                    break
            except OSError:  # still starting: the kernel queues the connection meanwhile
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the agent did not come up: {proc.communicate()[1].decode()}")
            time.sleep(0.1)
        yield port, peer
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()


def test_a_node_pulls_checks_and_serves_back_a_notice_from_docs_alone(
        node: tuple[int, Peer]) -> None:
    port, peer = node
    status, first = peer.request(port, "GET", "/sync/v1/digest")
    assert status == 200 and first["digest"] == digest({}) and first["count"] == 0
    node_fingerprint = first["node"]

    notice = peer.entry("notice.post", {"title": "Bins", "body": "Thursday"}, actor="ada",
                        ts=int(time.time() * 1000))
    # The peer serves its notice erased at first: the node must fetch the body (/bodies).
    server = PeerServer(peer, serve=lambda w: {**w, "body": None})
    try:
        status, answer = peer.request(port, "POST", "/sync/v1/notify",
                                      {"digest": digest(peer.vector()), "port": server.port})
        assert (status, answer) == (202, {"pull": True})
        wait_for("the node's digest to equal the peer's",
                 lambda: peer.request(port, "GET", "/sync/v1/digest")[1]["digest"]
                 == digest(peer.vector()))
        wait_for("the node to ask for the bodies", lambda: "/sync/v1/bodies" in server.paths)
    finally:
        server.close()
    # Every request the node made was signed by the key whose fingerprint it announces.
    assert server.callers and {fingerprint(k) for k in server.callers} == {node_fingerprint}
    assert server.paths[:3] == ["/sync/v1/digest", "/sync/v1/vector", "/sync/v1/entries"]

    def served_back() -> list[dict[str, object]]:
        status, page = peer.request(port, "POST", "/sync/v1/entries",
                                    {"since": {}, "limit": 10})
        assert status == 200 and page["more"] is False
        return list(page["entries"])

    wait_for("the notice served back", lambda: served_back() == [notice])
    assert sha256_hex(canonical(notice["body"])) == notice["header"]["body_hash"]
    status, again = peer.request(port, "POST", "/sync/v1/notify",
                                 {"digest": digest(peer.vector())})
    assert (status, again) == (200, {"pull": False})


def test_a_node_refuses_malformed_requests_as_documented(node: tuple[int, Peer]) -> None:
    port, peer = node
    status, answer = peer.request(port, "POST", "/sync/v1/entries", {"since": {}, "limit": 0})
    assert status == 400 and "limit" in answer["error"]
    status, answer = peer.request(port, "POST", "/sync/v1/entries",
                                  {"since": {}, "limit": 1, "extra": 1})
    assert status == 400 and "extra" in answer["error"]
    status, answer = peer.request(port, "DELETE", "/sync/v1/digest")
    assert status == 405
    status, answer = peer.request(port, "GET", "/sync/v1/nothing")
    assert status == 404 and "error" in answer


def test_a_node_takes_a_pushed_notice_without_pulling(node: tuple[int, Peer]) -> None:
    port, peer = node
    notice = peer.entry("notice.post", {"title": "Bins", "body": "Thursday"}, actor="ada",
                        ts=int(time.time() * 1000))
    status, answer = peer.request(port, "POST", "/sync/v1/push",
                                  {"digest": digest(peer.vector()), "port": None,
                                   "registry": None, "entries": [notice]})
    # Taken in the request itself: the digests agree, nothing is left to pull.
    assert (status, answer) == (200, {"pull": False})
    status, page = peer.request(port, "POST", "/sync/v1/entries", {"since": {}, "limit": 10})
    assert status == 200 and page["entries"] == [notice]
    forged = peer.entry("notice.post", {"title": "Forged", "body": "x"}, actor="ada",
                        ts=int(time.time() * 1000))
    forged["sig"] = "0" * 128
    status, answer = peer.request(port, "POST", "/sync/v1/push",
                                  {"digest": digest(peer.vector()), "registry": None,
                                   "entries": [forged]})
    assert status == 400 and "bad signature" in answer["error"]
