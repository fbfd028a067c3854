"""The gate's Unix socket for real: the portal's client talks to the server."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from node.gate import GateClient, GateError, GateStatus, GateUnavailable, NoGate
from node.gate.protocol import Request
from node.gate.server import GateServer
from tests.conftest import require_root


def handler(request: Request) -> GateStatus:
    if request.ip == "10.64.7.66":
        raise GateError("unknown-device", "not seen")
    return GateStatus(request.ip, "02:00:00:00:00:50", request.op == "allow", 60, "portal")


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    server = GateServer(tmp_path / "run" / "gate.sock", handler)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_client_and_server_speak_the_protocol(served: GateServer) -> None:
    client = GateClient(served.path, timeout=1)
    assert client.allow("10.64.7.50") == GateStatus("10.64.7.50", "02:00:00:00:00:50", True,
                                                    60, "portal")
    assert client.status("10.64.7.50").allowed is False
    with pytest.raises(GateError) as caught:
        client.allow("10.64.7.66")
    assert caught.value.code == "unknown-device"
    assert stat.S_IMODE(served.path.stat().st_mode) == 0o660


def test_a_slow_answer_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A gate that takes over a second (a busy slow node) still answers, and the portal's
    log says how long it took, before the timeout makes phones look held back."""
    import time

    def slow(request: Request) -> GateStatus:
        time.sleep(1.2)  # the slow answer itself
        return handler(request)

    server = GateServer(tmp_path / "gate.sock", slow)
    server.start()
    try:
        with caplog.at_level("WARNING", logger="node.gate.client"):
            assert GateClient(server.path).status("10.64.7.50").ip == "10.64.7.50"
        assert "the gate took 1." in caplog.text and "'status'" in caplog.text
    finally:
        server.stop()


def test_bad_lines_get_an_error_and_the_server_keeps_serving(served: GateServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(served.path))
        sock.sendall(b'{"op":"allow","ip":"10.64.7.50","extra":true}\n'
                     b'{"op":"status","ip":"10.64.7.50"}\n')
        sock.shutdown(socket.SHUT_WR)
        lines = sock.makefile("rb").read().splitlines()
    assert b'"error":"bad-request"' in lines[0]
    assert b'"ok":true' in lines[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:  # an endless line
        sock.settimeout(2)
        sock.connect(str(served.path))
        sock.sendall(b"x" * 10_000)
        assert b"bad-request" in sock.recv(4096)
    assert GateClient(served.path).status("10.64.7.50").ip == "10.64.7.50"


def test_missing_socket_means_no_gate_and_a_dead_one_unavailable(tmp_path: Path) -> None:
    with pytest.raises(NoGate):
        GateClient(tmp_path / "absent.sock").status("10.64.7.50")
    dead = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(dead))  # bound, never listening: connection refused
    with pytest.raises(GateUnavailable) as caught:
        GateClient(dead).status("10.64.7.50")
    assert not isinstance(caught.value, NoGate)


def test_stop_removes_the_socket(tmp_path: Path) -> None:
    server = GateServer(tmp_path / "gate.sock", handler)
    server.start()
    server.stop()
    server.stop()
    assert not (tmp_path / "gate.sock").exists()


def test_another_user_is_refused_by_peer_credentials() -> None:
    require_root()
    # pytest's tmp_path is private to root; nobody needs a folder it can reach.
    folder = Path(tempfile.mkdtemp(prefix="meshhub-gate-"))
    os.chmod(folder, 0o755)  # noqa: S103 - a throw-away test folder
    server = GateServer(folder / "gate.sock", handler)
    server.start()
    try:
        os.chmod(folder / "gate.sock", 0o666)  # noqa: S103 - even open to all ...
        # The gate answers before reading anything (a send could race its close).
        code = ("import socket; s = socket.socket(socket.AF_UNIX); "
                f"s.connect({str(folder / 'gate.sock')!r}); "
                "print(s.recv(4096).decode())")
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              sys.executable, "-I", "-c", code], capture_output=True, text=True,
                             timeout=20, check=True).stdout
        assert '"error":"forbidden"' in out  # ... SO_PEERCRED keeps nobody out
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
