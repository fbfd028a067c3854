"""The agent's HTTP server: waitress, bounded so that slow clients cannot take it down.

waitress closes a connection only after ``channel_timeout`` seconds *without
activity*, and stops accepting at ``connection_limit`` connections. A
slowloris — many connections each sending a byte every few seconds — is
never idle, so it held every slot and the agent stopped answering (issue
17). This server adds two bounds:

- a connection may stay at most :data:`REQUEST_DEADLINE_SECONDS` without a
  request being served (its headers and body trickling in, or idle between
  keep-alive requests); then it is closed, active or not;
- one address may hold at most :data:`PER_ADDRESS` connections; more are
  closed at once.

With a higher ``connection_limit`` (and ``poll`` instead of ``select``), a
rogue needs far more addresses and connections than one radio gives it to
fill the server, and what it holds is freed within seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.server import TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

#: Seconds a connection may wait for its request to arrive (or idle between requests).
REQUEST_DEADLINE_SECONDS = 10.0
#: Connections one remote address may hold at once.
PER_ADDRESS = 16
#: Connections the agent accepts in all (waitress's default is 100).
CONNECTION_LIMIT = 512
#: How often slow connections are looked for, seconds (waitress's default is 30).
CLEANUP_SECONDS = 1


class _Channel(HTTPChannel):  # type: ignore[misc]
    """A connection that records when it last finished serving a request."""

    last_served = 0.0

    def service(self) -> None:
        try:
            super().service()
        finally:
            self.last_served = time.time()


class BoundedServer(TcpWSGIServer):  # type: ignore[misc]
    """waitress's TCP server with a request deadline and a per-address connection cap."""

    channel_class = _Channel
    request_deadline = REQUEST_DEADLINE_SECONDS
    per_address = PER_ADDRESS

    def handle_accept(self) -> None:
        """Accept, unless the remote address already holds :attr:`per_address` connections."""
        try:
            accepted = self.accept()
            if accepted is None:
                return
            conn, addr = accepted
            self.set_socket_options(conn)
        except OSError:
            return
        addr = self.fix_addr(addr)
        held = Counter(_host(c) for c in list(self.active_channels.values()))
        if held[addr[0] if isinstance(addr, tuple) else addr] >= self.per_address:
            conn.close()
            return
        self.channel_class(self, conn, addr, self.adj, map=self._map)

    def maintenance(self, now: float) -> None:
        """waitress's idle check, and close connections past the request deadline."""
        super().maintenance(now)
        cutoff = now - self.request_deadline
        for channel in list(self.active_channels.values()):
            if not channel.requests and _waiting_since(channel) < cutoff:
                channel.will_close = True


def _host(channel: Any) -> str:
    addr = channel.addr
    return str(addr[0] if isinstance(addr, tuple) else addr)


def _waiting_since(channel: Any) -> float:
    """When the channel last started waiting for a request: opened, or its last one served."""
    return max(channel.creation_time, getattr(channel, "last_served", 0.0))


class _SocketAdjustments(Adjustments):
    """waitress's settings for a server given its socket: without a ``listen`` of its own.

    waitress resolves its default ``listen`` (``0.0.0.0:8080``) even when it is handed
    sockets and never binds it, and that resolution loads the IDNA codec for good
    (node.runtime.plain_host).
    """

    listen = ()  # nothing to resolve: the sockets are given


def create_bounded_server(app: Any, *, threads: int, **adjustments: Any) -> BoundedServer:
    """A started (listening) :class:`BoundedServer` for ``app``.

    Where it listens is waitress's ``host`` and ``port``, or ``sockets=[sock]``
    (one socket already bound and listening: systemd's, or a test's).
    ``adjustments`` are waitress's (``ident``, ``max_request_body_size`` ...);
    the connection limit, poll loop and cleanup interval are set here.
    """
    settings = _SocketAdjustments if "sockets" in adjustments else Adjustments
    adj = settings(threads=threads, connection_limit=CONNECTION_LIMIT,
                   asyncore_use_poll=True, cleanup_interval=CLEANUP_SECONDS, **adjustments)
    dispatcher = ThreadedTaskDispatcher()
    dispatcher.set_thread_count(adj.threads)
    if adj.sockets:
        (sock,) = adj.sockets
        sockinfo = (sock.family, sock.type, sock.proto, sock.getsockname())
        return BoundedServer(app, {}, True, sock, dispatcher=dispatcher, adj=adj,
                             sockinfo=sockinfo, bind_socket=False)
    (sockinfo,) = adj.listen[:1]
    return BoundedServer(app, {}, True, None, dispatcher=dispatcher, adj=adj,
                         sockinfo=sockinfo)
