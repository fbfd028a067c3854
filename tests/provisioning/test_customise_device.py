"""``customise`` on a block device: a loop device over a test image (root only), always
detached again; and the mounted-partition refusal."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.images import MIB, make_image, make_registry
from provisioning.customise import mounted_partitions
from tests.conftest import require_root, require_tool
from tests.provisioning.test_customise import customise, fat_read, fsck_partition


@pytest.mark.root
def test_customise_a_loop_device(tmp_path: Path) -> None:
    require_root()
    require_tool("losetup", "sfdisk", "mkfs.vfat", "mke2fs", "mcopy", "fsck.fat")
    reg = make_registry(tmp_path)
    image = make_image(tmp_path / "card.img", boot_mib_at=4)
    device = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True,
                            text=True, check=True).stdout.strip()
    try:
        result = customise(Path(device), "elm-1", reg)
        assert result.returncode == 0, result.stderr
        assert "partition 1 (MBR, FAT32, at 4 MiB)" in result.stdout
    finally:
        subprocess.run(["losetup", "-d", device], check=True)
    assert fat_read(image, 4 * MIB, "meshhub/node.toml").startswith(b"# node.toml for elm-1")
    fsck_partition(image, 4 * MIB, 64 * MIB, tmp_path)


def test_mounted_partitions_are_found_only_for_that_device() -> None:
    mounts = ("/dev/sdc1 /media/ana/bootfs vfat rw 0 0\n"
              "/dev/sdc2 /media/ana/rootfs ext4 rw 0 0\n"
              "/dev/sdcd1 /mnt/other vfat rw 0 0\n"
              "/dev/mmcblk0p1 /media/ana/boot vfat rw 0 0\n")
    assert mounted_partitions(Path("/dev/sdc"), mounts) == ["/dev/sdc1", "/dev/sdc2"]
    assert mounted_partitions(Path("/dev/mmcblk0"), mounts) == ["/dev/mmcblk0p1"]
    assert mounted_partitions(Path("/dev/sdd"), mounts) == []
