"""The device (or, for rehearsals and tests, the image file) being written.

A block device is opened with ``O_EXCL``: the kernel refuses if it is
mounted or another program holds it. Before reading back, the page cache is
dropped so that the verify step reads the card, not memory.

Before anything is opened for writing, :func:`refuse_same` makes sure the
target is not the image itself: the same file (by path, symlink or hard
link), a loop device over it, or the device the image is stored on.
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
_SYS = Path("/sys")


def refuse_same(image: Path, target: Path, sys_root: Path = _SYS) -> None:
    """Raise FlashError if writing ``target`` would overwrite ``image`` itself.

    Compared by identity, not by name: the same inode (path, symlink, hard
    link, the same device node), a loop device whose backing file is the
    image, or a block device (or a partition of it) holding the file system
    the image is stored on. Why: writing opens the target with truncation,
    so the image would be destroyed before a single byte was read.
    """
    try:
        source, dest = os.stat(image), os.stat(target)
    except OSError:
        return  # a missing target is a new file; a missing image fails when opened
    refuse = f"{target}: refused: {{}}; nothing was written (choose another target)"
    if (source.st_dev, source.st_ino) == (dest.st_dev, dest.st_ino) or (
            stat.S_ISBLK(source.st_mode) and stat.S_ISBLK(dest.st_mode)
            and source.st_rdev == dest.st_rdev):
        raise FlashError(refuse.format(f"it is the image itself ({image})"))
    if not stat.S_ISBLK(dest.st_mode):
        return
    backing = loop_backing_file(dest.st_rdev, sys_root)
    if backing is not None and _same_file(backing, source):
        raise FlashError(refuse.format(f"is a loop device over the image ({image})"))
    if not stat.S_ISBLK(source.st_mode):
        disk = whole_disk(dest.st_rdev, sys_root)
        if source.st_dev == dest.st_rdev or whole_disk(source.st_dev, sys_root) == disk:
            raise FlashError(refuse.format(f"the image is stored on it ({image}); copy the "
                                           "image to another disk first"))


def _same_file(path: str, other: os.stat_result) -> bool:
    try:
        found = os.stat(path)
    except OSError:
        return False
    return (found.st_dev, found.st_ino) == (other.st_dev, other.st_ino)


def whole_disk(devno: int, sys_root: Path = _SYS) -> int:
    """The device number of the whole disk that ``devno`` is a partition of (else itself)."""
    node = sys_root / "dev" / "block" / f"{os.major(devno)}:{os.minor(devno)}"
    try:
        real = node.resolve(strict=True)
        if (real / "partition").exists():
            major, minor = (real.parent / "dev").read_text(encoding="ascii").split(":")
            return os.makedev(int(major), int(minor))
    except (OSError, ValueError):
        pass
    return devno


def loop_backing_file(devno: int, sys_root: Path = _SYS) -> str | None:
    """The file behind loop device ``devno`` (from sysfs), or None if it is not one."""
    node = sys_root / "dev" / "block" / f"{os.major(devno)}:{os.minor(devno)}"
    try:
        name = (node / "loop" / "backing_file").read_text(encoding="utf-8").rstrip("\n")
    except OSError:
        return None
    return name.removesuffix(" (deleted)") or None


class Target:
    """An open write target with positional writes and reads."""

    def __init__(self, path: Path, fd: int, is_block: bool) -> None:
        self.path = path
        self.fd = fd
        self.is_block = is_block

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, to_file: bool = False,
             image: str | os.PathLike[str] | None = None) -> Target:
        """Open ``path``: a block device exclusively, or (``to_file``) a regular file.

        With ``image``, first refuse a target that is that image (:func:`refuse_same`).
        """
        target = Path(path)
        if image is not None:
            refuse_same(Path(image), target)
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

    def size(self) -> int | None:
        """The capacity of a block device in bytes; None for a file (which grows)."""
        if not self.is_block:
            return None
        return os.lseek(self.fd, 0, os.SEEK_END)

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
