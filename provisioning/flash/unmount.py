"""Unmounting the chosen target's partitions (and nothing else) before writing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from provisioning.errors import FlashError
from provisioning.flash.devices import Device

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def unmount_commands(device: Device) -> list[list[str]]:
    """The commands that unmount ``device``'s mounted partitions (udisksctl if present)."""
    use_udisks = shutil.which("udisksctl") is not None
    commands = []
    for partition in device.mounted_partitions:
        commands.append(["udisksctl", "unmount", "--no-user-interaction", "-b", partition]
                        if use_udisks else ["umount", partition])
    return commands


def unmount(device: Device, run: Runner = _run) -> list[str]:
    """Unmount every mounted partition of ``device``; return the partitions unmounted."""
    done = []
    for argv in unmount_commands(device):
        result = run(argv)
        if result.returncode != 0:
            raise FlashError(f"could not unmount {argv[-1]}: {result.stderr.strip()}; close "
                             "the files open on it (or eject it in the file manager) and try "
                             "again; nothing was written")
        done.append(argv[-1])
    return done
