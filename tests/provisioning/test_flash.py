"""Writing images: every format, first MiB last, read-back verification, bad input."""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import lzma
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from provisioning.errors import FlashError, ImageError
from provisioning.flash import Target, flash, open_image
from provisioning.flash.progress import Progress
from provisioning.flash.writer import HEAD
from tests.conftest import attach_loop_device, require_root, require_tool
from tests.provisioning.flash_support import disk_image

MiB = 1 << 20


def make_image(size: int = 6 * MiB + 12345) -> bytes:
    """A disk-like image: a valid MBR (one partition filling it) and non-repeating content."""
    return disk_image(size)


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zstd_frames(data: bytes) -> bytes:
    """Two zstd frames back to back (as parallel compressors produce)."""
    half = len(data) // 2
    cctx = zstandard.ZstdCompressor()
    return cctx.compress(data[:half]) + cctx.compress(data[half:])


FORMATS: dict[str, Callable[[bytes], bytes]] = {
    "img": lambda d: d,
    "img.gz": gzip.compress,
    "img.xz": lzma.compress,
    "img.zst": zstd_frames,
    "zip": lambda d: zip_of({"readme.txt": b"hello", "node.img": d}),
}


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_every_format_is_written_and_verified(tmp_path: Path, suffix: str) -> None:
    data = make_image()
    image = tmp_path / f"node.{suffix}"
    image.write_bytes(FORMATS[suffix](data))
    target_path = tmp_path / "card.img"
    target_path.write_bytes(b"old card content" * 10 * MiB)  # longer than the image
    with open_image(image) as source, Target.open(target_path, to_file=True) as target:
        result = flash(source, target)
    assert result.written == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert target_path.read_bytes() == data


@pytest.mark.parametrize("suffix", ["img.gz", "img.xz", "img.zst", "zip"])
def test_truncated_archive_leaves_card_unbootable(tmp_path: Path, suffix: str) -> None:
    data = make_image(8 * MiB)
    packed = FORMATS[suffix](data)
    image = tmp_path / f"node.{suffix}"
    cut = len(packed) * 3 // 4 if suffix != "zip" else len(packed) - 200
    image.write_bytes(packed[:cut])
    target_path = tmp_path / "card.img"
    target_path.write_bytes(b"\xff" * (10 * MiB))
    with pytest.raises(ImageError) as caught, open_image(image) as source, \
            Target.open(target_path, to_file=True) as target:
        flash(source, target)
    message = str(caught.value)
    assert "truncated or corrupt" in message or "truncated" in message
    if suffix != "zip":  # a zip's directory is at its end: refused before writing
        assert "not usable — flash again" in message
        assert target_path.read_bytes()[:HEAD] == bytes(HEAD)  # no partition table
    else:
        assert target_path.read_bytes() == b"\xff" * (10 * MiB)  # untouched


@pytest.mark.parametrize(("members", "message"), [
    ({}, "holds no image"),
    ({"readme.txt": b"x"}, r"holds no image \(readme.txt\)"),
    ({"a.img": make_image(MiB), "b.img": make_image(MiB)}, "holds 2 images"),
])
def test_zip_must_hold_exactly_one_image(tmp_path: Path, members: dict[str, bytes],
                                         message: str) -> None:
    image = tmp_path / "node.zip"
    image.write_bytes(zip_of(members))
    with pytest.raises(ImageError, match=message):
        open_image(image)


def test_not_a_disk_image_is_refused_before_writing(tmp_path: Path) -> None:
    image = tmp_path / "notes.img.gz"
    image.write_bytes(gzip.compress(b"just some text\n" * 100000))
    target_path = tmp_path / "card.img"
    target_path.write_bytes(b"keep")
    with open_image(image) as source:
        target = Target(target_path, os.open(target_path, os.O_RDWR), False)
        with target, pytest.raises(ImageError, match="does not look like a disk image"):
            flash(source, target)
    assert target_path.read_bytes() == b"keep"
    seven = tmp_path / "node.7z"
    seven.write_bytes(b"7z\xbc\xaf\x27\x1c" + bytes(100))
    with pytest.raises(ImageError, match="7-Zip archives are not supported"):
        open_image(seven)


def test_regular_file_needs_to_file(tmp_path: Path) -> None:
    (tmp_path / "card.img").write_bytes(b"")
    with pytest.raises(FlashError, match="not a block device"):
        Target.open(tmp_path / "card.img")


def test_verify_detects_corruption(tmp_path: Path) -> None:
    image = tmp_path / "node.img.xz"
    image.write_bytes(lzma.compress(make_image()))

    def corrupt(target: Target) -> None:
        target.write_at(3 * MiB + 17, b"\x00\x01")
        target.sync()

    with open_image(image) as source, Target.open(tmp_path / "card.img", to_file=True) as tgt, \
            pytest.raises(FlashError, match=r"verification failed.*not usable — flash again"):
        flash(source, tgt, before_verify=corrupt)


class SpyTarget(Target):
    """Records every write (offset, length, first bytes) and may fail after some."""

    def __init__(self, path: Path, fail_after: int | None = None) -> None:
        super().__init__(path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644), False)
        self.writes: list[tuple[int, int, bytes]] = []
        self.fail_after = fail_after

    def write_at(self, offset: int, data: bytes | memoryview) -> None:
        if self.fail_after is not None and len(self.writes) >= self.fail_after:
            raise OSError(errno.EIO, "Input/output error")
        self.writes.append((offset, len(data), bytes(data[:4])))
        super().write_at(offset, data)


def test_first_mib_is_zeroed_first_and_written_last(tmp_path: Path) -> None:
    data = make_image()
    image = tmp_path / "node.img.gz"
    image.write_bytes(gzip.compress(data))
    with open_image(image) as source, SpyTarget(tmp_path / "card.img") as spy:
        flash(source, spy)
    first, *middle, last = spy.writes
    assert first == (0, HEAD, bytes(4))                # zeros over the partition table
    assert last == (0, HEAD, data[:4])                 # the real first MiB, at the very end
    assert all(offset >= HEAD for offset, _, _ in middle)
    assert sum(length for _, length, _ in middle) == len(data) - HEAD


def test_device_failing_mid_write_is_reported_not_usable(tmp_path: Path) -> None:
    image = tmp_path / "node.img"
    image.write_bytes(make_image())
    with open_image(image) as source, SpyTarget(tmp_path / "card.img", fail_after=2) as spy, \
            pytest.raises(FlashError, match=r"failed after .*Input/output error.*not usable"):
        flash(source, spy)
    assert (tmp_path / "card.img").read_bytes()[:HEAD] == bytes(HEAD)


def test_killed_mid_write_leaves_first_mib_zero(tmp_path: Path) -> None:
    """A real process killed while writing: the target's first MiB is still zeros."""
    image = tmp_path / "node.img"
    image.write_bytes(make_image(64 * MiB))
    card = tmp_path / "card.img"
    card.write_bytes(make_image(2 * MiB)[::-1])  # an old, different "partition table"
    marker = tmp_path / "halfway"
    script = f"""
import os, signal
from pathlib import Path
from provisioning.flash import Target, open_image
from provisioning.flash.writer import write_image

class Stop(Target):
    def write_at(self, offset, data):
        super().write_at(offset, data)
        if offset >= 16 << 20:
            Path({str(marker)!r}).touch()
            os.kill(os.getpid(), signal.SIGKILL)

with open_image({str(image)!r}) as source:
    target = Target.open({str(card)!r}, to_file=True)
    write_image(source, Stop(target.path, target.fd, False))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False,
                            cwd=Path(__file__).parent.parent.parent)
    assert result.returncode == -9, result.stderr
    assert marker.exists()
    content = card.read_bytes()
    assert content[:HEAD] == bytes(HEAD) and len(content) > 16 * MiB


def test_flash_command_to_file(tmp_path: Path) -> None:
    data = make_image()
    image = tmp_path / "node.img.zst"
    image.write_bytes(zstd_frames(data))
    card = tmp_path / "card.img"
    env = {k: v for k, v in os.environ.items() if k != "MESHHUB_DEBUG"}
    result = subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()",
                             "flash", str(image), str(card), "--to-file", "--yes"],
                            capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout and hashlib.sha256(data).hexdigest() in result.stdout
    assert "writing" in result.stderr and "/s" in result.stderr and "left" in result.stderr
    assert card.read_bytes() == data


def test_progress_shows_speed_and_time_left() -> None:
    bar = Progress("writing", total=100 * MiB, stream=None)
    line = bar.render(25 * MiB, None, elapsed=5.0)
    assert "25%" in line and "5.0 MiB/s" in line and "0:15 left" in line


@pytest.mark.root
def test_loop_device(tmp_path: Path) -> None:
    """A real block device: O_EXCL open, cache dropped before the read-back."""
    require_root()
    require_tool("losetup")
    backing = tmp_path / "loop-backing.img"
    backing.write_bytes(bytes(16 * MiB))
    data = make_image(9 * MiB)
    image = tmp_path / "node.img.gz"
    image.write_bytes(gzip.compress(data))
    loop = attach_loop_device(backing)
    try:
        with open_image(image) as source, Target.open(loop) as target:
            assert target.is_block
            with pytest.raises(FlashError, match="busy"):
                Target.open(loop)  # O_EXCL: a second writer is refused
            result = flash(source, target)
        assert result.sha256 == hashlib.sha256(data).hexdigest()
        with open(loop, "rb") as check:
            assert check.read(len(data)) == data
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
