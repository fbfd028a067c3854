"""The client side of the sync protocol: one peer's agent, over plain HTTP on the mesh.

Every request opens its own connection (requests are few and small), has a
timeout, and reads at most a stated number of bytes: a peer that sends more,
nothing, or something else than the protocol says raises :class:`PeerError`.
Bytes are counted on the socket (request and response, headers included) so
that ``meshhub sync status`` and the benchmarks report what a link carries.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from node.agent_auth import HEADER as AUTH_HEADER
from node.agent_auth import sign_request
from node.errors import NodeError
from node.identity import Identity
from node.sync import protocol
from node.sync.protocol import ProtocolError

USER_AGENT = "meshhub-sync/1"


class PeerError(NodeError, OSError):
    """A peer could not be reached, or answered with something the protocol forbids.

    ``bad_data`` is True when the peer sent garbage, oversized or tampered data
    (its fault), False when it was unreachable or busy (perhaps nobody's fault).
    """

    def __init__(self, peer: str, reason: str, *, bad_data: bool = False) -> None:
        self.peer = peer
        self.reason = reason
        self.bad_data = bad_data
        super().__init__(f"{peer}: {reason}")


class ByteCounter:
    """Bytes sent to and received from one peer (thread-safe)."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self._lock = threading.Lock()

    def add(self, sent: int = 0, received: int = 0) -> None:
        """Count bytes that went over the socket."""
        with self._lock:
            self.sent += sent
            self.received += received

    @property
    def total(self) -> int:
        """Bytes in both directions."""
        return self.sent + self.received


class _Deadline:
    """A round's end (monotonic seconds): every socket operation waits at most until then."""

    def __init__(self, timeout: float, at: float | None) -> None:
        self.timeout = timeout
        self.at = at

    def apply(self, sock: socket.socket) -> None:
        """Set ``sock``'s timeout to what is left (raises TimeoutError when nothing is)."""
        if self.at is None:
            sock.settimeout(self.timeout)
            return
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("the round's deadline passed")
        sock.settimeout(min(self.timeout, left))


class _CountingRaw(io.RawIOBase):
    def __init__(self, sock: socket.socket, counter: ByteCounter, deadline: _Deadline) -> None:
        self._sock = sock
        self._counter = counter
        self._deadline = deadline
        sock._io_refs += 1  # type: ignore[attr-defined]  # as socket.makefile: keeps it open

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._deadline.apply(self._sock)
        count = self._sock.recv_into(buffer)
        self._counter.add(received=count)
        return count

    def close(self) -> None:
        if not self.closed:
            # The reader is done: the socket closes now if the connection already let go
            # of it (a response without a length is read until the peer closes).
            self._sock._decref_socketios()  # type: ignore[attr-defined]
        super().close()


class _CountingSocket:
    """Wraps a connected socket: counts ``sendall`` and what the response reader receives."""

    def __init__(self, sock: socket.socket, counter: ByteCounter, deadline: _Deadline) -> None:
        self._sock = sock
        self._counter = counter
        self._deadline = deadline

    def sendall(self, data: bytes) -> None:
        self._deadline.apply(self._sock)
        self._sock.sendall(data)
        self._counter.add(sent=len(data))

    def makefile(self, mode: str, *args: Any, **kwargs: Any) -> io.BufferedReader:
        assert "r" in mode
        return io.BufferedReader(_CountingRaw(self._sock, self._counter, self._deadline))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, deadline: _Deadline,
                 counter: ByteCounter) -> None:
        super().__init__(host, port, timeout=deadline.timeout)
        self._counter = counter
        self._deadline = deadline

    def connect(self) -> None:
        if self._deadline.at is not None:
            self.timeout = max(0.001, min(self._deadline.timeout,
                                          self._deadline.at - time.monotonic()))
        super().connect()
        self.sock = _CountingSocket(self.sock, self._counter,
                                    self._deadline)


def normalise_url(url: str) -> str:
    """``http://host:port`` without a trailing slash; raises ValueError if not plain HTTP."""
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise ValueError(f"not an agent base URL (http://host:port): {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{parts.port or 80}"


class PeerClient:
    """Requests to one peer's ``/sync/v1`` endpoints."""

    def __init__(self, base_url: str, *, timeout: float, counter: ByteCounter | None = None,
                 identity: Identity | None = None, deadline: float | None = None) -> None:
        self.url = normalise_url(base_url)
        #: Monotonic time by which every exchange must be over (a round's total deadline).
        self.deadline = deadline
        self.identity = identity  #: signs every request (agents answer registered nodes only)
        parts = urlsplit(self.url)
        self._host = parts.hostname or ""
        self._port = parts.port
        self.timeout = timeout
        self.counter = counter or ByteCounter()

    @contextmanager
    def _exchange(self, method: str, path: str, body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> Iterator[http.client.HTTPResponse]:
        conn = _Connection(self._host, self._port, _Deadline(self.timeout, self.deadline),
                           self.counter)
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if body is not None:
            all_headers["Content-Type"] = protocol.JSON_TYPE
        if self.identity is not None:
            all_headers[AUTH_HEADER] = sign_request(self.identity, method, protocol.PREFIX + path,
                                                    body or b"")
        try:
            conn.request(method, protocol.PREFIX + path, body=body, headers=all_headers)
            yield conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, PeerError):
                raise
            if isinstance(exc, TimeoutError) and self.deadline is not None \
                    and time.monotonic() >= self.deadline - 0.05:
                raise PeerError(self.url, f"{method} {path}: not answered within the pull's "
                                          "deadline") from None
            raise PeerError(self.url, f"{method} {path}: {type(exc).__name__}: "
                                      f"{str(exc)[:160] or 'connection failed'}") from None
        finally:
            conn.close()

    def _read(self, response: http.client.HTTPResponse, what: str, max_bytes: int) -> bytes:
        length = response.getheader("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            raise PeerError(self.url, f"{what}: response of {length[:20]} bytes, more than the "
                                      f"{max_bytes} allowed", bad_data=True)
        try:
            data = response.read(max_bytes + 1)
        except http.client.IncompleteRead as exc:
            raise PeerError(self.url, f"{what}: truncated response ({len(exc.partial)} of "
                                      f"{length} bytes)", bad_data=True) from None
        if length is not None and len(data) < int(length):
            raise PeerError(self.url, f"{what}: truncated response ({len(data)} of {length} "
                                      "bytes)", bad_data=True)
        if len(data) > max_bytes:
            raise PeerError(self.url, f"{what}: response larger than {max_bytes} bytes",
                            bad_data=True)
        return data

    def _json(self, method: str, path: str, value: Any, max_bytes: int) -> Any:
        body = None if value is None else protocol.dumps(value)
        with self._exchange(method, path, body) as response:
            data = self._read(response, f"{method} {path}", max_bytes)
            if response.status != 200:
                raise PeerError(self.url, f"{method} {path}: HTTP {response.status} "
                                          f"{data[:120].decode('utf-8', 'replace')}",
                                bad_data=400 <= response.status < 500)
        try:
            return protocol.loads(data, f"{method} {path}")
        except ProtocolError as exc:
            raise PeerError(self.url, str(exc), bad_data=True) from None

    def _checked(self, parse: Any, value: Any, *args: Any) -> Any:
        try:
            return parse(value, *args)
        except ProtocolError as exc:
            raise PeerError(self.url, str(exc), bad_data=True) from None

    # --- the protocol's steps --------------------------------------------------------
    def digest(self) -> protocol.Digest:
        """Step 1: the peer's digest (a few hundred bytes with headers)."""
        value = self._json("GET", "/digest", None, protocol.MAX_SMALL_BYTES)
        return self._checked(protocol.parse_digest, value)  # type: ignore[no-any-return]

    def vector(self, mine: dict[str, int], port: int | None) -> dict[str, int]:
        """Step 2: send this node's vector (and agent port), get the peer's."""
        value = self._json("POST", "/vector", {"vector": mine, "port": port},
                           protocol.MAX_PAGE_BYTES)
        return self._checked(protocol.parse_vector_response, value)  # type: ignore[no-any-return]

    def entries(self, since: dict[str, int], limit: int
                ) -> tuple[list[dict[str, Any]], bool]:
        """Step 3: one page of the entries after ``since``; (entries, more)."""
        value = self._json("POST", "/entries", {"since": since, "limit": limit},
                           protocol.MAX_PAGE_BYTES)
        return self._checked(  # type: ignore[no-any-return]
            protocol.parse_entries_response, value, limit)

    def bodies(self, ids: list[str]) -> list[dict[str, Any]]:
        """The entries among ``ids`` the peer holds with their body (to restore missing ones)."""
        value = self._json("POST", "/bodies", {"ids": ids}, protocol.MAX_PAGE_BYTES)
        return self._checked(  # type: ignore[no-any-return]
            protocol.parse_bodies_response, value, len(ids))

    def notify(self, digest: str, port: int | None) -> None:
        """Push: tell the peer this node has new entries (it pulls when it wants)."""
        body = protocol.dumps({"digest": digest, "port": port})
        with self._exchange("POST", "/notify", body) as response:
            self._read(response, "POST /notify", protocol.MAX_SMALL_BYTES)
            if response.status not in (200, 202):
                raise PeerError(self.url, f"POST /notify: HTTP {response.status}")

    def registry(self) -> bytes | None:
        """The peer's signed registry snapshot file, or None if it has none."""
        with self._exchange("GET", "/registry") as response:
            data = self._read(response, "GET /registry", protocol.MAX_REGISTRY_BYTES)
            if response.status == 404:
                return None
            if response.status != 200:
                raise PeerError(self.url, f"GET /registry: HTTP {response.status}")
        return data

    def status(self) -> Any:
        """The peer's sync status document (``meshhub sync status``)."""
        return self._json("GET", "/status", None, protocol.MAX_PAGE_BYTES)

    @contextmanager
    def blob(self, sha256: str, offset: int) -> Iterator[http.client.HTTPResponse]:
        """Open ``GET /sync/v1/blobs/<sha256>`` from byte ``offset`` (a Range request)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self._exchange("GET", f"/blobs/{sha256}", None, headers) as response:
            yield response
