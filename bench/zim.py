"""Offline encyclopaedias in the portal: article pages per second, p95 latency, memory.

Builds a 10,000-article ZIM archive (full-text indexed) with libzim's writer,
adds it to a temporary node's library, serves the portal (``python -m portal
serve``, waitress, the node.toml default threads) and requests random article
pages from several client threads over keep-alive connections. Then the
portal's memory (RSS) after browsing and searching with 1 archive registered,
and again, in a fresh process, with 20 registered (the 10,000-article one and
19 of 2,000 articles) and all of them browsed and searched in turn, so that
the cache of open archives (``library.zim_open_max``) keeps evicting::

    zim_pages_per_second: N pages/s (target: none, for information)
    zim_article_p95: N ms (target: < 50 ms)
    zim_rss_1_archive: N MB (target: for comparison)
    zim_rss_20_archives: N MB (target: < 1.5x zim_rss_1_archive)
"""

from __future__ import annotations

import argparse
import http.client
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.harness import ADMIN, portal_process, write_config
from node.config import NodeConfig
from node.hub import open_hub
from node.library.zimbuild import ZimArticle, ZimSpec, build_zim

P95_TARGET_MS = 50
MEMORY_RATIO_TARGET = 1.5


def _words(rng: random.Random, count: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(count)]


def make_archive(path: Path, articles: int, seed: int) -> Path:
    """An archive of ``articles`` pages of ~3 KB that link to each other, full-text indexed."""
    rng = random.Random(seed)
    vocabulary = _words(rng, 3000)

    def generate() -> object:
        for n in range(articles):
            links = " ".join(f'<a href="Article_{rng.randrange(articles)}">see also</a>'
                             for _ in range(5))
            paragraphs = "".join(
                "<p>" + " ".join(rng.choice(vocabulary) for _ in range(80)) + "</p>"
                for _ in range(5))
            title = f"Article {n} {rng.choice(vocabulary)}"
            yield ZimArticle(f"Article_{n}", title,
                             f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                             f'<title>{title}</title><link rel="stylesheet" href="style.css">'
                             f'</head><body><main><h1>{title}</h1>{paragraphs}'
                             f'<nav>{links}</nav></main></body></html>')
        yield ZimArticle("style.css", "", "main{max-width:40em}", "text/css")

    return build_zim(path, generate(), ZimSpec(title=f"Bench {seed}", main_path="Article_0",  # type: ignore[arg-type]
                                               fulltext=True))


def register(config: NodeConfig, archives: list[Path]) -> list[str]:
    """Add the archives to the node's library; returns their item ids."""
    store, hub = open_hub(config)
    try:
        if store.account(ADMIN) is None:
            hub.create_account(None, name=ADMIN, password="bench-password-1",  # noqa: S106
                               role="admin")
        ids = []
        for path in archives:
            with path.open("rb") as stream:
                ids.append(hub.add_library_file(ADMIN, stream, filename=path.name,
                                                title=path.stem, max_bytes=2**40).id)
        return ids
    finally:
        store.close()


def hammer(port: int, paths: list[str], threads: int) -> tuple[float, list[float]]:
    """Request every path once, spread over ``threads`` keep-alive clients; (seconds, latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    chunks = [paths[i::threads] for i in range(threads)]

    def client(chunk: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        try:
            for path in chunk:
                started = time.perf_counter()
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{path}: HTTP {response.status}")
                mine.append(time.perf_counter() - started)
        finally:
            connection.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=client, args=(c,), name=f"bench-zim-{i}")
               for i, c in enumerate(chunks)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, latencies


def browse_all(port: int, ids: list[str], rounds: int) -> None:
    """Articles and searches of every archive, in turn (the cache keeps evicting)."""
    rng = random.Random(7)
    paths = []
    for _ in range(rounds):
        for item_id in ids:
            paths += [f"/library/{item_id}/zim/Article_{rng.randrange(2000)}" for _ in range(5)]
            paths.append(f"/library/{item_id}/zim-search?q=article")
            paths.append(f"/library/{item_id}/zim-search?q={'abc'[rng.randrange(3)]}e")
    paths.append("/search?q=article")
    hammer(port, paths, 4)


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB."""
    return psutil.Process(pid).memory_info().rss / (1024 * 1024)


def main(argv: list[str] | None = None) -> int:
    """Build, serve, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--rounds", type=int, default=3, help="memory warm-up rounds")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-zim-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        big = make_archive(folder / "big.zim", args.articles, seed=1)
        small = [make_archive(folder / f"small{n}.zim", 2000, seed=100 + n) for n in range(19)]
        print(f"# built 20 archives in {time.perf_counter() - started:.0f} s "
              f"({big.stat().st_size / 2**20:.1f} MB for {args.articles} articles)")

        # --- one archive: throughput, latency, memory ------------------------------------
        one = folder / "one"
        one.mkdir()
        config = write_config(one, behind_proxy=False)
        (big_id,) = register(config, [big])
        rng = random.Random(3)
        paths = [f"/library/{big_id}/zim/Article_{rng.randrange(args.articles)}"
                 for _ in range(args.requests)]
        with portal_process(one / "node.toml", core=None) as (process, port):
            hammer(port, paths[:200], args.threads)  # warm up
            seconds, latencies = hammer(port, paths, args.threads)
            browse_all(port, [big_id], args.rounds * 20)
            rss_one = rss_mb(process.pid)
        p95 = statistics.quantiles(latencies, n=100)[94] * 1000
        print(f"zim_pages_per_second: {len(latencies) / seconds:.0f} pages/s "
              f"(target: none, for information; {args.threads} client threads)")
        print(f"zim_article_p95: {p95:.1f} ms (target: < {P95_TARGET_MS} ms)")

        # --- twenty archives: memory -----------------------------------------------------
        twenty = folder / "twenty"
        twenty.mkdir()
        config = write_config(twenty, behind_proxy=False)
        ids = register(config, [big, *small])
        with portal_process(twenty / "node.toml", core=None) as (process, port):
            browse_all(port, ids, args.rounds)
            rss_twenty = rss_mb(process.pid)
        print(f"zim_rss_1_archive: {rss_one:.1f} MB (target: for comparison)")
        print(f"zim_rss_20_archives: {rss_twenty:.1f} MB (target: < {MEMORY_RATIO_TARGET}x "
              f"= {rss_one * MEMORY_RATIO_TARGET:.1f} MB; ratio {rss_twenty / rss_one:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
