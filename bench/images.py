"""Synthetic node images and a signed registry, for the benchmarks and the tests.

Images are built the way FACTS.md says works: FAT made in its own file, then dd'd in place.

Shared by bench/customise.py, bench/image.py, bench/vm.py and the provisioning tests
(bench/ imports nothing from tests/; the tests import these from here).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

MIB = 1024 * 1024


def run(*argv: str, stdin: str | None = None) -> None:
    """Run a tool, failing with its output."""
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv}: {result.stdout}{result.stderr}")


def make_fat(path: Path, size_mib: int, fat_bits: int, files: dict[str, bytes]) -> Path:
    """A FAT12/16/32 file system file with ``files`` in its root (mcopy into the file)."""
    with open(path, "wb") as out:
        out.truncate(size_mib * MIB)
    run("mkfs.vfat", "-F", str(fat_bits), "-n", "BOOTFS", str(path))
    for name, data in files.items():
        src = path.with_name(f"src-{name}")
        src.write_bytes(data)
        run("mcopy", "-i", str(path), str(src), f"::{name}")
        src.unlink()
    return path


def make_image(path: Path, *, boot_mib_at: int = 8, boot_mib: int = 64, fat_bits: int = 32,
               gpt: bool = False, total_mib: int | None = None, ext4: bool = True,
               files: dict[str, bytes] | None = None) -> Path:
    """A Raspberry Pi OS-like image: FAT boot at ``boot_mib_at`` MiB, then an ext4 root.

    ``total_mib`` makes a larger (sparse) image for benchmarks.
    """
    root_mib = 16
    size = total_mib or boot_mib_at + boot_mib + root_mib + 2
    with open(path, "wb") as out:
        out.truncate(size * MIB)
    sectors = MIB // 512
    boot_type, root_type = ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
                            "0FC63DAF-8483-4772-8E79-3D69D8477DE4") if gpt else ("c", "83")
    table = ("label: gpt\n" if gpt else "label: dos\n") + \
        f"start={boot_mib_at * sectors}, size={boot_mib * sectors}, type={boot_type}\n" + \
        f"start={(boot_mib_at + boot_mib) * sectors}, size={root_mib * sectors}, type={root_type}\n"
    run("sfdisk", "-q", str(path), stdin=table)
    fat = make_fat(path.with_suffix(".fat"), boot_mib, fat_bits,
                   files if files is not None else default_boot_files())
    run("dd", f"if={fat}", f"of={path}", "bs=1M", f"seek={boot_mib_at}", "conv=notrunc",
        "status=none")
    fat.unlink()
    if ext4:
        root = path.with_suffix(".ext4")
        with open(root, "wb") as out:
            out.truncate(root_mib * MIB)
        run("mke2fs", "-q", "-t", "ext4", "-F", str(root))
        run("dd", f"if={root}", f"of={path}", "bs=1M", f"seek={boot_mib_at + boot_mib}",
            "conv=notrunc", "status=none")
        root.unlink()
    return path


def default_boot_files() -> dict[str, bytes]:
    """A Bookworm-2024-like boot partition: cmdline.txt, config.txt, issue.txt."""
    return {
        "cmdline.txt": b"console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 "
                       b"rootfstype=ext4 fsck.repair=yes rootwait quiet "
                       b"init=/usr/lib/raspberrypi-sys-mods/firstboot\n",
        "config.txt": b"# For more options and information see\narm_64bit=1\n",
        "issue.txt": b"Raspberry Pi reference 2024-07-04\n",
    }


def make_registry(base: Path, nodes: tuple[str, ...] = ("elm-1",), *, ssid: str = "elm-mesh",
                  revoke: tuple[str, ...] = ()) -> Path:
    """A signed registry (one admin, threshold 1) at base/repo/registry; keys in base/secrets."""
    from provisioning.registry import ops, signing

    (base / "repo" / ".git").mkdir(parents=True)
    admin = base / "keys" / "ana.key"
    ops.new_admin_key(admin)
    root = base / "repo" / "registry"
    ops.init_registry(root, name="Elm Street", ssid=ssid, country="DE",
                      admin_keys=[("ana", str(admin))], threshold=1)
    for index, name in enumerate(nodes):
        ops.register_node(root, name, secrets=base / "secrets", owner="Ana",
                          location=(52.52 + index / 1000, 13.405) if index == 0 else None)
    for name in revoke:
        ops.revoke_node(root, name)
    signing.sign(root, admin)
    return root


def make_base_image(path: Path, *, root_mib: int = 128, total_mib: int | None = None,
                    boot_mib: int = 64) -> Path:
    """An MBR image: FAT32 boot at 8 MiB (``boot_mib``), ext4 root after it, root last.

    ``total_mib`` makes the file larger (sparse) with the root filling it, as a
    real 2 GiB card image.
    """
    boot_at = 8
    if total_mib is not None:
        root_mib = total_mib - boot_at - boot_mib
    total = boot_at + boot_mib + root_mib
    with open(path, "wb") as out:
        out.truncate(total * MIB)
    sectors = MIB // 512
    run("sfdisk", "-q", str(path), stdin=(
        "label: dos\n"
        f"start={boot_at * sectors}, size={boot_mib * sectors}, type=c\n"
        f"start={(boot_at + boot_mib) * sectors}, size={root_mib * sectors}, type=83\n"))
    fat = path.with_suffix(".fat")
    with open(fat, "wb") as out:
        out.truncate(boot_mib * MIB)
    run("mkfs.vfat", "-F", "32", "-n", "bootfs", str(fat))
    src = path.with_suffix(".cmdline")
    src.write_text("console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait\n")
    run("mcopy", "-i", str(fat), str(src), "::cmdline.txt")
    src.unlink()
    run("dd", f"if={fat}", f"of={path}", "bs=1M", f"seek={boot_at}", "conv=notrunc,sparse",
        "status=none")
    fat.unlink()
    tree = path.with_suffix(".tree")
    for folder in ("etc/systemd/system", "etc/nginx/sites-enabled", "usr/lib/systemd/system",
                   "opt", "var/lib", "boot/firmware", "usr/lib"):
        (tree / folder).mkdir(parents=True, exist_ok=True)
    (tree / "usr/lib/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
                                             'ID=debian\nVERSION_ID="12"\n')
    (tree / "etc/hostname").write_text("raspberrypi\n")
    (tree / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n")
    (tree / "etc/nginx/sites-enabled/default").write_text("server {}\n")
    root = path.with_suffix(".ext4")
    with open(root, "wb") as out:
        out.truncate(root_mib * MIB)
    run("mke2fs", "-q", "-t", "ext4", "-F", "-E", "root_owner=0:0", "-d", str(tree), str(root))
    run("dd", f"if={root}", f"of={path}", "bs=1M", f"seek={boot_at + boot_mib}",
        "conv=notrunc,sparse", "status=none")
    root.unlink()
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    return path
