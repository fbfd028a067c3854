"""The one agent client: a mirror's manifest is read with the same bounds as a peer's answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from node.agent_client import AgentError
from node.update.manifest import MAX_MANIFEST_BYTES
from node.update.mirror import MirrorClient

#: What the fake mirror answers to GET /update/v1/manifest: (announced length, body).
ANSWERS: dict[str, tuple[str, bytes]] = {
    "announces too much": (str(MAX_MANIFEST_BYTES + 1), b"{}"),
    "sends too much": ("", b"x" * (MAX_MANIFEST_BYTES + 10)),
    "sends less than announced": ("100", b"{}"),
    "announces garbage": ("12abc", b"{}"),
}


class _Mirror(BaseHTTPRequestHandler):
    answer: tuple[str, bytes] = ("", b"")

    def do_GET(self) -> None:
        length, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(200)
        if length:
            self.send_header("Content-Length", length)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def mirror() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Mirror)
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, name="fake-mirror")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_a_mirror_manifest_out_of_bounds_is_refused_as_bad_data(
        mirror: ThreadingHTTPServer, case: str) -> None:
    mirror.answer = ANSWERS[case]  # type: ignore[attr-defined]
    client = MirrorClient(f"http://127.0.0.1:{mirror.server_address[1]}", timeout=5)
    with pytest.raises(AgentError) as info:
        client.manifest()
    assert info.value.bad_data, str(info.value)
    assert "GET /manifest" in str(info.value)
    # Counted on the socket like a peer's answers: the request went out, the answer came in.
    assert client.counter.sent > 0 and client.counter.received > 0


def test_a_mirror_manifest_within_bounds_is_returned(mirror: ThreadingHTTPServer) -> None:
    mirror.answer = ("2", b"{}")  # type: ignore[attr-defined]
    client = MirrorClient(f"http://127.0.0.1:{mirror.server_address[1]}", timeout=5)
    assert client.manifest() == b"{}"


def test_a_mirror_that_is_not_there_is_not_bad_data() -> None:
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        client = MirrorClient(f"http://127.0.0.1:{held.getsockname()[1]}", timeout=5)
        with pytest.raises(AgentError) as info:
            client.manifest()
    assert not info.value.bad_data
