"""Signed requests and signed replies between agents (docs/replication.md §2).

Every request to ``/sync/``, ``/update/`` and ``/roam/`` on an agent carries a header

    Meshhub-Auth: v2 key=<64 hex> to=<64 hex> ts=<unix seconds> nonce=<32 hex> sig=<128 hex>

where ``sig`` is the Ed25519 signature by ``key`` over :func:`signing_message`
(method, path with query, SHA-256 of the body, ``ts``, ``nonce``, and ``to``:
the key of the node the request is for). The agent answers only when ``to``
is its own key (a request overheard on its way to one node is refused by
every other), the key is trusted (the registry, or ``trust.node_keys``, or
``agent.client_keys`` for technicians' tools), ``ts`` is within
:data:`WINDOW_SECONDS` of its clock, and the (key, nonce) pair was not seen
within the window (a replay). Its answer then carries

    Meshhub-Reply: v2 key=<its key> sig=<128 hex>

signed over :func:`reply_message` (status, SHA-256 of the body, the
requester's key and nonce), so the requester knows the answer is the one the
node it meant to reach gave to this very request (:func:`verify_reply`).

Version 1 (no ``to``, replies unsigned) is refused, except for GETs under
``/update/``: nodes of the previous release fetch the release that upgrades
them that way, and what they get (signed release files) is public. The
node's own processes — requests from one of the machine's own addresses
without a header — need no signature; any request to a guarded path is told
which node answers (``Meshhub-Node``) so that a client learns the key to
sign for. docs/security.md explains the choice.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from node.agent_app import read_answer
from node.identity import Identity, fingerprint, verify_signature

HEADER = "Meshhub-Auth"
#: The answer's signature (``v2 key=<64 hex> sig=<128 hex>``).
REPLY_HEADER = "Meshhub-Reply"
#: The answering node's key, on answers to requests that carry no signature (and 401s).
NODE_HEADER = "Meshhub-Node"
_ENVIRON_KEY = "HTTP_MESHHUB_AUTH"
SIGNING_PREFIX = b"meshhub-request-v2\n"
SIGNING_PREFIX_V1 = b"meshhub-request-v1\n"
REPLY_PREFIX = b"meshhub-reply-v2\n"
#: Answers of this type are signed without their body's hash (``-``), and streamed:
#: library and release files, which the requester checks against their own hash.
UNHASHED_TYPE = "application/octet-stream"
#: Paths where a version 1 GET is still answered (the release that upgrades old nodes).
LEGACY_V1_PREFIXES = ("/update/",)
#: How far a request's ``ts`` may be from the receiver's clock, either way (seconds).
WINDOW_SECONDS = 60
#: Nonces remembered (each for twice the window); the oldest go first when full.
MAX_NONCES = 20_000
#: The paths a request must be signed for.
GUARDED_PREFIXES = ("/sync/", "/update/")
#: Environ key where the verified caller's key is left for the app (None: a local caller).
CALLER_KEY = "meshhub.caller"

_VALUE = re.compile(r"v2 key=([0-9a-f]{64}) to=([0-9a-f]{64}) ts=([0-9]{1,12}) "
                    r"nonce=([0-9a-f]{32}) sig=([0-9a-f]{128})")
_VALUE_V1 = re.compile(r"v1 key=([0-9a-f]{64}) ts=([0-9]{1,12}) nonce=([0-9a-f]{32}) "
                       r"sig=([0-9a-f]{128})")
_REPLY = re.compile(r"v2 key=([0-9a-f]{64}) sig=([0-9a-f]{128})")
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def signing_message(method: str, path: str, body: bytes, ts: int, nonce: str,
                    to: str | None) -> bytes:
    """The exact bytes a requester signs: prefix, then one line per part (``to`` None:
    version 1, which names no node)."""
    parts = [method.upper(), path, hashlib.sha256(body).hexdigest(), str(ts), nonce]
    if to is None:
        return SIGNING_PREFIX_V1 + "\n".join(parts).encode("utf-8")
    return SIGNING_PREFIX + "\n".join([*parts, to]).encode("utf-8")


def sign_request(identity: Identity, method: str, path: str, body: bytes = b"", *,
                 to: str, now: float | None = None, nonce: str | None = None) -> str:
    """The ``Meshhub-Auth`` header value for one request to the node whose key is ``to``
    (a fresh nonce each time unless one is given)."""
    ts = int(time.time() if now is None else now)
    nonce = nonce or secrets.token_hex(16)
    sig = identity.sign(signing_message(method, path, body, ts, nonce, to))
    return f"v2 key={identity.public_key} to={to} ts={ts} nonce={nonce} sig={sig}"


def reply_message(status: int, body_hash: str, requester: str, nonce: str) -> bytes:
    """The exact bytes a node signs over its answer: status, the body's SHA-256 (or ``-``
    for a long body that carries its own hash), the requester's key and nonce."""
    return REPLY_PREFIX + f"{status}\n{body_hash}\n{requester}\n{nonce}".encode("ascii")


def sign_reply(identity: Identity, status: int, body_hash: str, requester: str,
               nonce: str) -> str:
    """The ``Meshhub-Reply`` header value for an answer to ``requester``'s request ``nonce``."""
    sig = identity.sign(reply_message(status, body_hash, requester, nonce))
    return f"v2 key={identity.public_key} sig={sig}"


class ReplyRefused(Exception):
    """An answer is unsigned, signed by another node than the one asked, or altered."""


def verify_reply(value: str | None, expected: str, status: int, body: bytes | None,
                 requester: str, nonce: str) -> None:
    """Check a ``Meshhub-Reply`` header; raises :class:`ReplyRefused` with the reason.

    ``body`` None checks a file answer signed without its body's hash (the caller
    checks the file against its own hash); otherwise the signature must cover it.
    """
    match = _REPLY.fullmatch((value or "").strip())
    if match is None:
        raise ReplyRefused(f"the answer carries no valid {REPLY_HEADER} signature (not a "
                           "node of this mesh, or a box in the middle)")
    key, sig = match.groups()
    if key != expected:
        raise ReplyRefused(f"answered by node {fingerprint(key)}, not by "
                           f"{fingerprint(expected)} which was asked")
    body_hash = "-" if body is None else hashlib.sha256(body).hexdigest()
    if not verify_signature(key, reply_message(status, body_hash, requester, nonce), sig):
        raise ReplyRefused("the answer's signature does not match it (altered on the way)")


class AuthRefused(Exception):
    """A request's signature is missing, wrong, stale, replayed or by an unknown key."""


class LocalAddresses:
    """Whether an address is one of this machine's own (re-read every few seconds)."""

    def __init__(self, ttl_seconds: float = 10.0,
                 source: Callable[[], set[str]] | None = None) -> None:
        self._ttl = ttl_seconds
        self._source = source or _interface_addresses
        self._cached: tuple[float, set[str]] = (float("-inf"), set())
        self._lock = threading.Lock()

    def __call__(self, address: str) -> bool:
        """True for loopback and for any address of this machine's interfaces."""
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None
                              and ip.ipv4_mapped.is_loopback):
            return True
        with self._lock:
            at, known = self._cached
            if time.monotonic() - at > self._ttl:
                known = self._source()
                self._cached = (time.monotonic(), known)
        return str(ip) in known


def _interface_addresses() -> set[str]:
    import socket

    import psutil

    found = set()
    for addresses in psutil.net_if_addrs().values():
        for item in addresses:
            if item.family in (socket.AF_INET, socket.AF_INET6):
                found.add(str(ipaddress.ip_address(item.address.split("%")[0])))
    return found


class RequestAuth:
    """Checks ``Meshhub-Auth`` headers: trusted key, fresh time, unseen nonce, valid signature."""

    def __init__(self, allowed: Callable[[str], bool], identity: Identity, *,
                 clock: Callable[[], float] = time.time,
                 is_local: Callable[[str], bool] | None = None,
                 window_seconds: int = WINDOW_SECONDS) -> None:
        self.allowed = allowed
        self.identity = identity  #: this node: requests must name its key; it signs replies
        self.clock = clock
        self.is_local = is_local or LocalAddresses()
        self.window = window_seconds
        self._nonces: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, environ: dict[str, Any], body: bytes) -> tuple[str, str, bool] | None:
        """``(caller key, nonce, version 2)``, or None for this machine's own processes
        (no header, from one of its addresses); raises AuthRefused."""
        value = environ.get(_ENVIRON_KEY)
        if not value and self.is_local(environ.get("REMOTE_ADDR") or ""):
            return None
        if not value:
            raise AuthRefused(f"this agent answers only registered nodes: sign the request "
                              f"({HEADER} header, docs/replication.md §2)")
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        match = _VALUE.fullmatch(value.strip())
        to: str | None = None
        if match is not None:
            key, to, ts_text, nonce, sig = match.groups()
        else:
            old = _VALUE_V1.fullmatch(value.strip())
            if old is None:
                raise AuthRefused(f"malformed {HEADER} header (expected 'v2 key=<64 hex> "
                                  "to=<64 hex> ts=<seconds> nonce=<32 hex> sig=<128 hex>')")
            if not (method == "GET" and path.startswith(LEGACY_V1_PREFIXES)):
                raise AuthRefused(f"{HEADER} v1 is no longer answered here: it does not name "
                                  "the node it is for, so it could be replayed to another "
                                  "node. Upgrade the requesting node (v2, docs/replication.md "
                                  "§2)")
            key, ts_text, nonce, sig = old.groups()
        if to is not None and to != self.identity.public_key:
            raise AuthRefused(f"this request was signed for node {fingerprint(to)}, not for "
                              f"this node ({self.identity.fingerprint})")
        ts, now = int(ts_text), self.clock()
        if abs(now - ts) > self.window:
            raise AuthRefused(f"request time {ts} is more than {self.window} s from this "
                              f"node's clock ({int(now)}); check the requester's clock")
        if not self.allowed(key):
            raise AuthRefused(f"key {fingerprint(key)} is not registered with this node")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        message = signing_message(method, path, body, ts, nonce, to)
        if not verify_signature(key, message, sig):
            raise AuthRefused("bad request signature")
        self._remember(key, nonce, now)
        return key, nonce, to is not None

    def _remember(self, key: str, nonce: str, now: float) -> None:
        with self._lock:
            while self._nonces:
                oldest, seen = next(iter(self._nonces.items()))
                if now - seen <= 2 * self.window and len(self._nonces) < MAX_NONCES:
                    break
                del self._nonces[oldest]
            if (key, nonce) in self._nonces:
                raise AuthRefused("replayed request (this nonce was already used)")
            self._nonces[(key, nonce)] = now


def _refuse(start_response: StartResponse, status: str, message: str,
            node_key: str) -> list[bytes]:
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
               (NODE_HEADER, node_key)]
    if status.startswith("401"):
        headers.append(("WWW-Authenticate", "Meshhub-Ed25519"))
    start_response(status, headers)
    return [body]


def guard(app: WSGIApp, auth: RequestAuth, max_body: int,
          prefixes: tuple[str, ...] = GUARDED_PREFIXES) -> WSGIApp:
    """``app`` with every request under ``prefixes`` checked by ``auth`` first, and
    its answer signed for the requester.

    The body (at most ``max_body`` bytes, else 413 unread) is read to check its
    hash and handed on unchanged. Refusals are 401 JSON ``{"error": ...}``. An
    answer to a version 2 request carries ``Meshhub-Reply``; one to an unsigned
    request of this machine, or a refusal, names this node in ``Meshhub-Node``.
    """
    identity = auth.identity

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith(prefixes):
            return app(environ, start_response)
        raw = environ.get("CONTENT_LENGTH") or "0"
        length = int(raw) if raw.isdigit() else 0
        if length > max_body:
            return _refuse(start_response, "413 Content Too Large",
                           f"request body of {length} bytes; this node accepts at most "
                           f"{max_body}", identity.public_key)
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            caller = auth.verify(environ, body)
        except AuthRefused as exc:
            return _refuse(start_response, "401 Unauthorized", str(exc), identity.public_key)
        environ["wsgi.input"] = io.BytesIO(body)
        environ[CALLER_KEY] = None if caller is None else caller[0]
        if caller is None or not caller[2]:
            def named(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
                return start_response(status, [*headers, (NODE_HEADER, identity.public_key)],
                                      *args)
            return app(environ, named)
        return _signed(app, environ, start_response, identity, caller[0], caller[1])

    return guarded


def _signed(app: WSGIApp, environ: dict[str, Any], start_response: StartResponse,
            identity: Identity, requester: str, nonce: str) -> Iterable[bytes]:
    """Run ``app`` and answer with its response signed (:func:`reply_message`)."""
    captured: list[Any] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured[:] = [status, headers]
        return lambda _data: None  # write() is not used by our apps

    result = app(environ, capture)
    if captured:
        status, headers = captured
        kind = next((v for k, v in headers if k.lower() == "content-type"), "")
        if kind.split(";")[0].strip() == UNHASHED_TYPE:
            # A file, streamed: signed without its hash; the requester checks the file's own.
            start_response(status, [*headers, (REPLY_HEADER, sign_reply(
                identity, int(status[:3]), "-", requester, nonce))])
            return result
    data = read_answer(result)
    status, headers = captured
    start_response(status, [*headers, (REPLY_HEADER, sign_reply(
        identity, int(status[:3]), hashlib.sha256(data).hexdigest(), requester, nonce))])
    return [data]
