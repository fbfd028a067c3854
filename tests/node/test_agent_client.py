"""The one agent client: a mirror's manifest is read with the same bounds as a peer's answers;
what goes on the wire and how every kind of answer is read (h11 over a socket of its own)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from node.agent_auth import HEADER as AUTH_HEADER
from node.agent_auth import RequestAuth
from node.agent_client import AgentClient, AgentError, NodeKeys
from node.identity import Identity
from node.runtime import agent_environment
from node.update.manifest import MAX_MANIFEST_BYTES
from node.update.mirror import MirrorClient

ROOT = Path(__file__).resolve().parents[2]

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


# --- the client on the wire (h11 over a socket of its own) --------------------------------

class _Scripted:
    """A TCP server on 127.0.0.1 that reads each request whole, keeps its bytes, and
    answers with the bytes it is given (then closes, or holds the connection open
    until the test ends when ``answer`` is None: an agent that never answers)."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.sent: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-agent")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        self._listener.settimeout(0.05)
        while not self._done.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                self.requests.append(_read_request(conn))
                if self.answer is None:
                    self._done.wait(30)
                    continue
                conn.sendall(self.answer)
                self.sent.append(self.answer)

    def close(self) -> None:
        self._done.set()
        self._thread.join()
        self._listener.close()


def _read_request(conn: socket.socket) -> bytes:
    """One request's bytes: its head, and the body its Content-Length announces."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head = data.split(b"\r\n\r\n", 1)[0]
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(data) < len(head) + 4 + length:
        data += conn.recv(65536)
    return data


@contextmanager
def scripted(answer: bytes | None) -> Iterator[_Scripted]:
    server = _Scripted(answer)
    try:
        yield server
    finally:
        server.close()


class _Probe(AgentClient):
    prefix = "/probe/v1"
    user_agent = "meshhub-probe/1"


def _exchange(client: AgentClient, method: str = "GET", body: bytes | None = None,
              max_bytes: int = 1000) -> tuple[int, bytes, dict[str, str | None]]:
    """``method /probe/v1/thing``: the status, the body and a few of the headers."""
    with client.exchange(method, "/thing", body, {"Content-Type": "text/plain"}) as response:
        data = client.read(response, f"{method} /thing", max_bytes)
        headers = {name: response.getheader(name)
                   for name in ("content-type", "X-Twice", "X-Absent")}
        return response.status, data, headers


def test_the_request_and_its_answer_on_the_wire_counted_to_the_byte() -> None:
    answer = (b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
              b"X-Twice: a\r\nx-twice: b\r\nContent-Length: 12\r\n\r\n{\"ok\": true}")
    with scripted(answer) as server:
        client = _Probe(server.url, timeout=5)
        status, data, headers = _exchange(client, "POST", b"hello")
    assert (status, data) == (202, b'{"ok": true}')
    assert headers == {"content-type": "application/json", "X-Twice": "a, b", "X-Absent": None}
    request = server.requests[0]
    head, body = request.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /probe/v1/thing HTTP/1.1"
    assert {b"host: 127.0.0.1:%d" % server.port, b"user-agent: meshhub-probe/1",
            b"content-type: text/plain", b"content-length: 5"} <= {
        line.lower() for line in lines[1:]}
    assert body == b"hello"
    assert (client.counter.sent, client.counter.received) == (len(request), len(answer))


def test_a_get_sends_no_body_and_an_empty_post_says_so() -> None:
    answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
    with scripted(answer) as server:
        client = _Probe(server.url, timeout=5)
        assert _exchange(client, "GET")[:2] == (404, b"no")
        assert _exchange(client, "POST", b"")[:2] == (404, b"no")
    get, post = (request.lower() for request in server.requests)
    assert b"content-length" not in get and get.endswith(b"\r\n\r\n")
    assert b"\r\ncontent-length: 0\r\n" in post


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nwikipedia",  # read until the agent closes
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nwikipedia",
], ids=["chunked", "until closed", "after 100 Continue"])
def test_every_framing_of_a_body_is_read_whole(answer: bytes) -> None:
    with scripted(answer) as server:
        assert _exchange(_Probe(server.url, timeout=5))[:2] == (200, b"wikipedia")


@pytest.mark.parametrize(("answer", "reason", "bad_data"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", "truncated response (5 of 100",
     True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nwiki", "truncated response",
     True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n", "more than the 1000 allowed", True),
    (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 1001, "larger than 1000 bytes", True),
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "RemoteProtocolError", True),  # not HTTP at all
    (b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n{}", "RemoteProtocolError", True),
    (b"", "ConnectionResetError: closed the connection without an answer", False),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "ConnectionResetError", False),  # closed mid-head
], ids=["cut short", "chunks cut short", "announces too much", "sends too much", "not HTTP",
        "garbage length", "closed at once", "closed mid-head"])
def test_a_bad_answer_is_named_and_whose_fault_it_is(answer: bytes, reason: str,
                                                     bad_data: bool) -> None:
    with scripted(answer) as server, pytest.raises(AgentError) as info:
        _exchange(_Probe(server.url, timeout=5))
    assert reason in str(info.value) and "GET /thing" in str(info.value)
    assert info.value.bad_data is bad_data


def test_an_agent_that_never_answers_times_out_and_the_rounds_deadline_is_named() -> None:
    with scripted(None) as server:
        started = time.monotonic()
        with pytest.raises(AgentError) as info:
            _exchange(_Probe(server.url, timeout=0.3))
        assert "TimeoutError" in str(info.value) and not info.value.bad_data
        assert 0.3 <= time.monotonic() - started < 3
        with pytest.raises(AgentError) as info:  # the round ends before the timeout would
            _exchange(_Probe(server.url, timeout=30, deadline=time.monotonic() + 0.3))
        assert "not answered within the pull's deadline" in str(info.value)
        assert time.monotonic() - started < 5


def test_a_signed_request_carries_its_signature_and_an_unsigned_answer_is_refused() -> None:
    me, them = Identity.generate(), Identity.generate()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    with scripted(answer) as server:
        keys = NodeKeys(registered_at=lambda _host: them.public_key)
        client = _Probe(server.url, timeout=5, identity=me, keys=keys)
        with pytest.raises(AgentError) as info:
            _exchange(client, "POST", b"hello")
    assert info.value.bad_data, "an answer not signed by the node asked is refused"
    head, body = server.requests[0].split(b"\r\n\r\n")
    value = next(line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                 if line.lower().startswith(AUTH_HEADER.lower().encode() + b":"))
    # The node asked checks it as the agent's guard does: for it, over this request.
    auth = RequestAuth(lambda key: key == me.public_key, them, is_local=lambda _a: False)
    environ = {"HTTP_MESHHUB_AUTH": value, "REQUEST_METHOD": "POST",
               "PATH_INFO": "/probe/v1/thing", "REMOTE_ADDR": "127.0.0.1"}
    checked = auth.verify(environ, body)
    assert checked is not None and checked[0] == me.public_key


def test_an_idle_agent_does_without_http_client_and_email(tmp_path: Path) -> None:
    """The agent's client speaks HTTP through h11: ``http.client`` and ``email`` (its
    header parser, 0.3 MiB of an agent's memory for good) stay out of a running agent
    that has answered and made a sync request (docs/scale.md, session 11)."""
    done = subprocess.run([sys.executable, "-c", IDLE_AGENT, str(tmp_path)],
                          env=agent_environment(), capture_output=True, text=True,
                          timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["answered"].startswith("Digest("), "the sync request did not get through"
    assert answer["loaded"] == []


IDLE_AGENT = """
import json, sys, time
from node.runtime import agent_process
agent_process()
from pathlib import Path
from node.agent import Agent
from node.config import load_config
from node.sync.client import PeerClient
folder = Path(sys.argv[1])
(folder / "node.toml").write_text(f'[node]\\nname = "library-roof"\\n'
                                  f'data_dir = "{folder / "data"}"\\n[agent]\\nport = 9180\\n')
agent = Agent(load_config(folder / "node.toml"), port=0)
agent.start()
try:
    answered = repr(PeerClient(agent.url, timeout=10).digest())
    time.sleep(1)  # the agent's own first rounds
finally:
    agent.stop()
print(json.dumps({"answered": answered, "loaded": sorted(
    name for name in ("http.client", "email", "email.parser") if name in sys.modules)}))
"""
