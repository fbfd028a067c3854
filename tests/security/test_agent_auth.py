"""Issue 17 item 2: the agents' sync and update APIs answer only registered nodes, and
their answers are the asked node's own.

Before, ``curl -d '{"since":{},"limit":500}' http://<node>:9180/sync/v1/entries``
returned every entry, organisers' Argon2 hashes and residents' contact
details included. Now each request must be signed by a registered node's
key (or a technician tool's listed key), for the node it is sent to, fresh,
and never seen before; and each answer is signed by the node that gives it,
over the request it answers. The servers here treat no address as local, as
a node does for the mesh.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.waiting import wait_for
from node.agent_auth import (
    HEADER,
    NODE_HEADER,
    REPLY_HEADER,
    LocalAddresses,
    ReplyRefused,
    sign_request,
    signing_message,
    verify_reply,
)
from node.agent_client import NodeKeys
from node.identity import Identity
from node.sync.client import PeerClient
from tests.node.test_sync_support import Node, Server, link, nodes, notice

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
ENTRIES = b'{"since":{},"limit":500}'


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[dict[str, Node]]:
    with nodes(tmp_path, "ABC", is_local=lambda _address: False) as made:
        made["A"].store.append("account.create", {"name": "ada", "role": "admin",
                                                  "password_hash": HASH})
        made["A"].store.append("submission.create", {"category": "wanted", "title": "Ladder",
                                                      "body": "x", "contact": "07700 900123"})
        yield made


def request(node: Node, method: str, path: str, body: bytes = b"",
            headers: dict[str, str] | None = None
            ) -> tuple[int, bytes, http.client.HTTPResponse]:
    assert node.server is not None
    conn = http.client.HTTPConnection("127.0.0.1", node.server.port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), response
    finally:
        conn.close()


def signed(by: Node | Identity, to: Node, method: str, path: str, body: bytes = b"",
           **kwargs: Any) -> dict[str, str]:
    identity = by if isinstance(by, Identity) else by.identity
    return {HEADER: sign_request(identity, method, path, body, to=to.identity.public_key,
                                 **kwargs)}


def test_an_unsigned_request_gets_nothing(mesh: dict[str, Node]) -> None:
    a = mesh["A"]
    for method, path, body in (("POST", "/sync/v1/entries", ENTRIES),
                               ("GET", "/sync/v1/digest", b""), ("GET", "/sync/v1/status", b""),
                               ("POST", "/sync/v1/vector", b'{"vector":{}}'),
                               ("POST", "/sync/v1/notify", b'{"digest":"0123456789abcdef"}')):
        status, data, response = request(a, method, path, body)
        assert status == 401, (path, data)
        assert b"argon2" not in data and b"07700" not in data
        assert "registered" in json.loads(data)["error"]
        # It says which node it is, so that a registered node can sign for it.
        assert response.getheader(NODE_HEADER) == a.identity.public_key


def test_a_key_nobody_registered_gets_nothing(mesh: dict[str, Node]) -> None:
    rogue = Identity.generate()
    status, data, _ = request(mesh["A"], "POST", "/sync/v1/entries", ENTRIES,
                              signed(rogue, mesh["A"], "POST", "/sync/v1/entries", ENTRIES))
    assert status == 401 and b"not registered" in data


def test_a_registered_nodes_request_answers_once_and_only_as_signed(
        mesh: dict[str, Node]) -> None:
    a, b = mesh["A"], mesh["B"]
    header = signed(b, a, "POST", "/sync/v1/entries", ENTRIES)
    status, data, _ = request(a, "POST", "/sync/v1/entries", ENTRIES, header)
    assert status == 200 and b"argon2" in data  # registered nodes replicate accounts
    # Replayed by someone who overheard it: refused.
    status, data, _ = request(a, "POST", "/sync/v1/entries", ENTRIES, header)
    assert status == 401 and b"replayed" in data
    # The same signature on another body or path: refused.
    other = b'{"since":{},"limit":1}'
    header = signed(b, a, "POST", "/sync/v1/entries", ENTRIES)
    assert request(a, "POST", "/sync/v1/entries", other, header)[0] == 401
    header = signed(b, a, "GET", "/sync/v1/digest")
    assert request(a, "GET", "/sync/v1/status", b"", header)[0] == 401


def test_a_request_overheard_on_its_way_to_one_node_is_refused_by_another(
        mesh: dict[str, Node]) -> None:
    """Before (v1), a request named no node: one overheard on its way to A could be
    played to C within the 60 s window, each node remembering only its own nonces."""
    a, b, c = mesh["A"], mesh["B"], mesh["C"]
    header = signed(b, a, "POST", "/sync/v1/entries", ENTRIES)
    status, data, _ = request(c, "POST", "/sync/v1/entries", ENTRIES, header)
    assert status == 401 and b"argon2" not in data
    assert "signed for node " + a.identity.fingerprint in json.loads(data)["error"]
    # It still works, once, where it was meant to go.
    assert request(a, "POST", "/sync/v1/entries", ENTRIES, header)[0] == 200


def test_a_version_1_request_which_names_no_node_is_refused_with_the_reason(
        mesh: dict[str, Node]) -> None:
    a, b = mesh["A"], mesh["B"]
    ts, nonce = int(time.time()), secrets.token_hex(16)
    sig = b.identity.sign(signing_message("POST", "/sync/v1/entries", ENTRIES, ts, nonce, None))
    old = f"v1 key={b.identity.public_key} ts={ts} nonce={nonce} sig={sig}"
    status, data, _ = request(a, "POST", "/sync/v1/entries", ENTRIES, {HEADER: old})
    assert status == 401 and b"argon2" not in data
    assert "v1 is no longer answered" in json.loads(data)["error"]


def test_version_1_still_fetches_a_release_so_that_old_nodes_can_upgrade() -> None:
    """The one exception: a v1 GET under /update/ (release files are public and signed by
    the admins); any other v1 request is refused, and v2 answers are signed."""
    from node.agent_auth import RequestAuth, guard

    me, old_node = Identity.generate(), Identity.generate()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", "2")])
        return [b"{}"]

    server = Server(guard(app, RequestAuth({old_node.public_key}.__contains__, me,
                                           is_local=lambda _address: False),
                          1 << 16, ("/sync/", "/update/")))
    try:
        def v1(method: str, path: str) -> tuple[int, http.client.HTTPResponse]:
            ts, nonce = int(time.time()), secrets.token_hex(16)
            sig = old_node.sign(signing_message(method, path, b"", ts, nonce, None))
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            try:
                conn.request(method, path, headers={
                    HEADER: f"v1 key={old_node.public_key} ts={ts} nonce={nonce} sig={sig}"})
                response = conn.getresponse()
                response.read()
                return response.status, response
            finally:
                conn.close()

        assert v1("GET", "/update/v1/manifest")[0] == 200
        assert v1("POST", "/update/v1/notify")[0] == 401
        assert v1("GET", "/sync/v1/digest")[0] == 401
    finally:
        server.stop()


def test_a_stale_request_is_refused(mesh: dict[str, Node]) -> None:
    a, b = mesh["A"], mesh["B"]
    status, data, _ = request(a, "GET", "/sync/v1/digest", b"",
                              signed(b, a, "GET", "/sync/v1/digest", now=1_000_000))
    assert status == 401 and b"clock" in data


def test_an_answer_is_signed_by_the_asked_node_over_the_request_it_answers(
        mesh: dict[str, Node]) -> None:
    a, b, c = mesh["A"], mesh["B"], mesh["C"]
    nonce = secrets.token_hex(16)
    status, data, response = request(a, "POST", "/sync/v1/entries", ENTRIES,
                                      signed(b, a, "POST", "/sync/v1/entries", ENTRIES,
                                             nonce=nonce))
    assert status == 200
    value = response.getheader(REPLY_HEADER)
    me, them = b.identity.public_key, a.identity.public_key
    verify_reply(value, them, 200, data, me, nonce)  # as B checks it
    for expected, body, code, asker, asked_nonce, reason in (
            (them, data.replace(b"07700 900123", b"07700 900999"), 200, me, nonce, "altered"),
            (them, data, 404, me, nonce, "altered"),  # another status
            (them, data, 200, me, secrets.token_hex(16), "altered"),  # an old answer
            (them, data, 200, c.identity.public_key, nonce, "altered"),  # answered to C
            (c.identity.public_key, data, 200, me, nonce, "not by")):  # C was asked
        with pytest.raises(ReplyRefused, match=reason):
            verify_reply(value, expected, code, body, asker, asked_nonce)
    with pytest.raises(ReplyRefused, match="no valid"):
        verify_reply(None, them, 200, data, me, nonce)


def _box_in_the_middle(target: Node, rewrite: Callable[[str, bytes], bytes]
                       ) -> Callable[..., Iterable[bytes]]:
    """A WSGI app relaying every request to ``target`` as it came (signature included)
    and its answer back with the body passed through ``rewrite(path, body)``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items()
                   if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        assert target.server is not None
        conn = http.client.HTTPConnection("127.0.0.1", target.server.port, timeout=5)
        try:
            conn.request(environ["REQUEST_METHOD"], environ["PATH_INFO"], body=body or None,
                         headers=headers)
            answer = conn.getresponse()
            data = rewrite(environ["PATH_INFO"], answer.read())
            kept = [(k, v) for k, v in answer.getheaders()
                    if k.lower() not in ("content-length", "connection", "server", "date")]
        finally:
            conn.close()
        start_response(f"{answer.status} {answer.reason}",
                       [*kept, ("Content-Length", str(len(data)))])
        return [data]

    return app


def test_a_box_in_the_middle_cannot_change_what_a_node_answers(mesh: dict[str, Node]) -> None:
    """A box relaying B's requests to A (it cannot sign as A) and editing A's answer:
    here it drops the entries B asks for, which would have hidden them from B."""
    a, b = mesh["A"], mesh["B"]

    def hide(path: str, body: bytes) -> bytes:
        if path == "/sync/v1/entries":
            return json.dumps({"entries": [], "more": False}).encode()
        return body

    box = Server(_box_in_the_middle(a, hide))
    try:
        b.service.keys.learn(box.url, a.identity.public_key)  # B means to reach A there
        (round_,), _ = b.service.sync_now([box.url], files=False)
        assert round_.outcome == "failed", round_
        assert "altered on the way" in (round_.error or ""), round_.error
        assert b.store.vector() == {}
        # Relaying without changing anything gains the box nothing: B gets A's answers.
        honest = Server(_box_in_the_middle(a, lambda _path, body: body))
        try:
            b.service.keys.learn(honest.url, a.identity.public_key)
            (round_,), _ = b.service.sync_now([honest.url], files=False)
            assert round_.outcome == "pulled" and round_.accepted == 2, round_
        finally:
            honest.stop()
    finally:
        box.stop()


def test_a_box_answering_as_itself_where_a_registered_node_is_expected_gets_nowhere(
        mesh: dict[str, Node]) -> None:
    """The registry gives A's address to A: a box there (here B, registered itself, or a
    rogue with a key of its own) cannot answer for A, and gets no request it could use."""
    a, b, c = mesh["A"], mesh["B"], mesh["C"]
    expect_a = NodeKeys(registered_at=lambda _host: a.identity.public_key)
    client = PeerClient(b.url, timeout=5, identity=c.identity, keys=expect_a)
    with pytest.raises(OSError, match="signed for node " + a.identity.fingerprint):
        client.digest()
    # Without a registry, the key the box names must be one this node registered.
    rogue = Identity.generate()
    rogue_keys = NodeKeys(trusted=c.store.trust.is_trusted)
    impostor = Server(_names(rogue.public_key))
    try:
        with pytest.raises(OSError, match="not registered"):
            PeerClient(impostor.url, timeout=5, identity=c.identity, keys=rogue_keys).digest()
        assert rogue_keys.known() == {}
    finally:
        impostor.stop()


def _names(key: str) -> Callable[..., Iterable[bytes]]:
    """An agent-like app that names itself as ``key`` and answers nothing else."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = b'{"error": "sign the request"}'
        start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                            ("Content-Length", str(len(body))),
                                            (NODE_HEADER, key)])
        return [body]

    return app


def test_registered_nodes_still_sync(mesh: dict[str, Node]) -> None:
    a, b = mesh["A"], mesh["B"]
    link(a, b)
    for node in (a, b):
        node.service.start()
    post = b.store.append("notice.post", notice("Bins on Thursday"), actor="ada")
    wait_for("the notice on A", lambda: a.store.notice(post["id"]) is not None, timeout=10)
    wait_for("the account on B", lambda: b.store.account("ada") is not None, timeout=10)
    # Each knows the other by its key, learned from the other and checked on every answer.
    assert b.service.keys.known() == {a.url: a.identity.public_key}


def test_only_this_machines_own_addresses_count_as_local() -> None:
    local = LocalAddresses(source=lambda: {"10.42.0.1", "fe80::1"})
    assert local("127.0.0.1") and local("::1") and local("10.42.0.1") and local("fe80::1%m-n2")
    assert not local("10.42.0.2") and not local("") and not local("not an address")
