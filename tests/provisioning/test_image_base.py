"""``image base`` and ``image try`` without a virtual machine: layout, packages, bad input.

The real build (mmdebstrap from Debian's packages) and a real boot: tests/vm (in CI, after
the other tests) and bench/vm.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import ClassVar

import pytest
from click.testing import CliRunner

from bench.images import make_base_image
from provisioning.cli import cli
from provisioning.customise.partitions import find_boot_partition, read_partitions
from provisioning.image import base as base_mod
from provisioning.image.base import BaseImageError, base_packages, check_reachable
from provisioning.image.build import ImageBuildError, build_image, root_partition
from provisioning.image.recipe import load_recipe
from provisioning.image.trial import firstboot_failed, hub_answers
from tests.conftest import require_root
from tests.node.test_agent import refused_address
from tests.provisioning.test_image_support import make_fake_wheel

TOOLS = ("mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", "debugfs", "fsck.fat")
needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS) and os.environ.get("CI") != "true",
    reason="needs e2fsprogs, dosfstools, mtools, fdisk")


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    """``meshhub-provision ARGS`` as a volunteer runs it (errors as one line, exit 1)."""
    return subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()",
                           *args], capture_output=True, text=True, check=False, timeout=120)


def test_packages_are_the_recipes_plus_kernel_and_boot_loader() -> None:
    recipe = load_recipe()
    amd64 = base_packages("amd64", recipe)
    assert set(recipe.packages) <= set(amd64)
    assert {"linux-image-amd64", "systemd-boot-efi", "systemd-sysv", "qemu-guest-agent"} <= \
        set(amd64)
    arm64 = base_packages("arm64", recipe)
    assert {"linux-image-arm64", "raspi-firmware", "firmware-brcm80211"} <= set(arm64)
    assert "linux-image-amd64" not in arm64
    assert recipe.debian is not None and "non-free-firmware" in recipe.debian.components["arm64"]


def test_unreachable_debian_says_so_and_writes_nothing(tmp_path: Path) -> None:
    with refused_address() as address:  # held: no other process takes the port meanwhile
        url = f"http://{address}/debian"
        with pytest.raises(BaseImageError, match=r"cannot reach Debian's packages at .*--mirror"):
            check_reachable(url, "bookworm", timeout=5)
        if shutil.which("mmdebstrap") is None or os.geteuid() != 0:
            return  # build_base stops earlier there, with its own message (next test)
        out = tmp_path / "base.img"
        result = provision("image", "base", "--arch", "amd64", "--out", str(out),
                           "--mirror", url)
    assert result.returncode == 1
    assert "cannot reach Debian's packages" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_tools_or_root_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(base_mod.shutil, "which", lambda _tool: None)
    with pytest.raises(BaseImageError, match=r"needs .*mmdebstrap.*sudo apt-get install"):
        base_mod.build_base("amd64", tmp_path / "x.img")
    with pytest.raises(BaseImageError, match="--arch 'i386'"):
        base_mod.build_base("i386", tmp_path / "x.img")


#: mmdebstrap's output when a package fails to configure (as the arm64 base's first build
#: did): dpkg's reason comes long before the last lines.
FAILING_MMDEBSTRAP = """#!/bin/sh
echo 'I: installing remaining packages inside the chroot...' >&2
echo 'Setting up raspi-firmware (1.20220830+ds-1) ...' >&2
echo 'dpkg: error processing package raspi-firmware (--configure):' >&2
echo ' end of file on stdin at conffile prompt' >&2
i=0
while [ $i -lt 40 ]; do i=$((i + 1)); echo "Processing triggers for package-$i ..." >&2; done
echo 'Errors were encountered while processing:' >&2
echo ' raspi-firmware' >&2
echo 'E: mmdebstrap failed to run' >&2
exit 25
"""


@needs_tools
def test_failed_mmdebstrap_keeps_its_whole_output_beside_the_image(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The error names the log file, which holds every line; dpkg's reason is in the error."""
    import functools
    import http.server
    import threading

    mirror = tmp_path / "mirror"
    (mirror / "debian/dists/bookworm").mkdir(parents=True)
    (mirror / "debian/dists/bookworm/Release").write_text("Suite: bookworm\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "mmdebstrap").write_text(FAILING_MMDEBSTRAP)
    (tools / "mmdebstrap").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setattr(base_mod.os, "geteuid", lambda: 0)  # mmdebstrap is a stand-in here
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            with pytest.raises(BaseImageError) as failed:
                base_mod.build_base("amd64", out_dir / "base.img", progress=lambda _l: None,
                                    mirror=f"http://127.0.0.1:{server.server_address[1]}/debian")
        finally:
            server.shutdown()
            thread.join()
    log = out_dir / "base.img.mmdebstrap.log"
    message = str(failed.value)
    assert f"mmdebstrap failed (exit 25); its whole output is in {log}" in message
    assert ("dpkg: error processing package raspi-firmware (--configure):\n"
            "end of file on stdin at conffile prompt") in message
    assert "E: mmdebstrap failed to run" in message
    whole = log.read_text().splitlines()
    assert whole[0].startswith("# mmdebstrap --mode=root") and len(whole) == 1 + 47
    assert " end of file on stdin at conffile prompt" in whole
    assert sorted(p.name for p in out_dir.iterdir()) == ["base.img.mmdebstrap.log"]


def networkd_matches(match: dict[str, str], iftype: str, kind: str | None) -> bool:
    """Whether a port of ``iftype`` and ``kind`` (None: a physical port) is taken by a
    ``[Match]`` section of ``Type=`` and ``Kind=``, as systemd-networkd 252 decides:
    each key a list of globs, a leading ``!`` inverting one, a key not set matching all
    (``net_condition_test_strv`` in src/shared/net-condition.c)."""
    from fnmatch import fnmatchcase

    def test(patterns: list[str], value: str | None) -> bool:
        if not patterns:
            return True
        positive = any(not p.startswith("!") for p in patterns)
        hit = False
        for pattern in patterns:
            if value is not None and fnmatchcase(value, pattern.lstrip("!")):
                if pattern.startswith("!"):
                    return False
                hit = True
        return hit if positive else True

    def words(key: str) -> list[str]:
        line = match.get(key, "")
        invert = line.startswith("!")
        return [("!" if invert else "") + w for w in line.lstrip("!").split()]

    assert set(match) <= {"Type", "Kind"}, match
    return test(words("Type"), iftype) and test(words("Kind"), kind)


def test_networkd_takes_the_physical_wired_ports_only(tmp_path: Path) -> None:
    """DHCP on a gateway's cable to the router and on a USB Ethernet adapter; never on a
    virtual port (the agent's ifb device for CAKE, a lab's veth cables) or a radio; and
    networkd keeps its hands off the routes babeld and the agent make."""
    import configparser

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    base_mod._system_files(root, "1a2b3c4d")
    network = configparser.ConfigParser()
    network.optionxform = str  # type: ignore[assignment,method-assign]
    network.read(root / "etc/systemd/network/80-meshhub-wired.network")
    match = dict(network["Match"])
    ports = {"eth0": ("ether", None), "usb0": ("ether", None), "up0": ("ether", "veth"),
             "ifb-mh0": ("ether", "ifb"), "vx0": ("ether", "vxlan"), "br0": ("bridge", "bridge"),
             "wlan0": ("wlan", None)}
    managed = {name for name, (iftype, kind) in ports.items()
               if networkd_matches(match, iftype, kind)}
    assert managed == {"eth0", "usb0"}, match
    assert network["Network"]["DHCP"] == "ipv4"
    conf = configparser.ConfigParser()
    conf.read(root / "etc/systemd/networkd.conf.d/meshhub.conf")
    assert conf["Network"]["ManageForeignRoutes"] == "no"


@needs_tools
def test_layout_is_raspberry_pi_os_like_and_boots_by_uefi(tmp_path: Path) -> None:
    """The disk that ``image base`` assembles, from a small tree instead of mmdebstrap's."""
    root = tmp_path / "root"
    for folder in ("boot", "etc", "usr/lib/systemd/boot/efi", "var/cache/apt/archives"):
        (root / folder).mkdir(parents=True)
    (root / "boot/vmlinuz-6.1.0-1-amd64").write_bytes(b"kernel")
    (root / "boot/initrd.img-6.1.0-1-amd64").write_bytes(b"initrd")
    (root / "usr/lib/systemd/boot/efi/systemd-bootx64.efi").write_bytes(b"MZ-efi")
    (root / "usr/lib/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    disk_id = "1a2b3c4d"
    base_mod._system_files(root, disk_id)
    base_mod._boot_files("amd64", root, tmp_path / "bootfs", disk_id)
    base_mod._mkfs_ext4(root, tmp_path / "root.ext4")
    base_mod._mkfs_fat(tmp_path / "bootfs", tmp_path / "boot.fat", disk_id)
    image = tmp_path / "base.img"
    base_mod._assemble(image, tmp_path / "boot.fat", tmp_path / "root.ext4", disk_id)

    scheme, parts = read_partitions(image)
    assert scheme == "mbr"
    assert [(p.number, p.start, p.type) for p in parts] == [
        (1, 8 * 2**20, "0x0c"), (2, 520 * 2**20, "0x83")]
    assert image.read_bytes()[440:444] == bytes.fromhex(disk_id)[::-1]  # MBR disk id
    boot = find_boot_partition(image)
    assert boot.fat.kind == "FAT32" and boot.partition.size == 512 * 2**20
    assert root_partition(image, boot.partition).number == 2
    from provisioning.customise.fat import FatVolume
    from provisioning.image.ext4 import Ext4Volume

    fat = FatVolume(image, boot.partition.start)
    assert fat.read("EFI/BOOT/BOOTX64.EFI") == b"MZ-efi"
    assert fat.read("vmlinuz") == b"kernel" and fat.read("initrd.img") == b"initrd"
    entry = (fat.read("loader/entries/meshhub.conf") or b"").decode()
    assert f"root=PARTUUID={disk_id}-02" in entry and "console=ttyS0" in entry
    fstab = Ext4Volume(image, parts[1].start).read("/etc/fstab").decode()
    mounts = {line.split()[1]: line.split() for line in fstab.splitlines()
              if line and not line.startswith("#")}
    assert mounts["/"][:3] == [f"PARTUUID={disk_id}-02", "/", "ext4"]
    assert mounts["/boot/firmware"][:3] == [f"PARTUUID={disk_id}-01", "/boot/firmware", "vfat"]
    # A slow first boot (slow card, TCG) must not drop to emergency mode after systemd's 90 s.
    assert "x-systemd.device-timeout=10min" in mounts["/boot/firmware"][3].split(",")
    from provisioning.image.build import verify_image

    verify_image(image)


@needs_tools
def test_build_refuses_a_base_that_is_not_debian(tmp_path: Path) -> None:
    image = make_base_image(tmp_path / "other.img")
    from provisioning.image.ext4 import Ext4Volume, write_commands

    boot = find_boot_partition(image).partition
    src = tmp_path / "os-release"
    src.write_text('PRETTY_NAME="Fedora Linux 40"\nID=fedora\nVERSION_ID=40\n')
    volume = Ext4Volume(image, root_partition(image, boot).start)
    volume.batch(["rm /usr/lib/os-release",
                  *write_commands(src, PurePosixPath("/usr/lib/os-release"), 0o644)])
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_fake_wheel(wheels)
    with pytest.raises(ImageBuildError, match=r"'Fedora Linux 40', not Debian or Raspberry Pi"):
        build_image(image, tmp_path / "node.img", wheelhouse=wheels)
    assert not (tmp_path / "node.img").exists()


@needs_tools
def test_build_arch_picks_the_wheelhouse_platform(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    seen: list[tuple[str, ...]] = []

    def fake(_project: Path, _out: Path, *, platforms: tuple[str, ...]) -> str:
        seen.append(platforms)
        raise ImageBuildError("stop here")

    import provisioning.image.build as build_mod

    monkeypatch.setattr(build_mod, "build_wheelhouse", fake)
    make_base_image(tmp_path / "base.img")
    for arch in ("amd64", "arm64"):
        with pytest.raises(ImageBuildError, match="stop here"):
            build_image(tmp_path / "base.img", tmp_path / "out.img", arch=arch)
    assert seen[0][0].endswith("x86_64") and seen[1][0].endswith("aarch64")
    result = CliRunner().invoke(cli, ["image", "build", "--help"])
    assert "--arch [arm64|amd64]" in result.output and "default: arm64" in result.output


def test_try_refuses_what_is_not_an_image(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a disk\n" * 100)
    for target, expected in ((text, "not a disk image"), (tmp_path / "nope.img", "not found")):
        result = provision("image", "try", str(target))
        assert result.returncode == 1
        assert expected in result.stderr and "Traceback" not in result.stderr


def test_try_names_the_qemu_packages_when_missing(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    import provisioning.vm as vm_mod

    monkeypatch.setattr(vm_mod.shutil, "which", lambda _tool: None)
    monkeypatch.setattr(vm_mod, "OVMF_CANDIDATES", (str(tmp_path / "none.fd"),))
    with pytest.raises(vm_mod.VmError, match="sudo apt-get install qemu-system-x86 ovmf"):
        vm_mod.VirtualMachine(tmp_path / "x.img")


def test_image_try_without_qemu_names_the_package(tmp_path: Path) -> None:
    image = tmp_path / "node.img"
    with image.open("wb") as disk:  # an MBR's signature: an image as far as try looks first
        disk.truncate(4 * 2**20)
        disk.seek(510)
        disk.write(b"\x55\xaa")
    empty = tmp_path / "bin"
    empty.mkdir()
    result = subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()",
                             "image", "try", str(image), "--port", "0"],
                            capture_output=True, text=True, check=False, timeout=120,
                            env={**os.environ, "PATH": str(empty)})
    assert result.returncode == 1
    assert "sudo apt-get install qemu-system-x86" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_first_boot_failure_and_hub_are_recognised() -> None:
    assert firstboot_failed("[  149.6] firstboot[259]: meshhub-firstboot: FAILED: pip could not")
    assert firstboot_failed("[FAILED] Failed to start meshhub-firstboot.service - meshhub first")
    assert not firstboot_failed("meshhub-firstboot: installing meshhub 0.1.0")
    with refused_address() as address:
        assert not hub_answers(int(address.rsplit(":", 1)[1]), timeout=2)


def test_kvm_probe_gives_up_within_seconds() -> None:
    from provisioning.vm import kvm_works, require_qemu

    try:
        qemu, firmware = require_qemu()
    except OSError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("QEMU not installed")
    import time

    started = time.monotonic()
    works = kvm_works(qemu, firmware, seconds=6)
    assert isinstance(works, bool)
    assert time.monotonic() - started < 10


class FakeMachine:
    """Stands in for QEMU in the control flow of ``image try`` (a real one: bench/vm.py)."""

    instances: ClassVar[list[FakeMachine]] = []

    def __init__(self, image: Path, **options: object) -> None:
        self.image, self.options = image, options
        self.lines: list[str] = []
        self.stopped = False
        self._held = socket.socket()  # a port nothing listens on, held until stop()
        self._held.bind(("127.0.0.1", 0))
        self.port = self._held.getsockname()[1]
        self.used_accel = "tcg"
        self.arch = options.get("arch") or "amd64"
        self.proc = None
        FakeMachine.instances.append(self)

    def start(self) -> FakeMachine:
        return self

    def running(self) -> bool:
        return not self.stopped

    @property
    def console(self) -> list[str]:
        return list(self.lines)

    def wait_console(self, predicate, timeout: float, start: int = 0):
        script = self.options.get("script")
        if callable(script):
            script(self)
        for index, text in enumerate(self.lines[start:], start):
            if predicate(text):
                return index, text
        return None

    def wait_agent(self, _timeout: float) -> bool:
        return True

    def run(self, command: str, timeout: float = 60.0):
        from provisioning.vm import Result

        assert "journalctl" in command and "-u meshhub-firstboot" in command
        return Result((command,), 0, "meshhub-firstboot: FAILED: pip could not install meshhub "
                                     "0.1.0 from /opt/meshhub/wheelhouse\n", "")

    def stop(self, timeout: float = 90.0) -> None:
        self.stopped = True
        self._held.close()


def test_try_shows_the_journal_and_stops_when_first_boot_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import provisioning.image.trial as trial

    def fail_first_boot(machine: FakeMachine) -> None:
        machine.lines.append("[  42.0] firstboot[250]: meshhub-firstboot: FAILED: pip could not")

    monkeypatch.setattr(trial, "VirtualMachine",
                        lambda image, **kw: FakeMachine(image, script=fail_first_boot, **kw))
    said: list[str] = []
    status = trial.try_image("node.img", radios=2, memory_mb=512, port=0, keep=False,
                             say=said.append)
    assert status == 1
    assert any("first boot FAILED" in s for s in said)
    assert any("pip could not install meshhub" in s for s in said)
    assert FakeMachine.instances[-1].stopped
    assert FakeMachine.instances[-1].options["snapshot"] is True  # the image is not changed


def test_try_stops_cleanly_on_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    import signal

    import provisioning.image.trial as trial

    def press_ctrl_c(_machine: FakeMachine) -> None:
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(trial, "VirtualMachine",
                        lambda image, **kw: FakeMachine(image, script=press_ctrl_c, **kw))
    said: list[str] = []
    previous = signal.getsignal(signal.SIGINT)
    status = trial.try_image("node.img", radios=2, memory_mb=512, port=0, keep=True,
                             say=said.append)
    assert status == 0 and FakeMachine.instances[-1].stopped
    assert said[-2:] == ["image try: powering off...", "image try: stopped; nothing left behind"]
    assert signal.getsignal(signal.SIGINT) is previous


def _mount_tmpfs(point: Path) -> None:
    point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "meshhub-test", str(point)],
                   check=True)


def test_a_build_stopped_midway_leaves_nothing_mounted(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """mmdebstrap mounts /proc, /sys and /dev into the chroot; a build that stops before it
    unmounts them (here: fails right after) must not leave them mounted, nor its folder."""
    require_root()
    stopped_at: list[Path] = []

    def mounted_then_failed(arch: str, root: Path, *args: object) -> None:
        for inner in ("proc", "dev", "dev/pts", "dev/my disk"):  # nested, and a space
            _mount_tmpfs(root / inner)
        stopped_at.append(root)
        raise KeyboardInterrupt  # as when the volunteer presses Ctrl-C

    monkeypatch.setattr(base_mod, "check_tools", lambda _arch: None)
    monkeypatch.setattr(base_mod, "check_reachable", lambda *_a, **_k: None)
    monkeypatch.setattr(base_mod, "_debootstrap", mounted_then_failed)
    try:
        with pytest.raises(KeyboardInterrupt):
            base_mod.build_base("amd64", tmp_path / "base.img")
        assert stopped_at, "the build reached the chroot"
        assert base_mod.mounts_under(tmp_path) == []
        assert list(tmp_path.iterdir()) == [], "no folder, no partial image"
    finally:
        base_mod.release_mounts(tmp_path)  # whatever the outcome, nothing stays mounted


def test_release_mounts_unmounts_deepest_first(tmp_path: Path) -> None:
    require_root()
    for inner in ("a", "a/b", "a/b/c d"):
        _mount_tmpfs(tmp_path / inner)
    (tmp_path / "a" / "b" / "c d" / "kept.txt").write_text("x")
    try:
        assert base_mod.mounts_under(tmp_path) == [tmp_path / "a/b/c d", tmp_path / "a/b",
                                                  tmp_path / "a"]
        assert base_mod.mounts_under(tmp_path / "a/b/c") == [], "a prefix is not a parent"
        released = base_mod.release_mounts(tmp_path)
        assert released == [tmp_path / "a/b/c d", tmp_path / "a/b", tmp_path / "a"]
        assert base_mod.mounts_under(tmp_path) == []
        assert not (tmp_path / "a" / "b").exists(), "the tmpfs contents went with it"
    finally:
        base_mod.release_mounts(tmp_path)
