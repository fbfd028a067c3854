"""``image build``: a node image from a base image, the overlay and a wheelhouse.

No mount, no root. Steps (docs/images.md, "How the build works"):

1. copy the base to ``OUT.partial`` keeping its holes;
2. find the FAT boot partition (the customise code) and the ext4 root
   (the first ext4 partition after it);
3. if the overlay and wheelhouse do not fit, grow the image file, the root
   partition (``sfdisk``; MBR, root partition last) and its file system
   (``resize2fs``);
4. write the overlay, the wheelhouse, the node's ready venv
   (``/opt/meshhub/venvs/<version>``, made here for the node's platform:
   :mod:`provisioning.image.venv`), the unit links and masks with one
   ``debugfs -w`` batch; a ``meshhub-image.txt`` onto the boot partition
   with mtools;
5. check: ``e2fsck -fn`` on the root, ``fsck.fat -n`` on a copy of the boot
   partition; then rename to ``OUT``. A failed build leaves no ``OUT``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from provisioning.customise.fat import FatVolume
from provisioning.customise.partitions import (
    Partition,
    find_boot_partition,
    read_at,
    read_partitions,
)
from provisioning.errors import ProvisionError
from provisioning.image.ext4 import (
    Ext4Volume,
    is_ext4,
    mkdir_commands,
    symlink_commands,
    tree_commands,
    write_commands,
)
from provisioning.image.recipe import DEFAULT_RECIPE, DIR_MODE, Recipe, load_recipe
from provisioning.image.sparse import allocated_bytes, copy_range, sparse_copy
from provisioning.image.venv import NodeVenv, build_node_venv
from provisioning.image.wheelhouse import (
    PLATFORMS,
    WheelhouseError,
    build_wheelhouse,
    meshhub_version,
)

#: Room kept free on the root file system beyond what the build adds.
MARGIN_BYTES = 64 * 1024 * 1024
#: Rough per-file cost (inode, directory entry, last block).
PER_FILE_BYTES = 8192
IMAGE_INFO = "meshhub-image.txt"
MIB = 1024 * 1024


class ImageBuildError(ProvisionError, OSError):
    """The node image could not be built (the message says why and what to do)."""


@dataclass(frozen=True)
class BuiltImage:
    """The result of a build."""

    path: Path
    version: str
    root: Partition
    boot: Partition
    grown_bytes: int
    files_written: int
    venv: bool  #: the image carries a ready venv (first boot installs nothing)
    size: int  #: apparent size in bytes
    allocated: int  #: bytes on disk (sparse)
    seconds: float


def root_partition(image: Path, boot: Partition) -> Partition:
    """The ext4 root: the first partition after the boot one holding ext2/3/4."""
    _, parts = read_partitions(image)
    for part in parts:
        if part.number != boot.number and is_ext4(read_at(image, part.start, 2048)):
            return part
    raise ImageBuildError(f"{image}: no ext4 root partition found (partitions: "
                          f"{', '.join(str(p.number) for p in parts)}); is this a Raspberry Pi "
                          "OS or Debian image?")


def build_image(base: str | os.PathLike[str], out: str | os.PathLike[str], *,
                wheelhouse: str | os.PathLike[str] | None = None,
                recipe: Recipe | None = None, project: Path | None = None,
                arch: str = "arm64") -> BuiltImage:
    """Build ``out`` from ``base``; see the module docstring. Returns what was built.

    ``wheelhouse`` is a folder holding meshhub's wheel and its dependencies'
    (made by :func:`~provisioning.image.wheelhouse.build_wheelhouse` when not
    given, from ``project``, which needs the internet or a pip cache), for
    ``arch`` (``arm64``: a Raspberry Pi; ``amd64``: a PC or virtual machine).
    """
    started = time.monotonic()
    base_path, out_path = Path(base), Path(out)
    if not base_path.is_file():
        raise ImageBuildError(f"{base_path}: base image not found (download and unpack it "
                              "first: docs/images.md)")
    if out_path.exists() and out_path.resolve() == base_path.resolve():
        raise ImageBuildError(f"{out_path}: --out must differ from --base")
    recipe = recipe or load_recipe(DEFAULT_RECIPE)
    # The base itself first (errors name it, not OUT.partial), before the slow wheel build.
    base_root = root_partition(base_path, find_boot_partition(base_path).partition)
    check_debian(Ext4Volume(base_path, base_root.start), base_path)
    if arch not in PLATFORMS:
        raise ImageBuildError(f"--arch {arch!r}: use one of {', '.join(PLATFORMS)}")
    with tempfile.TemporaryDirectory(prefix="meshhub-image-") as tmp:
        wheels = Path(wheelhouse) if wheelhouse else Path(tmp) / "wheelhouse"
        if wheelhouse is None:
            build_wheelhouse(project or Path(__file__).resolve().parents[2], wheels,
                             platforms=PLATFORMS[arch])
        version = meshhub_version(wheels)
        version_file = Path(tmp) / "VERSION"
        version_file.write_text(version + "\n", encoding="ascii")
        venv = _node_venv(wheels, version, Path(tmp) / "venv", arch)
        with verified_output(out_path) as partial:
            sparse_copy(base_path, partial)
            result = _assemble(partial, recipe, wheels, version_file, version, Path(tmp), venv)
    boot, root, grown, count = result
    return BuiltImage(out_path, version, root, boot, grown, count, venv is not None,
                      out_path.stat().st_size, allocated_bytes(out_path),
                      time.monotonic() - started)


def _node_venv(wheels: Path, version: str, folder: Path, arch: str) -> NodeVenv | None:
    """The node's venv made here, or None when this computer has no Python 3.11 to
    byte-compile it (first boot then installs from the wheelhouse, slower)."""
    try:
        venv = build_node_venv(wheels, version, folder, platforms=PLATFORMS[arch])
    except WheelhouseError as exc:
        raise ImageBuildError(f"{exc}\nIs {wheels} a wheelhouse for {arch}? 'image build "
                              f"--arch {arch}' builds one for it when --wheelhouse is left "
                              "out") from None
    return venv if venv.compiled else None


def _assemble(image: Path, recipe: Recipe, wheels: Path, version_file: Path, version: str,
              tmp: Path, venv: NodeVenv | None) -> tuple[Partition, Partition, int, int]:
    boot = find_boot_partition(image).partition
    root = root_partition(image, boot)
    volume = Ext4Volume(image, root.start)
    wheel_files = sorted(p for p in wheels.iterdir() if p.is_file())
    overlay = recipe.overlay_files()
    venv_files = [p for p in venv.folder.rglob("*") if not p.is_symlink()] if venv else []
    needed = MARGIN_BYTES + sum(f.stat().st_size + PER_FILE_BYTES
                                for f in [*wheel_files, *(o.source for o in overlay),
                                          *venv_files])
    grown = 0
    free = volume.free_bytes()
    if free < needed:
        grown = _grow_root(image, root, needed - free)
        root = root_partition(image, boot)
        _resize_apart(image, root, tmp)

    commands: list[str] = []
    for directory in recipe.overlay_dirs():
        if volume.stat(directory) is None:
            commands += mkdir_commands(directory, DIR_MODE)
    for item in overlay:
        commands += write_commands(_safe_source(item.source, tmp), item.path, item.mode)
    for wheel in wheel_files:
        commands += write_commands(_safe_source(wheel, tmp), recipe.wheelhouse_path / wheel.name,
                                   0o644)
    commands += write_commands(version_file, recipe.wheelhouse_path / "VERSION", 0o644)
    if venv is not None:
        for path in reversed(venv.node_path.parents[:-1]):
            if volume.stat(path) is None:
                commands += mkdir_commands(path, DIR_MODE)
        commands += tree_commands(venv.folder, venv.node_path)
    wants = PurePosixPath("/etc/systemd/system") / f"{recipe.target}.wants"
    for path in (wants.parent, wants):
        if volume.stat(path) is None:
            commands += mkdir_commands(path, DIR_MODE)
    for unit in recipe.enable:
        commands += symlink_commands(wants / unit, str(recipe.unit_dir / unit))
    for unit in recipe.mask:
        commands += symlink_commands(wants.parent / unit, "/dev/null")
    volume.batch(commands)

    info = (f"meshhub node image {version}\nbuilt {time.strftime('%Y-%m-%d', time.gmtime())} "
            f"from a base image with images/recipe.toml\n").encode("ascii")
    FatVolume(image, boot.start).write(IMAGE_INFO, info)
    return boot, root, grown, len(overlay) + len(wheel_files) + 1 + len(venv_files)


def check_debian(volume: Ext4Volume, image: Path) -> None:
    """Raise unless the root file system is Debian 12 or Raspberry Pi OS 12 (its os-release)."""
    text = b""
    for path in ("/usr/lib/os-release", "/etc/os-release"):
        with contextlib.suppress(OSError):
            text = volume.read(path)
        if text.strip():
            break
    fields = dict(line.split("=", 1) for line in text.decode("utf-8", "replace").splitlines()
                  if "=" in line)
    fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
    family = {fields.get("ID", ""), *fields.get("ID_LIKE", "").split()}
    name = fields.get("PRETTY_NAME") or fields.get("ID") or "not a Linux root (no os-release)"
    if not family & {"debian", "raspbian"}:
        raise ImageBuildError(f"{image}: the base's root file system is {name!r}, not Debian or "
                              "Raspberry Pi OS; start from the base named in images/recipe.toml "
                              "or one made by 'meshhub-provision image base' (docs/images.md)")
    if fields.get("VERSION_ID", "12") != "12":
        raise ImageBuildError(f"{image}: the base is {name!r}; meshhub node images need Debian 12 "
                              "(bookworm), whose Python 3.11 the wheelhouse is built for")


def _safe_source(path: Path, tmp: Path) -> Path:
    """``path``, or a copy under ``tmp`` when its name has characters debugfs cannot take."""
    if not any(c.isspace() or c in "\"'\\" for c in str(path)):
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    copy = tmp / "sources" / f"{digest}-{path.name.replace(' ', '_')}"
    copy.parent.mkdir(exist_ok=True)
    shutil.copyfile(path, copy)
    return copy


def _grow_root(image: Path, root: Partition, missing: int) -> int:
    """Grow the image file and its last (root) partition by at least ``missing`` bytes."""
    scheme, parts = read_partitions(image)
    if scheme != "mbr" or max(p.start for p in parts) != root.start:
        raise ImageBuildError(f"{image}: the root file system is {missing // MIB + 1} MiB too "
                              "small and can only be grown automatically on an MBR image whose "
                              "root is the last partition; grow it first (e.g. 'truncate' + "
                              "'sfdisk' + 'resize2fs', docs/images.md)")
    grow = -(-(missing + 32 * MIB) // MIB) * MIB
    old_end = root.start + root.size
    with open(image, "r+b") as disk:
        disk.truncate(max(old_end, disk.seek(0, os.SEEK_END)) + grow)
    result = subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N",
                             str(root.number), str(image)], input=",+\n", text=True,
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"{image}: sfdisk could not grow partition {root.number}: "
                              f"{result.stderr.strip()}")
    return grow


def _resize_apart(image: Path, root: Partition, tmp: Path) -> None:
    """Grow the root file system to its partition, in a file of its own.

    resize2fs on ``IMAGE?offset=`` sets the *image* file's length to the file
    system's size (it ignores the offset), cutting off the end; on a copy of
    the partition it behaves. Holes are kept both ways.
    """
    apart = tmp / "root.ext4"
    with open(apart, "wb") as out:
        out.truncate(root.size)
    copy_range(image, root.start, apart, 0, root.size)
    Ext4Volume(apart, 0).resize(root.size)
    copy_range(apart, 0, image, root.start, root.size)
    apart.unlink()


@contextlib.contextmanager
def verified_output(out_path: Path) -> Iterator[Path]:
    """Yield ``OUT.partial`` to write an image into; publish it as ``out_path`` only once
    :func:`verify_image` passes, and remove it on any failure, so a volunteer never finds a
    half-written or unchecked image under the name they asked for."""
    partial = out_path.with_name(out_path.name + ".partial")
    try:
        yield partial
        verify_image(partial)
        os.replace(partial, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        raise


def verify_image(image: str | os.PathLike[str]) -> None:
    """``e2fsck -fn`` on the root, ``fsck.fat -n`` on the boot partition; raise on problems."""
    path = Path(image)
    boot = find_boot_partition(path).partition
    root = root_partition(path, boot)
    Ext4Volume(path, root.start).check()
    if shutil.which("fsck.fat") is None:
        raise ImageBuildError("fsck.fat not found: install dosfstools to check the boot partition")
    with tempfile.NamedTemporaryFile(prefix="meshhub-boot-", suffix=".fat") as copy:
        with open(path, "rb") as src:
            src.seek(boot.start)
            remaining = boot.size
            while remaining:
                chunk = src.read(min(4 * MIB, remaining))
                if not chunk:
                    break
                copy.write(chunk)
                remaining -= len(chunk)
        copy.flush()
        result = subprocess.run(["fsck.fat", "-n", copy.name], capture_output=True, text=True,
                                check=False)
    if result.returncode != 0:
        raise ImageBuildError(f"{path}: fsck.fat -n found problems on the boot partition: "
                              f"{(result.stdout + result.stderr).strip()[-400:]}")


__all__ = ["BuiltImage", "ImageBuildError", "build_image", "root_partition",
           "verify_image"]
