"""The updater: install, switch, health check, rollback, and a power cut at every step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from node.runtime import PORTAL_OPTIMIZE_LEVEL
from node.update.updater import STEPS, Updater, pip_installer
from tests.provisioning.test_image_support import make_fake_wheel

DRIVER = r'''
import json, subprocess, sys
from pathlib import Path
from node.update import updater as module
from node.update.updater import Updater

root, action, version, good = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4] == "good"
cut_at = sys.argv[5] if len(sys.argv) > 5 else None
real_write = module.atomic_write

def write_then_maybe_wait(path, data, *args, **kwargs):
    """The updater's own atomic write; once the state file on disk says the step to cut
    at, say so and wait: the test pulls the plug (SIGKILL) right there."""
    written = real_write(path, data, *args, **kwargs)
    if cut_at and Path(path).name == module.STATE_FILE and \
            json.loads(Path(path).read_text())["step"] == cut_at:
        print("power cut here", flush=True)
        sys.stdin.readline()  # never answered: the test kills this process
    return written

module.atomic_write = write_then_maybe_wait

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
    """Run the updater in a process of its own; with ``kill_at``, SIGKILL it as soon as
    it says its state file records that step (a power cut right there)."""
    args = [sys.executable, "-c", DRIVER, str(root), action, version,
            "good" if good else "bad", *([kill_at] if kill_at else [])]
    with subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parents[2]) as process:
        assert process.stdout is not None
        first = process.stdout.readline() if kill_at else ""
        if first == "power cut here\n":
            process.kill()
        try:
            out, err = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return subprocess.CompletedProcess(args, process.returncode, first + out, err)


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


def level_2_bytecode(venv: Path) -> set[str]:
    """The modules of ``venv`` that have bytecode at the portal's optimisation level."""
    tag = f"{sys.implementation.cache_tag}.opt-{PORTAL_OPTIMIZE_LEVEL}.pyc"
    return {str(p.parent.parent.relative_to(next(venv.glob("lib/python3*/site-packages")))
                / p.name.replace(tag, "py")) for p in venv.glob(f"lib/**/*.{tag}")}


def test_the_production_installer_byte_compiles_for_the_portal(tmp_path: Path) -> None:
    wheels = tmp_path / "release"
    make_fake_wheel(wheels, "1.1.0")
    venv = tmp_path / "venvs" / "1.1.0"
    pip_installer(sys.executable)(venv, wheels, "1.1.0")
    out = subprocess.run([str(venv / "bin" / "meshhub"), "agent"], capture_output=True,
                         text=True, check=True).stdout
    assert "test stand-in" in out
    compiled = level_2_bytecode(venv)
    assert "meshhub_fake_cli.py" in compiled  # the read-only venv's portal needs no compiler
    assert not [m for m in compiled if m.startswith(("pip/", "setuptools/"))], "never imported"


def test_a_release_that_does_not_byte_compile_is_not_installed(tmp_path: Path) -> None:
    wheels = tmp_path / "release"
    wheel = make_fake_wheel(wheels, "1.1.0")
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("meshhub_broken.py", "def (:\n")
    root = make_root(tmp_path)
    updater = Updater(root, installer=pip_installer(sys.executable), restart=lambda: None,
                      probe=lambda: (True, ""), health_window=0)
    state = updater.apply("1.1.0", wheels)
    assert state.step == "idle" and "compileall" in state.message
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
