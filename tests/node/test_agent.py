"""The agent in-process (free port, no leaked threads) and as `meshhub agent` with SIGTERM."""

from __future__ import annotations

import contextlib
import errno
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from node.agent import Agent
from node.cli import cli
from node.config import load_config
from node.health import HealthRing
from node.runtime import agent_environment
from tests.node.test_health_collector import fake_sources

ROOT = Path(__file__).resolve().parents[2]


def listening_socket() -> socket.socket:
    """A socket bound to a port of its own on 127.0.0.1 and listening: handed to an agent."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock


@contextlib.contextmanager
def refused_address() -> Iterator[str]:
    """``127.0.0.1:PORT`` where nothing listens, held (bound, not listening) while in use."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def config(tmp_path: Path, port: int, peers: str = "[]") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(f'[node]\nname = "library-roof"\ndata_dir = "{tmp_path / "data"}"\n'
                    f"[health]\ninterval_seconds = 5\n"
                    f'[agent]\nport = {port}\npeers = {peers}\n')
    return path


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    cfg = load_config(config(tmp_path, 9180))
    running = Agent(cfg, sources=fake_sources(clock=time.time), interval_seconds=0.05, port=0)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http:// only)
        return response.status, response.read()


def test_agent_serves_health_and_metrics(agent: Agent) -> None:
    status, body = fetch(agent.url + "/api/health")
    assert status == 200 and json.loads(body)["node"]["name"] == "library-roof"
    first = json.loads(body)["time"]
    deadline = time.monotonic() + 20  # the sampler runs every 0.05 s; a loaded host is slow
    while json.loads(fetch(agent.url + "/api/health")[1])["time"] <= first:
        assert time.monotonic() < deadline, "the health sampler never took a new sample"
        time.sleep(0.05)
    status, metrics = fetch(agent.url + "/metrics")
    assert status == 200 and b"meshhub_build_info" in metrics


def test_stop_is_clean_even_with_an_open_connection(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 9180))
    agent = Agent(cfg, sources=fake_sources(clock=time.time), interval_seconds=0.05, port=0)
    agent.start()
    idle = socket.create_connection(("127.0.0.1", agent.port))  # a keep-alive client
    agent.stop()
    agent.stop()  # idempotent
    # The agent ended the idle connection itself (closed it, or reset it if still queued
    # unaccepted), well before the 30 s after which waitress would drop it anyway.
    idle.settimeout(20)
    try:
        assert idle.recv(1) == b""
    except ConnectionResetError:
        pass
    finally:
        idle.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("meshhub-")]
    ring = HealthRing(tmp_path / "data" / "health.sqlite3", capacity=10)
    assert len(ring) >= 1  # the queued history was written at stop
    ring.close()


class BadAgent(http.server.BaseHTTPRequestHandler):
    """Plays a broken node: a huge document on one path, garbage on another."""

    def do_GET(self) -> None:
        huge = getattr(self.server, "huge", False)
        body = b"[" + b"1," * 600_000 + b"1]" if huge else b"{oops"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_status_mesh_lists_good_bad_and_unreachable_nodes(agent: Agent, tmp_path: Path) -> None:
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadAgent) for _ in range(2)]
    servers[0].huge = True  # type: ignore[attr-defined]
    threads = [threading.Thread(target=s.serve_forever) for s in servers]
    for thread in threads:
        thread.start()
    try:
        with refused_address() as nobody:
            peers = json.dumps([f"127.0.0.1:{s.server_port}" for s in servers] + [nobody])
            path = tmp_path / "other.toml"
            path.write_text(config(tmp_path, agent.port, peers).read_text())
            result = CliRunner().invoke(cli, ["--config", str(path), "status", "--mesh"])
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].startswith("library-roof") and " up " in lines[1]
    messages = "\n".join(lines[2:])
    assert "larger than 1048576 bytes" in messages
    assert "not JSON" in messages
    assert "unreachable" in messages


def test_meshhub_agent_stops_on_sigterm(tmp_path: Path) -> None:
    """``meshhub agent`` serves on the socket it is handed (systemd's socket activation).

    The test holds the port from start to end: no other process can take it in between.
    """
    listener = listening_socket()
    port = listener.getsockname()[1]
    path = config(tmp_path, port)
    meshhub = str(Path(sys.executable).parent / "meshhub")  # the installed entry point

    def as_systemd_does() -> None:  # in the child: the socket at fd 3, LISTEN_* for it
        os.dup2(listener.fileno(), 3)  # dup2 leaves fd 3 open across exec; the rest close
        os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
        os.environ.update(agent_environment({}))  # the unit's optimisation level

    proc = subprocess.Popen([meshhub, "--config", str(path), "agent"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            close_fds=False, preexec_fn=as_systemd_does)
    listener.close()  # the agent holds it now
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _ = fetch(f"http://127.0.0.1:{port}/api/health")
                break
            except OSError:  # the agent is still starting; the kernel queues the connection
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"agent did not come up: {proc.communicate()[1].decode()}")
                time.sleep(0.1)
        assert status == 200
        maps = Path(f"/proc/{proc.pid}/maps")
        assert "libssl" not in maps.read_text(), "the agent loaded OpenSSL's TLS before a scrape"
        # At the unit's optimisation level (no docstrings or asserts) /metrics works too, and
        # brings TLS in (prometheus_client imports it).
        status, body = fetch(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"meshhub_" in body
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert (tmp_path / "data" / "health.sqlite3").exists()
    with pytest.raises(ConnectionRefusedError):  # the agent closed the socket it was given
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_systemd_socket_activation_is_for_this_process_only() -> None:
    from node.agent import systemd_listen_socket

    other = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert systemd_listen_socket(other) is None and other == {}
    assert systemd_listen_socket({}) is None
    assert systemd_listen_socket({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "0"}) is None


def test_a_busy_port_is_one_clear_error_and_nothing_is_left_running(tmp_path: Path) -> None:
    import socket

    from node.agent import Agent
    from node.config import parse_config
    from node.errors import NodeError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = parse_config(f'[node]\ndata_dir = "{tmp_path}"\n[agent]\nport = {port}\n',
                           tmp_path / "node.toml")
        agent = Agent(cfg)
        with pytest.raises(NodeError, match=rf"127\.0\.0\.1:{port} .*another agent running"):
            agent.start()
        agent.stop()


def test_stop_still_ends_everything_when_the_loop_cannot_be_woken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If waking the API loop fails, stopping must still end the threads and close the port.

    The wake-up is made to fail without closing anything under the agent: a
    descriptor closed here and again by the agent could take a file another
    thread had just opened (seen as SQLite's "disk I/O error").
    """
    cfg = load_config(config(tmp_path, 9180))
    running = Agent(cfg, sources=fake_sources(clock=time.time), interval_seconds=0.05, port=0)
    running.start()
    port = running.port

    def broken_pipe() -> None:
        raise OSError(errno.EPIPE, "the wake-up pipe is gone")

    monkeypatch.setattr(running._server.trigger, "_physical_pull", broken_pipe)
    running.stop()
    for thread in [running.scheduler._thread, running._api._thread]:  # type: ignore[union-attr]
        assert not thread.is_alive(), thread
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_the_daemons_the_agent_runs_are_reported_from_their_processes(tmp_path: Path) -> None:
    """On a node Debian's dnsmasq, hostapd and babeld units are masked (the agent runs
    them): their health comes from the agent's own processes, other units from systemd."""
    cfg = load_config(config(tmp_path, 9180))
    running = Agent(cfg, sources=fake_sources(clock=time.time, service_states=lambda: {
        "nginx": "up", "dnsmasq": "down", "hostapd": "down"}), port=0)

    class Daemon:
        def __init__(self, name: str, state: str) -> None:
            self.name, self.state = name, state

        def poll(self) -> str:
            return self.state

    running.supervised[:] = [Daemon("dnsmasq", "up"), Daemon("babeld", "up")]  # type: ignore[list-item]
    states = running.monitor.collector.sources.service_states()
    assert states == {"nginx": "up", "dnsmasq": "up", "hostapd": "down"}
