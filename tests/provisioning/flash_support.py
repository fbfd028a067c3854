"""Small synthetic disk images for the flashing tests (MBR or GPT, no tools needed)."""

from __future__ import annotations

import hashlib
import struct

MiB = 1 << 20
SECTOR = 512


def mbr(partitions: list[tuple[int, int, int]]) -> bytes:
    """A 512-byte MBR with up to four ``(type, first_sector, sectors)`` entries."""
    sector = bytearray(SECTOR)
    for index, (kind, first, count) in enumerate(partitions):
        struct.pack_into("<B3xB3xII", sector, 446 + 16 * index, 0, kind, first, count)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def disk_image(size: int, partitions: list[tuple[int, int, int]] | None = None,
               seed: bytes = b"meshhub") -> bytes:
    """``size`` bytes of non-repeating content behind a valid MBR.

    By default one partition (type 0x83) covers everything from 1 MiB to the
    last whole sector, so the table fits the image exactly.
    """
    if partitions is None:
        partitions = [(0x83, 2048, size // SECTOR - 2048)]
    body = bytearray(hashlib.shake_256(seed).digest(size))
    body[:SECTOR] = mbr(partitions)
    return bytes(body)
