"""Push-on-change tells every neighbour at once: one that does not answer (a node
starved of CPU, a link losing packets) no longer holds up the notification of the others,
and with it the post's way across the mesh (docs/scale.md)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.node.test_sync_support import nodes, notice

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n"
          b"Connection: close\r\n\r\n{\"pull\":false}")


@pytest.fixture
def silent() -> Iterator[str]:
    """A neighbour on 127.0.0.1 that takes the connection and never answers."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def listener() -> Iterator[tuple[str, list[float]]]:
    """A neighbour on 127.0.0.2 (sorting after the silent one) answering every notify at
    once; the times it was told."""
    told: list[float] = []
    sock = socket.create_server(("127.0.0.2", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(4096)
                told.append(time.monotonic())
                conn.sendall(ANSWER)

    thread = threading.Thread(target=serve, name="test-listener")
    thread.start()
    try:
        yield f"http://127.0.0.2:{sock.getsockname()[1]}", told
    finally:
        stop.set()
        thread.join(timeout=5)
        sock.close()


def test_a_silent_neighbour_does_not_delay_the_others(
        tmp_path: Path, silent: str, listener: tuple[str, list[float]]) -> None:
    url, told = listener
    with nodes(tmp_path, "A", serve=False) as made:
        node = made["A"]
        node.peer_list += [silent, url]
        assert node.service.peers() == [silent, url]  # one after another, it came second
        node.store.append("notice.post", notice(), actor="ada")
        gave_up: dict[str, float] = {}  # when the node gave up on a neighbour
        record_failure = node.service.backoff.failed

        def failed(url: str, reason: str, *, bad_data: bool) -> float:
            gave_up[url] = time.monotonic()
            return record_failure(url, reason, bad_data=bad_data)

        node.service.backoff.failed = failed  # type: ignore[method-assign]
        started = time.monotonic()
        node.service.announce()
        took = time.monotonic() - started
    assert len(told) == 1, "the listening neighbour was not told"
    # The witness, whatever the machine's load: the listener was told before the node gave
    # up on the silent one (told one after another, it would have waited for that first).
    assert told[0] < gave_up[silent], f"told {told[0] - gave_up[silent]:.2f} s after"
    assert took >= 1.5  # the silent one was given its whole 2 s
