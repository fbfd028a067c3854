"""A waitress server run in a background thread that owns every file descriptor it uses.

The agent's API, the portal in tests and benchmarks, and the tests' own
servers run waitress in a thread. Stopping one used to close its sockets and
its wake-up pipe from the *stopping* thread while the loop thread still polled
them and worker threads still woke the loop through the pipe. A descriptor
closed under another thread is a hazard: its number is reused by the next
``open()`` (a SQLite database, a log), and a late ``write()`` or ``close()`` on
the old number then lands on the new file ("disk I/O error", or a corrupted
database). So here the loop thread alone closes the server's descriptors, in
an order that leaves nobody using them afterwards:

1. :meth:`stop` sets a flag and wakes the loop (a write to the wake-up pipe;
   if that fails, a connection to the listening socket);
2. the loop thread closes every connection (which releases workers waiting to
   send), then shuts the worker threads down (after which nothing pulls the
   wake-up pipe), then closes the listening socket and the pipe, each once.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

log = logging.getLogger("meshhub.waitress")

#: Longest a poll of the loop waits while a connection is open: waitress closes idle and
#: overdue connections (node.agent_server's request deadline) only when its loop turns.
#: With none open the loop waits without a limit: a new connection, a worker's answer or
#: stop() wakes it (an idle agent's API thread woke every 5 s for nothing before).
POLL_SECONDS = 0.5
#: How long :meth:`WaitressThread.stop` waits for the thread by default.
STOP_TIMEOUT_SECONDS = 15.0


class WaitressThread:
    """Serve a bound waitress ``server`` in a thread named ``name`` until :meth:`stop`.

    ``server`` comes from ``waitress.server.create_server`` (bound, not yet
    serving). Nothing else may run or close it.
    """

    def __init__(self, server: Any, name: str, *, daemon: bool = False) -> None:
        self.server = server
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # held while waking the loop and while closing
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=daemon)

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self.server.effective_port)

    def start(self) -> None:
        """Start serving in the thread."""
        self._thread.start()

    def is_alive(self) -> bool:
        """True while the loop thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Ask the loop to stop and close everything, and wait for the thread (idempotent)."""
        if self._stopping.is_set():
            self._thread.join(timeout)
            return
        self._stopping.set()
        if not self._thread.is_alive() and self._thread.ident is None:
            self._close()  # never started: no loop runs, so this thread may close it
            return
        with self._lock:
            if not self._closed:
                try:
                    self.server.pull_trigger()
                except OSError as exc:
                    log.warning("cannot wake the server loop (%s); connecting to it", exc)
                    self._knock()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s: still running %.0f s after stop", self._thread.name, timeout)

    def _run(self) -> None:
        from waitress import wasyncore

        server = self.server
        try:
            while not self._stopping.is_set() and server._map:
                # Connections open: wake often enough for waitress's timeouts to close
                # idle ones; none: sleep until one arrives or stop wakes us (idle costs 0).
                timeout = POLL_SECONDS if server.active_channels else None
                # None: poll()/select() without a timeout (waitress's stubs say float only)
                wasyncore.loop(timeout=timeout, map=server._map,  # type: ignore[arg-type]
                               use_poll=server.adj.asyncore_use_poll, count=1)
        finally:
            self._close()

    def _knock(self) -> None:
        """Wake a loop waiting without a limit by connecting to its listening socket."""
        try:
            host, port = self.server.socket.getsockname()[:2]
            socket.create_connection((host, port), timeout=1).close()
        except (OSError, ValueError, TypeError) as exc:
            log.warning("cannot wake the server loop by connecting either (%s)", exc)

    def _close(self) -> None:
        """Connections, then workers, then the listener and the wake-up pipe: each once."""
        server = self.server
        for channel in list(server.active_channels.values()):
            channel.handle_close()  # also wakes a worker waiting to send
        server.task_dispatcher.shutdown()
        with self._lock:
            if not self._closed:
                self._closed = True
                server.close()  # the wake-up pipe (both ends) and the listening socket
