"""Resident memory (RSS) of the running portal with 10,000 listings and 5,000 items loaded.

Starts ``python -m portal serve`` on the loaded node, requests every page
type a few times (home, listings, a listing, notices, library, an item,
search, a download, a signed-out organiser page) so that templates, caches
and threads are warm, then prints the process's RSS (psutil)::

    portal_rss: N MB (target: <= 40 MB)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.harness import load, portal_process, write_config

TARGET_MB = 40


def warm(base: str, paths: list[str], rounds: int) -> None:
    """Request every path ``rounds`` times (reading bodies fully)."""
    for _ in range(rounds):
        for path in paths:
            try:
                with urllib.request.urlopen(base + path, timeout=60) as response:  # noqa: S310
                    while response.read(1 << 20):
                        pass
            except urllib.error.HTTPError as error:
                error.read()


def main(argv: list[str] | None = None) -> int:
    """Load, serve, warm up, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="warm-up rounds per page")
    parser.add_argument("--threads", type=int, default=None,
                        help="portal.threads (default: the node.toml default)")
    parser.add_argument("--big-mb", type=int, default=100, help="size of the big download")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-") as tmp:
        folder = Path(tmp)
        ids = load(write_config(folder, behind_proxy=False, threads=args.threads),
                   big_mb=args.big_mb)
        paths = ["/", "/listings/", "/listings/for-sale?page=3", f"/listing/{ids['listing']}",
                 "/notices/", "/library/", f"/library/{ids['big_item']}", "/search?q=bicycle",
                 "/search?q=garden+stories", "/organisers/sign-in", "/submit",
                 f"/library/{ids['big_item']}/download"]
        with portal_process(folder / "node.toml", core=None) as (process, port):
            warm(f"http://127.0.0.1:{port}", paths, args.rounds)
            rss = psutil.Process(process.pid).memory_info().rss / (1024 * 1024)
            peak = _peak_mb(process.pid)
    print(f"portal_rss: {rss:.1f} MB (target: <= {TARGET_MB} MB)")
    if peak is not None:
        print(f"portal_rss_peak: {peak:.1f} MB")
    return 0


def _peak_mb(pid: int) -> float | None:
    """The process's high-water RSS (VmHWM), where /proc has it."""
    try:
        for text in Path(f"/proc/{pid}/status").read_text().splitlines():
            if text.startswith("VmHWM:"):
                return int(text.split()[1]) / 1024
    except OSError:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main())
