"""The node image: build from a synthetic base, unit hardening, the first-boot script."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from click.testing import CliRunner

from bench.images import make_base_image
from node.runtime import (
    AGENT_OPTIMIZE_LEVEL,
    AGENT_VARIABLES,
    OPTIMIZE_VARIABLE,
    PORTAL_OPTIMIZE_LEVEL,
    PORTAL_VARIABLES,
    SKIP_IN_PACKAGES,
    SKIP_IN_STDLIB,
)
from provisioning.cli import cli
from provisioning.customise.fat import FatVolume
from provisioning.image import ImageBuildError, build_image, load_recipe, verify_image
from provisioning.image.ext4 import Ext4Volume
from tests.conftest import require_tool
from tests.provisioning.test_image_support import make_fake_wheel

TOOLS = ("sfdisk", "mkfs.vfat", "mcopy", "mke2fs", "debugfs", "e2fsck", "resize2fs", "dumpe2fs",
         "fsck.fat")
RECIPE = load_recipe()
UNIT_DIR = RECIPE.overlay_dir / "usr/lib/systemd/system"
FIRSTBOOT = RECIPE.overlay_dir / "usr/lib/meshhub/firstboot"


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    folder = tmp_path / "wheelhouse"
    make_fake_wheel(folder, "9.9.0")
    (folder / "dep_one-1.0-py3-none-any.whl").write_bytes(b"not really a wheel" * 100)
    return folder


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_puts_every_overlay_file_with_mode_and_owner(tmp_path: Path,
                                                           wheelhouse: Path) -> None:
    require_tool(*TOOLS)
    base = make_base_image(tmp_path / "base.img")
    before = sha256(base)
    out = tmp_path / "node.img"
    result = CliRunner().invoke(cli, ["image", "build", "--base", str(base), "--out", str(out),
                                      "--wheelhouse", str(wheelhouse)])
    assert result.exit_code == 0, result.output
    assert "meshhub 9.9.0" in result.output
    assert sha256(base) == before, "the base image must not change"
    built = build_image(base, tmp_path / "again.img", wheelhouse=wheelhouse)
    root = Ext4Volume(out, built.root.start)
    files = RECIPE.overlay_files()
    assert len(files) >= 9
    for item in files:
        inode = root.stat(item.path)
        assert inode is not None, f"{item.path} missing from the image"
        assert inode.kind == "regular"
        assert inode.mode & 0o7777 == item.mode, f"{item.path}: mode {inode.mode:o}"
        assert (inode.uid, inode.gid) == (0, 0)
        assert root.read(item.path) == item.source.read_bytes()
    assert root.stat("/usr/lib/meshhub/firstboot").mode & 0o7777 == 0o755
    assert root.stat("/etc/systemd/journald.conf.d/meshhub.conf").mode & 0o7777 == 0o644
    for unit in ("meshhub-agent.service", "meshhub-portal.service", "meshhub-firstboot.service",
                 "meshhub-net.service"):
        link = root.stat(f"/etc/systemd/system/multi-user.target.wants/{unit}")
        assert link is not None and link.kind == "symlink"
        assert link.target == f"/usr/lib/systemd/system/{unit}"
    for unit in ("babeld.service", "dnsmasq.service", "hostapd.service"):
        assert root.stat(f"/etc/systemd/system/{unit}").target == "/dev/null"
    assert root.read("/opt/meshhub/wheelhouse/VERSION") == b"9.9.0\n"
    for wheel in wheelhouse.iterdir():
        assert root.read(f"/opt/meshhub/wheelhouse/{wheel.name}") == wheel.read_bytes()
    assert root.read("/etc/hostname") == b"raspberrypi\n", "base files are kept"
    info = FatVolume(out, built.boot.start).read("meshhub-image.txt")
    assert info is not None and b"9.9.0" in info
    verify_image(out)  # e2fsck -fn and fsck.fat -n
    assert not (tmp_path / "node.img.partial").exists()


def test_build_grows_a_root_that_is_too_small(tmp_path: Path, wheelhouse: Path) -> None:
    require_tool(*TOOLS)
    base = make_base_image(tmp_path / "base.img", root_mib=16)
    (wheelhouse / "big_dep-1.0-py3-none-any.whl").write_bytes(os.urandom(6 * 1024 * 1024))
    built = build_image(base, tmp_path / "node.img", wheelhouse=wheelhouse)
    assert built.grown_bytes > 0
    assert built.root.size > 16 * 1024 * 1024
    assert built.size == built.root.start + built.root.size
    root = Ext4Volume(built.path, built.root.start)
    assert root.read("/opt/meshhub/wheelhouse/big_dep-1.0-py3-none-any.whl") == \
        (wheelhouse / "big_dep-1.0-py3-none-any.whl").read_bytes()
    assert root.free_bytes() > 32 * 1024 * 1024
    verify_image(built.path)


def test_build_keeps_the_image_sparse(tmp_path: Path, wheelhouse: Path) -> None:
    require_tool(*TOOLS)
    base = make_base_image(tmp_path / "base.img", total_mib=1024)
    built = build_image(base, tmp_path / "node.img", wheelhouse=wheelhouse)
    assert built.size == 1024 * 1024 * 1024
    assert built.allocated < 64 * 1024 * 1024


def test_bad_input_leaves_no_output(tmp_path: Path, wheelhouse: Path) -> None:
    require_tool(*TOOLS)
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(1024 * 1024))
    with pytest.raises(Exception, match="partition table"):
        build_image(junk, tmp_path / "out.img", wheelhouse=wheelhouse)
    assert not (tmp_path / "out.img").exists() and not (tmp_path / "out.img.partial").exists()
    base = make_base_image(tmp_path / "base.img")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Exception, match="exactly one meshhub wheel"):
        build_image(base, tmp_path / "out.img", wheelhouse=empty)
    with pytest.raises(ImageBuildError, match="differ"):
        build_image(base, base, wheelhouse=wheelhouse)
    result = CliRunner().invoke(cli, ["image", "build", "--base", str(tmp_path / "nope.img"),
                                      "--out", str(tmp_path / "o.img")])
    assert result.exit_code != 0


# --- unit hardening ------------------------------------------------------------------

def verify_units(folder: Path, units: list[Path]) -> str:
    """``systemd-analyze verify`` on copies whose programs exist; returns what it printed."""
    stand_in = folder / "bin" / "stand-in"
    stand_in.parent.mkdir(parents=True, exist_ok=True)
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    copies = []
    for unit in units:
        text = re.sub(r"^ExecStart=\S+", f"ExecStart={stand_in}", unit.read_text(),
                      flags=re.MULTILINE)
        copy = folder / unit.name
        copy.write_text(text)
        copies.append(str(copy))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *copies],
                            capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr).strip() + (f"\nexit {result.returncode}"
                                                      if result.returncode else "")


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    require_tool("systemd-analyze")
    units = sorted(UNIT_DIR.glob("*.service"))
    assert len(units) == 4
    assert verify_units(tmp_path, units) == ""
    # The check is meaningful: a misspelt directive is reported.
    bad = tmp_path / "bad" / "meshhub-portal.service"
    bad.parent.mkdir()
    bad.write_text((UNIT_DIR / "meshhub-portal.service").read_text()
                   .replace("NoNewPrivileges=", "NoNewPrivilege="))
    assert "Unknown key 'NoNewPrivilege'" in verify_units(tmp_path / "bad", [bad])


def unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (UNIT_DIR / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_portal_unit_is_unprivileged_and_sandboxed() -> None:
    s = unit_settings("meshhub-portal.service")
    assert s["User"] == ["meshhub-portal"]
    assert s["CapabilityBoundingSet"] == [""] and s["AmbientCapabilities"] == [""]
    for key, value in {"ProtectSystem": "strict", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "ProtectHome": "yes", "ReadWritePaths": "/var/lib/meshhub",
                       "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}.items():
        assert s[key] == [value], key
    assert int(s["MemoryMax"][0].rstrip("M")) <= 256


def test_portal_and_agent_units_run_python_at_their_optimisation_level() -> None:
    # The same levels as node/runtime.py's, which the lab and the benchmarks use.
    assert unit_settings("meshhub-portal.service")["Environment"] == [
        f"{name}={value}" for name, value in PORTAL_VARIABLES.items()]
    assert PORTAL_VARIABLES[OPTIMIZE_VARIABLE] == str(PORTAL_OPTIMIZE_LEVEL)
    assert unit_settings("meshhub-agent.service")["Environment"] == [
        f"{name}={value}" for name, value in AGENT_VARIABLES.items()]
    assert AGENT_VARIABLES[OPTIMIZE_VARIABLE] == str(AGENT_OPTIMIZE_LEVEL)


def test_agent_unit_has_network_capabilities_not_root() -> None:
    s = unit_settings("meshhub-agent.service")
    assert s["User"] == ["meshhub"]
    caps = set(s["CapabilityBoundingSet"][0].split())
    assert caps == {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}
    assert set(s["AmbientCapabilities"][0].split()) == caps
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]


def test_security_exposure_is_low(tmp_path: Path) -> None:
    require_tool("systemd-analyze")
    for name, limit in (("meshhub-portal.service", 2.0), ("meshhub-agent.service", 4.0)):
        copy = tmp_path / name
        shutil.copy(UNIT_DIR / name, copy)
        result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(copy)],
                                capture_output=True, text=True, check=False)
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
        assert match, result.stdout + result.stderr
        assert float(match.group(1)) <= limit, f"{name}: exposure {match.group(1)}"


# --- the first-boot script against a fixture root -----------------------------------

def pycache(root: Path) -> Path:
    """Where :func:`run_firstboot` has Python keep bytecode (``PYTHONPYCACHEPREFIX``)."""
    return root.parent / "pycache"


def level_2_pyc(root: Path, source: Path) -> Path:
    """Where the portal's interpreter would find ``source``'s bytecode after firstboot."""
    name = f"{source.stem}.{sys.implementation.cache_tag}.opt-{PORTAL_OPTIMIZE_LEVEL}.pyc"
    return pycache(root) / source.parent.relative_to("/") / name


def fixture_root(tmp_path: Path, wheelhouse: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    (root / "etc/nginx/sites-enabled").mkdir(parents=True)
    (root / "etc/nginx/sites-enabled/default").write_text("server {}\n")
    (root / "etc/hostname").write_text("raspberrypi\n")
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
    shutil.copytree(wheelhouse, root / "opt/meshhub/wheelhouse")
    (root / "opt/meshhub/wheelhouse/VERSION").write_text("9.9.0\n")
    card = root / "boot/firmware/meshhub"
    card.mkdir(parents=True)
    files = {"node.toml": b'[node]\nname = "elm-4"\n', "identity.key": b"k" * 64 + b"\n",
             "anchors.json": b"{}\n", "snapshot.json": b"{}\n"}
    for name, data in files.items():
        (card / name).write_bytes(data)
    (card / "SHA256SUMS").write_text("".join(f"{hashlib.sha256(d).hexdigest()}  {n}\n"
                                             for n, d in files.items()))
    hook = Path(__import__("provisioning.customise", fromlist=["x"]).__file__).parent
    shutil.copy(hook / "firstboot.sh", card / "firstboot.sh")
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f"#!/bin/sh\necho \"$@\" >>{tmp_path / 'systemctl.log'}\n")
    systemctl.chmod(0o755)
    return root, systemctl


def stdlib_compiled_already(root: Path) -> None:
    """Mark the standard library byte-compiled, as a base from `image base` has it: firstboot
    skips that step (minutes of CPU on a loaded machine) where a test is not about it."""
    mark = level_2_pyc(root, Path(os.__file__))
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.write_bytes(b"")


#: A liveness bound sized for a loaded machine: the first run installs the wheelhouse and
#: byte-compiles the whole standard library (10 s quiet, 90 s under a CPU hog).
FIRSTBOOT_TIMEOUT = 500


def run_firstboot(root: Path, systemctl: Path) -> subprocess.CompletedProcess[str]:
    # Bytecode goes to root/../pycache: the script also compiles the standard library,
    # which must not be this machine's own folder in a test.
    env = {**os.environ, "MESHHUB_ROOT": str(root), "MESHHUB_SYSTEMCTL": str(systemctl),
           "MESHHUB_PYTHON": sys.executable, "PYTHONPYCACHEPREFIX": str(pycache(root))}
    return subprocess.run(["sh", str(FIRSTBOOT)], env=env, capture_output=True, text=True,
                          timeout=FIRSTBOOT_TIMEOUT, check=False)


@pytest.mark.timeout(FIRSTBOOT_TIMEOUT + 100)
def test_firstboot_installs_and_is_harmless_to_rerun(tmp_path: Path, wheelhouse: Path) -> None:
    (wheelhouse / "dep_one-1.0-py3-none-any.whl").unlink()
    root, systemctl = fixture_root(tmp_path, wheelhouse)
    first = run_firstboot(root, systemctl)
    assert first.returncode == 0, first.stdout + first.stderr
    data = root / "var/lib/meshhub"
    assert (root / "etc/meshhub/node.toml").read_text() == '[node]\nname = "elm-4"\n'
    assert (data / "identity.key").stat().st_mode & 0o777 == 0o640
    # The portal (group meshhub) reads the signed registry the card installed with umask 077.
    assert (data / "registry").stat().st_mode & 0o7777 == 0o2750
    assert {p.name: p.stat().st_mode & 0o777 for p in (data / "registry").glob("*.json")} == \
        {"anchors.json": 0o640, "snapshot.json": 0o640}
    assert not (root / "boot/firmware/meshhub/identity.key").exists(), "key left on the card"
    assert (root / "opt/meshhub/current").readlink() == Path("venvs/9.9.0")
    venv = root / "opt/meshhub/current"
    assert (venv / ".meshhub-complete").exists()
    out = subprocess.run([str(venv / "bin/meshhub"), "agent"], capture_output=True, text=True,
                         check=True).stdout
    assert "test stand-in" in out
    # Byte-compiled for the portal's python -OO (its user cannot write bytecode): the
    # venv, not pip's own modules, and the standard library.
    site = next((root / "opt/meshhub/venvs/9.9.0").glob("lib/python3*/site-packages"))
    assert level_2_pyc(root, site / "meshhub_fake_cli.py").exists()
    assert not level_2_pyc(root, site / "pip/__init__.py").exists()
    stdlib = Path(sysconfig.get_path("stdlib"))
    assert level_2_pyc(root, stdlib / "json/__init__.py").exists()
    assert not level_2_pyc(root, stdlib / "test/__init__.py").exists()
    secret = (data / "portal-secret.key").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert (root / "etc/hostname").read_text() == "elm-4\n"
    assert "127.0.1.1\telm-4" in (root / "etc/hosts").read_text()
    assert "raspberrypi" not in (root / "etc/hosts").read_text()
    assert (root / "etc/nginx/sites-enabled/meshhub").readlink() == \
        Path("../sites-available/meshhub")
    assert "server { listen 80; }" in (root / "etc/nginx/sites-available/meshhub").read_text()
    assert not (root / "etc/nginx/sites-enabled/default").exists()
    log = (tmp_path / "systemctl.log").read_text()
    assert "enable meshhub-net.service meshhub-agent.service meshhub-portal.service " \
           "nginx.service" in log
    assert "mask babeld.service dnsmasq.service hostapd.service" in log
    assert (data / "firstboot.done").read_text().startswith("9.9.0 ")

    snapshot = {p: p.read_bytes() for p in (root / "etc").rglob("*") if p.is_file()}
    snapshot[data / "portal-secret.key"] = (data / "portal-secret.key").read_bytes()
    venv_inode = (root / "opt/meshhub/venvs/9.9.0/bin/python").lstat().st_ino
    again = run_firstboot(root, systemctl)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "installing" not in again.stdout
    for path, content in snapshot.items():
        assert path.read_bytes() == content, f"{path} changed on the second run"
    assert (root / "opt/meshhub/venvs/9.9.0/bin/python").lstat().st_ino == venv_inode
    assert (root / "etc/hosts").read_text().count("127.0.1.1") == 1


def test_firstboot_compiles_as_node_runtime_says() -> None:
    # The shell script cannot import node/runtime.py; its copies must not drift.
    script = FIRSTBOOT.read_text()
    assert f"\nOPTIMIZE_LEVEL={PORTAL_OPTIMIZE_LEVEL}\n" in script
    assert f"\nSKIP_IN_PACKAGES='{SKIP_IN_PACKAGES}'\n" in script
    assert f"\nSKIP_IN_STDLIB='{SKIP_IN_STDLIB}'\n" in script


def test_firstboot_stops_when_the_software_does_not_byte_compile(tmp_path: Path,
                                                                 wheelhouse: Path) -> None:
    (wheelhouse / "dep_one-1.0-py3-none-any.whl").unlink()
    with zipfile.ZipFile(next(wheelhouse.glob("meshhub-*.whl")), "a") as archive:
        archive.writestr("meshhub_broken.py", "def (:\n")
    root, systemctl = fixture_root(tmp_path, wheelhouse)
    stdlib_compiled_already(root)
    failed = run_firstboot(root, systemctl)
    assert failed.returncode == 1
    assert "FAILED: cannot byte-compile" in failed.stdout and "meshhub_broken.py" in failed.stdout
    assert not (root / "opt/meshhub/venvs/9.9.0/.meshhub-complete").exists()
    assert not (root / "opt/meshhub/current").exists()


def test_firstboot_redoes_a_half_made_venv_and_refuses_a_damaged_card(
        tmp_path: Path, wheelhouse: Path) -> None:
    (wheelhouse / "dep_one-1.0-py3-none-any.whl").unlink()
    root, systemctl = fixture_root(tmp_path, wheelhouse)
    half = root / "opt/meshhub/venvs/9.9.0"
    half.mkdir(parents=True)
    (half / "junk").write_text("power cut while installing")
    (root / "boot/firmware/meshhub/node.toml").write_text("tampered\n")
    stdlib_compiled_already(root)
    damaged = run_firstboot(root, systemctl)
    assert damaged.returncode == 1
    assert "firstboot.sh failed" in damaged.stdout
    assert not (root / "etc/meshhub/node.toml").exists()
    fixture = root / "boot/firmware/meshhub"
    (fixture / "node.toml").write_text('[node]\nname = "elm-4"\n')
    ok = run_firstboot(root, systemctl)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert not (half / "junk").exists() and (half / ".meshhub-complete").exists()


# --- the node's venv, made at build time -------------------------------------------

def test_build_carries_a_ready_venv_for_the_node(tmp_path: Path, wheelhouse: Path) -> None:
    """First boot installs nothing: the venv is on the image, pointed at Debian's python3,
    its scripts at the venv's python, its bytecode independent of file times."""
    require_tool(*TOOLS)
    base = make_base_image(tmp_path / "base.img")
    built = build_image(base, tmp_path / "node.img", wheelhouse=wheelhouse, arch="arm64")
    assert built.venv
    root = Ext4Volume(built.path, built.root.start)
    venv = "/opt/meshhub/venvs/9.9.0"
    cfg = root.read(f"{venv}/pyvenv.cfg").decode()
    assert "home = /usr/bin\n" in cfg and "include-system-site-packages = false\n" in cfg
    assert root.stat(f"{venv}/bin/python").target == "python3"
    assert root.stat(f"{venv}/bin/python3").target == "/usr/bin/python3"
    assert root.read(f"{venv}/bin/meshhub").startswith(f"#!{venv}/bin/python\n".encode())
    assert root.stat(f"{venv}/bin/meshhub").mode & 0o777 == 0o755
    assert root.read(f"{venv}/.meshhub-complete") == b"9.9.0\n"
    cache = f"{venv}/lib/python3.11/site-packages/__pycache__"
    for level in ("", f".opt-{PORTAL_OPTIMIZE_LEVEL}"):
        pyc = root.read(f"{cache}/meshhub_fake_cli.cpython-311{level}.pyc")
        assert int.from_bytes(pyc[4:8], "little") == 0b01, "unchecked-hash bytecode"
    verify_image(built.path)


def test_a_venv_made_here_runs_on_debians_python_without_writing(tmp_path: Path,
                                                                  wheelhouse: Path) -> None:
    """The venv runs on the node's interpreter (this host's /usr/bin/python3 when it is
    Debian 12's 3.11, as in CI) using the bytecode made at build time."""
    from provisioning.image.venv import build_node_venv
    from provisioning.image.wheelhouse import PLATFORMS

    if not Path("/usr/bin/python3.11").exists():
        pytest.skip("needs /usr/bin/python3.11 (Debian 12's) to stand for the node's")
    folder = tmp_path / "venv"
    made = build_node_venv(wheelhouse, "9.9.0", folder, platforms=PLATFORMS["amd64"],
                           node_path=PurePosixPath(folder))
    assert made.compiled
    before = sorted(str(p) for p in folder.rglob("*"))
    for optimize in ("", str(PORTAL_OPTIMIZE_LEVEL)):
        env = {**os.environ, OPTIMIZE_VARIABLE: optimize, "PYTHONDONTWRITEBYTECODE": ""}
        env.pop("PYTHONPYCACHEPREFIX", None)
        out = subprocess.run([str(folder / "bin/meshhub"), "agent"], capture_output=True,
                             text=True, check=True, env=env).stdout
        assert "test stand-in" in out
    assert sorted(str(p) for p in folder.rglob("*")) == before, "bytecode written at run time"
    prefix = subprocess.run([str(folder / "bin/python"), "-c", "import sys; print(sys.prefix)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert prefix == str(folder)


def test_firstboot_keeps_the_venv_the_image_carries(tmp_path: Path, wheelhouse: Path) -> None:
    from provisioning.image.venv import build_node_venv
    from provisioning.image.wheelhouse import PLATFORMS

    (wheelhouse / "dep_one-1.0-py3-none-any.whl").unlink()
    root, systemctl = fixture_root(tmp_path, wheelhouse)
    venv = root / "opt/meshhub/venvs/9.9.0"
    build_node_venv(wheelhouse, "9.9.0", venv, platforms=PLATFORMS["arm64"],
                    node_path=PurePosixPath(venv))
    inode = (venv / "bin/meshhub").stat().st_ino
    # The standard library compiled already, as in a base from `image base`: skipped.
    stdlib_compiled_already(root)
    first = run_firstboot(root, systemctl)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "installing" not in first.stdout
    assert "is installed in" in first.stdout and "made by the image build" in first.stdout
    assert (venv / "bin/meshhub").stat().st_ino == inode
    assert (root / "opt/meshhub/current").readlink() == Path("venvs/9.9.0")
    assert (root / "var/lib/meshhub/firstboot.done").read_text().startswith("9.9.0 ")
    assert not level_2_pyc(root, Path(sysconfig.get_path("stdlib")) / "json/__init__.py").exists()
