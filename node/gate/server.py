"""The gate's Unix socket: where the portal asks the root-owned gate to let a device in.

The socket (``gate.socket``, e.g. ``/run/meshhub/gate.sock``) is mode 0660, owned by
root and by the portal user's group; on top of that every connection's peer is checked
with ``SO_PEERCRED``: only root, the agent's own user and the portal's user
(``gate.portal_user``) get answers, and only root and the agent's user may report
lease events (``lease``, ``release``: dnsmasq's hook). Requests are single JSON lines (see
:mod:`node.gate.protocol`); a connection may send up to :data:`MAX_REQUESTS_PER_CONNECTION`
of them and is closed after :data:`IDLE_TIMEOUT_SECONDS` of silence.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from node.gate.protocol import (
    LEASE_OPERATIONS,
    MAX_REQUEST_BYTES,
    GateError,
    GateStatus,
    LeaseStatus,
    Request,
    encode,
    error_response,
    parse_request,
)

log = logging.getLogger("meshhub.gate")

#: Seconds a connection may stay silent before the gate closes it.
IDLE_TIMEOUT_SECONDS = 2.0
#: Requests answered on one connection before it is closed.
MAX_REQUESTS_PER_CONNECTION = 64

Handler = Callable[[Request], GateStatus | LeaseStatus]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class _Connection(socketserver.StreamRequestHandler):
    """One client connection: check who it is, then answer line by line."""

    timeout = IDLE_TIMEOUT_SECONDS
    server: _Server

    def handle(self) -> None:
        _pid, uid, _gid = peer_credentials(self.connection)
        if uid not in self.server.allowed_uids:
            log.warning("gate: refused a connection from uid %s", uid)
            self.wfile.write(encode(error_response(GateError(
                "forbidden", f"uid {uid} may not use the gate; only the portal's user may"))))
            return
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            try:
                line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
            except (TimeoutError, OSError):
                return
            if not line:
                return
            response = self.server.answer(line, uid)
            try:
                self.wfile.write(encode(response))
            except OSError:
                return
            if len(line) > MAX_REQUEST_BYTES and not line.endswith(b"\n"):
                return  # the rest of an over-long line is not worth reading


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins every connection's thread

    def __init__(self, path: str, handler: Handler, allowed_uids: set[int]) -> None:
        self.allowed_uids = allowed_uids
        self._handler = handler
        super().__init__(path, _Connection)

    def handle_request_now(self) -> None:
        """Accept the waiting connection and hand it to its thread (the socket is readable)."""
        self._handle_request_noblock()  # type: ignore[attr-defined]  # BaseServer's accept step

    def answer(self, line: bytes, uid: int) -> dict[str, Any]:
        try:
            request = parse_request(line.rstrip(b"\r\n"))
            if request.op in LEASE_OPERATIONS and uid not in (0, os.geteuid()):
                raise GateError("forbidden", f"uid {uid} may not report leases; only "
                                "dnsmasq's hook (root or the agent's user) may")
            return self._handler(request).to_dict()
        except GateError as exc:
            return error_response(exc)
        except Exception as exc:  # a bug must not take the socket down
            log.exception("gate: request failed")
            return error_response(GateError("gate-failed", f"{type(exc).__name__}: {exc}"))


class GateServer:
    """Serves :data:`Handler` answers on a Unix socket; :meth:`start`/:meth:`stop`.

    ``allowed_uids`` are the users (besides root and this process's own) who may
    connect; ``group`` is the group the socket file belongs to (the portal's).
    """

    def __init__(self, path: Path, handler: Handler, *, allowed_uids: set[int] | None = None,
                 group: int | None = None) -> None:
        self.path = Path(path)
        self._handler = handler
        self.allowed_uids = {0, os.geteuid(), *(allowed_uids or set())}
        self._group = group
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._wake_r = self._wake_w = -1  # wakes the loop to stop

    def start(self) -> None:
        """Create the socket (replacing a stale one) and serve in a thread."""
        if self._server is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()  # left by an agent that did not stop cleanly
        old_umask = os.umask(0o117)  # the socket is never world-accessible, not even briefly
        try:
            server = _Server(str(self.path), self._handler, self.allowed_uids)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        if self._group is not None:
            os.chown(self.path, -1, self._group)
        self._server = server
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, args=(server, self._wake_r),
                                        name="meshhub-gate")
        self._thread.start()
        log.info("gate: answering on %s", self.path)

    def stop(self) -> None:
        """Stop serving, wait for open connections, remove the socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        os.write(self._wake_w, b"x")  # the loop sleeps until a connection or this
        if self._thread is not None:
            self._thread.join(timeout=10)
        server.server_close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def serving(self) -> bool:
        """True while the socket is answered."""
        return self._thread is not None and self._thread.is_alive()

    @staticmethod
    def _serve(server: _Server, wake: int) -> None:
        """Answer connections until ``wake`` is readable; asleep in between (no poll)."""
        with selectors.DefaultSelector() as selector:
            selector.register(server, selectors.EVENT_READ)
            selector.register(wake, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if wake in ready:
                    return
                server.handle_request_now()

    def __enter__(self) -> GateServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
