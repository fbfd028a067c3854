"""``image try`` for both processors without booting: which one an image is for, and what
QEMU is given for an arm64 (Raspberry Pi) image. A real arm64 boot: tests/vm/test_arm64.py
(opt-in) and ``bench/vm.py --arch arm64``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.images import make_base_image
from provisioning.customise.fat import FatVolume
from provisioning.customise.partitions import find_boot_partition
from provisioning.vm_arch import ARM_APPEND, VmArchError, image_arch, machine_args, pi_boot_files

TOOLS = ("mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", "debugfs")
needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS) and os.environ.get("CI") != "true",
    reason="needs e2fsprogs, dosfstools, mtools, fdisk")
#: What Debian's raspi-firmware writes (the arm64 base's config.txt, shortened).
CONFIG = (b"arm_64bit=1\nenable_uart=1\nupstream_kernel=1\n\nkernel=vmlinuz-6.1.0-57-arm64\n"
          b"# For details on the initramfs directive, see ...\n"
          b"initramfs initrd.img-6.1.0-57-arm64\n")
CMDLINE = (b"console=tty0 root=PARTUUID=9840d7d5-02 rw fsck.repair=yes net.ifnames=0 cma=64M "
           b"rootwait cfg80211.ieee80211_regdom=DE\n")


def image_with(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A small base image (MBR, FAT boot, ext4 root) whose boot partition holds ``files``."""
    image = make_base_image(tmp_path / "node.img", root_mib=16, boot_mib=40)
    volume = FatVolume(image, find_boot_partition(image).partition.start)
    for name, data in files.items():
        if "/" in name:
            volume.makedirs(name.rsplit("/", 1)[0])
        volume.write(name, data)
    return image


@needs_tools
def test_the_processor_is_read_from_the_boot_partition(tmp_path: Path) -> None:
    cases = {"pi": ({"config.txt": CONFIG}, "arm64"),
             "pi-os": ({"config.txt": b"# 64-bit kernel\nkernel=kernel8.img\n"}, "arm64"),
             "uefi": ({"EFI/BOOT/BOOTX64.EFI": b"MZ..."}, "amd64"),
             "pi-32bit": ({"config.txt": b"kernel=kernel7l.img\n"}, None),
             "neither": ({}, None)}
    for name, (files, expected) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        assert image_arch(image_with(folder, files)) == expected, name
    text = tmp_path / "notes.txt"
    text.write_text("not a disk\n" * 100)
    assert image_arch(text) is None  # refused later, by check_image, with its own message
    assert image_arch(tmp_path / "missing.img") is None


@needs_tools
def test_arm64_boots_the_kernel_and_command_line_config_txt_names(tmp_path: Path) -> None:
    kernel, initrd = os.urandom(70_000), os.urandom(50_000)
    image = image_with(tmp_path, {"config.txt": CONFIG, "cmdline.txt": CMDLINE,
                                  "vmlinuz-6.1.0-57-arm64": kernel,
                                  "initrd.img-6.1.0-57-arm64": initrd,
                                  "vmlinuz-6.1.0-1-arm64": b"an older kernel, not named"})
    into = tmp_path / "boot"
    into.mkdir()
    boot = pi_boot_files(image, into)
    assert boot.kernel.read_bytes() == kernel and boot.initrd.read_bytes() == initrd
    # The image's own command line (root, the Wi-Fi country customise added), then the VM's
    # serial console with its getty masked.
    assert boot.append == CMDLINE.decode().strip() + " " + ARM_APPEND
    assert "root=PARTUUID=9840d7d5-02" in boot.append and "console=ttyAMA0" in boot.append
    assert boot.append.index("console=tty0") < boot.append.index("console=ttyAMA0")
    argv = machine_args("arm64", None, boot)
    assert argv[:4] == ["-machine", "virt", "-cpu", "cortex-a53"]
    assert argv[argv.index("-kernel") + 1] == str(boot.kernel)
    assert argv[argv.index("-append") + 1] == boot.append
    assert machine_args("amd64", "/usr/share/ovmf/OVMF.fd", None) == [
        "-bios", "/usr/share/ovmf/OVMF.fd"]


@needs_tools
def test_an_arm64_image_without_its_boot_files_is_refused_clearly(tmp_path: Path) -> None:
    cases = {
        "no initramfs": ({"config.txt": b"arm_64bit=1\nkernel=vmlinuz\n",
                          "cmdline.txt": CMDLINE, "vmlinuz": b"k"},
                         "lacks an initramfs line in config.txt; image try boots arm64"),
        "kernel missing": ({"config.txt": CONFIG, "cmdline.txt": CMDLINE},
                           "config.txt names vmlinuz-6.1.0-57-arm64, which is not on the boot"),
        "no cmdline": ({"config.txt": CONFIG, "vmlinuz-6.1.0-57-arm64": b"k",
                        "initrd.img-6.1.0-57-arm64": b"i"}, "lacks cmdline.txt"),
    }
    for name, (files, message) in cases.items():
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        image = image_with(folder, files)
        if "cmdline.txt" not in files:  # make_base_image writes one
            start = find_boot_partition(image).partition.start
            subprocess.run(["mdel", "-i", f"{image}@@{start}", "::cmdline.txt"], check=True,
                           env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
        with pytest.raises(VmArchError, match=message):
            pi_boot_files(image, folder)


def test_arm64_without_qemu_names_its_package(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import provisioning.vm as vm_mod

    monkeypatch.setattr(vm_mod.shutil, "which", lambda _tool: None)
    with pytest.raises(vm_mod.VmError, match=r"needs qemu-system-arm \(QEMU for arm64\): sudo "
                                             r"apt-get install qemu-system-arm$"):
        vm_mod.VirtualMachine(tmp_path / "x.img", arch="arm64")
    monkeypatch.setattr(vm_mod.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    with pytest.raises(vm_mod.VmError, match="KVM runs amd64 guests only"):
        vm_mod.VirtualMachine(tmp_path / "x.img", arch="arm64", accel="kvm")
    with pytest.raises(vm_mod.VmError, match="--arch 'riscv64': use one of amd64, arm64"):
        vm_mod.VirtualMachine(tmp_path / "x.img", arch="riscv64")
