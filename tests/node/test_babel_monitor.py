"""Following babeld's monitor: a connection babeld drops is made again at once; babeld's
lines are read in batches, without babeld dropping the reader for it.

babeld closes a monitoring client that reads too slowly; on a busy machine (a 200-node lab
while every node posted) it did so ~10 times per agent. The agent's back-off then grew with
every drop, up to 30 s, while the node knew no neighbour to replicate with.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.waiting import wait_for
from node.mesh import babel_monitor
from node.mesh.babel_monitor import BabelMonitor
from node.mesh.state import MeshState

GREETING = b"BABEL 1.0\nversion babeld-1.12.1\nhost n1\nmy-id 02:00:00:00:00:01\nok\n"
NEIGHBOUR = b"add neighbour 1 address fe80::2 if m-n2 reach ffff rxcost 96 txcost 96 cost 96\n"


def test_a_dropped_monitor_reconnects_at_once_every_time(tmp_path: Path) -> None:
    path = tmp_path / "babeld.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    connections: list[float] = []
    eight = threading.Event()

    def babeld_dropping_its_reader() -> None:  # greets, streams a line, then hangs up
        while len(connections) < 8:
            conn, _ = server.accept()
            with conn:
                conn.sendall(GREETING)
                conn.recv(64)  # "monitor"
                conn.sendall(NEIGHBOUR)
            connections.append(time.monotonic())
        eight.set()

    fake = threading.Thread(target=babeld_dropping_its_reader, daemon=True)
    fake.start()
    # With a back-off doubling from 0.1 s, eight connections would take 0.1 + 0.2 + ... +
    # 6.4 s = 12.7 s; reconnecting at once after each drop, under a second.
    monitor = BabelMonitor(str(path), MeshState(), reconnect_initial=0.1, reconnect_max=30)
    monitor.start()
    try:
        assert eight.wait(5), f"only {len(connections)} connections in 5 s"
    finally:
        monitor.stop()
        server.close()
    assert connections[-1] - connections[0] < 3


def _babeld_serving(path: Path, talk: Callable[[socket.socket], None]) -> threading.Thread:
    """A babeld on ``path`` that greets one reader, takes its ``monitor``, lets ``talk``
    write to it, then stays until the reader goes (as babeld does)."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.sendall(GREETING)
            conn.recv(64)  # "monitor"
            talk(conn)
            conn.setblocking(True)
            with contextlib.suppress(OSError):  # a reader gone with lines unread: reset
                while conn.recv(64):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def _babeld_saying(path: Path, script: list[tuple[float, bytes]]) -> threading.Thread:
    """A babeld greeting one reader, then writing each line of ``script`` after its pause."""
    def say(conn: socket.socket) -> None:
        for pause, line in script:
            time.sleep(pause)
            conn.sendall(line)

    return _babeld_serving(path, say)


def _babeld_streaming(path: Path, lines: int, every: float) -> threading.Thread:
    """A babeld greeting one reader, then sending a changed neighbour line every ``every``
    seconds (its reach alternating, as when hellos are missed), ``lines`` in all."""
    changed = NEIGHBOUR.replace(b"add", b"change")
    return _babeld_saying(path, [(every if i else 0.0, changed.replace(
        b"reach ffff", b"reach fffe" if i % 2 else b"reach ffff")) for i in range(lines)])


def _counting_state() -> tuple[MeshState, list[int]]:
    state = MeshState()
    reads: list[int] = []
    feed = state.feed

    def counted(lines: Any) -> int:
        lines = list(lines)
        reads.append(len(lines))
        return feed(lines)

    state.feed = counted  # type: ignore[method-assign]
    return state, reads


class _CountedSocket:
    """A socket that counts the reads the monitor makes of it (each one a turn of its loop)
    and the lines they bring."""

    def __init__(self, sock: socket.socket, reads: list[int]) -> None:
        self._sock = sock
        self._reads = reads

    def recv(self, size: int) -> bytes:
        data = self._sock.recv(size)
        self._reads.append(data.count(b"\n"))
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Lines brought by each read of babeld's socket once the monitor follows it."""
    reads: list[int] = []
    real = babel_monitor.connect

    def connect(address: str, timeout: float = 3.0) -> Any:
        return _CountedSocket(real(address, timeout), reads)

    monkeypatch.setattr(babel_monitor, "connect", connect)
    return reads


def test_babeld_is_read_in_batches_not_line_by_line(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each wake-up of the monitor costs 0.1-1 ms here whatever it reads; babeld writes each
    line on its own and repeats neighbours' lines at every hello. From the first line on,
    not only once babeld has been calm for a minute, its lines are read a batch at a time."""
    _babeld_streaming(tmp_path / "babeld.sock", lines=40, every=0.05)
    state, fed = _counting_state()
    reads = counting_reads(monkeypatch)
    monitor = BabelMonitor(str(tmp_path / "babeld.sock"), state, batch_seconds=0.5)
    monitor.start()
    try:
        wait_for("40 lines read", lambda: sum(fed) >= 40, timeout=10)
        # 2 s of lines in 0.5 s batches, the greeting's read and the first line's; line by
        # line: 40 reads.
        assert len(reads) <= 8, reads
        assert state.snapshot().neighbours[0].reach == 0xFFFE  # the last line's
        started = time.monotonic()
    finally:
        monitor.stop()
    assert time.monotonic() - started < 1  # stop() does not wait for the batch


def test_a_quiet_babeld_costs_no_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that found nothing in a batch's time is followed by one that waits for babeld:
    a node with no neighbours (babeld silent) does not wake every batch."""
    _babeld_streaming(tmp_path / "babeld.sock", lines=2, every=0.01)
    state, fed = _counting_state()
    reads = counting_reads(monkeypatch)
    monitor = BabelMonitor(str(tmp_path / "babeld.sock"), state, batch_seconds=0.2)
    monitor.start()
    try:
        wait_for("2 lines read", lambda: sum(fed) >= 2, timeout=10)
        time.sleep(2)  # ten batches' time, babeld silent
        assert len(reads) <= 4, reads  # first line, the rest, one read that found nothing
    finally:
        monitor.stop()


def _babeld_bursting(path: Path, lines: int, after: float, reader_dropped: threading.Event,
                     ) -> threading.Thread:
    """A babeld greeting one reader, sending it one line, then after ``after`` seconds a
    burst of ``lines`` changed lines, each with a write of its own as babeld does: a write
    that finds the socket full waits up to 0.1 s for room, then babeld drops the reader
    (local.c, ``write_timeout`` and its callers' ``shutdown``)."""
    def write_timeout(conn: socket.socket, line: bytes) -> bool:
        try:
            return conn.send(line) == len(line)
        except BlockingIOError:
            if not select.select([], [conn], [], 0.1)[1]:
                return False
            try:
                return conn.send(line) == len(line)
            except BlockingIOError:
                return False

    def burst(conn: socket.socket) -> None:
        conn.sendall(NEIGHBOUR)
        time.sleep(after)
        conn.setblocking(False)
        for i in range(lines):
            line = NEIGHBOUR.replace(b"add neighbour 1 ", f"add neighbour {i + 2} ".encode())
            if not write_timeout(conn, line):
                reader_dropped.set()
                conn.shutdown(socket.SHUT_WR)
                break

    return _babeld_serving(path, burst)


def test_the_fake_babeld_drops_a_reader_that_sleeps(tmp_path: Path) -> None:
    """The next test's babeld drops a reader that reads nothing for a second, as babeld does:
    2,000 of its lines do not fit in the socket."""
    dropped = threading.Event()
    _babeld_bursting(tmp_path / "babeld.sock", lines=2000, after=0, reader_dropped=dropped)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sleeper:
        sleeper.connect(str(tmp_path / "babeld.sock"))
        sleeper.sendall(b"monitor\n")
        assert dropped.wait(5)


def test_a_burst_is_read_while_it_comes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader waiting for a batch (2 s here) does not sleep through a burst of babeld's
    lines (a mesh forming, a partition healing): 2,000 lines come at once, 280 fit in the
    socket, and babeld waits only 0.1 s for room; none is lost and the reader stays."""
    dropped = threading.Event()
    _babeld_bursting(tmp_path / "babeld.sock", lines=2000, after=0.5, reader_dropped=dropped)
    state = MeshState()
    reads = counting_reads(monkeypatch)
    monitor = BabelMonitor(str(tmp_path / "babeld.sock"), state, batch_seconds=2)
    monitor.start()
    try:
        wait_for("2,001 neighbours", lambda: len(state.snapshot().neighbours) >= 2001,
                 timeout=10)
        assert not dropped.is_set()
        # In batches of READ_LOWAT bytes or more (32 KB: ~390 of these lines), not line by line
        assert len(reads) <= 2001 / 100, reads
    finally:
        monitor.stop()


def test_while_the_mesh_settles_the_view_follows_babeld_closely(tmp_path: Path) -> None:
    """A neighbour that appeared becomes usable a few hellos later (its cost falls from
    infinity): that change is seen within a fraction of a second, not after a whole batch
    (5 s here), so a flood just after the mesh formed reaches it. Once nothing has come or
    gone for the settling time (1 s here), changes wait for the batch again."""
    unusable = NEIGHBOUR.replace(b"cost 96\n", b"cost 65535\n").replace(b"txcost 96",
                                                                        b"txcost 65535")
    usable = NEIGHBOUR.replace(b"add", b"change")
    later = usable.replace(b"rxcost 96", b"rxcost 100")
    repeats = [(0.2, usable)] * 15  # babeld repeats the line at each hello: never silent
    _babeld_saying(tmp_path / "babeld.sock",
                   [(0.0, unusable), (0.5, usable), *repeats, (0.2, later)])
    state = MeshState()
    monitor = BabelMonitor(str(tmp_path / "babeld.sock"), state, batch_seconds=5,
                           settling_seconds=1)
    started = time.monotonic()
    monitor.start()
    try:
        wait_for("the neighbour usable", lambda: state.neighbour_addresses() is not None
                 and any(n.alive for n in state.snapshot().neighbours), timeout=10)
        assert time.monotonic() - started < 1.5  # written at 0.5 s; a batch would be 5 s
        wait_for("the later change", lambda: state.snapshot().neighbours[0].rxcost == 100,
                 timeout=15)
        # Written at 3.7 s, when nothing had come or gone for 2.7 s: calm, so it was read
        # with the batch that began after settling ended (about 1 + 5 s), not at once.
        assert time.monotonic() - started > 5
    finally:
        monitor.stop()
