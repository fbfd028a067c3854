"""Read and write files in a FAT partition inside an image or on a device, with mtools.

Why mtools (``mcopy -i DISK@@OFFSET``) and not a pure-Python FAT library:
GNU mtools has handled FAT12/16/32 with long file names for decades, is
packaged everywhere (Debian ``mtools``, Homebrew ``mtools``), needs no root
and no mount, and writes only the sectors it changes (directory entries, FAT
chains, FSInfo, the file's clusters). pyfatfs 1.1 was tried on a FAT32 image
and created a second ``cmdline.txt`` next to the existing ``CMDLINE.TXT``
short-name entry and left the FSInfo free-cluster count wrong (``fsck.fat -n``
complained); see docs/customising.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path, PurePosixPath

from provisioning.errors import ProvisionError

MTOOLS = ("mcopy", "mdir", "mmd")


class FatError(ProvisionError, OSError):
    """An mtools command failed on the target's FAT partition."""


def require_mtools() -> None:
    """Raise FatError naming the package to install when mtools is missing."""
    missing = [tool for tool in MTOOLS if shutil.which(tool) is None]
    if missing:
        raise FatError(f"{', '.join(missing)} not found: install mtools (Debian/Ubuntu: "
                       "'sudo apt install mtools', macOS: 'brew install mtools')")


class FatVolume:
    """One FAT file system at byte ``offset`` of ``disk`` (an image file or a device).

    Paths are POSIX-style from the partition's root, e.g. ``meshhub/node.toml``.
    Names are matched case-insensitively, as FAT does.
    """

    def __init__(self, disk: str | os.PathLike[str], offset: int) -> None:
        require_mtools()
        self.disk = Path(disk)
        self.offset = offset
        self._drive = f"{self.disk}@@{offset}"
        self._env = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0",
                     "LC_ALL": "C", "MTOOLSRC": os.devnull}

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run([args[0], "-i", self._drive, *args[1:]], capture_output=True,
                                env=self._env, check=False)
        if check and result.returncode != 0:
            message = result.stderr.decode("utf-8", "replace").strip() or "failed"
            raise FatError(f"{self.disk}: {args[0]} on the FAT partition at byte {self.offset}: "
                           f"{message}")
        return result

    @staticmethod
    def _target(path: str) -> str:
        return "::/" + str(PurePosixPath("/", path)).lstrip("/")

    def listdir(self, path: str = "") -> list[str]:
        """Names in the directory ``path`` (empty for the root); raise FatError if unreadable."""
        out = self._run("mdir", "-b", self._target(path)).stdout.decode("utf-8", "replace")
        names = []
        for line in out.splitlines():
            if line.startswith("::"):
                names.append(PurePosixPath(line[2:].rstrip("/")).name)
        return names

    def exists(self, path: str) -> bool:
        """True when ``path`` names a file or directory (case-insensitive)."""
        parent = str(PurePosixPath(path).parent).strip(".")
        name = PurePosixPath(path).name.lower()
        try:
            return name in {n.lower() for n in self.listdir(parent)}
        except FatError:
            return False

    def read(self, path: str) -> bytes | None:
        """The content of file ``path``, or ``None`` when it does not exist."""
        if not self.exists(path):
            return None
        return self._run("mcopy", "-n", self._target(path), "-").stdout

    def free_bytes(self) -> int:
        """Free space on the file system in bytes (from ``mdir``'s summary)."""
        out = self._run("mdir", "::/").stdout.decode("utf-8", "replace")
        match = re.search(r"([\d\s.,']+) bytes free", out)
        if not match:
            raise FatError(f"{self.disk}: cannot read the free space of the FAT partition")
        return int(re.sub(r"\D", "", match.group(1)))

    def makedirs(self, path: str) -> None:
        """Create directory ``path`` and its parents when missing."""
        current = PurePosixPath()
        for part in PurePosixPath(path).parts:
            current = current / part
            if not self.exists(str(current)):
                self._run("mmd", self._target(str(current)))

    def write(self, path: str, data: bytes) -> None:
        """Create or replace file ``path`` with ``data`` (parents must exist)."""
        with tempfile.TemporaryDirectory(prefix="meshhub-fat-") as tmp:
            source = Path(tmp) / "data"
            source.write_bytes(data)
            self._run("mcopy", "-n", "-o", "-D", "o", str(source), self._target(path))
