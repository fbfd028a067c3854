"""Benchmark: build a node image from a 2 GiB sparse base (target: under 60 s).

The base is synthetic (MBR, 512 MiB FAT32 boot at 8 MiB, ext4 root filling the
rest, as Raspberry Pi OS), with ``--data-mib`` of incompressible files in the
root standing for the base system. The wheelhouse is the real one when
``--wheelhouse DIR`` is given (e.g. made with ``pip wheel``/``pip download``
from the pip cache), else a fake meshhub wheel plus ``--wheel-mib`` of filler
wheels. Prints ``name: value unit (target: ...)`` lines.

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

from provisioning.image import build_image
from provisioning.image.sparse import allocated_bytes
from tests.provisioning.test_image_support import make_base_image, make_fake_wheel

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


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheelhouse", type=Path)
    parser.add_argument("--data-mib", type=int, default=300)
    parser.add_argument("--wheel-mib", type=int, default=40)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-image-", dir=args.dir) as tmp:
        work = Path(tmp)
        base = make_base_image(work / "base.img", total_mib=2048, boot_mib=512)
        add_base_data(base, (8 + 512) * MIB, args.data_mib, work)
        wheels = args.wheelhouse
        if wheels is None:
            wheels = work / "wheels"
            make_fake_wheel(wheels, "9.9.0")
            for i in range(args.wheel_mib // 4):
                (wheels / f"filler{i}-1.0-py3-none-any.whl").write_bytes(os.urandom(4 * MIB))
        start = time.perf_counter()
        built = build_image(base, work / "node.img", wheelhouse=wheels)
        seconds = time.perf_counter() - start
        wheel_bytes = sum(p.stat().st_size for p in Path(wheels).iterdir())
        print(f"image_build_2gib: {seconds:.1f} s (target: < 60 s)")
        print(f"image_size: {built.size / MIB:.0f} MiB apparent, "
              f"{allocated_bytes(built.path) / MIB:.0f} MiB on disk (target: info)")
        print(f"base_size: {base.stat().st_size / MIB:.0f} MiB apparent, "
              f"{allocated_bytes(base) / MIB:.0f} MiB on disk (target: info)")
        print(f"added: {(allocated_bytes(built.path) - allocated_bytes(base)) / MIB:.0f} MiB "
              f"(wheelhouse {wheel_bytes / MIB:.0f} MiB + overlay) (target: info)")
        print(f"root_grown: {built.grown_bytes / MIB:.0f} MiB (target: 0 on a 2 GiB base)")


if __name__ == "__main__":
    main()
