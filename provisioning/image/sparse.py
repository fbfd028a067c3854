"""Copy an image file keeping its holes (a 2 GiB base with 300 MB of data copies 300 MB)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

CHUNK = 4 * 1024 * 1024


def data_ranges(fd: int, size: int) -> list[tuple[int, int]]:
    """The (start, end) byte ranges of ``fd`` that hold data (SEEK_DATA/SEEK_HOLE).

    A file system without hole reporting gives one range: the whole file.
    """
    ranges: list[tuple[int, int]] = []
    position = 0
    try:
        while position < size:
            start = os.lseek(fd, position, os.SEEK_DATA)
            end = os.lseek(fd, start, os.SEEK_HOLE)
            ranges.append((start, min(end, size)))
            position = end
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # no data after position
            return ranges
        if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
            return [(0, size)]
        raise
    return ranges


def sparse_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> int:
    """Copy ``source`` to ``target`` with the same size, writing only its data ranges.

    All-zero chunks inside data ranges are skipped too (seek instead of write),
    so a base image copied before by a tool that filled holes becomes sparse.
    Returns the number of bytes written. ``target`` is created or truncated.
    """
    written = 0
    with open(source, "rb") as src, open(target, "wb") as dst:
        size = os.fstat(src.fileno()).st_size
        for start, end in data_ranges(src.fileno(), size):
            src.seek(start)
            position = start
            while position < end:
                chunk = src.read(min(CHUNK, end - position))
                if not chunk:
                    break
                if chunk.count(0) != len(chunk):
                    dst.seek(position)
                    dst.write(chunk)
                    written += len(chunk)
                position += len(chunk)
        dst.truncate(size)
        dst.flush()
        os.fsync(dst.fileno())
    return written


def copy_range(source: str | os.PathLike[str], source_offset: int,
               target: str | os.PathLike[str], target_offset: int, length: int) -> None:
    """Copy ``length`` bytes between files at the given offsets, skipping holes and zeros.

    The target range is first punched to a hole (``truncate`` for a new file),
    so zeros not written stay zeros. ``target`` must exist.
    """
    with open(source, "rb") as src, open(target, "r+b") as dst:
        size = os.fstat(src.fileno()).st_size
        end_at = min(size, source_offset + length)
        if os.fstat(dst.fileno()).st_size < target_offset + length:
            dst.truncate(target_offset + length)
        _zero_range(dst.fileno(), target_offset, length)
        for start, end in data_ranges(src.fileno(), end_at):
            start, end = max(start, source_offset), min(end, end_at)
            if start >= end:
                continue
            src.seek(start)
            position = start
            while position < end:
                chunk = src.read(min(CHUNK, end - position))
                if not chunk:
                    break
                if chunk.count(0) != len(chunk):
                    dst.seek(target_offset + position - source_offset)
                    dst.write(chunk)
                position += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())


def _zero_range(fd: int, offset: int, length: int) -> None:
    """Make ``length`` bytes at ``offset`` read as zeros: punch a hole, else write zeros."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    punch_keep_size = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE (linux/falloc.h)
    if libc.fallocate(fd, punch_keep_size, ctypes.c_longlong(offset),
                      ctypes.c_longlong(length)) == 0:
        return
    zeros = bytes(CHUNK)
    position = 0
    while position < length:
        count = min(CHUNK, length - position)
        os.pwrite(fd, zeros[:count], offset + position)
        position += count


def allocated_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes the file really occupies on disk (its blocks), for size reports."""
    return Path(path).stat().st_blocks * 512
