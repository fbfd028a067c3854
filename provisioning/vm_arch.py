"""Which processor a node image is for, and how QEMU boots each (for :mod:`provisioning.vm`).

- **amd64** (``image base --arch amd64``): QEMU's PC with UEFI (Debian's
  ``ovmf``), which finds systemd-boot on the FAT partition, as a PC would.
- **arm64** (``image base --arch arm64``, a Raspberry Pi image): QEMU's
  ``virt`` board with Cortex-A53 cores (a Pi Zero 2 W's), always TCG on this
  kind of machine. QEMU cannot run the Pi's own boot firmware (``start*.elf``
  reads ``config.txt`` on the GPU), so this module does its part: it takes the
  kernel and initramfs that ``config.txt`` names (``kernel=``, ``initramfs``)
  and the kernel command line in ``cmdline.txt`` (with the root
  ``PARTUUID`` and what ``customise`` added) from the image's boot partition,
  and QEMU loads them directly. What this boots is the image's own Debian
  kernel and userland on virtio disk and network; what it cannot check is the
  Pi's firmware, its device tree and its Wi-Fi chip (docs/images.md).

The serial console is ``ttyAMA0`` on ``virt`` (``ttyS0`` on the PC); its
getty is masked on the command line for the same reason the base masks
``ttyS0``'s: it would hang up the console's other writers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from provisioning.errors import ProvisionError

ARCHES = ("amd64", "arm64")
#: The QEMU program and the Debian package it comes in, per architecture.
QEMU = {"amd64": ("qemu-system-x86_64", "qemu-system-x86"),
        "arm64": ("qemu-system-aarch64", "qemu-system-arm")}
#: A Raspberry Pi Zero 2 W's cores (the smallest Pi a node runs on).
ARM_CPU = "cortex-a53"
ARM_CONSOLE = "ttyAMA0"
#: Added to the image's own command line in the VM (see the module docstring).
ARM_APPEND = (f"console={ARM_CONSOLE},115200 systemd.mask=serial-getty@{ARM_CONSOLE}.service "
              "quiet systemd.show_status=yes")
_UEFI_LOADER = "EFI/BOOT/BOOTX64.EFI"


class VmArchError(ProvisionError, OSError):
    """The image cannot be booted in QEMU as it is; the message says why and what to do."""


@dataclass(frozen=True)
class DirectBoot:
    """A kernel and initramfs QEMU loads itself, and the kernel's command line."""

    kernel: Path
    initrd: Path
    append: str


def image_arch(image: Path) -> str | None:
    """``amd64`` or ``arm64`` from what the image's boot partition holds; None if unknown.

    amd64: UEFI's ``EFI/BOOT/BOOTX64.EFI``; arm64: a Raspberry Pi's
    ``config.txt`` asking for 64-bit (``arm_64bit=1``) or naming an arm64
    kernel. Never raises: an image that cannot be read is refused later, by
    :func:`provisioning.vm.check_image`, with its own message.
    """
    from provisioning.customise.fat import FatVolume
    from provisioning.customise.partitions import find_boot_partition

    try:
        volume = FatVolume(image, find_boot_partition(image).partition.start)
        if volume.exists(_UEFI_LOADER):
            return "amd64"
        config = volume.read("config.txt")
    except (OSError, ValueError):
        return None
    if config is None:
        return None
    text = config.decode("utf-8", "replace")
    if re.search(r"^\s*arm_64bit\s*=\s*1", text, re.M) or re.search(
            r"^\s*kernel\s*=\s*\S*(arm64|kernel8)", text, re.M):
        return "arm64"
    return None


def pi_boot_files(image: Path, into: Path) -> DirectBoot:
    """Copy the kernel and initramfs that the image's ``config.txt`` names into ``into``;
    return them with ``cmdline.txt`` plus :data:`ARM_APPEND` (see the module docstring)."""
    from provisioning.customise.fat import FatVolume
    from provisioning.customise.partitions import find_boot_partition

    volume = FatVolume(image, find_boot_partition(image).partition.start)
    config = (volume.read("config.txt") or b"").decode("utf-8", "replace")
    cmdline = volume.read("cmdline.txt")
    kernel = re.search(r"^\s*kernel\s*=\s*(\S+)", config, re.M)
    initrd = re.search(r"^\s*initramfs\s+(\S+)", config, re.M)
    if kernel is None or initrd is None or cmdline is None:
        missing = [what for what, found in (("a kernel= line in config.txt", kernel),
                                            ("an initramfs line in config.txt", initrd),
                                            ("cmdline.txt", cmdline)) if found is None]
        raise VmArchError(f"{image}: the boot partition lacks {' and '.join(missing)}; "
                          "image try boots arm64 images made from 'meshhub-provision image base "
                          "--arch arm64' (Debian's raspi-firmware writes both files)")
    boot = DirectBoot(into / "kernel", into / "initrd", "")
    for name, target in ((kernel.group(1), boot.kernel), (initrd.group(1), boot.initrd)):
        data = volume.read(name)
        if not data:
            raise VmArchError(f"{image}: config.txt names {name}, which is not on the boot "
                              "partition (or is empty); build the image again")
        target.write_bytes(data)
    words = cmdline.decode("utf-8", "replace").split()
    return DirectBoot(boot.kernel, boot.initrd, " ".join([*words, ARM_APPEND]))


def machine_args(arch: str, firmware: str | None, boot: DirectBoot | None) -> list[str]:
    """QEMU's machine, processor and boot options for ``arch`` (devices are the same)."""
    if arch == "arm64":
        assert boot is not None
        return ["-machine", "virt", "-cpu", ARM_CPU, "-kernel", str(boot.kernel),
                "-initrd", str(boot.initrd), "-append", boot.append]
    assert firmware is not None
    return ["-bios", firmware]


__all__ = ["ARCHES", "ARM_APPEND", "QEMU", "DirectBoot", "VmArchError", "image_arch",
           "machine_args", "pi_boot_files"]
