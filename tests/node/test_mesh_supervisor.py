"""The supervisor keeps a daemon running, backs off, caps its log and stops cleanly."""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

from bench.waiting import wait_for
from node.config import parse_config
from node.mesh.babeld import babeld_process
from node.mesh.supervisor import CappedLog, SupervisedProcess


def test_a_daemon_that_dies_is_restarted_with_back_off(tmp_path: Path) -> None:
    prepared: list[float] = []
    proc = SupervisedProcess(
        "flaky", [sys.executable, "-c", "print('hello from the daemon'); raise SystemExit(3)"],
        log_path=tmp_path / "flaky.log", prepare=lambda: prepared.append(time.monotonic()),
        backoff_initial=0.1, backoff_max=0.4)
    proc.start()
    try:
        wait_for("four starts, each prepared", lambda: len(prepared) >= 4)
    finally:
        proc.stop()
    gaps = [b - a for a, b in itertools.pairwise(prepared)]
    assert gaps[0] >= 0.1 and gaps[2] >= 0.35  # 0.1, 0.2, 0.4 ...
    text = (tmp_path / "flaky.log").read_text()
    assert "hello from the daemon" in text and "exited with status 3" in text
    assert proc.restarts >= 3 and proc.poll() == "down"


def test_stop_ends_a_running_daemon_and_is_idempotent(tmp_path: Path) -> None:
    proc = SupervisedProcess("sleeper", ["sleep", "60"], log_path=tmp_path / "s.log")
    proc.start()
    proc.start()
    wait_for("the daemon up", lambda: proc.poll() == "up")
    pid = proc.pid
    proc.stop()
    proc.stop()
    assert proc.poll() == "down"
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_missing_program_is_reported_not_raised(tmp_path: Path) -> None:
    proc = SupervisedProcess("ghost", ["/nonexistent/daemon"], log_path=tmp_path / "g.log",
                             backoff_initial=0.05, backoff_max=0.05)
    proc.start()
    try:
        wait_for("'cannot start' in its log",
                 lambda: "cannot start" in (tmp_path / "g.log").read_text())
    finally:
        proc.stop()


def test_log_is_capped(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "d.log", max_bytes=1000)
    for n in range(100):
        log.write(f"line {n:04d} {'x' * 40}\n".encode())
    log.close()
    assert (tmp_path / "d.log").stat().st_size <= 1000
    assert (tmp_path / "d.log.1").stat().st_size <= 1000
    assert "line 0099" in (tmp_path / "d.log").read_text()


def test_babeld_gets_the_rendered_config_and_its_own_files(tmp_path: Path) -> None:
    cfg = parse_config(f'[node]\nname = "n1"\n[mesh]\naddress = "10.42.0.1"\nrouting = true\n'
                       f'wired_interfaces = ["m-n2"]\nwired_hello_interval = 1.0\n'
                       f'[agent]\nrun_dir = "{tmp_path}"\n')
    proc = babeld_process(cfg, executable="true")
    assert proc.argv == ["true", "-c", f"{tmp_path}/babeld.conf", "-I", f"{tmp_path}/babeld.pid",
                         "-S", f"{tmp_path}/babeld.state"]
    (tmp_path / "babeld.sock").write_text("stale")
    assert proc.prepare is not None
    proc.prepare()
    conf = (tmp_path / "babeld.conf").read_text()
    assert f"local-path {tmp_path}/babeld.sock" in conf
    assert "interface m-n2 type wired hello-interval 1 rxcost 96" in conf
    assert not (tmp_path / "babeld.sock").exists()
