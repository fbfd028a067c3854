"""Benchmark: customise 1 GiB and 8 GiB sparse images (Raspberry Pi OS layout).

Each image has a 512 MiB FAT32 boot partition at 8 MiB and an ext4 root, as
Raspberry Pi OS ships today. ``customise`` touches only the boot partition's
changed sectors, so the time must not grow with the image. Prints
``name: value unit (target: ...)`` lines.

    .venv/bin/python bench/customise.py [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.images import make_image, make_registry
from provisioning.customise import customise


def time_customise(image: Path, registry: Path, secrets: Path, runs: int) -> float:
    """Median seconds of ``runs`` customisations of ``image`` (each one a full run)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        customise(image, "elm-1", registry=registry, secrets=secrets, timezone="Europe/Berlin")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Build both images, time customise on each, print the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None,
                        help="Where to create the sparse images (default: a temp folder).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-", dir=args.dir) as tmp:
        base = Path(tmp)
        registry = make_registry(base)
        results = {}
        for size_gib in (1, 8):
            image = make_image(base / f"{size_gib}g.img", boot_mib=512,
                               total_mib=size_gib * 1024)
            results[size_gib] = time_customise(image, registry, base / "secrets", args.runs)
            print(f"customise_{size_gib}gib: {results[size_gib]:.2f} s (target: < 2 s)")
            image.unlink()
        ratio = results[8] / results[1]
        print(f"customise_8gib_vs_1gib: {ratio:.2f} x (target: about 1, independent of size)")


if __name__ == "__main__":
    main()
