"""A minimal meshhub peer written from docs/ only: it imports nothing from ``node``.

Entries (docs/entry-format.md §2-5), the sync messages, signed requests and
signed answers (docs/replication.md §2-3) and the key fingerprint, each as
the docs define them; PyNaCl does Ed25519. The conformance test drives a
real node with it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nacl.signing import SigningKey, VerifyKey

ENTRY_PREFIX = b"meshhub-entry-v1\n"
REQUEST_PREFIX = b"meshhub-request-v2\n"
REPLY_PREFIX = b"meshhub-reply-v2\n"
AUTH = re.compile(r"v2 key=([0-9a-f]{64}) to=([0-9a-f]{64}) ts=([0-9]+) nonce=([0-9a-f]{32}) "
                  r"sig=([0-9a-f]{128})")
REPLY = re.compile(r"v2 key=([0-9a-f]{64}) sig=([0-9a-f]{128})")


def canonical(value: Any) -> bytes:
    """entry-format.md §2."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fingerprint(key_hex: str) -> str:
    """replication.md §3: base32 of SHA-256 of the raw key, 20 characters in groups of 4."""
    text = base64.b32encode(hashlib.sha256(bytes.fromhex(key_hex)).digest()).decode()[:20]
    return "-".join(text[i:i + 4] for i in range(0, 20, 4))


def digest(vector: dict[str, int]) -> str:
    """entry-format.md §9: first 16 hex digits of SHA-256 of the canonical vector."""
    return sha256_hex(canonical(vector))[:16]


class Peer:
    """One key, its own log, and the ability to sign entries and requests."""

    def __init__(self, seed: bytes | None = None) -> None:
        self.key = SigningKey(seed) if seed is not None else SigningKey.generate()
        self.public = self.key.verify_key.encode().hex()
        self.log: list[dict[str, Any]] = []

    def entry(self, kind: str, body: dict[str, Any], *, actor: str | None, ts: int,
              target: str | None = None) -> dict[str, Any]:
        """entry-format.md §3-5: header, id, signature; appended to this peer's log."""
        header = {"v": 1, "author": self.public, "seq": len(self.log) + 1, "ts": ts,
                  "actor": actor, "kind": kind, "target": target,
                  "body_hash": sha256_hex(canonical(body))}
        wire = {"id": sha256_hex(canonical(header)), "header": header,
                "sig": self.key.sign(ENTRY_PREFIX + canonical(header)).signature.hex(),
                "body": body}
        self.log.append(wire)
        return wire

    def vector(self) -> dict[str, int]:
        return {self.public: len(self.log)} if self.log else {}

    def auth(self, method: str, path: str, body: bytes, to: str, nonce: str) -> str:
        """replication.md §2: the Meshhub-Auth header of one request to the node ``to``."""
        ts = int(time.time())
        message = REQUEST_PREFIX + "\n".join(
            (method, path, sha256_hex(body), str(ts), nonce, to)).encode()
        return (f"v2 key={self.public} to={to} ts={ts} nonce={nonce} "
                f"sig={self.key.sign(message).signature.hex()}")

    def reply(self, status: int, body: bytes, requester: str, nonce: str) -> str:
        """replication.md §2: the Meshhub-Reply header of this peer's answer."""
        message = REPLY_PREFIX + f"{status}\n{sha256_hex(body)}\n{requester}\n{nonce}".encode()
        return f"v2 key={self.public} sig={self.key.sign(message).signature.hex()}"

    def node_key(self, port: int) -> str:
        """replication.md §2: which node answers on ``port`` (its ``Meshhub-Node``)."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/sync/v1/")
            response = conn.getresponse()
            response.read()
            return str(response.getheader("Meshhub-Node"))
        finally:
            conn.close()

    def request(self, port: int, method: str, path: str, value: Any = None
                ) -> tuple[int, Any]:
        """One signed request to a node's agent on loopback; (status, JSON answer), the
        answer checked to be signed by that node for this request."""
        to = self.node_key(port)
        body = b"" if value is None else json.dumps(value).encode()
        nonce = secrets.token_hex(16)
        headers = {"Meshhub-Auth": self.auth(method, path, body, to, nonce)}
        if value is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(method, path, body=body if value is not None else None,
                         headers=headers)
            response = conn.getresponse()
            data = response.read()
            verify_reply(response.getheader("Meshhub-Reply") or "", to, response.status,
                         data, self.public, nonce)
            return response.status, json.loads(data)
        finally:
            conn.close()


def verify_reply(header: str, expected: str, status: int, body: bytes, requester: str,
                 nonce: str) -> None:
    """Check a node's signed answer (replication.md §2); raises if it is not ``expected``'s
    answer to this request."""
    match = REPLY.fullmatch(header)
    if match is None or match.group(1) != expected:
        raise ValueError(f"answer not signed by the node asked: {header!r}")
    message = REPLY_PREFIX + f"{status}\n{sha256_hex(body)}\n{requester}\n{nonce}".encode()
    VerifyKey(bytes.fromhex(expected)).verify(message, bytes.fromhex(match.group(2)))


def verify_request(header: str, method: str, path: str, body: bytes, me: str
                   ) -> tuple[str, str]:
    """Check a node's signed request for ``me`` (replication.md §2); (its key, nonce)."""
    match = AUTH.fullmatch(header or "")
    if match is None:
        raise ValueError(f"no valid Meshhub-Auth header: {header!r}")
    key, to, ts, nonce, sig = match.groups()
    if to != me:
        raise ValueError("signed for another node")
    if abs(time.time() - int(ts)) > 60:
        raise ValueError("stale request")
    message = REQUEST_PREFIX + "\n".join((method, path, sha256_hex(body), ts, nonce,
                                          to)).encode()
    VerifyKey(bytes.fromhex(key)).verify(message, bytes.fromhex(sig))
    return key, nonce


class PeerServer:
    """The peer's sync server (replication.md §3), as a node pulls from it.

    ``serve`` maps each wire entry to what ``/entries`` sends (e.g. its body
    erased); ``/bodies`` always has the bodies. Every request must be signed
    for this peer, and every answer is signed for its requester; an unsigned
    request gets 401 naming this peer (``Meshhub-Node``). The keys that signed
    are kept in :attr:`callers`.
    """

    def __init__(self, peer: Peer,
                 serve: Callable[[dict[str, Any]], dict[str, Any]] = lambda w: w) -> None:
        self.peer = peer
        self.callers: list[str] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            caller: tuple[str, str] | None = None

            def _answer(self, value: Any, status: int = 200) -> None:
                data = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Meshhub-Node", peer.public)
                if self.caller is not None:
                    self.send_header("Meshhub-Reply", peer.reply(status, data, *self.caller))
                self.end_headers()
                self.wfile.write(data)

            def _checked(self) -> Any:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                header = self.headers.get("Meshhub-Auth")
                if header is None:  # a node asking who answers here
                    return None
                self.caller = verify_request(header, self.command, self.path, body,
                                             peer.public)
                outer.callers.append(self.caller[0])
                outer.paths.append(self.path)
                return json.loads(body) if body else None

            def do_GET(self) -> None:
                self._checked()
                if self.caller is None:
                    self._answer({"error": "sign the request"}, 401)
                    return
                vector = peer.vector()
                self._answer({"digest": digest(vector), "node": fingerprint(peer.public),
                              "count": sum(vector.values()), "registry": None})

            def do_POST(self) -> None:
                request = self._checked()
                if self.caller is None:
                    self._answer({"error": "sign the request"}, 401)
                elif self.path == "/sync/v1/vector":
                    self._answer({"vector": peer.vector()})
                elif self.path == "/sync/v1/entries":
                    since = request["since"].get(peer.public, 0)
                    page = [serve(w) for w in peer.log if w["header"]["seq"] > since]
                    self._answer({"entries": page[:request["limit"]],
                                  "more": len(page) > request["limit"]})
                elif self.path == "/sync/v1/bodies":
                    self._answer({"entries": [w for w in peer.log if w["id"] in request["ids"]]})
                else:
                    self._answer({"pull": False})

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="peer-server")
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
