"""Offline encyclopaedias: the portal against kiwix-serve, side by side, on the same archives.

Builds a 10,000-article ZIM archive (full-text indexed, ~3 KB articles that
link to each other) and 19 of 2,000 articles with libzim's writer, then serves
them two ways, each pinned to core 0 with wrk on core 1:

- **portal**: a temporary node with the archives in its library, ``python -m
  portal serve`` (waitress, the node.toml defaults), URLs
  ``/library/<id>/zim/<path>`` and ``/library/<id>/zim-search?q=``;
- **kiwix**: Debian's ``kiwix-serve`` (package ``kiwix-tools``) on the same
  files, URLs ``/<book>/<path>`` and ``/search?content=<book>&pattern=``.

Both get the same random article paths (the same seed) and the same search
queries (one or two words of the archives' vocabulary), over 4 keep-alive
connections. Every configuration runs :data:`bench.measure.MIN_RUNS` times,
interleaved, after one unmeasured warm-up run each; figures are medians.
Memory is the peak RSS (and PSS) of each server sampled every 50 ms for the
whole time it is up under load: first both with the one big archive, then
both fresh with all 20 archives given the same work — the same 200 requests
(8 articles and 2 searches of every archive), 5 times — rather than the same
time, so that the faster server is not charged for doing more. The servers'
CPU time per request is printed too: unlike pages/s it does not depend on the
share of a loaded machine's core the scheduler gave each::

    zim_pages_per_second: N pages/s (target: >= kiwix-serve's)
    zim_article_p95: N ms (target: <= kiwix-serve's)
    zim_search_p95: N ms (target: <= kiwix-serve's)
    zim_peak_rss_1_archive: N MB (target: <= kiwix-serve's)
    zim_peak_rss_20_archives: N MB (target: <= kiwix-serve's)

Exits non-zero when a figure misses. ``--archives DIR`` keeps the built
archives for the next run (building takes minutes on a loaded machine).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.harness import ADMIN, portal_process, stop, write_config
from bench.measure import (
    MIN_RUNS,
    PeakMemory,
    Report,
    cpu_seconds,
    interleaved,
    load_average,
    median,
)
from bench.wrk import WrkResult, run_paths
from node.config import NodeConfig
from node.hub import open_hub
from node.library.zimbuild import ZimArticle, ZimSpec, build_zim

BIG_ARTICLES = 10_000
SMALL_ARCHIVES = 19
SMALL_ARTICLES = 2_000
CONNECTIONS = 4


def _words(rng: random.Random, count: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) for _ in range(count)]


def vocabulary(seed: int) -> list[str]:
    """The words the archive of ``seed`` is written in (its generator's first draw)."""
    return _words(random.Random(seed), 3000)


def make_archive(path: Path, articles: int, seed: int) -> Path:
    """An archive of ``articles`` pages of ~3 KB that link to each other, full-text indexed."""
    rng = random.Random(seed)
    words = _words(rng, 3000)

    def generate() -> object:
        for n in range(articles):
            links = " ".join(f'<a href="Article_{rng.randrange(articles)}">see also</a>'
                             for _ in range(5))
            paragraphs = "".join(
                "<p>" + " ".join(rng.choice(words) for _ in range(80)) + "</p>"
                for _ in range(5))
            title = f"Article {n} {rng.choice(words)}"
            yield ZimArticle(f"Article_{n}", title,
                             f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
                             f'<title>{title}</title><link rel="stylesheet" href="style.css">'
                             f'</head><body><main><h1>{title}</h1>{paragraphs}'
                             f'<nav>{links}</nav></main></body></html>')
        yield ZimArticle("style.css", "", "main{max-width:40em}", "text/css")

    return build_zim(path, generate(), ZimSpec(title=f"Bench {seed}", main_path="Article_0",  # type: ignore[arg-type]
                                               fulltext=True))


def archives(folder: Path) -> tuple[Path, list[Path]]:
    """The big archive and the small ones in ``folder``, built where missing."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    wanted = [(folder / "big.zim", BIG_ARTICLES, 1)]
    wanted += [(folder / f"small{n}.zim", SMALL_ARTICLES, 100 + n) for n in range(SMALL_ARCHIVES)]
    built = 0
    for path, count, seed in wanted:
        if not path.is_file():
            partial = path.with_suffix(".part.zim")
            make_archive(partial, count, seed)
            partial.rename(path)
            built += 1
    if built:
        print(f"# built {built} archives in {time.perf_counter() - started:.0f} s", flush=True)
    return wanted[0][0], [w[0] for w in wanted[1:]]


def register(config: NodeConfig, paths: list[Path]) -> list[str]:
    """Add the archives to the node's library; returns their item ids."""
    store, hub = open_hub(config)
    try:
        if store.account(ADMIN) is None:
            hub.create_account(None, name=ADMIN, password="bench-password-1",  # noqa: S106
                               role="admin")
        ids = []
        for path in paths:
            with path.open("rb") as stream:
                ids.append(hub.add_library_file(ADMIN, stream, filename=path.name,
                                                title=path.stem, max_bytes=2**40).id)
        return ids
    finally:
        store.close()


@contextlib.contextmanager
def kiwix_process(paths: list[Path], core: int = 0) -> Iterator[tuple[subprocess.Popen[bytes],
                                                                       int]]:
    """kiwix-serve on ``paths``, pinned to ``core``, on a port the kernel picks.

    kiwix-serve takes ``--port 0`` but does not say which port it got; the
    port is read from the kernel's table of the process's listening sockets.
    """
    binary = shutil.which("kiwix-serve")
    if binary is None:
        raise RuntimeError("kiwix-serve is not installed (Debian: apt-get install kiwix-tools)")
    process = subprocess.Popen(["taskset", "-c", str(core), binary, "--address", "127.0.0.1",
                                "--port", "0", *map(str, paths)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kiwix-serve did not start listening")
            with contextlib.suppress(psutil.Error):
                for conn in psutil.Process(process.pid).net_connections("tcp"):
                    if conn.status == psutil.CONN_LISTEN:
                        port = conn.laddr.port
            if port is None:
                time.sleep(0.05)
        yield process, port
    finally:
        stop(process)


@dataclass(frozen=True)
class Phase:
    """One phase's runs (by configuration) and each server's peak memory (MB)."""

    results: dict[str, list[WrkResult]]
    cpu_ms: dict[str, list[float]]  #: the server's CPU ms per request, per run (phase one)
    portal_rss: float
    kiwix_rss: float
    portal_pss: float
    kiwix_pss: float
    load: float  #: median 1-minute load average at the start of the runs


def _pids(process: subprocess.Popen[bytes]) -> Callable[[], list[int]]:
    """The server's own process (taskset execs it, so the pid is the server's)."""
    return lambda: [process.pid]


def _queries(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    words = vocabulary(1)
    return ["+".join(rng.sample(words, rng.choice((1, 1, 2)))) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    """Build (or reuse) the archives, serve them both ways, measure interleaved, judge."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archives", type=Path, default=None,
                        help="keep the built archives here and reuse them next time")
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help="runs per configuration")
    parser.add_argument("--seconds", type=float, default=5, help="seconds per run")
    args = parser.parse_args(argv)
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}: fewer runs make no median")
    for tool in ("kiwix-serve", "wrk", "taskset"):
        if shutil.which(tool) is None:
            package = {"kiwix-serve": "kiwix-tools", "taskset": "util-linux"}.get(tool, tool)
            print(f"bench/zim.py: error: {tool} is not installed; it is the comparison or the "
                  f"load generator (Debian: apt-get install {package})", file=sys.stderr)
            return 2
    report = Report()
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-zim-") as tmp:
        folder = Path(tmp)
        big, small = archives(args.archives or folder / "archives")
        one = _measure_one(folder, big, args)
        twenty = _measure_twenty(folder, big, small, args)
    _judge(report, one, twenty, args.runs)
    return report.exit_code()


def _run(port: int, paths: list[str], seconds: float) -> WrkResult:
    return run_paths(f"http://127.0.0.1:{port}", paths, seconds=seconds,
                     connections=CONNECTIONS, core=1)


def _costed(pid: int, port: int, paths: list[str], seconds: float) -> tuple[WrkResult, float]:
    """One wrk run and the server's CPU milliseconds per request during it.

    CPU time per request does not depend on how much of the core the scheduler
    gave the server, so on a loaded machine it is the figure that carries over
    to a quiet one (pages/s on an idle core = 1000 / ms per page).
    """
    before = cpu_seconds(pid)
    result = _run(port, paths, seconds)
    return result, (cpu_seconds(pid) - before) * 1000 / max(1, result.requests)


def _once(port: int, paths: list[str], threads: int = CONNECTIONS) -> int:
    """Request every path exactly once over ``threads`` keep-alive clients; non-2xx/3xx count.

    The memory phase gives both servers the same work, not the same time: a server
    that does more in a fixed time would otherwise be charged for it in memory.
    """
    import http.client
    import threading

    bad = [0]
    lock = threading.Lock()

    def client(chunk: list[str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            for path in chunk:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                if response.status >= 400:
                    with lock:
                        bad[0] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=client, args=(paths[i::threads],), name=f"zim-once-{i}")
               for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return bad[0]


def _measure_one(folder: Path, big: Path, args: argparse.Namespace) -> Phase:
    """Articles and searches of the one big archive, both servers up, runs interleaved."""
    node = folder / "one"
    node.mkdir()
    (item_id,) = register(write_config(node, behind_proxy=False), [big])
    rng = random.Random(3)
    articles = [f"Article_{rng.randrange(BIG_ARTICLES)}" for _ in range(5000)]
    queries = _queries(5, 500)
    portal_pages = [f"/library/{item_id}/zim/{a}" for a in articles]
    kiwix_pages = [f"/big/{a}" for a in articles]
    portal_search = [f"/library/{item_id}/zim-search?q={q}" for q in queries]
    kiwix_search = [f"/search?content=big&pattern={q}" for q in queries]
    with portal_process(node / "node.toml", core=0) as (portal, portal_port), \
            kiwix_process([big]) as (kiwix, kiwix_port), \
            PeakMemory(_pids(portal)) as portal_memory, PeakMemory(_pids(kiwix)) as kiwix_memory:
        for port, pages, search in ((portal_port, portal_pages, portal_search),
                                    (kiwix_port, kiwix_pages, kiwix_search)):
            _run(port, pages, 2)  # warm-up, the same for both, not counted
            _run(port, search, 1)
        loads: list[float] = []
        results = interleaved({
            "portal_pages": lambda: _costed(portal.pid, portal_port, portal_pages, args.seconds),
            "kiwix_pages": lambda: _costed(kiwix.pid, kiwix_port, kiwix_pages, args.seconds),
            "portal_search": lambda: _costed(portal.pid, portal_port, portal_search,
                                             args.seconds),
            "kiwix_search": lambda: _costed(kiwix.pid, kiwix_port, kiwix_search, args.seconds),
        }, runs=args.runs, between=lambda: loads.append(load_average()))
    return Phase({name: [r for r, _ in runs] for name, runs in results.items()},
                 {name: [c for _, c in runs] for name, runs in results.items()},
                 portal_memory.peak_rss_mb, kiwix_memory.peak_rss_mb,
                 portal_memory.peak_pss_mb, kiwix_memory.peak_pss_mb, median(loads))


def _measure_twenty(folder: Path, big: Path, small: list[Path],
                    args: argparse.Namespace) -> Phase:
    """Fresh servers with all 20 archives, the same mixed load across every archive."""
    node = folder / "twenty"
    node.mkdir()
    ids = register(write_config(node, behind_proxy=False), [big, *small])
    books = [p.stem for p in [big, *small]]
    rng = random.Random(11)
    portal_paths: list[str] = []
    kiwix_paths: list[str] = []
    queries = _queries(13, 40)
    for item_id, book in zip(ids, books, strict=True):
        for _ in range(8):
            article = f"Article_{rng.randrange(SMALL_ARTICLES)}"
            portal_paths.append(f"/library/{item_id}/zim/{article}")
            kiwix_paths.append(f"/{book}/{article}")
        for query in rng.sample(queries, 2):
            portal_paths.append(f"/library/{item_id}/zim-search?q={query}")
            kiwix_paths.append(f"/search?content={book}&pattern={query}")
    with portal_process(node / "node.toml", core=0) as (portal, portal_port), \
            kiwix_process([big, *small]) as (kiwix, kiwix_port), \
            PeakMemory(_pids(portal)) as portal_memory, PeakMemory(_pids(kiwix)) as kiwix_memory:
        loads: list[float] = []
        bad = interleaved({
            "portal_mixed": lambda: _once(portal_port, portal_paths),
            "kiwix_mixed": lambda: _once(kiwix_port, kiwix_paths),
        }, runs=args.runs, between=lambda: loads.append(load_average()))
        results = {name: [WrkResult(0, 0, 0, 0, 0, b, len(portal_paths)) for b in counts]
                   for name, counts in bad.items()}
    return Phase(results, {}, portal_memory.peak_rss_mb, kiwix_memory.peak_rss_mb,
                 portal_memory.peak_pss_mb, kiwix_memory.peak_pss_mb, median(loads))


def _judge(report: Report, one: Phase, twenty: Phase, runs: int) -> None:
    """Print every figure with its target (kiwix-serve's figure from the same runs)."""
    results = {**one.results, **twenty.results}

    def med(name: str, field: str) -> float:
        return median(getattr(r, field) for r in results[name])

    note = f"median of {runs} interleaved runs, load {one.load:.1f} during them"
    kiwix_rps = med("kiwix_pages", "rps")
    report.at_least("zim_pages_per_second", med("portal_pages", "rps"), "pages/s", kiwix_rps,
                    note, limit_text="kiwix-serve's")
    report.at_most("zim_article_p95", med("portal_pages", "p95_ms"), "ms",
                   med("kiwix_pages", "p95_ms"), note, limit_text="kiwix-serve's")
    report.at_most("zim_search_p95", med("portal_search", "p95_ms"), "ms",
                   med("kiwix_search", "p95_ms"), note, limit_text="kiwix-serve's")
    report.info("zim_kiwix_pages_per_second", kiwix_rps, "pages/s", note)
    for kind, unit in (("pages", "page"), ("search", "search")):
        ours, theirs = median(one.cpu_ms[f"portal_{kind}"]), median(one.cpu_ms[f"kiwix_{kind}"])
        report.info(f"zim_cpu_per_{unit}", ours, "ms",
                    f"the server's CPU time per request, whatever its share of the core; "
                    f"kiwix-serve {theirs:.2f} ms; on an idle core about {1000 / ours:.0f} vs "
                    f"{1000 / theirs:.0f} per second")
    report.info("zim_search_per_second", med("portal_search", "rps"), "searches/s",
                f"kiwix-serve {med('kiwix_search', 'rps'):.0f}/s; {note}")
    report.at_most("zim_peak_rss_1_archive", one.portal_rss, "MB", one.kiwix_rss,
                   f"peak sampled every 50 ms under the runs above; PSS {one.portal_pss:.0f} MB, "
                   f"kiwix-serve PSS {one.kiwix_pss:.0f} MB", limit_text="kiwix-serve's peak")
    report.at_most("zim_peak_rss_20_archives", twenty.portal_rss, "MB", twenty.kiwix_rss,
                   f"the same {results['portal_mixed'][0].requests} requests (articles and "
                   f"searches across all 20) {runs} times on both, load {twenty.load:.1f}; "
                   f"PSS {twenty.portal_pss:.0f} MB, "
                   f"kiwix-serve PSS {twenty.kiwix_pss:.0f} MB", limit_text="kiwix-serve's peak")
    bad = sum(r.errors + r.bad_status for name, rs in results.items()
              if name.startswith("portal") for r in rs)
    report.at_most("zim_portal_errors", float(bad), "responses", 0,
                   "socket errors and non-2xx/3xx answers over all portal runs")


if __name__ == "__main__":
    sys.exit(main())
