"""Test support for the image build (and bench/image.py): a synthetic base image, a fake wheel.

The base is what Raspberry Pi OS looks like to the build: MBR, a FAT32 boot
partition, an ext4 root made with ``mke2fs -d`` from a minimal tree. The fake
wheel is a real wheel named ``meshhub`` whose ``meshhub`` and ``meshhub-portal``
commands are tiny stand-ins, so pip installs it offline in a second.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

MIB = 1024 * 1024

FAKE_CLI = '''"""Stand-in for meshhub's commands in image tests."""
import sys


def main():
    print("meshhub (test stand-in)", " ".join(sys.argv[1:]))


def portal():
    if sys.argv[1:2] == ["nginx-conf"]:
        print("# nginx site rendered by the test stand-in")
        print("server { listen 80; }")
        return
    print("meshhub-portal (test stand-in)", " ".join(sys.argv[1:]))
'''


def run(*argv: str, stdin: str | None = None) -> None:
    """Run a tool, failing with its output."""
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"


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


def make_fake_wheel(folder: Path, version: str = "9.9.0") -> Path:
    """A pure-Python wheel named meshhub with ``meshhub``/``meshhub-portal`` stand-ins."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = f"meshhub-{version}.dist-info"
    files = {
        "meshhub_fake_cli.py": FAKE_CLI.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: meshhub\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: meshhub-tests\nRoot-Is-Purelib: true\n"
                         b"Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": b"[console_scripts]\nmeshhub = meshhub_fake_cli:main\n"
                                    b"meshhub-portal = meshhub_fake_cli:portal\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = ("\n".join(record) + "\n").encode()
    wheel = folder / f"meshhub-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel
