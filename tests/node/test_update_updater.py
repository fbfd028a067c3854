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
from node.update.updater import STEPS, Updater, debian_pip_wheel, pip_installer
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


def make_wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = (),
               scripts: dict[str, str] | None = None) -> Path:
    """A pure-Python wheel ``name`` ``version`` with one module saying its version."""
    import base64
    import hashlib

    folder.mkdir(parents=True, exist_ok=True)
    module = name.replace("-", "_")
    dist = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires)
    files = {f"{module}_mod.py": f"VERSION = {version!r}\n\ndef main():\n    print(VERSION)\n",
             f"{dist}/METADATA": metadata,
             f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: meshhub-tests\n"
                              "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    if scripts:
        files[f"{dist}/entry_points.txt"] = "[console_scripts]\n" + "".join(
            f"{k} = {v}\n" for k, v in scripts.items())
    def digest(data: str) -> str:
        raw = hashlib.sha256(data.encode()).digest()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    record = [f"{n},sha256={digest(d)},{len(d.encode())}" for n, d in files.items()]
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for n, d in files.items():
            archive.writestr(n, d)
    return wheel


def release(folder: Path, version: str, changed_version: str) -> Path:
    """meshhub ``version`` needing ``unchanged`` 1.0 and ``changed`` ``changed_version``."""
    make_wheel(folder, "meshhub", version, ("unchanged", f"changed>={changed_version}"),
               {"meshhub": "meshhub_mod:main"})
    make_wheel(folder, "unchanged", "1.0")
    make_wheel(folder, "changed", changed_version)
    return folder


def installed_by(venv: Path, name: str, version: str) -> str:
    """What the ``INSTALLER`` file of ``name`` ``version`` in ``venv`` says."""
    info = next(venv.glob(f"lib/python3*/site-packages/{name}-{version}.dist-info"))
    return (info / "INSTALLER").read_text().strip()


def running_root(tmp_path: Path) -> tuple[Path, Path]:
    """A root whose ``current`` is a whole venv of meshhub 1.0.0 (changed 1.0), installed by
    the production installer; each distribution's INSTALLER then says "image"."""
    root = tmp_path / "opt-meshhub"
    venv = root / "venvs" / "1.0.0"
    pip_installer(sys.executable)(venv, release(tmp_path / "r1", "1.0.0", "1.0"), "1.0.0")
    for installer in venv.glob("lib/python3*/site-packages/*.dist-info/INSTALLER"):
        installer.write_text("image\n")  # as the image's venv (made on the builder)
    (venv / ".meshhub-complete").write_text("1.0.0\n")
    os.symlink("venvs/1.0.0", root / "current")
    return root, venv


def tree(folder: Path) -> dict[str, tuple[int, float]]:
    """Each file under ``folder``: size and modification time."""
    return {str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime)
            for p in sorted(folder.rglob("*"))}


def test_an_update_installs_only_the_dependencies_the_release_changed(tmp_path: Path) -> None:
    root, old = running_root(tmp_path)
    before = tree(old)
    updater = Updater(root, installer=pip_installer(sys.executable, running=root / "current"),
                      restart=lambda: None, probe=lambda: (True, ""), health_window=0)
    agents_umask = os.umask(0o007)  # the agent's unit (UMask=0007)
    try:
        state = updater.apply("1.1.0", release(tmp_path / "r2", "1.1.0", "2.0"))
    finally:
        os.umask(agents_umask)
    assert state.step == "done", state
    new = root / "venvs" / "1.1.0"
    # Every user can read it: meshhub-net runs as root without CAP_DAC_OVERRIDE.
    unreadable = [str(p.relative_to(new)) for p in new.rglob("*") if not p.is_symlink()
                  and p.stat().st_mode & (0o005 if p.is_dir() else 0o004) == 0]
    assert unreadable == [], unreadable[:5]
    assert installed_by(new, "meshhub", "1.1.0") == "pip"
    assert installed_by(new, "changed", "2.0") == "pip", "the changed dependency is installed"
    assert not list(new.glob("lib/python3*/site-packages/changed-1.0.dist-info"))
    assert installed_by(new, "unchanged", "1.0") == "image", "the unchanged one was copied"
    # The new venv's scripts run its own Python; the running venv is as it was.
    out = subprocess.run([str(new / "bin" / "meshhub")], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "1.1.0"
    assert (new / "bin" / "meshhub").read_text().startswith(f"#!{new}/bin/python")
    assert tree(old) == before
    compiled = level_2_bytecode(new)
    assert {"meshhub_mod.py", "changed_mod.py", "unchanged_mod.py"} <= compiled
    if debian_pip_wheel() is not None:  # pip ran from Debian's wheel: none in the venv
        assert not list(new.glob("lib/python3*/site-packages/pip-*.dist-info"))


def test_a_failed_install_leaves_the_running_venv_untouched(tmp_path: Path) -> None:
    root, old = running_root(tmp_path)
    before = tree(old)
    broken = release(tmp_path / "r2", "1.1.0", "2.0")
    (broken / "changed-2.0-py3-none-any.whl").unlink()  # a release missing a wheel it needs
    updater = Updater(root, installer=pip_installer(sys.executable, running=root / "current"),
                      restart=lambda: None, probe=lambda: (True, ""), health_window=0)
    state = updater.apply("1.1.0", broken)
    assert state.step == "idle" and "installing 1.1.0 failed" in state.message, state
    assert os.readlink(root / "current") == "venvs/1.0.0"
    assert not (root / "venvs/1.1.0").exists(), "the half-made copy is removed"
    assert tree(old) == before


def test_a_running_venv_that_is_not_whole_is_not_copied(tmp_path: Path) -> None:
    root, old = running_root(tmp_path)
    (old / ".meshhub-complete").unlink()
    new = root / "venvs" / "1.1.0"
    # Without Debian's pip wheel, the venv gets its own pip (ensurepip) and runs that.
    pip_installer(sys.executable, running=root / "current", pip_wheels=tmp_path / "none")(
        new, release(tmp_path / "r2", "1.1.0", "2.0"), "1.1.0")
    assert installed_by(new, "unchanged", "1.0") == "pip", "installed afresh"
    assert list(new.glob("lib/python3*/site-packages/pip-*.dist-info"))
