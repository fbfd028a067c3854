"""The updater: install, switch, health check, rollback, and a power cut at every step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from node.update.updater import KILL_ENV, STEPS, Updater

DRIVER = r'''
import subprocess, sys
from pathlib import Path
from node.update.updater import Updater

root, action, version, good = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "good"

def install(venv, wheels, v):
    (venv / "bin").mkdir(parents=True)
    health = venv / "bin" / "health"
    health.write_text("#!/bin/sh\nexit %d\n" % (0 if good else 1))
    health.chmod(0o755)

def probe():
    code = subprocess.run([str(root / "current" / "bin" / "health")]).returncode
    return code == 0, f"health exit {code}"

def restart():
    with open(root / "restarts.log", "a") as log:
        log.write("restart\n")

updater = Updater(root, installer=install, restart=restart, probe=probe, health_window=0.3,
                  probe_interval=0.05)
updater.recover()
if action == "apply":
    updater.apply(version, root)
print(updater.state().step)
'''


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "opt-meshhub"
    venv = root / "venvs" / "1.0.0"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "health").write_text("#!/bin/sh\nexit 0\n")
    (venv / "bin" / "health").chmod(0o755)
    (venv / ".meshhub-complete").write_text("1.0.0\n")
    os.symlink("venvs/1.0.0", root / "current")
    return root


def drive(root: Path, action: str, version: str, good: bool,
          kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.run([sys.executable, "-c", DRIVER, str(root), action, version,
                           "good" if good else "bad"], env=env, capture_output=True, text=True,
                          timeout=60, check=False, cwd=Path(__file__).resolve().parents[2])


def working(root: Path) -> bool:
    return subprocess.run([str(root / "current" / "bin" / "health")]).returncode == 0


def test_good_update_switches_and_keeps_previous(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result = drive(root, "apply", "1.1.0", good=True)
    assert result.stdout.strip() == "done", result.stderr
    assert os.readlink(root / "current") == "venvs/1.1.0"
    assert (root / "venvs/1.0.0").is_dir(), "the previous version is kept"
    assert (root / "restarts.log").read_text().count("restart") == 1
    result = drive(root, "apply", "1.2.0", good=True)
    assert sorted(p.name for p in (root / "venvs").iterdir()) == ["1.1.0", "1.2.0"]


def test_unhealthy_update_rolls_back_and_is_not_retried(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    result = drive(root, "apply", "1.1.0", good=False)
    assert result.stdout.strip() == "rolled-back", result.stderr
    assert os.readlink(root / "current") == "venvs/1.0.0"
    state = json.loads((root / "update-state.json").read_text())
    assert state["refused"] == ["1.1.0"] and "health exit 1" in state["message"]
    assert (root / "restarts.log").read_text().count("restart") == 2
    again = drive(root, "apply", "1.1.0", good=False)
    assert again.stdout.strip() == "rolled-back"
    assert (root / "restarts.log").read_text().count("restart") == 2, "not tried again"


def test_failed_install_leaves_the_running_version(tmp_path: Path) -> None:
    root = make_root(tmp_path)

    def broken(venv: Path, wheels: Path, version: str) -> None:
        venv.mkdir()
        raise OSError("pip: no matching distribution")

    updater = Updater(root, installer=broken, restart=lambda: None, probe=lambda: (True, ""),
                      health_window=0)
    state = updater.apply("1.1.0", root)
    assert state.step == "idle" and "no matching distribution" in state.message
    assert os.readlink(root / "current") == "venvs/1.0.0"
    assert not (root / "venvs/1.1.0").exists()


@pytest.mark.parametrize("good", [True, False], ids=["healthy", "unhealthy"])
@pytest.mark.parametrize("step", [s for s in STEPS if s != "idle"])
def test_power_cut_at_each_step_leaves_a_working_version(tmp_path: Path, step: str,
                                                         good: bool) -> None:
    root = make_root(tmp_path)
    cut = drive(root, "apply", "1.1.0", good=good, kill_at=step)
    reached = cut.returncode == -signal.SIGKILL
    if not reached:  # this path never records that step (e.g. "done" when unhealthy)
        assert cut.returncode == 0, cut.stderr
    after = drive(root, "recover", "1.1.0", good=good)
    assert after.returncode == 0, after.stderr
    assert working(root), f"current -> {os.readlink(root / 'current')} does not work"
    state = json.loads((root / "update-state.json").read_text())
    assert state["step"] in ("done", "rolled-back", "idle"), state
    current = os.readlink(root / "current")
    assert (root / current / ".meshhub-complete").exists()
    if state["step"] == "done":
        assert current == "venvs/1.1.0" and good
    else:
        assert current == "venvs/1.0.0"
    if not good and reached and step not in ("installing", "installed"):
        assert state["step"] == "rolled-back" and "1.1.0" in state["refused"]
