"""A rogue sync peer: speaks the sync protocol, serving what the test gives it.

It is a plain WSGI function (served by the same waitress server the other
test nodes use), so an attack is written as data: the entries to serve,
exactly as the rogue wants them on the wire. Served as it is, it has no key
and its answers are unsigned (nodes refuse them); :func:`compromised` serves
it as a registered node whose key the attacker holds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from node.agent_auth import RequestAuth, guard
from node.identity import Identity

#: A fingerprint no real node has (the digest's ``node`` member).
ROGUE_NODE = "ROGU-EROG-UERO-GUER"


def rogue_app(served: list[dict[str, Any]]) -> Callable[..., Iterable[bytes]]:
    """A sync server offering ``served`` (wire entries, as given) to whoever pulls."""

    def vector() -> dict[str, int]:
        out: dict[str, int] = {}
        for wire in served:
            header = wire["header"]
            out[header["author"]] = max(out.get(header["author"], 0), header["seq"])
        return out

    def reply(start_response: Callable[..., Any], value: Any) -> list[bytes]:
        body = json.dumps(value).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.loads(environ["wsgi.input"].read(length) or b"{}")
        if path == "/sync/v1/digest":
            digest = hashlib.sha256(json.dumps(vector()).encode()).hexdigest()[:16]
            return reply(start_response, {"digest": digest, "node": ROGUE_NODE,
                                          "count": len(served), "registry": None})
        if path == "/sync/v1/vector":
            return reply(start_response, {"vector": vector()})
        if path == "/sync/v1/entries":
            since = request["since"]
            page = [w for w in served
                    if w["header"]["seq"] > since.get(w["header"]["author"], 0)]
            return reply(start_response, {"entries": page, "more": False})
        if path == "/sync/v1/bodies":
            return reply(start_response, {"entries": []})
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]

    return app


def erased(wire: dict[str, Any]) -> dict[str, Any]:
    """A genuine entry with its body replaced by ``null`` (still verifiable)."""
    return {**wire, "body": None}


def compromised(app: Callable[..., Iterable[bytes]], identity: Identity
                ) -> Callable[..., Iterable[bytes]]:
    """``app`` served as a registered node's agent would serve it: requests checked, answers
    signed with ``identity`` (a node whose key was stolen, or that lies)."""
    return guard(app, RequestAuth(lambda _key: True, identity), 1 << 20)
