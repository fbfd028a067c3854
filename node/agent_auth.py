"""Signed requests between agents: only registered nodes (and listed tools) reach sync and update.

Every request to ``/sync/`` and ``/update/`` on an agent carries a header

    Meshhub-Auth: v1 key=<64 hex> ts=<unix seconds> nonce=<32 hex> sig=<128 hex>

where ``sig`` is the Ed25519 signature by ``key`` over :func:`signing_message`
(method, path with query, SHA-256 of the body, ``ts``, ``nonce``). The agent
answers only when the key is trusted (the registry, or ``trust.node_keys``,
or ``agent.client_keys`` for technicians' tools), ``ts`` is within
:data:`WINDOW_SECONDS` of its clock, and the (key, nonce) pair was not seen
within the window (a replay). The node's own processes — requests from one
of the machine's own addresses — need no signature. docs/security.md explains
the choice; docs/replication.md §2 specifies the header.
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

from node.identity import Identity, fingerprint, verify_signature

HEADER = "Meshhub-Auth"
_ENVIRON_KEY = "HTTP_MESHHUB_AUTH"
SIGNING_PREFIX = b"meshhub-request-v1\n"
#: How far a request's ``ts`` may be from the receiver's clock, either way (seconds).
WINDOW_SECONDS = 60
#: Nonces remembered (each for twice the window); the oldest go first when full.
MAX_NONCES = 20_000
#: The paths a request must be signed for.
GUARDED_PREFIXES = ("/sync/", "/update/")
#: Environ key where the verified caller's key is left for the app (None: a local caller).
CALLER_KEY = "meshhub.caller"

_VALUE = re.compile(r"v1 key=([0-9a-f]{64}) ts=([0-9]{1,12}) nonce=([0-9a-f]{32}) "
                    r"sig=([0-9a-f]{128})")
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def signing_message(method: str, path: str, body: bytes, ts: int, nonce: str) -> bytes:
    """The exact bytes a requester signs: prefix, then one line per part."""
    parts = (method.upper(), path, hashlib.sha256(body).hexdigest(), str(ts), nonce)
    return SIGNING_PREFIX + "\n".join(parts).encode("utf-8")


def sign_request(identity: Identity, method: str, path: str, body: bytes = b"", *,
                 now: float | None = None) -> str:
    """The ``Meshhub-Auth`` header value for one request (a fresh nonce each time)."""
    ts = int(time.time() if now is None else now)
    nonce = secrets.token_hex(16)
    sig = identity.sign(signing_message(method, path, body, ts, nonce))
    return f"v1 key={identity.public_key} ts={ts} nonce={nonce} sig={sig}"


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

    def __init__(self, allowed: Callable[[str], bool], *,
                 clock: Callable[[], float] = time.time,
                 is_local: Callable[[str], bool] | None = None,
                 window_seconds: int = WINDOW_SECONDS) -> None:
        self.allowed = allowed
        self.clock = clock
        self.is_local = is_local or LocalAddresses()
        self.window = window_seconds
        self._nonces: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, environ: dict[str, Any], body: bytes) -> str | None:
        """The caller's key (None for this machine's own processes); raises AuthRefused."""
        if self.is_local(environ.get("REMOTE_ADDR") or ""):
            return None
        value = environ.get(_ENVIRON_KEY)
        if not value:
            raise AuthRefused(f"this agent answers only registered nodes: sign the request "
                              f"({HEADER} header, docs/replication.md §2)")
        match = _VALUE.fullmatch(value.strip())
        if match is None:
            raise AuthRefused(f"malformed {HEADER} header (expected 'v1 key=<64 hex> "
                              "ts=<seconds> nonce=<32 hex> sig=<128 hex>')")
        key, ts_text, nonce, sig = match.groups()
        ts, now = int(ts_text), self.clock()
        if abs(now - ts) > self.window:
            raise AuthRefused(f"request time {ts} is more than {self.window} s from this "
                              f"node's clock ({int(now)}); check the requester's clock")
        if not self.allowed(key):
            raise AuthRefused(f"key {fingerprint(key)} is not registered with this node")
        path = environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        message = signing_message(environ.get("REQUEST_METHOD", "GET"), path, body, ts, nonce)
        if not verify_signature(key, message, sig):
            raise AuthRefused("bad request signature")
        self._remember(key, nonce, now)
        return key

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


def _refuse(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if status.startswith("401"):
        headers.append(("WWW-Authenticate", "Meshhub-Ed25519"))
    start_response(status, headers)
    return [body]


def guard(app: WSGIApp, auth: RequestAuth, max_body: int,
          prefixes: tuple[str, ...] = GUARDED_PREFIXES) -> WSGIApp:
    """``app`` with every request under ``prefixes`` checked by ``auth`` first.

    The body (at most ``max_body`` bytes, else 413 unread) is read to check its
    hash and handed on unchanged. Refusals are 401 JSON ``{"error": ...}``.
    """

    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith(prefixes):
            return app(environ, start_response)
        raw = environ.get("CONTENT_LENGTH") or "0"
        length = int(raw) if raw.isdigit() else 0
        if length > max_body:
            return _refuse(start_response, "413 Content Too Large",
                           f"request body of {length} bytes; this node accepts at most "
                           f"{max_body}")
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            environ[CALLER_KEY] = auth.verify(environ, body)
        except AuthRefused as exc:
            return _refuse(start_response, "401 Unauthorized", str(exc))
        environ["wsgi.input"] = io.BytesIO(body)
        return app(environ, start_response)

    return guarded
