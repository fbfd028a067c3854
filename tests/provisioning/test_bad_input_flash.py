"""Bad input to ``meshhub-provision flash``: each case ends with one clear message and,
where the message says so, a target (and an image) left exactly as it was.

Cases from a volunteer's first tries (issue 18): the image given as its own
target (by path, symlink, hard link, loop device, or the device it is stored
on); raw images cut short or with a partition table pointing outside them;
a checksum sidecar that does not match; an image larger than the target; a
small loop device; a plain file given without ``--to-file``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.cli import main
from provisioning.errors import FlashError, ImageError
from provisioning.flash import Target, flash, open_image
from provisioning.flash.target import refuse_same
from provisioning.flash.writer import HEAD
from tests.conftest import attach_loop_device, require_root, require_tool
from tests.provisioning.flash_support import MiB, disk_image

FIXTURES = Path(__file__).parent.parent / "fixtures" / "lsblk"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run meshhub-provision in this process: (exit status, stdout, stderr)."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "self.img"
    path.write_bytes(disk_image(3 * MiB))
    return path


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real loop device (root, losetup) over a 4 MiB file of 0xee bytes."""
    require_root()
    require_tool("losetup")
    backing = tmp_path / "loop-backing.img"
    backing.write_bytes(b"\xee" * (4 * MiB))
    device = attach_loop_device(backing)
    try:
        yield device, backing
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


# --- the image as its own target ------------------------------------------------------

@pytest.mark.parametrize("how", ["path", "symlink", "hard link", "relative path"])
def test_image_is_never_its_own_target(tmp_path: Path, image: Path, how: str,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    before, mtime = digest(image), image.stat().st_mtime_ns
    target = str(image)
    if how == "symlink":
        (tmp_path / "link.img").symlink_to(image)
        target = str(tmp_path / "link.img")
    elif how == "hard link":
        os.link(image, tmp_path / "hard.img")
        target = str(tmp_path / "hard.img")
    elif how == "relative path":
        monkeypatch.chdir(tmp_path)
        target = "./self.img"
    for extra in ((), ("--dry-run",)):
        code, out, err = run(capsys, "flash", str(image), target, "--to-file", "--yes", *extra)
        assert code == 1
        assert "is the image itself" in err and "nothing was written" in err, err
        assert "done" not in out and "Traceback" not in err
    assert digest(image) == before and image.stat().st_mtime_ns == mtime


def test_target_open_refuses_the_image_too(image: Path) -> None:
    with pytest.raises(FlashError, match="is the image itself"):
        Target.open(image, to_file=True, image=image)
    assert len(image.read_bytes()) == 3 * MiB


@pytest.mark.root
def test_loop_device_backed_by_the_image_is_refused(image: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    require_root()
    require_tool("losetup")
    device = attach_loop_device(image)
    before = digest(image)
    try:
        code, _, err = run(capsys, "flash", str(image), device, "--yes",
                           "--i-know-this-is-not-removable", device)
        assert code == 1 and f"{device}: refused: is a loop device over the image" in err, err
        with pytest.raises(FlashError, match="is a loop device over the image"):
            Target.open(device, image=image)
        with pytest.raises(FlashError, match="is the image itself"):  # same device node
            refuse_same(Path(device), Path(device))
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
    assert digest(image) == before


@pytest.mark.root
def test_device_the_image_is_stored_on_is_refused(tmp_path: Path, image: Path) -> None:
    """A device node for the file system holding the image (made with mknod, never opened)."""
    require_root()
    node = tmp_path / "disk-node"
    os.mknod(node, stat.S_IFBLK | 0o600, image.stat().st_dev)
    with pytest.raises(FlashError, match="the image is stored on it"):
        refuse_same(image, node)


def test_partition_of_the_target_holding_the_image_is_found(tmp_path: Path, image: Path) -> None:
    """Through sysfs: the image's file system is partition 1 of the target disk."""
    fs = image.stat().st_dev
    sys_root = tmp_path / "sys"
    disk = sys_root / "devices" / "virtual" / "block" / "card"
    part = disk / "card1"
    part.mkdir(parents=True)
    (disk / "dev").write_text("179:0\n")
    (part / "dev").write_text(f"{os.major(fs)}:{os.minor(fs)}\n")
    (part / "partition").write_text("1\n")
    (sys_root / "dev" / "block").mkdir(parents=True)
    (sys_root / "dev" / "block" / f"{os.major(fs)}:{os.minor(fs)}").symlink_to(part)
    from provisioning.flash.target import whole_disk

    assert whole_disk(fs, sys_root) == os.makedev(179, 0)


# --- truncated and corrupt raw images ---------------------------------------------------

def test_truncated_raw_image_is_refused_before_writing(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "node.img"
    image.write_bytes(disk_image(8 * MiB)[:5 * MiB])  # a download cut at 5 of 8 MiB
    card = tmp_path / "card.img"
    card.write_bytes(b"old card")
    code, out, err = run(capsys, "flash", str(image), str(card), "--to-file", "--yes")
    assert code == 1, out
    assert "partition 1 ends at 8.0 MiB but the image has only 5.0 MiB" in err, err
    assert "truncated" in err and "download it again" in err
    assert card.read_bytes() == b"old card"


def test_truncated_image_inside_a_complete_archive_is_not_usable(tmp_path: Path) -> None:
    """A .gz made from an already cut image: only the table can tell, after streaming."""
    image = tmp_path / "node.img.gz"
    image.write_bytes(gzip.compress(disk_image(8 * MiB)[:5 * MiB]))
    card = tmp_path / "card.img"
    with open_image(image) as source, Target.open(card, to_file=True) as target, \
            pytest.raises(ImageError, match=r"truncated.*not usable — flash again"):
        flash(source, target)
    assert card.read_bytes()[:HEAD] == bytes(HEAD)  # no partition table was written


@pytest.mark.parametrize(("entries", "message"), [
    ([(0x0C, 2048, 2048), (0x83, 1 << 30, 2048)], "partition 2 starts at 512.0 GiB"),
    ([(0x83, 0, 4096)], "partition 1 starts inside the partition table"),
    ([(0x83, 2048, 0xFFFFFFFF)], "partition 1 ends at 2.0 TiB"),
])
def test_partition_table_pointing_outside_is_refused(tmp_path: Path,
                                                     entries: list[tuple[int, int, int]],
                                                     message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "node.img"
    image.write_bytes(disk_image(4 * MiB, entries))
    card = tmp_path / "card.img"
    card.write_bytes(b"old card")
    code, _, err = run(capsys, "flash", str(image), str(card), "--to-file", "--yes")
    assert code == 1 and message in err, err
    assert card.read_bytes() == b"old card"
    with open_image(image) as source, pytest.raises(ImageError, match=message):
        source.check_layout()


def test_truncated_gpt_image_is_refused(tmp_path: Path) -> None:
    require_tool("sfdisk")
    image = tmp_path / "gpt.img"
    image.write_bytes(bytes(8 * MiB))
    subprocess.run(["sfdisk", "--quiet", str(image)], input="label: gpt\n2048,4096,L\n,,L\n",
                   text=True, check=True, capture_output=True)
    with open_image(image) as source:
        assert source.check_layout().scheme == "gpt"
    with open(image, "r+b") as cut:
        cut.truncate(7 * MiB)
    with open_image(image) as source, \
            pytest.raises(ImageError, match=r"backup GPT header .*truncated"):
        source.check_layout()


def test_gpt_with_4k_sectors_is_not_refused(tmp_path: Path) -> None:
    """Not an SD card layout, but a valid one: its table is not checked, nor called damaged."""
    data = bytearray(disk_image(2 * MiB, [(0xEE, 1, 511)]))
    data[512:520] = bytes(8)
    data[4096:4104] = b"EFI PART"
    image = tmp_path / "gpt4k.img"
    image.write_bytes(bytes(data))
    with open_image(image) as source:
        assert source.check_layout().scheme == "gpt-4k"
    data[4096:4104] = bytes(8)  # no GPT header anywhere: damaged
    image.write_bytes(bytes(data))
    with open_image(image) as source, pytest.raises(ImageError, match="no GPT header"):
        source.check_layout()


# --- checksum sidecars --------------------------------------------------------------------

def test_checksum_sidecar_is_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "node.img"
    image.write_bytes(disk_image(3 * MiB))
    sidecar = tmp_path / "node.img.sha256"
    sidecar.write_text(f"{digest(image)}  node.img\n")
    card = tmp_path / "card.img"
    code, out, err = run(capsys, "flash", str(image), str(card), "--to-file", "--yes")
    assert code == 0, err
    assert f"checksum: matches {sidecar}" in out
    data = bytearray(image.read_bytes())
    data[2 * MiB] ^= 1  # one flipped bit, as a bad download or a bad disk gives
    image.write_bytes(bytes(data))
    card.write_bytes(b"old card")
    code, out, err = run(capsys, "flash", str(image), str(card), "--to-file", "--yes")
    assert code == 1
    assert f"does not match its checksum file {sidecar}" in err and "download it again" in err
    assert card.read_bytes() == b"old card"


@pytest.mark.parametrize(("content", "message"), [
    ("not a checksum\n", "line 1: expected"),
    (f"{'ab' * 32}  other.img\n", "does not list node.img"),
])
def test_bad_checksum_sidecar_is_named(tmp_path: Path, content: str, message: str) -> None:
    image = tmp_path / "node.img"
    image.write_bytes(disk_image(2 * MiB))
    (tmp_path / "node.img.sha256").write_text(content)
    with open_image(image) as source, pytest.raises(ImageError, match=message):
        source.check_sidecar()


# --- sizes ----------------------------------------------------------------------------------

@pytest.mark.root
def test_image_larger_than_the_device_is_refused(tmp_path: Path,
                                                 loop: tuple[str, Path]) -> None:
    device, backing = loop
    image = tmp_path / "node.img.gz"  # compressed: its size is only known from its table
    image.write_bytes(gzip.compress(disk_image(6 * MiB)))
    with open_image(image) as source, Target.open(device) as target, \
            pytest.raises(FlashError, match=r"needs 6.0 MiB but .* holds only 4.0 MiB"):
        flash(source, target)
    assert backing.read_bytes() == b"\xee" * (4 * MiB)


def test_compressed_image_larger_than_the_card_is_refused_by_its_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A .gz does not say how large it unpacks: the table's last partition does."""
    image = tmp_path / "node.img.gz"
    image.write_bytes(gzip.compress(disk_image(2 * MiB, [(0x83, 2048, 200 << 21)])))  # 200 GiB
    code, out, err = run(capsys, "flash", str(image), "/dev/sda", "--dry-run",
                         "--lsblk-json", str(FIXTURES / "usb-stick.json"))
    assert code == 1 and "/dev/sda: refused: too small for this image" in err, err
    assert "200.0 GiB" in err and "would erase" not in out


def test_small_loop_device_is_refused_without_blaming_the_running_system(
        image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "flash", str(image), "/dev/loop0", "--yes",
                       "--lsblk-json", str(FIXTURES / "laptop-nvme.json"))
    assert code == 1 and "too small" in err, err
    assert "running system" not in err and "no override" in err
    code, _, err = run(capsys, "flash", str(image), "/dev/nvme0n1", "--yes",
                       "--lsblk-json", str(FIXTURES / "laptop-nvme.json"))
    assert code == 1 and "this would destroy the running system" in err


@pytest.mark.parametrize("exists", [True, False])
def test_plain_file_without_to_file_mentions_to_file(tmp_path: Path, image: Path, exists: bool,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.img"
    if exists:
        card.write_bytes(b"old card")
    code, _, err = run(capsys, "flash", str(image), str(card), "--yes",
                       "--lsblk-json", str(FIXTURES / "laptop-nvme.json"))
    assert code == 1 and "--to-file" in err, err
    assert card.exists() == exists and (not exists or card.read_bytes() == b"old card")
