"""The one HTTP client for other nodes' agents: replication and updates alike.

Every request opens its own connection (requests are few and small), is
signed with the node key (``Meshhub-Auth``, :mod:`node.agent_auth`) when the
client has one, has a timeout (and, optionally, a total deadline checked on
every socket operation), and reads at most a stated number of bytes: an agent
that sends more, less than it announced, or nothing raises
:class:`AgentError` with ``bad_data`` set when the fault is the sender's.
Bytes are counted on the socket (request and response, headers included,
:class:`ByteCounter`) so that status documents and the benchmarks report what
a link carries. Replication (``/sync/v1``, :class:`node.sync.client.PeerClient`)
and updates (``/update/v1``, :class:`node.update.mirror.MirrorClient`) add
their protocol's steps.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit

from node.agent_auth import HEADER as AUTH_HEADER
from node.agent_auth import sign_request
from node.errors import NodeError
from node.identity import Identity


class AgentError(NodeError, OSError):
    """Another agent could not be reached, or answered with something its protocol forbids.

    ``bad_data`` is True when it sent garbage, oversized or tampered data (its
    fault), False when it was unreachable or busy (perhaps nobody's fault).
    """

    def __init__(self, url: str, reason: str, *, bad_data: bool = False) -> None:
        self.url = url
        self.reason = reason
        self.bad_data = bad_data
        super().__init__(f"{url}: {reason}")


class ByteCounter:
    """Bytes sent to and received from agents on the socket, headers included (thread-safe)."""

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


class AgentClient:
    """Requests to one agent's endpoints under :attr:`prefix`, signed, bounded and counted."""

    #: The path every request of this protocol starts with (``/sync/v1``, ``/update/v1``).
    prefix: ClassVar[str] = ""
    user_agent: ClassVar[str] = "meshhub-agent/1"

    def __init__(self, base_url: str, *, timeout: float, counter: ByteCounter | None = None,
                 identity: Identity | None = None, deadline: float | None = None) -> None:
        self.url = normalise_url(base_url)
        #: Monotonic time by which every exchange must be over (a sync round's total deadline).
        self.deadline = deadline
        self.identity = identity  #: signs every request (agents answer registered nodes only)
        parts = urlsplit(self.url)
        self._host = parts.hostname or ""
        self._port = parts.port
        self.timeout = timeout
        self.counter = counter or ByteCounter()

    def error(self, reason: str, *, bad_data: bool = False) -> AgentError:
        """An :class:`AgentError` about this agent (to raise)."""
        return AgentError(self.url, reason, bad_data=bad_data)

    @contextmanager
    def exchange(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Iterator[http.client.HTTPResponse]:
        """Send ``method prefix+path`` (signed) and yield the response; AgentError on failure.

        The connection closes when the block ends; an :class:`AgentError` raised
        inside the block passes through unchanged.
        """
        conn = _Connection(self._host, self._port, _Deadline(self.timeout, self.deadline),
                           self.counter)
        target = self.prefix + path
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        if self.identity is not None:
            all_headers[AUTH_HEADER] = sign_request(self.identity, method, target, body or b"")
        try:
            conn.request(method, target, body=body, headers=all_headers)
            yield conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, AgentError):
                raise
            if isinstance(exc, TimeoutError) and self.deadline is not None \
                    and time.monotonic() >= self.deadline - 0.05:
                raise self.error(f"{method} {path}: not answered within the pull's "
                                 "deadline") from None
            raise self.error(f"{method} {path}: {type(exc).__name__}: "
                             f"{str(exc)[:160] or 'connection failed'}") from None
        finally:
            conn.close()

    def read(self, response: http.client.HTTPResponse, what: str, max_bytes: int) -> bytes:
        """The whole body of ``response``, at most ``max_bytes``; AgentError (bad data) if
        the agent announces or sends more, or less than it announced."""
        length = response.getheader("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            raise self.error(f"{what}: response of {length[:20]} bytes, more than the "
                             f"{max_bytes} allowed", bad_data=True)
        try:
            data = response.read(max_bytes + 1)
        except http.client.IncompleteRead as exc:
            raise self.error(f"{what}: truncated response ({len(exc.partial)} of "
                             f"{length} bytes)", bad_data=True) from None
        if length is not None and len(data) < int(length):
            raise self.error(f"{what}: truncated response ({len(data)} of {length} "
                             "bytes)", bad_data=True)
        if len(data) > max_bytes:
            raise self.error(f"{what}: response larger than {max_bytes} bytes", bad_data=True)
        return data
