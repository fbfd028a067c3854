"""``meshhub-provision customise``: prepare a flashed card (or an image) for one node.

Writes into the FAT boot partition, without mounting and (for image files)
without root: ``meshhub/`` with node.toml, the node's key, the signed registry
snapshot, the trust anchors and the first-boot hook; and the base system's own
first-boot settings (:mod:`provisioning.customise.base_os`). Every check runs
before the first write, so a refused target is left byte-for-byte unchanged;
every written file is read back and compared.

Public API::

    customise(target, node_name, registry=..., secrets=..., ...) -> Customised
    find_boot_partition(path) -> BootPartition
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from provisioning.customise.base_os import (
    FORMATS,
    OsSettings,
    check_ssh_keys,
    check_timezone,
    detect,
    edit_cmdline,
    is_meshhub_base,
    render,
)
from provisioning.customise.fat import FatError, FatVolume, require_mtools
from provisioning.customise.node_files import BOOT_DIR, build_bundle
from provisioning.customise.partitions import BootPartition, find_boot_partition
from provisioning.errors import ProvisionError

__all__ = ["Customised", "customise", "find_boot_partition"]

#: Room kept free on the boot partition beyond the files (directory entries, cluster slack).
_SLACK_PER_FILE = 64 * 1024


@dataclass(frozen=True)
class Customised:
    """What ``customise`` did: where, in which base-OS format, which files, and notes."""

    target: Path
    boot: BootPartition
    os_format: str
    written: tuple[str, ...]
    serial: int
    key_fingerprint: str
    notes: tuple[str, ...]


def customise(target: str | os.PathLike[str], node_name: str, *, registry: str | Path,
              secrets: str | Path | None = None, wifi_country: str | None = None,
              ssh_key_file: str | Path | None = None, timezone: str | None = None,
              os_format: str = "auto", user: str = "pi") -> Customised:
    """Write node ``node_name``'s files into ``target``'s FAT boot partition.

    ``target`` is an image file or a block device. Raises a
    :class:`~provisioning.errors.ProvisionError` (or RegistryError/ConfigError)
    saying what to do, before anything is written, for: a missing, unwritable
    or mounted target, no FAT boot partition, a truncated image, an unknown or
    revoked node, a bad SSH key or time zone, too little space.
    """
    require_mtools()
    disk = Path(target)
    _check_target(disk)
    boot = find_boot_partition(disk)
    bundle = build_bundle(registry, node_name, secrets, wifi_country)
    settings = OsSettings(
        hostname=node_name, wifi_country=bundle.wifi_country,
        ssh_keys=check_ssh_keys(_read_text(ssh_key_file), str(ssh_key_file))
        if ssh_key_file else (),
        timezone=check_timezone(timezone) if timezone else None, user=user)
    if os_format != "auto" and os_format not in FORMATS:
        raise ProvisionError(f"--os-format {os_format!r}: use auto or one of {', '.join(FORMATS)}")

    volume = FatVolume(disk, boot.partition.start)
    try:
        names = volume.listdir()
    except FatError as exc:
        raise ProvisionError(f"{disk}: partition {boot.partition.number} looks like "
                             f"{boot.fat.kind} but cannot be read ({exc}); the image may be "
                             "damaged: run 'fsck.fat -n' on it or download it again") from None
    cmdline_raw = volume.read("cmdline.txt")
    cmdline = cmdline_raw.decode("utf-8", "replace") if cmdline_raw is not None else None
    issue = volume.read("issue.txt")
    fmt = os_format if os_format != "auto" else detect(
        names, cmdline, issue.decode("utf-8", "replace") if issue else None)
    if fmt != "none" and cmdline is None:
        raise ProvisionError(f"{disk}: --os-format {fmt} needs cmdline.txt on the boot partition "
                             "(is this a Raspberry Pi OS image?); use --os-format none")

    writes: list[tuple[str, bytes]] = [(f"{BOOT_DIR}/{n}", d) for n, d in bundle.files.items()]
    writes += sorted(render(fmt, settings).items())
    # The Wi-Fi country goes on the kernel command line whenever there is one to edit (a
    # Debian arm64 base has a Pi's cmdline.txt and no other customisation format).
    debian_base = is_meshhub_base(names)
    if cmdline is not None and (fmt != "none" or debian_base):
        writes.append(("cmdline.txt", edit_cmdline(cmdline, settings, fmt).encode("utf-8")))
    needed = sum(len(data) + _SLACK_PER_FILE for _, data in writes)
    if volume.free_bytes() < needed:
        raise ProvisionError(f"{disk}: the boot partition has {volume.free_bytes()} bytes free, "
                             f"about {needed} are needed; remove files from it or use another "
                             "image")

    volume.makedirs(BOOT_DIR)
    for path, data in writes:  # cmdline.txt last: systemd.run only once firstrun.sh exists
        volume.write(path, data)
    _sync(disk)
    for path, data in writes:
        if volume.read(path) != data:
            raise ProvisionError(f"{disk}: {path} reads back different from what was written: "
                                 "the card may be faulty; do not use it")
    notes = list(bundle.notes)
    if fmt == "none" and debian_base:
        notes.append("a Debian base made by 'image base': only the meshhub files and the Wi-Fi "
                     "country (on cmdline.txt, if there is one) were written; hostname, SSH key "
                     "and time zone are not set")
    elif fmt == "none":
        notes.append("no Raspberry Pi OS customisation format found (no cmdline.txt): only the "
                     "meshhub files were written; hostname, SSH key and time zone are not set")
    if not settings.ssh_keys:
        notes.append("no --ssh-key given: SSH stays as the image ships it (off on Raspberry Pi OS)")
    return Customised(disk, boot, fmt, tuple(p for p, _ in writes), bundle.serial,
                      bundle.key_fingerprint, tuple(notes))


def _check_target(disk: Path) -> None:
    try:
        mode = disk.stat().st_mode
    except FileNotFoundError:
        raise ProvisionError(f"{disk}: not found; give an image file or a device such as "
                             "/dev/sdc (see 'meshhub-provision devices')") from None
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise ProvisionError(f"{disk}: neither an image file nor a block device")
    if not os.access(disk, os.R_OK | os.W_OK):
        hint = " (run with sudo)" if stat.S_ISBLK(mode) else ""
        raise ProvisionError(f"{disk}: no permission to read and write it{hint}")
    if stat.S_ISBLK(mode) and (mounted := mounted_partitions(disk)):
        raise ProvisionError(f"{disk}: {', '.join(mounted)} mounted; unmount first (e.g. "
                             f"'udisksctl unmount -b {mounted[0]}' or eject it in the file "
                             "manager without removing the card)")


def mounted_partitions(device: Path, mounts: str | None = None) -> list[str]:
    """Mounted partitions (or the whole device) of ``device``, from /proc/mounts."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text(encoding="utf-8")
        except OSError:
            return []
    pattern = re.compile(re.escape(str(device)) + r"(p?\d+)?")
    return sorted({line.split()[0] for line in mounts.splitlines()
                   if line.split() and pattern.fullmatch(line.split()[0])})


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProvisionError(f"{path}: cannot read the SSH public key ({exc})") from None


def _sync(disk: Path) -> None:
    """Flush the target (mtools closes its file, but a device's cache needs fsync)."""
    fd = os.open(disk, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
