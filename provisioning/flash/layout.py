"""How long an image must be, read from its own partition table (MBR or GPT).

A raw image cut short by a failed download still starts with a good
partition table: it is the table that says the file is too short. The first
MiB of the image (what :data:`provisioning.flash.writer.HEAD` holds) is
enough: the MBR is sector 0, a GPT's header sector 1 and its entries
normally sectors 2-33. The end of the last partition (and, for GPT, the
backup header in the last sector) is the least the image must hold; a
partition that starts inside the table or beyond the image is corruption.
A GPT with 4096-byte sectors (never an SD card image) is recognised and
left unchecked rather than refused.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from provisioning.errors import ImageError
from provisioning.flash.devices import human

SECTOR = 512
GPT_PROTECTIVE = 0xEE  #: the MBR partition type that says "the real table is a GPT"


@dataclass(frozen=True)
class Extent:
    """One thing the table points at: ``what`` (for messages), its first and end byte."""

    what: str  #: "partition 2", "the backup GPT header"
    start: int
    end: int


@dataclass(frozen=True)
class Layout:
    """A partition table's scheme and what it points at."""

    scheme: str  #: "mbr", "gpt", "gpt-4k" (not checked) or "none" (a signature, no partitions)
    extents: tuple[Extent, ...] = ()

    @property
    def end(self) -> int:
        """The least number of bytes the image must hold for the table to be whole."""
        return max((e.end for e in self.extents), default=SECTOR)


def read_layout(head: bytes, name: str) -> Layout:
    """Parse the table in ``head`` (the image's first bytes); ImageError when it is damaged."""
    if len(head) < SECTOR or head[510:512] != b"\x55\xaa":
        raise ImageError(f"{name}: does not look like a disk image (no partition table in its "
                         "first sector); check that you downloaded a node image")
    entries = [struct.unpack_from("<B3xB3xII", head, 446 + 16 * i) for i in range(4)]
    if any(kind == GPT_PROTECTIVE for _, kind, _, _ in entries):
        return _gpt(head, name)
    extents = []
    for number, (_, kind, first, count) in enumerate(entries, start=1):
        if not kind or not count:
            continue
        if first == 0:
            raise ImageError(f"{name}: partition {number} starts inside the partition table: "
                             "the image is corrupt; download it again")
        extents.append(Extent(f"partition {number}", first * SECTOR, (first + count) * SECTOR))
    return Layout("mbr" if extents else "none", tuple(extents))


def check_length(layout: Layout, length: int, name: str) -> None:
    """Raise ImageError if an image of ``length`` bytes is shorter than its table says."""
    for extent in layout.extents:
        if extent.start >= length and extent.start > 0:
            raise ImageError(f"{name}: {extent.what} starts at {human(extent.start)}, past the "
                             f"end of the image ({human(length)}): the partition table is "
                             "corrupt or the image truncated; download it again")
        if extent.end > length:
            raise ImageError(f"{name}: {extent.what} ends at {human(extent.end)} but the image "
                             f"has only {human(length)}: the image is truncated or corrupt; "
                             "download it again")


def _gpt(head: bytes, name: str) -> Layout:
    header = head[SECTOR:2 * SECTOR]
    damaged = f"{name}: the GPT partition table is damaged"
    if header[:8] != b"EFI PART" and head[4096:4104] == b"EFI PART":
        return Layout("gpt-4k")  # 4096-byte sectors (not SD card images): not checked
    if header[:8] != b"EFI PART":
        raise ImageError(f"{damaged} (no GPT header at sector 1); download it again")
    size, stored_crc = struct.unpack_from("<II", header, 12)
    if not 92 <= size <= SECTOR:
        raise ImageError(f"{damaged} (header size {size}); download it again")
    check = bytearray(header[:size])
    check[16:20] = bytes(4)
    if zlib.crc32(check) != stored_crc:
        raise ImageError(f"{damaged} (header checksum); download it again")
    backup_lba = struct.unpack_from("<Q", header, 32)[0]
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    table_end = entries_lba * SECTOR + count * entry_size
    if entry_size < 128 or count > 1024 or table_end > len(head):
        raise ImageError(f"{damaged} ({count} entries of {entry_size} bytes at sector "
                         f"{entries_lba}); download it again")
    table = head[entries_lba * SECTOR:table_end]
    if zlib.crc32(table) != entries_crc:
        raise ImageError(f"{damaged} (entries checksum); download it again")
    extents = []
    for index in range(count):
        raw = table[index * entry_size:(index + 1) * entry_size]
        if not any(raw[:16]):
            continue
        first, last = struct.unpack_from("<QQ", raw, 32)
        if first * SECTOR < table_end:
            raise ImageError(f"{name}: partition {index + 1} starts inside the partition "
                             "table: the image is corrupt; download it again")
        extents.append(Extent(f"partition {index + 1}", first * SECTOR, (last + 1) * SECTOR))
    backup = backup_lba * SECTOR
    extents.append(Extent("the backup GPT header", backup, backup + SECTOR))
    return Layout("gpt", tuple(extents))
