"""Change an ext4 file system inside an image file with e2fsprogs: no mount, no root.

Why ``debugfs -w`` on the base's own root file system (and not ``mke2fs -d``
to rebuild it): the base's file system keeps everything we do not touch
exactly as its maker left it (owners, modes, capabilities in extended
attributes, hard links, the UUID that ``cmdline.txt`` and ``fstab`` name);
rebuilding it from an unpacked tree would need root to unpack the tree
faithfully. debugfs writes a handful of files into it in one batch, and
``e2fsck -fn`` checks the result. Every path here is addressed as
``IMAGE?offset=BYTES`` (e2fsprogs' own syntax), so the image is never split.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from provisioning.errors import ProvisionError

TOOLS = ("debugfs", "e2fsck", "resize2fs", "dumpe2fs")
EXT_MAGIC_OFFSET = 1024 + 56
#: debugfs messages that are expected in a batch (mkdir of an existing folder,
#: rm of a file that is not there yet); anything else it prints is an error.
_HARMLESS = re.compile(r"^(debugfs [\d.]+ \(|\s*Using EXT2FS Library|ext2fs_mkdir: Ext2 directory "
                       r"already exists|mkdir: Ext2 directory already exists|rm: File not found"
                       r"|Allocated inode|$)")


class Ext4Error(ProvisionError, OSError):
    """An e2fsprogs command failed on the image's root file system."""


def require_e2fsprogs() -> None:
    """Raise Ext4Error naming the package to install when e2fsprogs is missing."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        raise Ext4Error(f"{', '.join(missing)} not found: install e2fsprogs (Debian/Ubuntu: "
                        "'sudo apt install e2fsprogs', macOS: 'brew install e2fsprogs')")


def is_ext4(first_bytes: bytes) -> bool:
    """True when the first 2 KiB of a partition hold an ext2/3/4 superblock."""
    return first_bytes[EXT_MAGIC_OFFSET:EXT_MAGIC_OFFSET + 2] == b"\x53\xef"


@dataclass(frozen=True)
class Inode:
    """What ``debugfs stat`` reports about one path."""

    kind: str  #: "regular", "directory", "symlink"
    mode: int
    uid: int
    gid: int
    size: int
    target: str | None = None  #: a symlink's target


class Ext4Volume:
    """One ext4 file system at byte ``offset`` of ``image``."""

    def __init__(self, image: str | Path, offset: int) -> None:
        require_e2fsprogs()
        self.image = Path(image)
        self.offset = offset
        self.spec = f"{self.image}?offset={offset}"

    def _run(self, argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise Ext4Error(f"{self.image}: {what} failed (exit {result.returncode}): "
                            f"{(result.stderr or result.stdout).strip()}")
        return result

    def batch(self, commands: Iterable[str]) -> None:
        """Run debugfs commands in one write session; raise on any unexpected message."""
        lines = list(commands)
        for line in lines:
            if "\n" in line:
                raise Ext4Error(f"debugfs command contains a line break: {line!r}")
        with tempfile.NamedTemporaryFile("w", prefix="meshhub-debugfs-", suffix=".txt") as cmd:
            cmd.write("\n".join(lines) + "\n")
            cmd.flush()
            result = self._run(["debugfs", "-w", "-f", cmd.name, self.spec], "debugfs")
        problems = [line for line in result.stderr.splitlines() if not _HARMLESS.match(line)]
        if problems:
            raise Ext4Error(f"{self.image}: debugfs on the root file system: "
                            + "; ".join(problems[:5]))

    def stat(self, path: str | PurePosixPath) -> Inode | None:
        """The inode at ``path`` (not following a final symlink), or None when absent."""
        result = subprocess.run(["debugfs", "-R", f"stat {path}", self.spec],
                                capture_output=True, text=True, check=False)
        match = re.search(r"Type: (\w+)\s+Mode:\s+(\d+)", result.stdout)
        owner = re.search(r"User:\s+(\d+)\s+Group:\s+(\d+).*?Size:\s+(\d+)", result.stdout)
        if not match or not owner:
            return None
        target = re.search(r'Fast link dest: "(.*)"', result.stdout)
        return Inode(match.group(1), int(match.group(2), 8), int(owner.group(1)),
                     int(owner.group(2)), int(owner.group(3)),
                     target.group(1) if target else None)

    def read(self, path: str | PurePosixPath) -> bytes:
        """The content of the regular file ``path``."""
        result = subprocess.run(["debugfs", "-R", f"cat {path}", self.spec],
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise Ext4Error(f"{self.image}: cannot read {path} from the root file system")
        return result.stdout

    def free_bytes(self) -> int:
        """Free space for ordinary files (free blocks minus reserved) in bytes."""
        out = self._run(["dumpe2fs", "-h", self.spec], "dumpe2fs").stdout
        fields = dict(re.findall(r"^([A-Za-z ]+):\s+(\d+)$", out, re.MULTILINE))
        try:
            free = int(fields["Free blocks"]) - int(fields.get("Reserved block count", 0))
            return max(0, free) * int(fields["Block size"])
        except KeyError:
            raise Ext4Error(f"{self.image}: dumpe2fs did not report the free blocks") from None

    def block_size(self) -> int:
        """The file system's block size in bytes."""
        out = self._run(["dumpe2fs", "-h", self.spec], "dumpe2fs").stdout
        return int(re.search(r"^Block size:\s+(\d+)$", out, re.MULTILINE).group(1))  # type: ignore[union-attr]

    def resize(self, new_bytes: int) -> None:
        """Grow the file system to ``new_bytes`` (the partition must already be that big)."""
        blocks = new_bytes // self.block_size()
        self.check(force_fix=True)
        self._run(["resize2fs", self.spec, str(blocks)], "resize2fs")

    def check(self, force_fix: bool = False) -> str:
        """``e2fsck -fn`` (read-only); with ``force_fix`` ``-fp`` (resize2fs wants it)."""
        flag = "-fp" if force_fix else "-fn"
        return self._run(["e2fsck", flag, self.spec], f"e2fsck {flag}").stdout


def write_commands(source: Path, path: PurePosixPath, mode: int, uid: int = 0,
                   gid: int = 0) -> list[str]:
    """debugfs commands that put ``source`` at ``path`` (replacing it) with mode and owner."""
    _plain(path)
    if re.search(r"\s", str(source)):
        raise Ext4Error(f"{source}: a path with spaces cannot be given to debugfs; "
                        "build from a folder without spaces")
    return [f"rm {path}", f"write {source} {path}",
            f"set_inode_field {path} mode 0{0o100000 | mode:o}",
            f"set_inode_field {path} uid {uid}", f"set_inode_field {path} gid {gid}"]


def mkdir_commands(path: PurePosixPath, mode: int = 0o755) -> list[str]:
    """debugfs commands that make the folder ``path`` (kept if it exists) with ``mode``."""
    _plain(path)
    return [f"mkdir {path}", f"set_inode_field {path} mode 0{0o040000 | mode:o}"]


def symlink_commands(path: PurePosixPath, target: str) -> list[str]:
    """debugfs commands that make ``path`` a symlink to ``target`` (replacing it)."""
    _plain(path)
    _plain(PurePosixPath(target))
    return [f"rm {path}", f"symlink {path} {target}"]


def tree_commands(source: Path, dest: PurePosixPath) -> list[str]:
    """debugfs commands that copy the folder ``source`` to ``dest`` (which must not exist yet):
    its folders, files (with their permission bits) and symlinks, all owned by root.

    For whole trees such as a node's venv, where a few third-party file names hold
    spaces (setuptools' ``script (dev).tmpl``): every path is quoted as debugfs reads
    it (``"..."``, a ``"`` inside doubled).
    """
    commands = [f"mkdir {_quoted(dest)}"]
    for folder, dirnames, filenames in os.walk(source):
        here = Path(folder)
        node_dir = dest / here.relative_to(source)
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            local, node = here / name, node_dir / name
            if local.is_symlink():
                commands.append(f"symlink {_quoted(node)} {_quoted(os.readlink(local))}")
            elif local.is_dir():
                commands.append(f"mkdir {_quoted(node)}")
                mode = local.stat().st_mode & 0o7777
                if mode != 0o755:
                    commands.append(f"set_inode_field {_quoted(node)} mode 0{0o040000 | mode:o}")
            elif local.is_file():  # debugfs' write keeps the permission bits
                commands.append(f"write {_quoted(local)} {_quoted(node)}")
            else:
                raise Ext4Error(f"{local}: only folders, files and symlinks can be copied")
    return commands


def _quoted(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if "\n" in text or "\r" in text:
        raise Ext4Error(f"{text!r}: a path with a line break cannot be given to debugfs")
    return '"' + text.replace('"', '""') + '"'


def _plain(path: PurePosixPath) -> None:
    if re.search(r"[\s\"'\\]", str(path)):
        raise Ext4Error(f"{path}: node paths with spaces or quotes are not supported")
