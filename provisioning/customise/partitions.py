"""Read a disk's partition table (MBR or GPT) and find its FAT boot partition.

Works on an image file or a block device alike: it only reads bytes. Nothing
is hard-coded: Raspberry Pi OS moved its boot partition from sector 8192
(4 MiB) to 16384 (8 MiB), and other images use GPT. A partition counts as
the boot partition only when its first sector really is a FAT boot sector
(the type byte alone is not trusted), and only primary MBR partitions are
considered (a boot partition is never a logical one).
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

from provisioning.errors import ProvisionError

SECTOR = 512
GPT_PROTECTIVE = 0xEE


class ImageLayoutError(ProvisionError, ValueError):
    """The target's partition table or boot partition cannot be used (message says why)."""


@dataclass(frozen=True)
class Partition:
    """One partition: its number (1-based, as ``sdc1``), where it starts and how long it is."""

    number: int
    start: int  #: byte offset from the start of the disk
    size: int  #: bytes
    type: str  #: MBR type as ``0x0c`` or the GPT type GUID


@dataclass(frozen=True)
class FatInfo:
    """What a FAT boot sector says about its file system."""

    kind: str  #: "FAT12", "FAT16" or "FAT32"
    bytes_per_sector: int
    total_bytes: int
    label: str


@dataclass(frozen=True)
class BootPartition:
    """The FAT partition customise writes into, and the table it came from."""

    partition: Partition
    fat: FatInfo
    scheme: str  #: "mbr" or "gpt"


def disk_size(path: Path) -> int:
    """Size of an image file or block device in bytes (seek to the end works for both)."""
    with open(path, "rb") as disk:
        return disk.seek(0, os.SEEK_END)


def read_at(path: Path, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` (fewer if the file ends first)."""
    with open(path, "rb") as disk:
        disk.seek(offset)
        return disk.read(size)


def read_partitions(path: Path) -> tuple[str, list[Partition]]:
    """The partition table scheme (``mbr``/``gpt``) and its partitions, in table order."""
    size = disk_size(path)
    if size < 2 * SECTOR:
        raise ImageLayoutError(f"{path}: only {size} bytes: not a disk image (truncated or "
                               "empty download?)")
    mbr = read_at(path, 0, SECTOR)
    if mbr[510:512] != b"\x55\xaa":
        raise ImageLayoutError(f"{path}: no partition table (no MBR signature in the first "
                               "sector): not a disk image, or a damaged one")
    entries = [struct.unpack_from("<B3xB3xII", mbr, 446 + 16 * i) for i in range(4)]
    if any(kind == GPT_PROTECTIVE for _, kind, _, _ in entries):
        return "gpt", _read_gpt(path, size)
    parts = [Partition(i + 1, start * SECTOR, count * SECTOR, f"0x{kind:02x}")
             for i, (_, kind, start, count) in enumerate(entries) if kind and count]
    return "mbr", parts


def find_boot_partition(path: str | os.PathLike[str]) -> BootPartition:
    """The first partition holding a FAT file system; raise ImageLayoutError if none.

    Also refuses a partition that reaches past the end of the file (a
    truncated image) and a FAT whose own size exceeds its partition.
    """
    disk = Path(path)
    scheme, parts = read_partitions(disk)
    size = disk_size(disk)
    seen = []
    for part in parts:
        if part.start + part.size > size:
            raise ImageLayoutError(
                f"{disk}: partition {part.number} ends at byte {part.start + part.size} but the "
                f"file has only {size} bytes: the image is truncated (download it again)")
        fat = fat_info(read_at(disk, part.start, SECTOR))
        seen.append(f"{part.number} ({part.type}{', ' + fat.kind if fat else ''})")
        if fat is None:
            continue
        if fat.total_bytes > part.size:
            raise ImageLayoutError(f"{disk}: partition {part.number}: its FAT file system "
                                   f"({fat.total_bytes} bytes) is larger than the partition "
                                   f"({part.size} bytes): damaged image")
        return BootPartition(part, fat, scheme)
    listed = ", ".join(seen) if seen else "none"
    raise ImageLayoutError(f"{disk}: no FAT boot partition found ({scheme.upper()} partitions: "
                           f"{listed}); is this a Raspberry Pi OS or meshhub node image?")


def fat_info(sector: bytes) -> FatInfo | None:
    """Parse a FAT boot sector (BPB); ``None`` when ``sector`` is not one."""
    if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa" or sector[0] not in (0xEB, 0xE9):
        return None
    bps, spc, reserved, fats, root_entries, total16, _media, fat16 = struct.unpack_from(
        "<HBHBHHBH", sector, 11)
    total32, fat32 = struct.unpack_from("<II", sector, 32)
    if bps not in (512, 1024, 2048, 4096) or spc == 0 or spc & (spc - 1) or reserved == 0 \
            or fats == 0:
        return None
    total = total16 or total32
    fat_sectors = fat16 or fat32
    if total == 0 or fat_sectors == 0:
        return None
    root_sectors = (root_entries * 32 + bps - 1) // bps
    clusters = (total - reserved - fats * fat_sectors - root_sectors) // spc
    kind = "FAT12" if clusters < 4085 else "FAT16" if clusters < 65525 else "FAT32"
    label_at = 71 if fat16 == 0 else 43
    label = sector[label_at:label_at + 11].decode("ascii", "replace").strip()
    return FatInfo(kind, bps, total * bps, label)


def _read_gpt(path: Path, size: int) -> list[Partition]:
    header = read_at(path, SECTOR, SECTOR)
    if header[:8] != b"EFI PART":
        raise ImageLayoutError(f"{path}: protective MBR but no GPT header at sector 1: "
                               "damaged partition table")
    header_size = struct.unpack_from("<I", header, 12)[0]
    stored_crc = struct.unpack_from("<I", header, 16)[0]
    if not 92 <= header_size <= SECTOR:
        raise ImageLayoutError(f"{path}: GPT header size {header_size} is invalid")
    check = bytearray(header[:header_size])
    check[16:20] = b"\0\0\0\0"
    if zlib.crc32(check) != stored_crc:
        raise ImageLayoutError(f"{path}: GPT header checksum is wrong: damaged partition table")
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    if entry_size < 128 or count > 1024:
        raise ImageLayoutError(f"{path}: GPT entry table is implausible ({count} entries of "
                               f"{entry_size} bytes)")
    table = read_at(path, entries_lba * SECTOR, count * entry_size)
    if len(table) < count * entry_size:
        raise ImageLayoutError(f"{path}: the GPT partition entries lie past the end of the "
                               f"file ({size} bytes): the image is truncated")
    if zlib.crc32(table) != entries_crc:
        raise ImageLayoutError(f"{path}: GPT partition entries checksum is wrong: damaged "
                               "partition table")
    parts = []
    for index in range(count):
        raw = table[index * entry_size:(index + 1) * entry_size]
        type_guid = uuid.UUID(bytes_le=raw[:16])
        if type_guid.int == 0:
            continue
        first, last = struct.unpack_from("<QQ", raw, 32)
        parts.append(Partition(index + 1, first * SECTOR, (last - first + 1) * SECTOR,
                               str(type_guid)))
    return parts
