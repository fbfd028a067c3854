"""The one HTTP client for other nodes' agents: replication, updates and roaming alike.

Every request opens its own connection (requests are few and small), is
signed with the node key for the node it is meant for (``Meshhub-Auth``
v2, :mod:`node.agent_auth`) when the client has one — and then the answer
must be signed by that node (``Meshhub-Reply``), else :class:`AgentError`
with ``bad_data``. Which node answers at a URL is :class:`NodeKeys`'s: the
node the registry gives that address to, or else the key the agent there
names (checked to be registered), kept per URL. Each request has a timeout
(and, optionally, a total deadline checked on every socket operation), and
reads at most a stated number of bytes: an agent that sends more, less than
it announced, or nothing raises
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
import json
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit

from node.agent_auth import HEADER as AUTH_HEADER
from node.agent_auth import (
    NODE_HEADER,
    REPLY_HEADER,
    UNHASHED_TYPE,
    ReplyRefused,
    sign_request,
    verify_reply,
)
from node.errors import NodeError
from node.identity import Identity, fingerprint
from node.runtime import plain_host

_KEY = re.compile(r"[0-9a-f]{64}")


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


class NodeKeys:
    """Which node's key answers at each agent URL: the node identity a client signs for
    and expects the answer from (thread-safe, a bounded number of URLs).

    ``registered_at(host)`` is the key the community's registry gives that mesh
    address (None: the registry does not say); it wins over anything learned.
    Otherwise the key is learned from the agent itself (``Meshhub-Node``) and
    kept when ``trusted`` accepts it: a box at that URL can then only relay
    that node's signed answers, never make up its own.
    """

    def __init__(self, trusted: Callable[[str], bool] | None = None,
                 registered_at: Callable[[str], str | None] | None = None,
                 max_urls: int = 256) -> None:
        self.trusted = trusted
        self.registered_at = registered_at or (lambda _host: None)
        self.max_urls = max_urls
        self._learned: OrderedDict[str, str] = OrderedDict()
        #: URLs where the expected node's signed answer was seen (since the last change).
        self._confirmed: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> str | None:
        """The key expected at ``url`` (registry first, then learned), or None."""
        host = (urlsplit(url).hostname or "").strip("[]")
        registered = self.registered_at(host)
        if registered is not None:
            return registered
        with self._lock:
            return self._learned.get(url)

    def learn(self, url: str, key: str) -> None:
        """Remember that the node with ``key`` answers at ``url`` (not yet confirmed)."""
        with self._lock:
            self._learned.pop(url, None)
            self._learned[url] = key
            self._confirmed.pop(url, None)
            while len(self._learned) > self.max_urls:
                self._learned.popitem(last=False)

    def forget(self, url: str) -> None:
        """Forget what was learned about ``url`` (the node there changed, or lied)."""
        with self._lock:
            self._learned.pop(url, None)
            self._confirmed.pop(url, None)

    def confirm(self, url: str) -> None:
        """The expected node's signed answer came from ``url``."""
        with self._lock:
            self._confirmed.pop(url, None)
            self._confirmed[url] = None
            while len(self._confirmed) > self.max_urls:
                self._confirmed.popitem(last=False)

    def confirmed(self, url: str) -> str | None:
        """The key of the node that answered, signed, at ``url`` (None: none yet)."""
        with self._lock:
            if url not in self._confirmed:
                return None
        return self.get(url)

    def record(self, url: str) -> str:
        """Whose record an outcome at ``url`` belongs to: the node's key once its signed
        answer came from there (so a node's record follows it from address to address),
        else the URL itself (what a box there does is never put on a node's record)."""
        return self.confirmed(url) or url

    def known(self) -> dict[str, str]:
        """``{url: key}`` learned so far (the status documents show them)."""
        with self._lock:
            return dict(self._learned)


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


def _create_connection(address: tuple[str, int], timeout: float | None,
                       source_address: tuple[str, int] | None) -> socket.socket:
    """:func:`socket.create_connection` without the IDNA codec (node.runtime.plain_host)."""
    host, port = address  # getaddrinfo takes the host as bytes too, which typeshed omits
    return socket.create_connection((plain_host(host), port),  # type: ignore[arg-type]
                                    timeout, source_address)


class _Connection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int | None, deadline: _Deadline,
                 counter: ByteCounter) -> None:
        super().__init__(host, port, timeout=deadline.timeout)
        self._counter = counter
        self._deadline = deadline
        self._create_connection = _create_connection  # http.client's own hook for it

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
    #: Whether a server that names no node (a plain web server) is asked unsigned and its
    #: answers taken unsigned: only where everything served carries its own signature.
    plain_servers: ClassVar[bool] = False

    def __init__(self, base_url: str, *, timeout: float, counter: ByteCounter | None = None,
                 identity: Identity | None = None, deadline: float | None = None,
                 keys: NodeKeys | None = None) -> None:
        self.url = normalise_url(base_url)
        #: Monotonic time by which every exchange must be over (a sync round's total deadline).
        self.deadline = deadline
        self.identity = identity  #: signs every request (agents answer registered nodes only)
        self.keys = keys if keys is not None else NodeKeys()  #: who answers at this URL
        parts = urlsplit(self.url)
        self._host = parts.hostname or ""
        self._port = parts.port
        self.timeout = timeout
        self.counter = counter or ByteCounter()

    def error(self, reason: str, *, bad_data: bool = False) -> AgentError:
        """An :class:`AgentError` about this agent (to raise)."""
        return AgentError(self.url, reason, bad_data=bad_data)

    @property
    def node_key(self) -> str | None:
        """The key of the node expected to answer here (None before it is known)."""
        return self.keys.get(self.url)

    def target_key(self) -> str | None:
        """The key of the node this client's requests are for, learned first if needed.

        Raises AgentError (bad data) when the agent names a key this node does not
        trust, or names none (None instead where :attr:`plain_servers` allows it).
        """
        known = self.node_key
        if known is not None:
            return known
        conn = _Connection(self._host, self._port, _Deadline(self.timeout, self.deadline),
                           self.counter)
        try:
            conn.request("GET", self.prefix + "/", headers={"User-Agent": self.user_agent})
            response = conn.getresponse()
            response.read(4096)
            named = (response.getheader(NODE_HEADER) or "").strip()
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) and self.deadline is not None \
                    and time.monotonic() >= self.deadline - 0.05:
                raise self.error("asking which node answers: not answered within the pull's "
                                 "deadline") from None
            raise self.error(f"asking which node answers: {type(exc).__name__}: "
                             f"{str(exc)[:160] or 'connection failed'}") from None
        finally:
            conn.close()
        if not _KEY.fullmatch(named):
            if self.plain_servers:
                return None  # a plain web server: asked unsigned, its answers unsigned
            raise self.error(f"the agent does not say which node it is (no {NODE_HEADER} "
                             "header): not a meshhub agent of this protocol version",
                             bad_data=True)
        if self.keys.trusted is not None and not self.keys.trusted(named):
            raise self.error(f"answers as node {fingerprint(named)}, which is not registered "
                             "with this node", bad_data=True)
        self.keys.learn(self.url, named)
        return named

    @contextmanager
    def exchange(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Iterator[http.client.HTTPResponse]:
        """Send ``method prefix+path`` (signed) and yield the response; AgentError on failure.

        A signed request's answer must carry the asked node's signature: a file
        answer (``application/octet-stream``) is checked here without its body,
        any other when :meth:`read` has its body. The connection closes when the
        block ends; an :class:`AgentError` raised inside the block passes through.
        """
        target = self.prefix + path
        all_headers = {"User-Agent": self.user_agent, **(headers or {})}
        check: tuple[str, str] | None = None
        to = self.target_key() if self.identity is not None else None
        if self.identity is not None and to is not None:
            nonce = secrets.token_hex(16)
            all_headers[AUTH_HEADER] = sign_request(self.identity, method, target, body or b"",
                                                    to=to, nonce=nonce)
            check = (to, nonce)
        conn = _Connection(self._host, self._port, _Deadline(self.timeout, self.deadline),
                           self.counter)
        try:
            conn.request(method, target, body=body, headers=all_headers)
            response = conn.getresponse()
            response.meshhub_check = check  # type: ignore[attr-defined]
            kind = (response.getheader("Content-Type") or "").split(";")[0].strip()
            if check is not None and kind == UNHASHED_TYPE:
                self._verify(response, None, f"{method} {path}")
            yield response
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

    def _verify(self, response: http.client.HTTPResponse, body: bytes | None,
                what: str) -> None:
        """Check the answer's ``Meshhub-Reply`` against the request it answers."""
        check = getattr(response, "meshhub_check", None)
        if check is None or self.identity is None:
            return
        response.meshhub_check = None  # type: ignore[attr-defined]
        value = response.getheader(REPLY_HEADER)
        if value is None and response.status in (401, 413) and body is not None:
            # The agent refused the request before answering it (not signed): say why.
            self.keys.forget(self.url)
            raise self.error(f"{what}: HTTP {response.status} {_error_text(body)}")
        try:
            verify_reply(value, check[0], response.status, body, self.identity.public_key,
                         check[1])
        except ReplyRefused as exc:
            self.keys.forget(self.url)
            raise self.error(f"{what}: {exc}", bad_data=True) from None
        self.keys.confirm(self.url)

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
        self._verify(response, data, what)
        return data


def _error_text(body: bytes) -> str:
    """The ``error`` of a JSON refusal, or the start of the body."""
    try:
        value = json.loads(body)
    except ValueError:
        value = None
    if isinstance(value, dict) and isinstance(value.get("error"), str):
        return str(value["error"])[:300]
    return body[:160].decode("utf-8", "replace")
