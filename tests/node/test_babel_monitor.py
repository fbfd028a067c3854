"""Following babeld's monitor: a connection babeld drops is made again at once.

babeld closes a monitoring client that reads too slowly; on a busy machine (a 200-node lab
while every node posted) it did so ~10 times per agent. The agent's back-off then grew with
every drop, up to 30 s, while the node knew no neighbour to replicate with.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

from bench.waiting import wait_for
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


def _babeld_streaming(path: Path, lines: int, every: float) -> threading.Thread:
    """A babeld greeting one reader, then sending a changed neighbour line every ``every``
    seconds (its reach alternating, as when hellos are missed), ``lines`` in all."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def stream() -> None:
        conn, _ = server.accept()
        with conn, server:
            conn.sendall(GREETING)
            conn.recv(64)  # "monitor"
            for i in range(lines):
                conn.sendall(NEIGHBOUR.replace(b"reach ffff", b"reach fffe" if i % 2 else
                                               b"reach ffff").replace(b"add", b"change"))
                time.sleep(every)
            while conn.recv(64):  # babeld stays until the reader goes
                pass

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    return thread


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


def test_a_calm_babeld_is_read_in_batches_not_line_by_line(tmp_path: Path) -> None:
    """Each wake-up of the monitor costs 0.1-0.4 ms here whatever it reads; babeld repeats
    neighbours' lines at every hello. Once calm, its lines are read a batch at a time."""
    _babeld_streaming(tmp_path / "babeld.sock", lines=40, every=0.05)
    state, reads = _counting_state()
    monitor = BabelMonitor(str(tmp_path / "babeld.sock"), state, batch_seconds=0.5,
                           calm_seconds=0)
    monitor.start()
    try:
        wait_for("40 lines read", lambda: sum(reads) >= 40, timeout=10)
        assert len(reads) <= 8  # 2 s of lines in 0.5 s batches; line by line: 40
        assert state.snapshot().neighbours[0].reach == 0xFFFE  # the last line's
        started = time.monotonic()
    finally:
        monitor.stop()
    assert time.monotonic() - started < 1  # stop() does not wait for the batch


def test_a_busy_babeld_is_read_at_once(tmp_path: Path) -> None:
    """Until babeld has been calm for a while (a mesh forming), every line is read as it
    comes: babeld drops a reader whose socket stays full for 0.1 s."""
    _babeld_streaming(tmp_path / "babeld.sock", lines=20, every=0.05)
    state, reads = _counting_state()
    monitor = BabelMonitor(str(tmp_path / "babeld.sock"), state, batch_seconds=0.5,
                           calm_seconds=60)
    monitor.start()
    try:
        wait_for("20 lines read", lambda: sum(reads) >= 20, timeout=10)
        assert len(reads) >= 15
    finally:
        monitor.stop()
