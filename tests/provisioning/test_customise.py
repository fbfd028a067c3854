"""``meshhub-provision customise``: real images built with sfdisk/mkfs.vfat/mke2fs, read back
with mtools, checked with fsck.fat and e2fsck, bad inputs leave the target unchanged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench.images import MIB, make_image, make_registry
from node.config import parse_config
from node.trust.registry import RegistryTrust
from tests.conftest import require_tool

TOOLS = ("sfdisk", "mkfs.vfat", "mke2fs", "mcopy", "mdir", "mmd", "fsck.fat", "e2fsck")
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMx1w1X2q3vXh0x7m8r1 ana@laptop\n"


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tool(*TOOLS)


@pytest.fixture
def reg(tmp_path: Path) -> Path:
    return make_registry(tmp_path, ("elm-1", "elm-2", "elm-3"), revoke=("elm-3",))


def provision(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MESHHUB_DEBUG"}
    return subprocess.run([sys.executable, "-c", "from provisioning.cli import main; main()",
                           *args], capture_output=True, text=True, env=env, check=False)


def customise(target: Path, node: str, reg: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return provision("customise", str(target), node, "--registry", str(reg), "--secrets",
                     str(reg.parent.parent / "secrets"), *extra)


def fat_read(image: Path, offset: int, path: str) -> bytes:
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    result = subprocess.run(["mcopy", "-n", "-i", f"{image}@@{offset}", f"::{path}", "-"],
                            capture_output=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outside(image: Path, start: int, size: int) -> str:
    data = image.read_bytes()
    return hashlib.sha256(data[:start] + data[start + size:]).hexdigest()


def fsck_partition(image: Path, start: int, size: int, tmp: Path) -> str:
    """fsck.fat -n on the partition's byte range (copied out: no root, no loop device)."""
    part = tmp / "part.fat"
    with open(image, "rb") as src:
        src.seek(start)
        part.write_bytes(src.read(size))
    result = subprocess.run(["fsck.fat", "-n", str(part)], capture_output=True, text=True,
                            check=False)
    part.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "wrong" not in result.stdout and "orrect" not in result.stdout, result.stdout
    return result.stdout


@pytest.mark.tools
@pytest.mark.parametrize(("at_mib", "fat_bits", "gpt"),
                         [(4, 32, False), (8, 32, False), (8, 32, True), (4, 16, False)],
                         ids=["mbr-fat32-4MiB", "mbr-fat32-8MiB", "gpt-fat32-8MiB",
                              "mbr-fat16-4MiB"])
def test_customise_writes_node_files_and_fsck_passes(reg: Path, tmp_path: Path, at_mib: int,
                                                     fat_bits: int, gpt: bool) -> None:
    image = make_image(tmp_path / "node.img", boot_mib_at=at_mib, boot_mib=64 if fat_bits == 32
                       else 32, fat_bits=fat_bits, gpt=gpt)
    start = at_mib * MIB
    size = (64 if fat_bits == 32 else 32) * MIB
    untouched = outside(image, start, size)
    ssh_key = tmp_path / "id_ed25519.pub"
    ssh_key.write_text(SSH_KEY)

    result = customise(image, "elm-2", reg, "--ssh-key", str(ssh_key), "--timezone",
                       "Europe/Berlin")
    assert result.returncode == 0, result.stderr
    assert f"FAT{fat_bits}" in result.stdout and "read back identical" in result.stdout

    # what the node will read: node.toml valid and from the registry
    node = tomllib.loads((reg / "nodes" / "elm-2.toml").read_text())
    cfg = parse_config(fat_read(image, start, "meshhub/node.toml").decode())
    assert (cfg.node.name, cfg.mesh.address, cfg.clients.subnet) == (
        "elm-2", node["mesh_address"], node["client_subnet"])
    assert (cfg.wifi.ssid, cfg.wifi.country, cfg.node.community) == ("elm-mesh", "DE",
                                                                      "Elm Street")
    secrets = reg.parent.parent / "secrets"
    assert fat_read(image, start, "meshhub/identity.key") == (secrets / "elm-2.key").read_bytes()
    exported = tmp_path / "exported.json"
    anchors = tmp_path / "anchors.json"
    assert provision("registry", "-r", str(reg), "export", str(exported)).returncode == 0
    assert provision("registry", "-r", str(reg), "anchors", str(anchors)).returncode == 0
    assert fat_read(image, start, "meshhub/snapshot.json") == exported.read_bytes()
    assert fat_read(image, start, "meshhub/anchors.json") == anchors.read_bytes()
    assert fat_read(image, start, "meshhub/firstboot.sh").startswith(b"#!/bin/sh")
    # the base system's own first boot (Bookworm 2024-07: firstrun.sh + systemd.run)
    firstrun = fat_read(image, start, "firstrun.sh").decode()
    assert "elm-2" in firstrun and SSH_KEY.strip() in firstrun and "Europe/Berlin" in firstrun
    cmdline = fat_read(image, start, "cmdline.txt").decode()
    assert cmdline.count("\n") == 1 and "systemd.run=/boot/firstrun.sh" in cmdline
    assert "cfg80211.ieee80211_regdom=DE" in cmdline and "root=PARTUUID=4e639091-02" in cmdline
    assert fat_read(image, start, "config.txt").startswith(b"# For more options")

    fsck_partition(image, start, size, tmp_path)
    assert outside(image, start, size) == untouched, "bytes outside the boot partition changed"
    root = subprocess.run(["e2fsck", "-fn", f"{image}?offset={start + size}"],
                          capture_output=True, text=True, check=False)
    assert root.returncode == 0, root.stdout + root.stderr


@pytest.mark.tools
def test_customise_again_replaces_and_does_not_repeat(reg: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "node.img")
    assert customise(image, "elm-1", reg).returncode == 0
    result = customise(image, "elm-2", reg, "--wifi-country", "fr")
    assert result.returncode == 0, result.stderr
    cmdline = fat_read(image, 8 * MIB, "cmdline.txt").decode()
    assert cmdline.count("systemd.run=") == 1 and cmdline.count("regdom=") == 1
    assert "regdom=FR" in cmdline
    assert parse_config(fat_read(image, 8 * MIB, "meshhub/node.toml").decode()).node.name == "elm-2"
    fsck_partition(image, 8 * MIB, 64 * MIB, tmp_path)


@pytest.mark.tools
@pytest.mark.parametrize(("files", "expected"), [
    ({"cmdline.txt": b"console=tty1 root=PARTUUID=1-02 rootwait "
                     b"init=/usr/lib/raspberrypi-sys-mods/firstboot\n",
      "issue.txt": b"Raspberry Pi reference 2024-11-19\n"}, "custom.toml"),
    ({"cmdline.txt": b"console=tty1 root=PARTUUID=1-02 rootwait\n",
      "user-data": b"#cloud-config\n", "meta-data": b"instance-id: rpios\n",
      "network-config": b"network:\n  version: 2\n"}, "cloud-init"),
    ({"cmdline.txt": b"console=tty1 root=PARTUUID=1-02 rootwait\n"}, "firstrun"),
    ({"config.txt": b"arm_64bit=1\n"}, "none"),
], ids=["custom.toml", "cloud-init", "firstrun", "none"])
def test_base_os_format_is_detected_and_written(reg: Path, tmp_path: Path,
                                                files: dict[str, bytes], expected: str) -> None:
    image = make_image(tmp_path / "node.img", files=files)
    ssh_key = tmp_path / "key.pub"
    ssh_key.write_text(SSH_KEY)
    result = customise(image, "elm-1", reg, "--ssh-key", str(ssh_key), "--timezone", "UTC")
    assert result.returncode == 0, result.stderr
    assert f"base system format: {expected}" in result.stdout
    start = 8 * MIB
    if expected == "custom.toml":
        data = tomllib.loads(fat_read(image, start, "custom.toml").decode())
        assert data["config_version"] == 1 and data["system"]["hostname"] == "elm-1"
        assert data["ssh"]["authorized_keys"] == [SSH_KEY.strip()]
        assert data["locale"]["timezone"] == "UTC"
    elif expected == "cloud-init":
        user_data = fat_read(image, start, "user-data").decode()
        assert user_data.startswith("#cloud-config\n")
        assert 'hostname: "elm-1"' in user_data and SSH_KEY.strip() in user_data
        assert fat_read(image, start, "meta-data") == b"instance-id: rpios\n"
    if expected == "none":
        assert "only the meshhub files" in result.stdout
    else:
        cmdline = fat_read(image, start, "cmdline.txt").decode()
        assert "cfg80211.ieee80211_regdom=DE" in cmdline
        assert ("systemd.run=" in cmdline) == (expected == "firstrun")
    fsck_partition(image, start, 64 * MIB, tmp_path)


@pytest.mark.tools
def test_debian_arm64_base_gets_no_firstrun_but_its_wifi_country(reg: Path,
                                                                 tmp_path: Path) -> None:
    """``image base --arch arm64`` has a Pi's cmdline.txt (Debian's raspi-firmware) but no
    Raspberry Pi OS first-boot tooling: a systemd.run= there stopped short of multi-user."""
    from provisioning.customise.base_os import MESHHUB_BASE
    from provisioning.image.base import BASE_INFO

    assert MESHHUB_BASE == BASE_INFO
    image = make_image(tmp_path / "node.img", files={
        "cmdline.txt": b"console=tty0 root=PARTUUID=9840d7d5-02 rw net.ifnames=0 rootwait\n",
        "config.txt": b"arm_64bit=1\nkernel=vmlinuz-6.1.0-57-arm64\n",
        BASE_INFO: b"meshhub base image: Debian 12 arm64\n"})
    result = customise(image, "elm-1", reg)
    assert result.returncode == 0, result.stderr
    assert "base system format: none" in result.stdout
    assert "a Debian base made by 'image base'" in result.stdout
    cmdline = fat_read(image, 8 * MIB, "cmdline.txt").decode()
    assert cmdline == ("console=tty0 root=PARTUUID=9840d7d5-02 rw net.ifnames=0 rootwait "
                       "cfg80211.ieee80211_regdom=DE\n")
    names = subprocess.run(["mdir", "-b", "-i", f"{image}@@{8 * MIB}", "::"],
                           capture_output=True, text=True, check=True,
                           env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout.lower()
    assert "firstrun.sh" not in names and "custom.toml" not in names


@pytest.mark.tools
def test_sparse_4gib_image_is_not_copied(reg: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "big.img", total_mib=4096)
    used_before = image.stat().st_blocks * 512
    assert customise(image, "elm-1", reg).returncode == 0
    assert image.stat().st_size == 4096 * MIB
    assert image.stat().st_blocks * 512 - used_before < 4 * MIB, "image was rewritten"


def _bad_cases(tmp_path: Path) -> dict[str, tuple[Path, str, tuple[str, ...], str]]:
    no_fat = tmp_path / "no-fat.img"
    make_image(no_fat, files={})
    with open(no_fat, "r+b") as disk:  # wipe the FAT boot sector: ext4 and an empty partition
        disk.seek(8 * MIB)
        disk.write(b"\0" * 4096)
    truncated = make_image(tmp_path / "truncated.img")
    with open(truncated, "r+b") as disk:
        disk.truncate(40 * MIB)
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(os.urandom(3 * MIB))
    good = make_image(tmp_path / "good.img")
    bad_key = tmp_path / "id_ed25519"
    bad_key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEA\n")
    return {
        "no FAT partition": (no_fat, "elm-1", (), "no FAT boot partition"),
        "truncated image": (truncated, "elm-1", (), "truncated"),
        "garbage file": (garbage, "elm-1", (), "no partition table"),
        "unknown node": (good, "elm-9", (), "no node named 'elm-9'"),
        "revoked node": (good, "elm-3", (), "is revoked"),
        "private key as ssh key": (good, "elm-1", ("--ssh-key", str(bad_key)),
                                   "not an SSH public key"),
        "bad time zone": (good, "elm-1", ("--timezone", "Mars/Olympus"), "not a known time zone"),
        "bad country": (good, "elm-1", ("--wifi-country", "XX"), "wifi.country"),
    }


@pytest.mark.tools
def test_bad_input_gives_clear_message_and_leaves_target_unchanged(reg: Path,
                                                                  tmp_path: Path) -> None:
    for label, (target, node, extra, message) in _bad_cases(tmp_path).items():
        before = sha(target)
        result = customise(target, node, reg, *extra)
        assert result.returncode == 1, f"{label}: {result.stdout}"
        assert result.stderr.startswith("meshhub-provision: error: "), f"{label}: {result.stderr}"
        assert message in result.stderr, f"{label}: {result.stderr}"
        assert "Traceback" not in result.stderr
        assert sha(target) == before, f"{label}: target changed"


@pytest.mark.tools
def test_registry_changed_since_signing_is_refused(reg: Path, tmp_path: Path) -> None:
    from provisioning.registry import ops

    ops.register_node(reg, "elm-4", secrets=reg.parent.parent / "secrets")
    image = make_image(tmp_path / "node.img")
    before = sha(image)
    result = customise(image, "elm-4", reg)
    assert result.returncode == 1 and "changed since it was signed" in result.stderr
    assert sha(image) == before


@pytest.mark.tools
def test_first_boot_hook_installs_what_the_node_trusts(reg: Path, tmp_path: Path) -> None:
    image = make_image(tmp_path / "node.img")
    assert customise(image, "elm-1", reg).returncode == 0
    card = tmp_path / "boot" / "meshhub"
    card.mkdir(parents=True)
    names = ["node.toml", "identity.key", "snapshot.json", "anchors.json", "firstboot.sh",
             "README.txt", "SHA256SUMS", "roaming.secret", "mesh.key", "tls.crt", "tls.key"]
    for name in names:
        (card / name).write_bytes(fat_read(image, 8 * MIB, f"meshhub/{name}"))
    root = tmp_path / "root"
    env = {**os.environ, "MESHHUB_ROOT": str(root)}

    def hook() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(card / "firstboot.sh")], capture_output=True,
                              text=True, env=env, check=False)

    (card / "node.toml").write_bytes(b"# tampered\n" + (card / "node.toml").read_bytes())
    damaged = hook()
    assert damaged.returncode == 1 and "SHA256SUMS" in damaged.stdout
    assert not (root / "etc" / "meshhub" / "node.toml").exists()
    (card / "node.toml").write_bytes(fat_read(image, 8 * MIB, "meshhub/node.toml"))

    result = hook()
    assert result.returncode == 0, result.stdout + result.stderr
    data = root / "var" / "lib" / "meshhub"
    key = (reg.parent.parent / "secrets" / "elm-1.key").read_bytes()
    assert (data / "identity.key").read_bytes() == key
    assert (data / "identity.key").stat().st_mode & 0o777 == 0o600
    assert not (card / "identity.key").exists(), "the secret key stays on the FAT partition"
    # The community's roaming secret: the same on every card, installed like the key.
    community = (reg.parent.parent / "secrets" / "roaming.secret").read_bytes()
    assert (data / "roaming.secret").read_bytes() == community
    assert (data / "roaming.secret").stat().st_mode & 0o777 == 0o600
    assert not (card / "roaming.secret").exists()
    # And its mesh key, the SAE password of the links between nodes.
    mesh_key = (reg.parent.parent / "secrets" / "mesh.key").read_bytes()
    assert (data / "mesh.key").read_bytes() == mesh_key
    assert (data / "mesh.key").stat().st_mode & 0o777 == 0o600
    assert not (card / "mesh.key").exists()
    # The HTTPS certificate whose fingerprint the poster prints (made by customise).
    secrets = reg.parent.parent / "secrets"
    assert (data / "tls" / "node.crt").read_bytes() == (secrets / "elm-1.tls.crt").read_bytes()
    assert (data / "tls" / "node.key").read_bytes() == (secrets / "elm-1.tls.key").read_bytes()
    assert (data / "tls" / "node.key").stat().st_mode & 0o777 == 0o600
    assert (data / "tls" / "node.crt").stat().st_mode & 0o777 == 0o644
    assert not (card / "tls.key").exists() and (card / "tls.crt").exists()
    cfg = parse_config((root / "etc" / "meshhub" / "node.toml").read_text())
    assert cfg.roam.enabled
    assert cfg.mesh.security == "sae" and cfg.mesh.mode == "802.11s"
    node = tomllib.loads((reg / "nodes" / "elm-1.toml").read_text())
    assert cfg.node.name == "elm-1"
    trust = RegistryTrust(data / "registry")
    assert trust.is_trusted(node["public_key"]) and trust.serial == 1
    revoked = tomllib.loads((reg / "nodes" / "elm-3.toml").read_text())["public_key"]
    assert not trust.is_trusted(revoked)
    again = hook()
    assert again.returncode == 0 and "already installed" in again.stdout
    assert "installed node.toml" in (card / "firstboot.log").read_text()
