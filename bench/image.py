"""Benchmark: build a node image from a 2 GiB sparse base (target: under 60 s).

The base is synthetic (MBR, 512 MiB FAT32 boot at 8 MiB, ext4 root filling the
rest, as Raspberry Pi OS), with ``--data-mib`` of incompressible files in the
root standing for the base system. The wheelhouse is always a real one: the
one given with ``--wheelhouse DIR``, else the one ``image build`` makes itself
(:func:`provisioning.image.wheelhouse.build_wheelhouse`: meshhub's wheel and
every dependency for the node's platforms, from PyPI or the pip cache), built
before the clock starts. Prints ``name: value unit (target: ...; verdict)`` lines
and exits non-zero when the build takes 60 s or more.

    .venv/bin/python bench/image.py [--wheelhouse DIR] [--data-mib 300] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.images import make_base_image
from bench.measure import Report, load_average
from provisioning.image import build_image
from provisioning.image.sparse import allocated_bytes
from provisioning.image.wheelhouse import build_wheelhouse

MIB = 1024 * 1024


def add_base_data(image: Path, root_start: int, mib: int, work: Path) -> None:
    """Write ``mib`` MiB of random files into the base's root (stands for the OS)."""
    blob = work / "blob"
    blob.write_bytes(os.urandom(MIB))
    script = work / "fill.txt"
    script.write_text("mkdir /usr/share\nmkdir /usr/share/filler\n" + "".join(
        f"write {blob} /usr/share/filler/f{i}\n" for i in range(mib)))
    subprocess.run(["debugfs", "-w", "-f", str(script), f"{image}?offset={root_start}"],
                   check=True, capture_output=True)


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheelhouse", type=Path)
    parser.add_argument("--data-mib", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-image-", dir=args.dir) as tmp:
        work = Path(tmp)
        base = make_base_image(work / "base.img", total_mib=2048, boot_mib=512)
        add_base_data(base, (8 + 512) * MIB, args.data_mib, work)
        wheels = args.wheelhouse
        if wheels is None:
            wheels = work / "wheels"
            build_wheelhouse(Path(__file__).resolve().parents[1], wheels)
        load = load_average()
        start = time.perf_counter()
        built = build_image(base, work / "node.img", wheelhouse=wheels)
        seconds = time.perf_counter() - start
        wheel_bytes = sum(p.stat().st_size for p in Path(wheels).iterdir())
        report = Report()
        wheel_count = sum(1 for p in Path(wheels).iterdir() if p.suffix == ".whl")
        report.at_most("image_build_2gib", seconds, "s", 60,
                       f"real wheelhouse: {wheel_count} wheels, {wheel_bytes / MIB:.0f} MiB; "
                       f"load {load:.1f}")
        report.info("image_size", built.size / MIB, "MiB",
                    f"apparent; {allocated_bytes(built.path) / MIB:.0f} MiB on disk")
        report.info("base_size", base.stat().st_size / MIB, "MiB",
                    f"apparent; {allocated_bytes(base) / MIB:.0f} MiB on disk")
        report.info("added", (allocated_bytes(built.path) - allocated_bytes(base)) / MIB, "MiB",
                    f"wheelhouse {wheel_bytes / MIB:.0f} MiB + overlay")
        report.at_most("root_grown", built.grown_bytes / MIB, "MiB", 0, "on a 2 GiB base")
    return report.exit_code()

if __name__ == "__main__":
    sys.exit(main())
