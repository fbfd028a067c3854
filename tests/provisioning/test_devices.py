"""Which devices ``flash`` offers, refuses, or allows only with the typed override.

The inputs are lsblk --json -O outputs in the shape of real machines
(tests/fixtures/lsblk): a laptop with NVMe, one with an SD reader, a USB
stick next to a USB hard disk and an empty reader, a desktop with a mounted
card and a locked card, and a Raspberry Pi booted from its SD card.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from provisioning.errors import FlashError
from provisioning.flash.devices import assess, parse_lsblk, parse_size
from provisioning.flash.unmount import unmount

FIXTURES = Path(__file__).parent.parent / "fixtures" / "lsblk"


def verdicts(name: str) -> dict[str, str]:
    """path -> 'offered' | 'override' | 'never' for one fixture."""
    result = {}
    for device in parse_lsblk((FIXTURES / f"{name}.json").read_text()):
        a = assess(device)
        result[device.path] = "offered" if a.offered else ("never" if a.fatal else "override")
    return result


@pytest.mark.parametrize(("fixture", "expected"), [
    ("laptop-nvme", {"/dev/nvme0n1": "never", "/dev/zram0": "never", "/dev/loop0": "never"}),
    ("laptop-sd-reader", {"/dev/mmcblk0": "offered", "/dev/nvme0n1": "never"}),
    ("usb-stick", {"/dev/sda": "offered", "/dev/sdb": "override", "/dev/sdc": "never",
                   "/dev/nvme0n1": "never"}),
    ("mounted-card", {"/dev/sda": "never", "/dev/sdb": "never", "/dev/sdc": "offered",
                      "/dev/sdd": "never"}),
    ("booted-from-sd", {"/dev/mmcblk0": "never", "/dev/sda": "offered"}),
])
def test_fixture_verdicts(fixture: str, expected: dict[str, str]) -> None:
    got = verdicts(fixture)
    assert {k: got[k] for k in expected} == expected


def test_reasons_are_readable() -> None:
    devices = {d.path: assess(d) for d in
               parse_lsblk((FIXTURES / "mounted-card.json").read_text())}
    assert devices["/dev/sda"].fatal[0] == "holds / (the running system)"
    assert "used by the running system (/home)" in devices["/dev/sdb"].fatal
    assert any("read-only" in r for r in devices["/dev/sdd"].fatal)
    assert devices["/dev/sdc"].notes == (
        "mounted (/media/ana/bootfs, /media/ana/rootfs): will be unmounted",)
    stick = {d.path: assess(d) for d in parse_lsblk((FIXTURES / "usb-stick.json").read_text())}
    assert any("no medium" in r for r in stick["/dev/sdc"].fatal)
    pi = {d.path: d for d in parse_lsblk((FIXTURES / "booted-from-sd.json").read_text())}
    assert assess(pi["/dev/sda"], image_size=64 << 30).fatal[0].startswith(
        "too small for this image")


def test_sizes_with_and_without_bytes_flag() -> None:
    assert parse_size(512110190592) == 512110190592
    assert parse_size("29.7G") == int(29.7 * (1 << 30))
    assert parse_size("0B") == 0 and parse_size(None) == 0


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MESHHUB_DEBUG"}
    return subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()",
                           *args], capture_output=True, text=True, env=env, check=False)


def test_devices_command_lists_offered_and_excluded() -> None:
    result = cli("devices", "--lsblk-json", str(FIXTURES / "usb-stick.json"))
    assert result.returncode == 0
    offered, excluded = result.stdout.split("Excluded:")
    assert "/dev/sda" in offered and "SanDisk Cruzer Blade" in offered
    assert "/dev/nvme0n1" in excluded and "holds / (the running system)" in excluded
    assert "/dev/sdb" in excluded and "only with --i-know-this-is-not-removable" in excluded


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "node.img"
    path.write_bytes(bytes(510) + b"\x55\xaa" + bytes(2 << 20))
    return path


def test_flash_refuses_system_disk_even_with_override(image: Path) -> None:
    json = str(FIXTURES / "booted-from-sd.json")
    result = cli("flash", str(image), "/dev/mmcblk0", "--lsblk-json", json, "--yes",
                 "--i-know-this-is-not-removable", "/dev/mmcblk0")
    assert result.returncode == 1
    assert "holds / (the running system)" in result.stderr and "no override" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli("flash", str(image), "/dev/mmcblk0p2", "--lsblk-json", json, "--yes")
    assert result.returncode == 1 and "is a partition" in result.stderr


def test_flash_override_must_name_the_device(image: Path) -> None:
    json = str(FIXTURES / "usb-stick.json")
    result = cli("flash", str(image), "/dev/sdb", "--lsblk-json", json, "--dry-run")
    assert result.returncode == 1
    assert "--i-know-this-is-not-removable /dev/sdb" in result.stderr
    result = cli("flash", str(image), "/dev/sdb", "--lsblk-json", json, "--dry-run",
                 "--i-know-this-is-not-removable", "/dev/sda")
    assert result.returncode == 1
    result = cli("flash", str(image), "/dev/sdb", "--lsblk-json", json, "--dry-run",
                 "--i-know-this-is-not-removable", "/dev/sdb")
    assert result.returncode == 0 and "would erase and write /dev/sdb" in result.stdout


def test_dry_run_unmounts_nothing_and_names_only_the_targets_partitions(image: Path) -> None:
    result = cli("flash", str(image), "/dev/sdc", "--dry-run",
                 "--lsblk-json", str(FIXTURES / "mounted-card.json"))
    assert result.returncode == 0, result.stderr
    lines = [x for x in result.stdout.splitlines() if "would run" in x]
    assert [x.split()[-1] for x in lines] == ["/dev/sdc1", "/dev/sdc2"]


def test_unmount_touches_only_the_chosen_device() -> None:
    devices = {d.path: d for d in parse_lsblk((FIXTURES / "mounted-card.json").read_text())}
    calls: list[list[str]] = []

    def runner(argv: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    assert unmount(devices["/dev/sdc"], run=runner) == ["/dev/sdc1", "/dev/sdc2"]
    assert all(argv[-1].startswith("/dev/sdc") for argv in calls)

    def busy(argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "target is busy")

    with pytest.raises(FlashError, match="could not unmount /dev/sdc1: target is busy"):
        unmount(devices["/dev/sdc"], run=busy)
