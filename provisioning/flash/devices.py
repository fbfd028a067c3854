"""Which block devices may be flashed: ``lsblk --json`` parsed, then safety rules.

Modelled on Raspberry Pi Imager and balenaEtcher: only removable USB and
SD/MMC disks are offered. Everything else is excluded with a reason a
volunteer can read. Some reasons can be overridden by typing the device name
again (``--i-know-this-is-not-removable DEVICE``); the disk holding ``/`` (or
any other path the running system uses) and read-only or empty devices never.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from provisioning.errors import FlashError

#: Mount points that mean "the running system uses this disk".
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/boot/firmware", "/efi", "/home", "/usr", "/var",
                 "/opt", "/srv", "/tmp", "[SWAP]")  # noqa: S108 - a mount point, not a file
#: Smallest device offered: a node image needs at least this much.
MIN_SIZE = 1 << 30
#: Larger than this is rarely an SD card or stick: offered only with the override.
LARGE_SIZE = 256 << 30
REMOVABLE_TRANSPORTS = ("usb", "mmc")
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


@dataclass(frozen=True)
class Device:
    """One whole block device as lsblk describes it, with every mount point below it."""

    path: str
    name: str
    type: str
    size: int
    model: str
    transport: str
    removable: bool
    hotplug: bool
    read_only: bool
    subsystems: str
    mountpoints: tuple[str, ...]
    partitions: tuple[str, ...] = ()
    mounted_partitions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Assessment:
    """A device and why it is (not) offered.

    ``fatal`` reasons can never be overridden; ``warnings`` can, by typing
    the device's name with ``--i-know-this-is-not-removable``. ``system`` is
    true only when the running system uses the device.
    """

    device: Device
    fatal: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    system: bool = False

    @property
    def offered(self) -> bool:
        """True when the device is a candidate without any override."""
        return not self.fatal and not self.warnings

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason it is excluded, fatal first."""
        return self.fatal + self.warnings


def parse_size(value: Any) -> int:
    """lsblk's SIZE in bytes: an integer (``-b``) or text such as ``29.7G``."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9.]+)\s*([BKMGTP]?)i?B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise FlashError(f"lsblk: cannot read the size {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def parse_lsblk(data: str | bytes | dict[str, Any]) -> list[Device]:
    """Every whole device of an ``lsblk --json -O`` document (partitions folded in)."""
    doc = json.loads(data) if isinstance(data, str | bytes) else data
    devices: list[Device] = []
    for raw in doc.get("blockdevices", []):
        mounts: list[str] = []
        partitions: list[str] = []
        mounted: list[str] = []
        for child in _descendants(raw):
            points = _mounts(child)
            mounts.extend(points)
            if child.get("type") == "part":
                partitions.append(_path(child))
                if points:
                    mounted.append(_path(child))
        devices.append(Device(
            path=_path(raw), name=str(raw.get("name")), type=str(raw.get("type")),
            size=parse_size(raw.get("size")),
            model=" ".join(str(raw.get(k) or "").strip() for k in ("vendor", "model")).strip(),
            transport=str(raw.get("tran") or ""), removable=_flag(raw.get("rm")),
            hotplug=_flag(raw.get("hotplug")), read_only=_flag(raw.get("ro")),
            subsystems=str(raw.get("subsystems") or ""),
            mountpoints=tuple(_mounts(raw) + mounts), partitions=tuple(partitions),
            mounted_partitions=tuple(mounted)))
    return devices


def assess(device: Device, image_size: int | None = None) -> Assessment:
    """Apply the safety rules to ``device`` (for an image of ``image_size`` bytes if known)."""
    fatal: list[str] = []
    warnings: list[str] = []
    system = [m for m in device.mountpoints if m in SYSTEM_MOUNTS]
    if "/" in device.mountpoints:
        fatal.append("holds / (the running system)")
    elif system:
        fatal.append(f"used by the running system ({', '.join(system)})")
    if device.type not in ("disk", "loop"):
        fatal.append(f"a {device.type}, not a whole disk")
    if device.read_only:
        fatal.append("read-only (for an SD card: is its lock switch on?)")
    if device.size == 0:
        fatal.append("no medium (empty card reader?)")
    elif device.size < MIN_SIZE:
        fatal.append(f"too small ({human(device.size)}; a node needs {human(MIN_SIZE)})")
    elif image_size is not None and device.size < image_size:
        fatal.append(f"too small for this image ({human(device.size)} < {human(image_size)})")
    if device.type == "loop":
        warnings.append("a loop device, not a removable disk")
    elif not _removable(device):
        kind = device.transport or "internal"
        warnings.append(f"not removable ({kind} disk)")
    if device.size > LARGE_SIZE:
        warnings.append(f"very large for an SD card or stick ({human(device.size)})")
    notes = []
    if device.mounted_partitions and not fatal:
        notes.append(f"mounted ({', '.join(device.mountpoints)}): will be unmounted")
    return Assessment(device, tuple(fatal), tuple(warnings), tuple(notes),
                      system="/" in device.mountpoints or bool(system))


def run_lsblk() -> list[Device]:
    """The machine's block devices now (``lsblk --json -O -b``)."""
    if shutil.which("lsblk") is None:
        raise FlashError("lsblk not found; install util-linux (Linux only)")
    result = subprocess.run(["lsblk", "--json", "-O", "-b"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise FlashError(f"lsblk failed: {result.stderr.strip()}")
    return parse_lsblk(result.stdout)


def find(devices: list[Device], path: str) -> Device | None:
    """The whole device named ``path`` (``/dev/sdb`` or ``sdb``), if lsblk knows it."""
    for device in devices:
        if path in (device.path, device.name):
            return device
    return None


def human(size: int) -> str:
    """Bytes as a short size with binary units (``29.7 GiB``)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _removable(device: Device) -> bool:
    transport_ok = device.transport in REMOVABLE_TRANSPORTS or "mmc" in device.subsystems \
        or device.name.startswith("mmcblk")
    return transport_ok and (device.removable or device.hotplug or device.transport != "usb")


def _descendants(raw: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for child in raw.get("children") or []:
        yield child
        yield from _descendants(child)


def _mounts(raw: dict[str, Any]) -> list[str]:
    points = [p for p in (raw.get("mountpoints") or []) if p]
    if not points and raw.get("mountpoint"):
        points = [raw["mountpoint"]]
    return points


def _path(raw: dict[str, Any]) -> str:
    return str(raw.get("path") or f"/dev/{raw.get('name')}")


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")
