"""Benchmark: flash + verify a 1 GiB image to a file, next to dd + sha256sum.

Both runs write the same image to a file target on the same disk in the same
run: ours writes (first MiB last, fsync) then reads back and compares
SHA-256; the reference is ``dd bs=4M conv=fsync`` followed by ``sha256sum``
of the target. Prints ``name: value unit (target: ...)`` lines.

    .venv/bin/python bench/flash.py [--size-mib 1024] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

from provisioning.flash import Target, flash, open_image

MiB = 1 << 20


def make_image(path: Path, size_mib: int) -> None:
    """An image of random-looking data with an MBR boot signature."""
    with open(path, "wb") as out:
        block = bytearray(hashlib.shake_256(b"bench").digest(MiB))
        block[510:512] = b"\x55\xaa"
        for index in range(size_mib):
            out.write(block)
            if index == 0:
                block[510:512] = b"\x00\x00"


def drop_file_cache(path: Path) -> None:
    """Start both runs with the image out of the page cache (as after a download)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def ours(image: Path, target: Path) -> float:
    drop_file_cache(image)
    started = time.perf_counter()
    with open_image(image) as source, Target.open(target, to_file=True) as tgt:
        flash(source, tgt)
    return time.perf_counter() - started


def reference(image: Path, target: Path) -> float:
    drop_file_cache(image)
    started = time.perf_counter()
    subprocess.run(["dd", f"if={image}", f"of={target}", "bs=4M", "conv=fsync", "status=none"],
                   check=True)
    subprocess.run(["sha256sum", str(target)], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="where the temporary files go")
    args = parser.parse_args()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="meshhub-bench-") as tmp:
        image, target = Path(tmp) / "node.img", Path(tmp) / "card.img"
        make_image(image, args.size_mib)
        ours(image, target)  # warm-up: allocate the target's blocks once
        # alternate the two, best of three each: disks and caches drift during a run
        t_dd, t_ours = float("inf"), float("inf")
        for _ in range(3):
            t_dd = min(t_dd, reference(image, target))
            t_ours = min(t_ours, ours(image, target))
    dd_rate = size / t_dd / MiB
    our_rate = size / t_ours / MiB
    ratio = our_rate / dd_rate
    print(f"image_size: {args.size_mib} MiB")
    print(f"dd_plus_sha256sum: {dd_rate:.1f} MiB/s ({t_dd:.2f} s)")
    print(f"flash_write_verify: {our_rate:.1f} MiB/s ({t_ours:.2f} s) (target: >= 0.9 of dd)")
    print(f"ratio: {ratio:.2f} (target: >= 0.9) {'OK' if ratio >= 0.9 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
