"""The one HTTP client for other nodes' agents: replication, updates and roaming alike.

Every request opens its own connection (requests are few and small; h11 makes
and parses the HTTP/1.1, so ``http.client`` and ``email`` stay out of the agent), is
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

import h11

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


#: Bytes asked of the socket at a time while reading an answer.
_RECV_BYTES = 64 * 1024


class _Connection:
    """One request and its answer over a socket of its own: h11 (sans-I/O HTTP/1.1) makes
    and parses the bytes; every socket operation waits at most the deadline's time and
    is counted.

    The standard library's ``http.client`` did this before, and with it ``email`` (its
    header parser) stayed in every agent for good, about twice h11's weight in Python
    objects (docs/scale.md, session 11).
    """

    def __init__(self, host: str, port: int | None, deadline: _Deadline,
                 counter: ByteCounter) -> None:
        self._host = host
        self._port = port or 80
        self._deadline = deadline
        self._counter = counter
        self._http = h11.Connection(h11.CLIENT)
        self._sock: socket.socket | None = None
        self._closed_by_peer = False

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> None:
        """Connect and send the request (``Host`` and, with a body, ``Content-Length``
        added as ``http.client`` adds them)."""
        authority = f"[{self._host}]" if ":" in self._host else self._host
        if self._port != 80:
            authority = f"{authority}:{self._port}"
        fields = [("Host", authority), *(headers or {}).items()]
        if body is not None or method in ("POST", "PUT"):
            fields.append(("Content-Length", str(len(body or b""))))
        data = self._http.send(h11.Request(method=method, target=target, headers=fields))
        if body:
            data += self._http.send(h11.Data(data=body)) or b""
        data += self._http.send(h11.EndOfMessage()) or b""
        timeout = self._deadline.timeout
        if self._deadline.at is not None:
            timeout = max(0.001, min(timeout, self._deadline.at - time.monotonic()))
        # getaddrinfo takes the host as bytes too, which typeshed omits
        self._sock = socket.create_connection(
            (plain_host(self._host), self._port), timeout)  # type: ignore[arg-type]
        self._deadline.apply(self._sock)
        self._sock.sendall(data)
        self._counter.add(sent=len(data))

    def getresponse(self) -> AgentResponse:
        """The answer's status line and headers (its body is read from the response);
        ConnectionResetError if the agent closed the connection before answering."""
        while True:
            event = self.next_event()
            if isinstance(event, h11.Response):
                return AgentResponse(self, event)
            if not isinstance(event, h11.InformationalResponse):  # None: closed before it
                raise ConnectionResetError("closed the connection without an answer")
            # an informational answer (100 Continue): the real one follows

    def next_event(self) -> Any:
        """The next piece of the answer h11 parsed, reading the socket as needed; None
        when the agent closed the connection before the piece was complete."""
        assert self._sock is not None
        while True:
            if self._closed_by_peer:
                try:
                    event = self._http.next_event()
                except h11.RemoteProtocolError:
                    return None  # closed before the answer (or its announced body) was all there
            else:
                event = self._http.next_event()
            if event is not h11.NEED_DATA:
                return event
            self._deadline.apply(self._sock)
            data = self._sock.recv(_RECV_BYTES)
            self._counter.add(received=len(data))
            self._http.receive_data(data)
            self._closed_by_peer = not data

    def close(self) -> None:
        """Close the socket (the connection is never used again)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class AgentResponse:
    """An agent's answer, as :meth:`AgentClient.exchange` yields it: its status, its
    headers and its body, read from the socket as it is asked for."""

    def __init__(self, connection: _Connection, head: h11.Response) -> None:
        self._connection = connection
        self.status: int = head.status_code
        self.reason = head.reason.decode("latin-1")
        self._headers = [(name.decode("latin-1"), value.decode("latin-1"))
                         for name, value in head.headers]  # h11 gives names in lower case
        self._pending = bytearray()
        self._done = False
        #: The agent closed the connection before the body's announced end (or last chunk).
        self.cut_short = False
        #: The signed request's (node key, nonce) its answer is checked against (None: none).
        self.meshhub_check: tuple[str, str] | None = None

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """The header ``name`` (any case), several joined by ", "; ``default`` if absent."""
        wanted = name.lower()
        values = [value for field, value in self._headers if field == wanted]
        return ", ".join(values) if values else default

    def read(self, amt: int | None = None, /) -> bytes:
        """Up to ``amt`` bytes of the body (all of it when None); b"" at its end.

        A body the agent cut short by closing the connection simply ends early, as
        ``http.client``'s did: callers compare what they got with what was announced.
        """
        while not self._done and (amt is None or len(self._pending) < amt):
            event = self._connection.next_event()
            if isinstance(event, h11.Data):
                self._pending += event.data
            else:  # the end of the body, or the connection closed before it (None)
                self._done = True
                self.cut_short = event is None
        size = len(self._pending) if amt is None else min(amt, len(self._pending))
        data = bytes(self._pending[:size])
        del self._pending[:size]
        return data


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
        except (OSError, h11.ProtocolError) as exc:
            raise self._failed("asking which node answers", exc) from None
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
                 headers: dict[str, str] | None = None) -> Iterator[AgentResponse]:
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
            response.meshhub_check = check
            kind = (response.getheader("Content-Type") or "").split(";")[0].strip()
            if check is not None and kind == UNHASHED_TYPE:
                self._verify(response, None, f"{method} {path}")
            yield response
        except (OSError, h11.ProtocolError) as exc:
            if isinstance(exc, AgentError):
                raise
            raise self._failed(f"{method} {path}", exc) from None
        finally:
            conn.close()

    def _failed(self, what: str, exc: OSError | h11.ProtocolError) -> AgentError:
        """The :class:`AgentError` for an exchange that failed with ``exc``: past the
        round's deadline, or the agent unreachable (not bad data), or its bytes not HTTP
        (bad data: h11 could not parse them)."""
        if isinstance(exc, TimeoutError) and self.deadline is not None \
                and time.monotonic() >= self.deadline - 0.05:
            return self.error(f"{what}: not answered within the pull's deadline")
        return self.error(f"{what}: {type(exc).__name__}: "
                          f"{str(exc)[:160] or 'connection failed'}",
                          bad_data=isinstance(exc, h11.RemoteProtocolError))

    def _verify(self, response: AgentResponse, body: bytes | None,
                what: str) -> None:
        """Check the answer's ``Meshhub-Reply`` against the request it answers."""
        check = response.meshhub_check
        if check is None or self.identity is None:
            return
        response.meshhub_check = None
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

    def read(self, response: AgentResponse, what: str, max_bytes: int) -> bytes:
        """The whole body of ``response``, at most ``max_bytes``; AgentError (bad data) if
        the agent announces or sends more, or less than it announced."""
        length = response.getheader("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > max_bytes):
            raise self.error(f"{what}: response of {length[:20]} bytes, more than the "
                             f"{max_bytes} allowed", bad_data=True)
        data = response.read(max_bytes + 1)
        if response.cut_short and len(data) <= max_bytes:
            raise self.error(f"{what}: truncated response ({len(data)} of "
                             f"{length} bytes)", bad_data=True)
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
