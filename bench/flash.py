"""Benchmark: flashing an image to a real block device, writing and verifying reported apart.

The target is a loop device (``losetup --direct-io=on``) over a file on a real
disk, so writes go through the block layer and ``fsync`` reaches the disk, as
with an SD card in a reader. Without root (no loop devices) it writes a plain
file instead, and says so. Either way the directory must not be tmpfs or ramfs:
there ``fsync`` does nothing and every read-back comes from memory, so the tool
refuses it.

Both sides get the same image (its page cache dropped before each run) and the
same target, each run :data:`bench.measure.MIN_RUNS` times, interleaved:

- **reference**: ``dd bs=4M oflag=direct conv=fsync`` to write, then a genuine
  read-back ``dd bs=4M iflag=direct | sha256sum`` to verify (from the device,
  not from the page cache);
- **ours**: :func:`provisioning.flash.flash` (first MiB last, fsync, page cache
  dropped, read back and compared), whose result times both phases.

dd does strictly less work than the tool, so a ratio above 105 % is a measuring
error::

    flash_write: N % (target: >= 90 % of dd oflag=direct conv=fsync)
    flash_verify: N % (target: >= 90 % of dd iflag=direct | sha256sum)

    .venv/bin/python bench/flash.py [--size-mib 256] [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.measure import MIN_RUNS, Report, interleaved, load_average, median
from provisioning.flash import Target, flash, open_image

MiB = 1 << 20
MIN_RATIO = 0.9
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def make_image(path: Path, size_mib: int) -> None:
    """An image of random-looking data with an MBR: one Linux partition from 1 MiB to the end."""
    with open(path, "wb") as out:
        block = bytearray(hashlib.shake_256(b"bench").digest(MiB))
        entry = bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048,
                                                                  (size_mib - 1) * 2048)
        block[446:510] = entry + bytes(48)
        block[510:512] = b"\x55\xaa"
        for index in range(size_mib):
            out.write(block)
            if index == 0:
                block[446:512] = bytes(66)


def filesystem_type(path: Path) -> str:
    """The file system type holding ``path`` (longest mount point in /proc/mounts)."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            point = fields[1].replace("\\040", " ")
            inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, kind = point, fields[2]
    return kind


def drop_file_cache(path: Path) -> None:
    """Start each run with the image out of the page cache (as after a download)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@contextlib.contextmanager
def loop_device(backing: Path) -> Iterator[Path | None]:
    """A loop device over ``backing`` (direct I/O), or None without root or losetup."""
    if os.geteuid() != 0 or shutil.which("losetup") is None:
        yield None
        return
    device = subprocess.run(["losetup", "-f", "--show", "--direct-io=on", str(backing)],
                            capture_output=True, text=True, check=True).stdout.strip()
    try:
        yield Path(device)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def ours(image: Path, target: Path, is_device: bool) -> tuple[float, float]:
    """The tool's (write seconds, verify seconds)."""
    drop_file_cache(image)
    with open_image(image) as source, Target.open(target, to_file=not is_device) as tgt:
        result = flash(source, tgt)
    return result.write_seconds, result.verify_seconds


def reference(image: Path, target: Path, size_mib: int, is_device: bool) -> tuple[float, float]:
    """dd writing with O_DIRECT and fsync, then dd reading back with O_DIRECT into sha256sum."""
    drop_file_cache(image)
    started = time.perf_counter()
    conv = "conv=fsync" if is_device else "conv=fsync,notrunc"
    subprocess.run(["dd", f"if={image}", f"of={target}", "bs=4M", "oflag=direct", conv,
                    "status=none"], check=True)
    written = time.perf_counter()
    reader = subprocess.Popen(["dd", f"if={target}", "bs=4M", "iflag=direct",
                               f"count={size_mib // 4}", "status=none"], stdout=subprocess.PIPE)
    subprocess.run(["sha256sum"], stdin=reader.stdout, check=True, capture_output=True)
    if reader.stdout is not None:
        reader.stdout.close()
    if reader.wait() != 0:
        raise RuntimeError(f"dd iflag=direct could not read {target} back")
    return written - started, time.perf_counter() - written


def main(argv: list[str] | None = None) -> int:
    """Refuse memory file systems, set up the target, measure interleaved, judge."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256, help="image size (multiple of 4)")
    parser.add_argument("--dir", type=Path, default=Path("/var/tmp"),
                        help="where the image and the target's backing file go (a real disk)")
    parser.add_argument("--runs", type=int, default=MIN_RUNS)
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS or args.size_mib % 4:
        parser.error(f"--runs must be at least {MIN_RUNS} and --size-mib a multiple of 4")
    kind = filesystem_type(args.dir)
    if kind in MEMORY_FILESYSTEMS:
        print(f"bench/flash.py: error: {args.dir} is on {kind}: fsync does nothing there and "
              "every read-back comes from memory; pass --dir on a real disk", file=sys.stderr)
        return 2
    report = Report()
    size = args.size_mib * MiB
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="meshhub-bench-flash-") as tmp:
        image, backing = Path(tmp) / "node.img", Path(tmp) / "card.img"
        make_image(image, args.size_mib)
        with open(backing, "wb") as out:
            out.truncate(size + 8 * MiB)
        with loop_device(backing) as device:
            target, is_device = (device, True) if device is not None else (backing, False)
            where = (f"loop device {device} (direct I/O) over {kind}" if is_device
                     else f"a plain file on {kind} (no root: no loop device)")
            ours(image, target, is_device)  # warm-up: the backing file's blocks exist once
            loads: list[float] = []
            runs = interleaved({
                "dd": lambda: reference(image, target, args.size_mib, is_device),
                "ours": lambda: ours(image, target, is_device),
            }, runs=args.runs, between=lambda: loads.append(load_average()))
    note = f"{args.size_mib} MiB to {where}; median of {args.runs} interleaved runs, " \
           f"load {median(loads):.1f}"
    rate = {name: (size / MiB / median(r[0] for r in results),
                   size / MiB / median(r[1] for r in results))
            for name, results in runs.items()}
    report.info("flash_dd_write", rate["dd"][0], "MiB/s", note)
    report.info("flash_dd_verify", rate["dd"][1], "MiB/s", "dd iflag=direct | sha256sum")
    report.info("flash_ours_write", rate["ours"][0], "MiB/s", note)
    report.info("flash_ours_verify", rate["ours"][1], "MiB/s", "read back after dropping caches")
    report.ratio_to_ceiling("flash_write", rate["ours"][0], rate["dd"][0], MIN_RATIO, note,
                            ceiling_name="dd oflag=direct conv=fsync")
    report.ratio_to_ceiling("flash_verify", rate["ours"][1], rate["dd"][1], MIN_RATIO, note,
                            ceiling_name="dd iflag=direct | sha256sum")
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
