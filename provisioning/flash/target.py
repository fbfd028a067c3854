"""The device (or, for rehearsals and tests, the image file) being written.

A block device is opened with ``O_EXCL``: the kernel refuses if it is
mounted or another program holds it. Before reading back, the page cache is
dropped so that the verify step reads the card, not memory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from provisioning.errors import FlashError

_BLKFLSBUF = 0x1261  # <linux/fs.h>: flush the block device's buffers


class Target:
    """An open write target with positional writes and reads."""

    def __init__(self, path: Path, fd: int, is_block: bool) -> None:
        self.path = path
        self.fd = fd
        self.is_block = is_block

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, to_file: bool = False) -> Target:
        """Open ``path``: a block device exclusively, or (``to_file``) a regular file."""
        target = Path(path)
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise FlashError(f"{target}: {exc.strerror}") from None
        if to_file:
            if mode is not None and not stat.S_ISREG(mode):
                raise FlashError(f"{target}: --to-file writes only regular files, and this is "
                                 "not one (for a device, drop --to-file)")
            flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        else:
            if mode is None or not stat.S_ISBLK(mode):
                raise FlashError(f"{target}: not a block device (see 'meshhub-provision "
                                 "devices'; to write an image file pass --to-file)")
            flags = os.O_RDWR | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(target, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.EBUSY:
                raise FlashError(f"{target}: busy (still mounted or used by another program); "
                                 "close it and try again") from None
            raise FlashError(f"{target}: cannot open for writing ({exc.strerror})") from None
        return cls(target, fd, not to_file)

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        """Write all of ``data`` at ``offset`` (retrying short writes)."""
        view = memoryview(data)
        while view:
            done = os.pwrite(self.fd, view, offset)
            if done == 0:
                raise OSError(errno.ENOSPC, "no space left on the device")
            view = view[done:]
            offset += done

    def read_at(self, offset: int, size: int) -> bytes:
        """Read up to ``size`` bytes at ``offset``."""
        return os.pread(self.fd, size, offset)

    def sync(self) -> None:
        """Flush everything written to the medium."""
        os.fsync(self.fd)

    def drop_cache(self) -> None:
        """Forget cached pages so that reads come from the medium."""
        with contextlib.suppress(OSError):
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if self.is_block:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.fd, _BLKFLSBUF)

    def close(self) -> None:
        """Close the target (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
