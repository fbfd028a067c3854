"""A client for babeld's local monitoring interface that keeps a :class:`MeshState` live.

It connects to the ``local-path`` unix socket (or a ``host:port`` for ``local-port``),
sends ``monitor`` (babeld answers with a full dump, then one line per change) and
applies every line to the state. When babeld goes away (restart, crash) the state
is marked disconnected and emptied, and the client reconnects with exponential
back-off. Read-only: it never sends anything but ``dump``/``monitor``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path

from node.logs import OnceLogger
from node.mesh.babel_parse import parse_greeting
from node.mesh.state import MeshState

log = logging.getLogger("meshhub.mesh")

#: Back-off between reconnection attempts, in seconds (doubles up to the maximum).
RECONNECT_INITIAL = 0.5
RECONNECT_MAX = 30.0
#: A line longer than this is not babeld talking: drop the connection.
MAX_LINE = 4096
#: babeld writes each line with a write of its own, and repeats each neighbour's line at
#: every hello and its routes at every update, most of them unchanged (the middle of a
#: 3 x 3 grid: ~17 lines a second at the defaults, in bursts). A Python thread's wake-up
#: costs 0.1-1 ms here however little it reads (docs/scale.md), so the thread does not
#: wake for each line: the kernel gathers them into its read. A read returns once
#: READ_LOWAT bytes have come or BATCH_SECONDS have passed since it began (SO_RCVLOWAT,
#: SO_RCVTIMEO); a change is seen at most this much later (babeld itself takes several
#: hellos to notice a neighbour's going). After a read that found nothing in that time,
#: the next one waits without a limit and returns with babeld's first line.
#: babeld drops a reader whose socket stays full for 0.1 s (local.c, write_timeout: about
#: 280 lines fit). A thread asleep in recv() is not such a reader: the kernel copies each
#: line into its buffer as it comes and frees its room at once; and while babeld bursts
#: (a mesh forming, a partition healing, a large mesh's updates) a read returns at
#: READ_LOWAT bytes, so the thread never spends long away from recv().
BATCH_SECONDS = 2.0
#: While the mesh is settling — babeld reported a neighbour or a route appearing or going
#: (a new connection's dump, the mesh forming, a partition healing) in the last
#: SETTLING_SECONDS — a read waits at most SETTLING_BATCH_SECONDS: the agent's view of its
#: neighbours then follows babeld's within a tenth of a second, as the sync and roaming
#: floods need (a phone accepted just after the mesh formed was announced to no one when
#: the view lagged by a 2 s batch). A neighbour's line becomes usable a few hellos after
#: it first appears, hence the half minute.
SETTLING_SECONDS = 30.0
SETTLING_BATCH_SECONDS = 0.1
READ_BYTES = 65536
READ_LOWAT = 32768
#: The lines that say an object of babeld's appeared or went (not a change to one known).
_COMING_OR_GOING = (b"add ", b"flush ")


def connect(address: str, timeout: float = 3.0) -> socket.socket:
    """A socket to babeld's monitoring interface: a unix path, or ``host:port``."""
    if address.startswith("/") or not address.rpartition(":")[2].isdigit():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[str, int] = str(Path(address))
    else:
        host, _, port = address.rpartition(":")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        target = (host.strip("[]") or "127.0.0.1", int(port))
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


def read_until_ok(sock: socket.socket, limit: int = 4 << 20) -> list[str]:
    """Lines up to (not including) babeld's ``ok`` terminator."""
    data = b""
    while not (data.endswith(b"ok\n") and (len(data) == 3 or data.endswith(b"\nok\n"))):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("babeld closed the monitoring socket")
        data += chunk
        if len(data) > limit:
            raise ConnectionError("babeld's answer is larger than expected")
    return data.decode("utf-8", "replace").splitlines()[:-1]


def dump(address: str, timeout: float = 3.0) -> tuple[dict[str, str], list[str]]:
    """One ``dump``: (greeting facts, event lines). For ``meshhub lab status`` and tests."""
    with connect(address, timeout) as sock:
        greeting = parse_greeting(read_until_ok(sock))
        sock.sendall(b"dump\n")
        return greeting, read_until_ok(sock)


class _Repeats:
    """babeld repeats a neighbour's line at every hello and its routes at every update,
    unchanged: remember each object's last line, so that only a change is parsed."""

    def __init__(self, limit: int = 65536) -> None:
        self._last: dict[bytes, bytes] = {}
        self._limit = limit

    def new(self, line: bytes) -> bool:
        """Whether ``line`` differs from the last one about the same object."""
        parts = line.split(b" ", 3)
        if len(parts) < 4 or parts[0] not in (b"add", b"change"):
            if len(parts) >= 3 and parts[0] == b"flush":
                self._last.pop(parts[1] + b" " + parts[2], None)
            return True
        key = parts[1] + b" " + parts[2]  # kind and babeld's id of the object
        if self._last.get(key) == parts[3]:
            return False
        if len(self._last) >= self._limit:
            self._last.clear()
        self._last[key] = parts[3]
        return True


class _BatchedReader:
    """Reads of a socket that return a batch of lines, not each line babeld writes.

    Each :meth:`read` returns when :data:`READ_LOWAT` bytes have come or ``batch``
    seconds (``settling_batch`` while the mesh settles: :meth:`gather`) have passed with
    some; one that found nothing in that time returns ``None`` and makes the next wait
    until the first byte (a quiet babeld costs no wake-ups). ``batch`` of 0 reads
    whatever has come, as it comes.
    """

    def __init__(self, sock: socket.socket, batch: float, settling_batch: float) -> None:
        self._sock = sock
        self._batch = batch
        self._mode = "first"  # a new socket's options: return with the first byte
        self._timevals = {"batch": _timeval(batch),
                          "settling": _timeval(min(batch, settling_batch)),
                          "first": struct.pack("@ll", 0, 0)}

    def gather(self, settling: bool) -> None:
        """Make the next read wait for a batch: the short one while the mesh is settling.
        (After a read that found nothing, the next waits for the first byte instead.)"""
        if self._batch > 0:
            self._set("settling" if settling else "batch")

    def read(self) -> bytes | None:
        """babeld's next bytes (b"" when it closed), or None after a batch of silence."""
        try:
            return self._sock.recv(READ_BYTES)
        except BlockingIOError:  # SO_RCVTIMEO expired with nothing read
            self._set("first")
            return None

    def _set(self, mode: str) -> None:
        if mode == self._mode:
            return
        self._mode = mode
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT,
                              1 if mode == "first" else READ_LOWAT)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._timevals[mode])


def _timeval(seconds: float) -> bytes:
    """``seconds`` as the kernel's ``struct timeval`` (at least a microsecond: a zero
    timeval is no limit)."""
    microseconds = max(1, round(seconds * 1_000_000))
    return struct.pack("@ll", *divmod(microseconds, 1_000_000))


class BabelMonitor:
    """Follows babeld's ``monitor`` stream in a thread, feeding :attr:`state`."""

    def __init__(self, address: str, state: MeshState, *,
                 on_change: Callable[[], None] | None = None,
                 reconnect_initial: float = RECONNECT_INITIAL,
                 reconnect_max: float = RECONNECT_MAX,
                 batch_seconds: float = BATCH_SECONDS,
                 settling_seconds: float = SETTLING_SECONDS) -> None:
        self.address = address
        self._batch_seconds = batch_seconds
        self._settling_seconds = settling_seconds
        self.state = state
        self.on_change = on_change
        self.greeting: dict[str, str] = {}
        self._initial = reconnect_initial
        self._max = reconnect_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._problems = OnceLogger(log)
        self._following = False  #: the current connection got babeld's greeting

    def start(self) -> None:
        """Start following babeld (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="meshhub-babel-monitor")
            self._thread.start()

    def stop(self) -> None:
        """Stop following and wait for the thread (idempotent)."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        delay = self._initial
        failures = 0
        while not self._stop.is_set():
            self._following = False
            try:
                self._follow()
            except OSError as exc:
                if self._following:
                    # It worked, then ended: babeld restarted, or it dropped this reader for
                    # being slow (it does on a busy machine: 193 of 200 lab nodes, ~10 times
                    # each, while all posted at once). Back at once, not after a back-off
                    # that grew with every drop (up to 30 s): until then this node knows no
                    # neighbour to replicate with.
                    failures, delay = 0, self._initial
                    self._problems.warning("dropped", "babeld monitoring %s: %s; reconnecting",
                                           self.address, exc)
                failures += 1
                if failures >= 3:  # babeld needs a moment after (re)starting: not a problem yet
                    self._problems.warning("connect", "babeld monitoring %s: %s",
                                           self.address, exc)
            else:
                failures = 0
            if self.state.snapshot().connected:
                self.state.reset(connected=False)
                self._changed()
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self._max)

    def _follow(self) -> None:
        sock = connect(self.address)
        self._sock = sock
        try:
            self.greeting = parse_greeting(read_until_ok(sock))
            sock.sendall(b"monitor\n")
            self._problems.resolved("connect")
            self._following = True
            log.info("following babeld %s at %s", self.greeting.get("version", "?"),
                     self.address)
            self.state.reset(connected=True)
            sock.settimeout(None)  # asleep until babeld speaks; stop() shuts the socket
            if self._stop.is_set():  # stop() ran before self._sock was set
                return
            pending = b""
            seen = _Repeats()
            reader = _BatchedReader(sock, self._batch_seconds, SETTLING_BATCH_SECONDS)
            settled = 0.0  # until when the mesh is settling (monotonic)
            while not self._stop.is_set():
                chunk = reader.read()
                if chunk is None:  # nothing for a whole batch
                    continue
                if not chunk:
                    raise ConnectionError("babeld closed the monitoring socket")
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > MAX_LINE:
                    raise ConnectionError("babeld sent an over-long line")
                fresh = [line for line in lines if seen.new(line)]
                now = time.monotonic()
                if any(line.startswith(_COMING_OR_GOING) for line in fresh):
                    settled = now + self._settling_seconds
                reader.gather(settling=now < settled)
                if fresh and self.state.feed([line.decode("utf-8", "replace")
                                              for line in fresh]):
                    self._changed()
        finally:
            self._sock = None
            sock.close()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a listener's bug must not stop the monitor
                log.exception("mesh change listener failed")
