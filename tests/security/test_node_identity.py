"""Issue 17: neighbours are known by their node key, not by their address.

Before, babeld's and zeroconf's neighbours were URLs: a zeroconf announcement
naming a node's address with another port replaced that node's URL (its sync
stopped), and every record (back-off, failures, bytes) belonged to an
address, so a node moving lost its record and a box at some address could
put failures on the record a node would be judged by. Now an announcement
only adds a URL; a URL's record is its node's (its key) once that node's
signed answer came from it, else the URL's own; and a box naming a node's
key cannot answer as it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from node.agent_app import compose
from node.agent_auth import NODE_HEADER, RequestAuth, guard
from node.mesh.discovery import FoundNode
from node.sync.http import create_sync_app
from tests.node.test_health_mesh_alerts import mesh_service
from tests.node.test_sync_support import Node, Server, nodes, notice

NEIGHBOUR = ("add neighbour n1 address fe80::2 if m0 reach ffff ureach 0000 rxcost 96 "
             "txcost 96 cost 96")
ITS_ROUTE = ("add route r1 prefix 10.42.0.7/32 from 0.0.0.0/0 installed yes id x metric 96 "
             "refmetric 0 via fe80::2 if m0")


class _Announced:
    """What zeroconf found on the links (as :class:`node.mesh.discovery.Discovery` says)."""

    def __init__(self, found: list[FoundNode]) -> None:
        self._found = found

    def found(self) -> list[FoundNode]:
        return self._found


def test_an_announcement_naming_a_nodes_address_adds_a_url_and_replaces_none(
        tmp_path: Path) -> None:
    service = mesh_service(tmp_path)
    service.state.feed([NEIGHBOUR, ITS_ROUTE])
    assert service.peers() == ["http://10.42.0.7:9180"]
    # A box announces n7's name, key and address with a port of its own choosing.
    service.discovery = _Announced([  # type: ignore[assignment]
        FoundNode("n7", ("10.42.0.7",), 7777, "ab" * 32, "FAKE-FAKE", "1", ""),
        FoundNode("n9", ("10.42.0.99",), 9180, "cd" * 32, "FAKE-FAKE", "1", "")])
    # n7's own URL stays; the announced one is one more to try (and to check); an
    # address babeld does not have as a neighbour is nobody's neighbour.
    assert service.peers() == ["http://10.42.0.7:7777", "http://10.42.0.7:9180"]


def _second_url(node: Node) -> Server:
    """``node``'s sync API served at a second address (as after it moved)."""
    app = compose(lambda _e, start: start("404 Not Found", []) or [b""],
                  {"/sync/": create_sync_app(node.service)})
    return Server(guard(app, RequestAuth(node.store.trust.is_trusted, node.identity),
                        1 << 20))


def _impostor(key: str) -> Callable[..., Iterable[bytes]]:
    """A box that names ``key`` as its own and answers every signed request, unsigned."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if "HTTP_MESHHUB_AUTH" not in environ:
            body = b'{"error": "sign the request"}'
            start_response("401 Unauthorized", [("Content-Type", "application/json"),
                                                ("Content-Length", str(len(body))),
                                                (NODE_HEADER, key)])
            return [body]
        body = json.dumps({"digest": "0" * 16, "node": "FAKE-FAKE-FAKE-FAKE-FAKE",
                           "count": 0, "registry": None}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def test_a_nodes_record_follows_its_key_and_a_box_naming_it_cannot_touch_it(
        tmp_path: Path) -> None:
    with nodes(tmp_path, "AB") as made:
        a, b = made["A"], made["B"]
        b.store.append("notice.post", notice("Bins on Thursday"), actor="ada")
        moved = _second_url(b)
        box = Server(_impostor(b.identity.public_key))
        try:
            first = a.service.pull_from(b.url)
            assert first.outcome == "pulled" and first.accepted == 1, first
            # B answers at another address now: the same record, which holds the first pull.
            second = a.service.pull_from(moved.url)
            assert second.outcome == "in sync", second
            records = [p for p in a.service.status()["peers"]
                       if p["node"] == b.identity.fingerprint]
            assert len(records) == 1, records
            assert records[0]["rounds"] == 2 and records[0]["accepted"] == 1
            assert records[0]["url"] == moved.url
            # A box naming B's key gets its request (signed for B, of no use to it) and
            # its made-up answer is refused; the failure is the box's address's alone.
            third = a.service.pull_from(box.url)
            assert third.outcome == "failed" and "no valid Meshhub-Reply" in (third.error or "")
            status = {p["url"]: p for p in a.service.status()["peers"]}
            assert status[box.url]["node"] is None and status[box.url]["bad_data"] == 1
            record = next(p for p in a.service.status()["peers"]
                          if p["node"] == b.identity.fingerprint)
            assert record["failures"] == 0 and record["bad_data"] == 0
            assert a.service.backoff.ready(b.url) and a.service.backoff.ready(moved.url)
            assert not a.service.backoff.ready(box.url)
        finally:
            box.stop()
            moved.stop()
