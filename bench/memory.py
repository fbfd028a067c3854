"""The portal's peak memory under a concurrent, mixed load (10,000 listings, 5,000 items, a ZIM).

Starts ``python -m portal serve`` (pinned to core 0) on a loaded node with one
2,000-article encyclopaedia in its library, then, all at once for
``--seconds``, with wrk and the organisers' threads on core 1:

- residents (wrk, 20 connections): random distinct pages — home, listing and
  category pages across their range, listings, library pages and items,
  searches of one or two words, encyclopaedia articles and searches — with
  varied ``Accept-Language``;
- two organisers, signed in before: their listings pages, the new-listing form,
  and a POST of a new listing (CSRF token and all) every round.

Then, for a quarter of that time, the same residents while as many organisers as
the portal has threads sign in at once: each sign-in checks a password with
Argon2id, which takes its ``memory_cost`` (19 MiB) for the moment of the check.

RSS and PSS of the portal are sampled every 50 ms throughout
(:class:`bench.measure.PeakMemory`); the peaks are the headline::

    portal_peak_rss: N MB (target: <= 40 MB + library.zim_cluster_cache_mb)
    portal_peak_pss: N MB (for information)
    portal_children_peak_rss: N MB (for information: the Markdown renderer child)
    portal_peak_rss_signing_in: N MB (target: the above + one Argon2 check)
    portal_rss_after: N MB (for information: once the load has stopped)

The budget is docs/serving.md's 40 MB for the portal with every residents' page
served, plus the ZIM cluster cache the configuration allows (32 MiB by default),
which a reader of encyclopaedias fills by design; while organisers sign in, one
password check's memory on top (the portal checks one password at a time).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import random
import re
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import load, portal_process, write_config
from bench.measure import PeakMemory, Report, children_of, load_average
from bench.wrk import run_paths
from bench.zim import make_archive, register
from node.hub import default_password_hasher, open_hub
from node.store.models import CATEGORIES

BUDGET_MB = 40
ORGANISER = "olga-bench"
ORGANISER_PASSWORD = "bench-organiser-1"  # noqa: S105 - a throw-away bench account
_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"'
                    r'|name="csrf_token" value="([^"]+)"')


def resident_paths(ids: dict[str, str], zim_id: str, rng: random.Random,
                   listing_ids: list[str], item_ids: list[str]) -> list[str]:
    """Distinct residents' pages in rough street proportions."""
    words = ["bicycle", "sofa", "lamp", "garden", "ladder", "stories", "repair", "boots",
             "kettle", "guitar", "radio", "chair"]
    paths = ["/", "/listings/", "/notices/", "/library/"]
    paths += [f"/listings/{c}?page={rng.randint(1, 20)}" for c in CATEGORIES for _ in range(10)]
    paths += [f"/listing/{i}" for i in listing_ids]
    paths += [f"/library/{i}" for i in item_ids]
    paths += [f"/library/?page={rng.randint(1, 50)}" for _ in range(50)]
    paths += ["/search?q=" + "+".join(rng.sample(words, rng.choice((1, 2)))) for _ in range(200)]
    paths += [f"/library/{zim_id}/zim/Article_{rng.randrange(2000)}" for _ in range(400)]
    paths += [f"/library/{zim_id}/zim-search?q=article" for _ in range(20)]
    paths += [f"/library/{ids['big_item']}"]
    return paths


class Organiser:
    """One organiser's browser: a cookie jar, signed in through the form."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> str:
        """GET ``path``: the page's text."""
        with self.opener.open(self.base + path, timeout=60) as response:
            return response.read().decode("utf-8", "replace")

    def post(self, path: str, fields: dict[str, str]) -> None:
        """POST a form."""
        data = urllib.parse.urlencode(fields).encode()
        with self.opener.open(self.base + path, data=data, timeout=60) as response:
            response.read()

    def sign_in(self) -> None:
        """Sign in through the form (one Argon2 password check in the portal)."""
        self.post("/organisers/sign-in", {"name": ORGANISER, "password": ORGANISER_PASSWORD,
                                          "csrf_token": token(self.get("/organisers/sign-in"))})

    def work(self, stop: threading.Event, counts: dict[str, int]) -> None:
        """Read the organisers' pages and post a listing, round after round, until ``stop``."""
        n = 0
        while not stop.is_set():
            self.get("/organisers/listings/")
            form = self.get("/organisers/listings/new")
            self.post("/organisers/listings/new", {
                "csrf_token": token(form), "category": CATEGORIES[n % len(CATEGORIES)],
                "title": f"Bench post {n}", "body": "A **lamp** that works, collect any evening.",
                "price": "£3", "contact": "Flat 2"})
            counts["posts"] += 1
            n += 1


def token(html: str) -> str:
    """The CSRF token of the form on ``html``."""
    found = _TOKEN.search(html)
    if found is None:
        raise RuntimeError("no CSRF token on the page")
    return found.group(1) or found.group(2)


def in_threads(target: Callable[[], None], count: int, errors: list[BaseException]
               ) -> list[threading.Thread]:
    """``count`` started threads running ``target``; what they raise goes to ``errors``."""
    def run() -> None:
        try:
            target()
        except Exception as error:  # reported after the run
            errors.append(error)

    threads = [threading.Thread(target=run, name=f"bench-organiser-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def main(argv: list[str] | None = None) -> int:
    """Load, serve, put the mixed load on, sample memory throughout, judge."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of the loaded run")
    parser.add_argument("--big-mb", type=int, default=20, help="size of the big download")
    parser.add_argument("--threads", type=int, default=None,
                        help="portal.threads (default: the configuration's default)")
    args = parser.parse_args(argv)
    report = Report()
    with tempfile.TemporaryDirectory(prefix="meshhub-bench-") as tmp:
        folder = Path(tmp)
        config = write_config(folder, behind_proxy=False, threads=args.threads)
        ids = load(config, big_mb=args.big_mb)
        (zim_id,) = register(config, [make_archive(folder / "pocket.zim", 2000, seed=7)])
        store, hub = open_hub(config)
        try:
            hub.create_account(None, name=ORGANISER, password=ORGANISER_PASSWORD,
                               role="organiser")
            listing_ids = [x.id for x in store.listings(per_page=300).items]
            item_ids = [x.id for x in store.library_items(per_page=300).items]
        finally:
            store.close()
        cache_mb = int(config.library.zim_cluster_cache_mb)
        rng = random.Random(5)
        paths = resident_paths(ids, zim_id, rng, listing_ids, item_ids)
        counts = {"posts": 0}
        signing_in = max(2, int(config.portal.threads))
        with portal_process(folder / "node.toml", core=0) as (process, port):
            base = f"http://127.0.0.1:{port}"
            errors: list[BaseException] = []
            organisers = [Organiser(base) for _ in range(2)]
            for person in organisers:
                person.sign_in()
            stop = threading.Event()
            load_at_start = load_average()
            with (PeakMemory(lambda: [process.pid]) as memory,
                  PeakMemory(lambda: children_of(process.pid)[1:]) as children):
                threads = [t for person in organisers
                           for t in in_threads(lambda p=person: p.work(stop, counts), 1, errors)]
                result = run_paths(base, paths, seconds=args.seconds, connections=20, core=1)
                stop.set()
                for thread in threads:
                    thread.join()
            # The same residents, while as many organisers as the portal has threads sign in
            # at once: each sign-in checks a password with Argon2 (memory_cost each).
            with PeakMemory(lambda: [process.pid]) as signing:
                threads = in_threads(lambda: Organiser(base).sign_in(), signing_in, errors)
                busy = run_paths(base, paths, seconds=max(3.0, args.seconds / 4),
                                 connections=20, core=1)
                for thread in threads:
                    thread.join()
            after = PeakMemory(lambda: [process.pid])
            after.sample()
    if errors:
        print(f"# an organiser failed: {errors[0]!r}", flush=True)
    note = (f"sampled every 50 ms for {args.seconds:.0f} s: {result.rps:.0f} residents' "
            f"requests/s (p95 {result.p95_ms:.0f} ms) over {len(paths)} paths, "
            f"{config.portal.threads} portal threads, 2 signed-in organisers' pages and "
            f"{counts['posts']} posts; load {load_at_start:.1f}")
    budget = BUDGET_MB + cache_mb
    report.at_most("portal_peak_rss", memory.peak_rss_mb, "MB", budget, note,
                   limit_text=f"{BUDGET_MB} MB + zim_cluster_cache_mb {cache_mb}")
    report.info("portal_peak_pss", memory.peak_pss_mb, "MB", f"{memory.samples} samples")
    report.info("portal_children_peak_rss", children.peak_rss_mb, "MB",
                "the Markdown renderer the portal starts for organisers' posts, summed with "
                "any other child, at its peak (while posts come, and 10 s after)")
    argon2_mb = default_password_hasher().memory_cost / 1024
    report.at_most("portal_peak_rss_signing_in", signing.peak_rss_mb, "MB", budget + argon2_mb,
                   f"{signing_in} organisers signing in at once under the residents' load "
                   f"({busy.rps:.0f} requests/s, p95 {busy.p95_ms:.0f} ms)",
                   limit_text=f"the above + one Argon2 check, {argon2_mb:.0f} MiB")
    report.info("portal_rss_after", after.peak_rss_mb, "MB", "once the load had stopped")
    report.at_most("portal_memory_run_errors", float(result.errors + result.bad_status
                                                     + busy.errors + busy.bad_status
                                                     + len(errors)), "errors", 0,
                   "wrk socket errors, non-2xx/3xx answers, organisers that failed")
    report.at_least("portal_memory_run_posts", float(counts["posts"]), "posts", 1,
                    "the POSTs really happened")
    return report.exit_code()


if __name__ == "__main__":
    sys.exit(main())
