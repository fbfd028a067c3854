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
