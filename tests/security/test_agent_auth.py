"""Issue 17 item 2: the agents' sync and update APIs answer only registered nodes.

Before, ``curl -d '{"since":{},"limit":500}' http://<node>:9180/sync/v1/entries``
returned every entry, organisers' Argon2 hashes and residents' contact
details included. Now each request must be signed by a registered node's
key (or a technician tool's listed key), fresh, and never seen before.
The servers here treat no address as local, as a node does for the mesh.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.agent_auth import HEADER, LocalAddresses, RequestAuth, guard, sign_request
from node.identity import Identity
from tests.node.test_sync_support import Node, link, nodes, notice, wait_for

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
ENTRIES = b'{"since":{},"limit":500}'


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[dict[str, Node]]:
    registered: set[str] = set()

    def wrap(app: Any) -> Any:
        checker = RequestAuth(registered.__contains__, is_local=lambda _address: False)
        return guard(app, checker, 1 << 20)

    with nodes(tmp_path, "AB", wrap=wrap) as made:
        registered.update(n.identity.public_key for n in made.values())
        made["A"].store.append("account.create", {"name": "ada", "role": "admin",
                                                  "password_hash": HASH})
        made["A"].store.append("submission.create", {"category": "wanted", "title": "Ladder",
                                                      "body": "x", "contact": "07700 900123"})
        yield made


def request(node: Node, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    assert node.server is not None
    conn = http.client.HTTPConnection("127.0.0.1", node.server.port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_an_unsigned_request_gets_nothing(mesh: dict[str, Node]) -> None:
    a = mesh["A"]
    for method, path, body in (("POST", "/sync/v1/entries", ENTRIES),
                               ("GET", "/sync/v1/digest", b""), ("GET", "/sync/v1/status", b""),
                               ("POST", "/sync/v1/vector", b'{"vector":{}}'),
                               ("POST", "/sync/v1/notify", b'{"digest":"0123456789abcdef"}')):
        status, data = request(a, method, path, body)
        assert status == 401, (path, data)
        assert b"argon2" not in data and b"07700" not in data
        assert "registered" in json.loads(data)["error"]


def test_a_key_nobody_registered_gets_nothing(mesh: dict[str, Node]) -> None:
    rogue = Identity.generate()
    status, data = request(mesh["A"], "POST", "/sync/v1/entries", ENTRIES,
                           {HEADER: sign_request(rogue, "POST", "/sync/v1/entries", ENTRIES)})
    assert status == 401 and b"not registered" in data


def test_a_registered_nodes_request_answers_once_and_only_as_signed(
        mesh: dict[str, Node]) -> None:
    a, b = mesh["A"], mesh["B"]
    header = sign_request(b.identity, "POST", "/sync/v1/entries", ENTRIES)
    status, data = request(a, "POST", "/sync/v1/entries", ENTRIES, {HEADER: header})
    assert status == 200 and b"argon2" in data  # registered nodes replicate accounts
    # Replayed by someone who overheard it: refused.
    status, data = request(a, "POST", "/sync/v1/entries", ENTRIES, {HEADER: header})
    assert status == 401 and b"replayed" in data
    # The same signature on another body or path: refused.
    other = b'{"since":{},"limit":1}'
    header = sign_request(b.identity, "POST", "/sync/v1/entries", ENTRIES)
    assert request(a, "POST", "/sync/v1/entries", other, {HEADER: header})[0] == 401
    header = sign_request(b.identity, "GET", "/sync/v1/digest")
    assert request(a, "GET", "/sync/v1/status", b"", {HEADER: header})[0] == 401


def test_a_stale_request_is_refused(mesh: dict[str, Node]) -> None:
    a, b = mesh["A"], mesh["B"]
    old = sign_request(b.identity, "GET", "/sync/v1/digest", now=1_000_000)
    status, data = request(a, "GET", "/sync/v1/digest", b"", {HEADER: old})
    assert status == 401 and b"clock" in data


def test_registered_nodes_still_sync(mesh: dict[str, Node]) -> None:
    a, b = mesh["A"], mesh["B"]
    link(a, b)
    for node in mesh.values():
        node.service.start()
    post = b.store.append("notice.post", notice("Bins on Thursday"), actor="ada")
    wait_for(lambda: a.store.notice(post["id"]) is not None, 10, "the notice on A")
    wait_for(lambda: b.store.account("ada") is not None, 10, "the account on B")


def test_only_this_machines_own_addresses_count_as_local() -> None:
    local = LocalAddresses(source=lambda: {"10.42.0.1", "fe80::1"})
    assert local("127.0.0.1") and local("::1") and local("10.42.0.1") and local("fe80::1%m-n2")
    assert not local("10.42.0.2") and not local("") and not local("not an address")
