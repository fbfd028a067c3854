"""The portal's headline: a street's mixed load over 10,000 listings and 5,000 library items.

What a street does at once, not one URL over and over: thousands of distinct
pages in the proportions below, in varied languages, a few signed-in
organisers, and 1 % malformed requests. nginx and the portal (waitress) are
pinned to core 0, wrk (one thread) to core 1. Configurations, run interleaved
(bench/measure.py), each at least 5 times, medians reported:

* ``front``: through the node's nginx site (page files, micro-cache, portal);
* ``direct``: straight to waitress (no nginx; since 2026-12-07 the portal answers
  anonymous residents' pages from its page files itself, so this no longer
  measures rendering: portal/signed_files.py);
* ``static``: the ceiling: the same bytes, saved as files, sent by a plain nginx
  server (same headers sent by the client, same proportions);

each with 50 and 200 connections. For the front, the share of answers the
portal gave (nginx's ``X-Cache-Status`` MISS, BYPASS or EXPIRED) is printed
too: in wrk's closed loop the front's rate is about the portal's capacity
divided by that share. Then, on a **cold start** (portal and nginx
restarted, nginx's cache emptied, the page files kept as a node keeps them):
the first request of 300 distinct residents' pages, one at a time, and one
mixed run. And search over distinct queries nobody asked before.

The request mix (per 100 requests): home 14, listing pages 24, category pages
(every page of every category, earlier pages likelier) 19, all-listings pages
4, notices 6, library pages 5 and items 10, fixed pages 2, search 5 (150
queries of one or two words, some matching thousands of rows; popular ones
likelier), organisers signed in 0.5 (their dashboard and residents' pages
with their session), malformed 1 (bad query strings, a 10 KB header, broken
Range headers, unknown languages). Languages: mostly English, Spanish and
Arabic browsers as phones send them, some French (default language), some
with a ``lang`` cookie; a third of residents' requests carry the session cookie
the welcome page's form gave them.

    python bench/street.py            # 10 s per run, 5 runs per configuration
    python bench/street.py --quick    # 3 s per run (a smoke test)
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import itertools
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.harness import (
    _WORDS,
    NGINX,
    listening_socket,
    load,
    nginx_on_core0,
    portal_process,
    stop,
    tools_missing,
    wait_for_http,
    write_config,
)
from bench.measure import (
    MIN_RUNS,
    Report,
    cpu_seconds,
    interleaved,
    load_average,
    median,
    percentile,
)
from bench.wrk import HISTOGRAM_LUA, histogram_percentile, measured_latencies
from node.config import NodeConfig
from node.hub import open_hub
from node.store.models import CATEGORIES
from portal.i18n import negotiate
from portal.nginx import render_site

OFFERED = ["en", "ar", "es"]  # portal.languages by default
ORGANISER, ORGANISER_PASSWORD = "olga", "olga-street-password-1"
#: (Accept-Language, Cookie, weight): how the street's phones ask.
LANGUAGES = [("en-GB,en;q=0.9", "", 40), ("en-US,en;q=0.9", "", 12),
             ("es-ES,es;q=0.9", "", 14), ("es-419,es;q=0.9,en;q=0.8", "", 6),
             ("ar,en-US;q=0.7,en;q=0.3", "", 10), ("ar-EG,ar;q=0.9", "", 4),
             ("fr-FR,fr;q=0.9,en;q=0.8", "", 4), ("en-GB,en;q=0.9", "lang=es", 4),
             ("pl-PL,pl;q=0.9", "", 3), ("de-DE,de;q=0.9,es;q=0.8", "", 1),
             ("", "", 2)]
#: Share of requests, per 100, by kind of page.
MIX = {"home": 14, "listing": 24, "category": 19, "all_listings": 4, "notices": 2,
       "notice": 4, "library": 5, "item": 10, "fixed": 2, "search": 5, "organiser": 0.5,
       "malformed": 1}
SAMPLES = 40_000  # requests drawn for the wrk script (it picks among them at random)
#: Counting answers by status class in every wrk thread, and the result line.
COUNTING_LUA = r"""
local threads = {}
c2, c3, c4, c5, cp = 0, 0, 0, 0, 0
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body)
  if status >= 500 then c5 = c5 + 1 elseif status >= 400 then c4 = c4 + 1
  elseif status >= 300 then c3 = c3 + 1 else c2 = c2 + 1 end
  local cache = headers["X-Cache-Status"]
  if cache == "MISS" or cache == "BYPASS" or cache == "EXPIRED" then cp = cp + 1 end
end
function done(summary, latency, requests)
  local t = {0, 0, 0, 0, 0}
  for _, thread in ipairs(threads) do
    t[1] = t[1] + thread:get("c2"); t[2] = t[2] + thread:get("c3")
    t[3] = t[3] + thread:get("c4"); t[4] = t[4] + thread:get("c5")
    t[5] = t[5] + thread:get("cp")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT rps=%f p50=%d p95=%d p99=%d sockerr=%d s2=%d s3=%d s4=%d s5=%d portal=%d\n",
    summary.requests / seconds, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, t[1], t[2], t[3], t[4], t[5]))
end
""" + HISTOGRAM_LUA
#: The street: raw requests from a file (args[1]), one drawn at random each time.
WRK_LUA = r"""
local reqs = nil
function init(args)
  reqs = dofile(args[1])
  math.randomseed(os.time())
end
function request() return reqs[math.random(#reqs)] end
""" + COUNTING_LUA
_RESULT = re.compile(r"RESULT rps=([\d.]+) p50=(\d+) p95=(\d+) p99=(\d+) sockerr=(\d+) "
                     r"s2=(\d+) s3=(\d+) s4=(\d+) s5=(\d+) portal=(\d+)")


@dataclass(frozen=True)
class Ask:
    """One request of the mix: a path, and how the phone asks (language, cookie)."""

    path: str
    language: str = ""
    cookie: str = ""
    raw: str = ""  # a malformed request, sent as it is

    def http(self, host: str = "hub.mesh") -> str:
        """The request as wrk sends it."""
        if self.raw:
            return self.raw
        lines = [f"GET {self.path} HTTP/1.1", f"Host: {host}",
                 "User-Agent: Mozilla/5.0 (Linux; Android 14) Mobile",
                 "Accept: text/html,application/xhtml+xml,*/*;q=0.8",
                 "Accept-Encoding: gzip, deflate"]
        if self.language:
            lines.append(f"Accept-Language: {self.language}")
        if self.cookie:
            lines.append(f"Cookie: {self.cookie}")
        return "\r\n".join(lines) + "\r\n\r\n"


def _pages(count: int, per_page: int) -> int:
    return max(1, -(-count // per_page))


def _by_rank(rng: random.Random, n: int) -> int:
    """1..n, earlier ones likelier (weight 1/rank), as readers page through lists."""
    weights = [1 / k for k in range(1, n + 1)]
    return rng.choices(range(1, n + 1), weights)[0]


def _paged(path: str, page: int) -> str:
    return path if page == 1 else f"{path}?page={page}"


def distinct_pages(config: NodeConfig, rng: random.Random) -> dict[str, list[str]]:
    """The street's pages by kind (thousands of distinct URLs over the loaded node)."""
    store, _ = open_hub(config)
    try:
        per = int(config.portal.page_size)
        listings = store.listings(per_page=1).total
        ids = [row[0] for row in store._conn().execute("SELECT id FROM listings")]
        notices = [n.id for n in store.notices()]
        items = [row[0] for row in store._conn().execute("SELECT id FROM library_items")]
        categories = {c: store.listings(category=c, per_page=1).total for c in CATEGORIES}
        collections = [name for name, _ in store.collections()]
    finally:
        store.close()
    queries = [rng.choice(_WORDS) for _ in range(60)]
    queries += [" ".join(rng.sample(_WORDS, 2)) for _ in range(80)]
    queries += ["stories", "number 7", "recording", "radio", "flat", "elm street",
                "sofa number", "collection", "clip", "tent garden"]
    return {
        "home": ["/"],
        "listing": [f"/listing/{i}" for i in rng.sample(ids, min(600, len(ids)))],
        "category": [_paged(f"/listings/{c}", p) for c, n in categories.items()
                     for p in range(1, _pages(n, per) + 1)],
        "all_listings": [_paged("/listings/", p) for p in range(1, _pages(listings, per) + 1)],
        "notices": ["/notices/"],
        "notice": [f"/notices/{i}" for i in notices],
        "library": [_paged("/library/", p) for p in range(1, min(60, _pages(len(items), per)) + 1)]
        + [f"/library/?collection={urllib.parse.quote(c)}" for c in collections],
        "item": [f"/library/{i}" for i in rng.sample(items, min(400, len(items)))],
        "fixed": ["/rules", "/privacy", "/contact", "/about"],
        "search": ["/search?" + urllib.parse.urlencode({"q": q}) for q in dict.fromkeys(queries)],
        "organiser": ["/organisers/", "/", "/listings/for-sale", "/notices/"],
    }


def malformed(rng: random.Random, pages: dict[str, list[str]]) -> Ask:
    """One of the 1 %: what broken phones, scanners and fuzzers send."""
    page = rng.choice(pages["listing"] + pages["category"][:50])
    choice = rng.randrange(6)
    if choice == 0:
        return Ask(page + rng.choice(["?page=x", "?page=-3", "?page=99999999", "?q=%ZZ%"]))
    if choice == 1:
        return Ask(rng.choice(["/search?q=%ff%fe%00", "/search?q=" + "a" * 3000,
                               "/search?q=\"unbalanced", "/search?q=AND+OR+NOT+*"]))
    if choice == 2:
        return Ask(page, raw=Ask(page, "en").http().replace(
            "\r\n\r\n", "\r\nX-Padding: " + "x" * 10_000 + "\r\n\r\n"))
    if choice == 3:
        return Ask(page, raw=Ask(page, "en").http().replace(
            "\r\n\r\n", "\r\nRange: " + rng.choice(["bytes=abc", "bytes=9-3", "bytes=-",
                                                     "bytes=0-1,2-3,4-5,x"]) + "\r\n\r\n"))
    if choice == 4:
        return Ask(page, rng.choice(["xx-YY;q=banana", "*;q=-1", ",,,;;;", "q=1", "zz" * 200]))
    return Ask(page, cookie="lang=" + rng.choice(["klingon", "'es'", "%00", "e" * 500]))


def request_mix(pages: dict[str, list[str]], session: str, resident: str,
                rng: random.Random) -> list[Ask]:
    """:data:`SAMPLES` requests drawn by :data:`MIX`, :data:`LANGUAGES` and rank.

    A third of residents' requests carry the session cookie the welcome page's
    form gave them (``resident``), as phones that went through it do.
    """
    kinds = list(MIX)
    asks: list[Ask] = []
    languages = [(lang, cookie) for lang, cookie, _ in LANGUAGES]
    weights = [w for _, _, w in LANGUAGES]
    search_weights = [1 / (k + 1) ** 0.8 for k in range(len(pages["search"]))]
    for kind in rng.choices(kinds, [MIX[k] for k in kinds], k=SAMPLES):
        lang, cookie = rng.choices(languages, weights)[0]
        if kind == "malformed":
            asks.append(malformed(rng, pages))
            continue
        if kind in ("category", "all_listings", "library"):
            family = pages[kind]
            path = family[_by_rank(rng, len(family)) - 1] if kind != "category" else \
                rng.choice([p for p in family if "?" not in p] if rng.random() < 0.4 else family)
        elif kind == "search":
            path = rng.choices(pages["search"], search_weights)[0]
        else:
            path = rng.choice(pages[kind])
        if kind == "organiser":
            cookie = session + (f"; {cookie}" if cookie else "")
        elif rng.random() < 1 / 3:
            cookie = resident + (f"; {cookie}" if cookie else "")
        asks.append(Ask(path, lang, cookie))
    return asks


def lua_table(requests: list[str]) -> str:
    """A Lua chunk returning the raw requests (dofile'd by wrk's script)."""
    def quote(text: str) -> str:
        return '"' + "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else f"\\{ord(c)}"
                             for c in text) + '"'
    return "return {\n" + ",\n".join(quote(r) for r in requests) + "\n}\n"


def nginx_workers(master: int) -> list[int]:
    """The worker processes of the nginx master ``master`` (not its cache loader or manager)."""
    return [child.pid for child in psutil.Process(master).children()
            if "worker" in " ".join(child.cmdline())]


def wrk(port: int, requests: Path | None, seconds: int, connections: int,
        script: Path, *, keep: Path | None = None,
        cpu: dict[str, list[int]] | None = None) -> dict[str, float]:
    """One wrk run on core 1 against 127.0.0.1:``port`` with the given requests.

    ``keep``: a file for wrk's whole output (its latency distribution included).
    ``cpu``: processes by name (``nginx``, ``portal``) whose CPU time over the run
    is reported per request answered (``<name>_us``): unlike a rate, a cost
    that barely depends on what else the shared machine runs.
    """
    before = {name: cpu_seconds(*pids) for name, pids in (cpu or {}).items()}
    result = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
         "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/",
         *([str(requests)] if requests is not None else [])],
        capture_output=True, text=True, check=True, timeout=seconds + 120)
    used = {name: cpu_seconds(*pids) - before[name] for name, pids in (cpu or {}).items()}
    figures = {"load": load_average()}
    if keep is not None:
        keep.write_text(f"# wrk -t1 -c{connections} -d{seconds}s against port {port}, "
                        f"load {figures['load']:.2f}\n{result.stdout}{result.stderr}")
    match = _RESULT.search(result.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{result.stdout}{result.stderr}")
    rps, _, wrk_p95, _, sockerr, s2, s3, s4, s5, portal = (float(g) for g in match.groups())
    answered = max(1.0, s2 + s3 + s4 + s5)
    figures.update({f"{name}_us": 1e6 * seconds_used / answered
                    for name, seconds_used in used.items()})
    latencies = measured_latencies(result.stdout, connections)
    p50, p95, p99 = (histogram_percentile(latencies, f) for f in (0.50, 0.95, 0.99))
    return {"rps": rps, "p50": p50 / 1000, "p95": p95 / 1000, "p99": p99 / 1000,
            "p95_wrk": wrk_p95 / 1000,
            "sockerr": sockerr, "2xx": s2, "3xx": s3, "4xx": s4, "5xx": s5,
            "portal": 100 * portal / answered, **figures}


def sign_in(port: int) -> str:
    """The organiser's cookies (``Cookie:`` value), signed in through the form (CSRF and all)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/organisers/sign-in", headers={"Host": "hub.mesh"})
    response = conn.getresponse()
    page = response.read().decode()
    cookie = response.getheader("Set-Cookie", "").split(";")[0]
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    if token is None:
        raise RuntimeError("no CSRF token on the sign-in form")
    body = urllib.parse.urlencode({"csrf_token": token.group(1), "name": ORGANISER,
                                   "password": ORGANISER_PASSWORD})
    conn.request("POST", "/organisers/sign-in", body=body,
                 headers={"Host": "hub.mesh", "Cookie": cookie,
                          "Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    cookies = _set_cookies(response, {})
    if response.status not in (302, 303) or "meshhub_session" not in cookies:
        raise RuntimeError(f"sign-in failed: {response.status}")
    # Follow the redirect as a browser does: the page it leads to shows "Signed in as ..."
    # and the session cookie it sets no longer holds that message. Replaying the sign-in's
    # own cookie instead would show the message on every page (each one rendered for it).
    for path in (urllib.parse.urlsplit(response.getheader("Location", "/")).path, "/"):
        conn.request("GET", path, headers={"Host": "hub.mesh", "Cookie": _cookie(cookies)})
        response = conn.getresponse()
        page = response.read().decode()
        cookies = _set_cookies(response, cookies)
    conn.close()
    if response.status != 200 or 'class="flash' in page:
        raise RuntimeError(f"signed in, but home is {response.status} or still shows a message")
    return _cookie(cookies)  # the session and the private-pages marker, as a browser keeps


def _set_cookies(response: http.client.HTTPResponse, cookies: dict[str, str]) -> dict[str, str]:
    """``cookies`` (name: value) updated by the answer's ``Set-Cookie`` lines."""
    kept = dict(cookies)
    for name, value in response.getheaders():
        if name.lower() == "set-cookie":
            key, _, rest = value.split(";")[0].partition("=")
            if "max-age=0" in value.lower() or "expires=thu, 01 jan 1970" in value.lower():
                kept.pop(key, None)
            else:
                kept[key] = rest
    return kept


def _cookie(cookies: dict[str, str]) -> str:
    """A ``Cookie:`` header's value."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def welcome_cookie(port: int) -> str:
    """The session cookie a resident's phone gets from the welcome page (its CSRF token)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/welcome", headers={"Host": "hub.mesh"})
    response = conn.getresponse()
    response.read()
    conn.close()
    found = re.search(r"meshhub_session=[^;]+", response.getheader("Set-Cookie", ""))
    if found is None:
        raise RuntimeError("the welcome page set no session cookie")
    return found.group(0)


def fetch(port: int, ask: Ask) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one request (identity encoding)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Host": "hub.mesh"}
    if ask.language:
        headers["Accept-Language"] = ask.language
    if ask.cookie:
        headers["Cookie"] = ask.cookie
    start = time.perf_counter()
    conn.request("GET", ask.path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    took = time.perf_counter() - start
    conn.close()
    return response.status, body, took


def static_copy(port: int, asks: list[Ask], folder: Path) -> list[Ask]:
    """The ceiling's requests: each distinct well-formed page saved as a file (+ .gz)."""
    saved: dict[tuple[str, str, str], str] = {}
    out: list[Ask] = []
    for ask in asks:
        if ask.raw:
            out.append(ask)
            continue
        cookie_lang = re.search(r"(?:^|; )lang=([^;]*)", ask.cookie)
        lang = cookie_lang.group(1) if cookie_lang and cookie_lang.group(1) in OFFERED else \
            negotiate(ask.language, OFFERED, "en")
        key = (ask.path, lang, "organiser" if "meshhub_private" in ask.cookie else "")
        if key not in saved:
            _, body, _ = fetch(port, ask)
            name = f"/s/{len(saved)}.html"
            (folder / name[1:]).write_bytes(body)
            (folder / (name[1:] + ".gz")).write_bytes(gzip.compress(body, 6))
            saved[key] = name
        out.append(Ask(saved[key], ask.language, ask.cookie))
    return out


def add_street(config: NodeConfig) -> None:
    """What the loader leaves out: notices (a few expiring later) and an organiser."""
    from argon2 import PasswordHasher

    store, hub = open_hub(config, password_hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                                 parallelism=1))
    try:
        hub.create_account(None, name=ORGANISER, password=ORGANISER_PASSWORD, role="organiser")
        rng = random.Random(7)
        for n in range(30):
            hub.post_notice(ORGANISER, title=f"Notice {n}: {rng.choice(_WORDS)} meeting",
                            body=" ".join(rng.choice(_WORDS) for _ in range(80)),
                            urgent=n % 10 == 0, pinned=n % 7 == 0,
                            expires_at=int(time.time()) + 86_400 * (n + 1) if n % 3 else None)
    finally:
        store.close()


@contextmanager
def nginx(folder: Path, config: NodeConfig, library_dir: str, portal_port: int,
          static: Path) -> Iterator[tuple[int, int, int]]:
    """nginx on core 0 (fresh cache): the node's site and the ceiling.

    Yields the (site, files) ports and the nginx master's process id.
    """
    front, files = listening_socket(), listening_socket()
    ports = front.getsockname()[1], files.getsockname()[1]
    prefix = folder / "nginx"
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir()
    site = render_site(config, library_dir=library_dir, listen=f"127.0.0.1:{ports[0]}",
                       cache_dir=prefix / "cache", portal_address=f"127.0.0.1:{portal_port}")
    site += (f"\nserver {{\n    listen 127.0.0.1:{ports[1]};\n    access_log off;\n"
             f"    sendfile on;\n    tcp_nopush on;\n    gzip_static on;\n    root {static};\n"
             "    types { }\n    default_type \"text/html; charset=utf-8\";\n}\n")
    process = nginx_on_core0(prefix, site, (front, files))
    try:
        wait_for_http(f"http://127.0.0.1:{ports[0]}/", process)
        yield ports[0], ports[1], process.pid
    finally:
        stop(process)


def settle(pid: int, timeout: float = 60.0) -> float:
    """Wait until process ``pid`` is idle (under 5 % of a core for 0.2 s); seconds waited.

    When wrk stops, waitress still answers the requests it had read from wrk's
    connections (at 200 connections straight to it, up to 200 pages: seconds of
    Python). Without this wait that backlog ran into the next configuration on
    the same core: a diagnostic front run right after a direct one had p95 389 ms
    where the next front run had 23 ms.
    """
    process = psutil.Process(pid)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        before = sum(process.cpu_times()[:2])
        time.sleep(0.2)  # the window the CPU time is compared over (not a wait for an event)
        if sum(process.cpu_times()[:2]) - before < 0.01:
            break
    return time.monotonic() - start


def wait_for_page_files(config: NodeConfig, timeout: float = 3600) -> float:
    """Seconds until the portal's page files are all rendered (their state file says so)."""
    state = Path(config.data_dir) / "pages" / ".state.json"
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if json.loads(state.read_text())["complete"]:
                return time.monotonic() - start
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"page files not complete after {timeout} s")


def summary(report: Report, name: str, runs: list[dict[str, float]]) -> dict[str, float]:
    """Medians of a configuration's runs, printed for information."""
    med = {key: median(r[key] for r in runs) for key in runs[0]}
    note = (f"median of {len(runs)}; p50 {med['p50']:.1f} ms, p95 {med['p95']:.1f} ms (wrk's own, "
            f"with its correction: {med['p95_wrk']:.1f} ms); 5xx {sum(r['5xx'] for r in runs):.0f}"
            f"; 4xx {med['4xx']:.0f}; socket errors {med['sockerr']:.0f}")
    if name.startswith("front"):  # nginx says whether the portal answered (MISS, BYPASS, EXPIRED)
        note += f"; answered by the portal {med['portal']:.2f} %"
    note += "".join(f"; {who} CPU {med[f'{who}_us']:.1f} us a request"
                    for who in ("nginx", "portal") if f"{who}_us" in med)
    report.info(f"{name}_rps", med["rps"], "requests/s", note)
    return med


def main(argv: list[str] | None = None) -> int:
    """Load, render, measure interleaved, then cold; print every figure with its target."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per run")
    parser.add_argument("--duration", type=int, default=None, help="seconds per run")
    parser.add_argument("--runs", type=int, default=MIN_RUNS, help="runs per configuration")
    parser.add_argument("--listings", type=int, default=10_000, help="listings loaded")
    parser.add_argument("--items", type=int, default=5_000, help="library items loaded")
    parser.add_argument("--search-only", action="store_true",
                        help="only the search over distinct queries (no street, no cold start)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="a folder to keep every wrk run's whole output in")
    args = parser.parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    kept = [0]

    def keep(name: str) -> Path | None:
        """Where the next run of ``name`` keeps wrk's output (numbered in running order)."""
        if args.keep is None:
            return None
        kept[0] += 1
        return args.keep / f"{kept[0]:03d}-{name}.txt"

    seconds = args.duration or (3 if args.quick else 10)
    if tools_missing("bench/street.py", "wrk", "taskset", NGINX):
        return 2
    report = Report()
    rng = random.Random(16)
    with tempfile.TemporaryDirectory(prefix="meshhub-street-") as tmp:
        folder = Path(tmp)
        config = write_config(folder)
        ids = load(config, listings=args.listings, items=args.items, big_mb=1)
        add_street(config)
        pages = distinct_pages(config, rng)
        distinct = sum(len(v) for k, v in pages.items() if k != "organiser")
        print(f"# loaded {args.listings} listings, {args.items} library items, 30 notices; "
              f"{distinct} distinct "
              f"pages; {seconds} s per run, {args.runs} runs per configuration", flush=True)
        script = folder / "street.lua"
        script.write_text(WRK_LUA)
        static = folder / "static"
        (static / "s").mkdir(parents=True)
        started = time.monotonic()
        with portal_process(folder / "node.toml") as (portal, portal_port):
            build = wait_for_page_files(config)
            report.info("page_files_first_build", build, "s",
                        f"every residents' page in {len(config.portal.languages)} languages, "
                        f"portal started {time.monotonic() - started - build:.1f} s before")
            if args.search_only:
                with nginx(folder, config, ids["library_dir"], portal_port,
                           folder / "static") as (front, _, _):
                    search(report, folder, front, portal_port, seconds, keep, rng)
                return report.exit_code()
            session = sign_in(portal_port)
            asks = request_mix(pages, session, welcome_cookie(portal_port), rng)
            with nginx(folder, config, ids["library_dir"], portal_port,
                       static) as (front, ceil, master):
                cpu = {"nginx": nginx_workers(master), "portal": [portal.pid]}
                ceiling_asks = static_copy(front, asks, static)
                files = {"front": folder / "front.lua", "static": folder / "static.lua"}
                files["front"].write_text(lua_table([a.http() for a in asks]))
                files["static"].write_text(lua_table([a.http() for a in ceiling_asks]))
                ports = {"front": front, "direct": portal_port, "static": ceil}
                def run(where: str, conns: int) -> Callable[[], dict[str, float]]:
                    requests = files["static" if where == "static" else "front"]
                    def measured() -> dict[str, float]:
                        settle(portal.pid)  # the previous run's leftovers first
                        return wrk(ports[where], requests, seconds, conns, script,
                                   keep=keep(f"{where}_{conns}"), cpu=cpu)
                    return measured
                configurations = {f"{where}_{conns}": run(where, conns) for conns in (50, 200)
                                  for where in ("front", "direct", "static")}
                results = interleaved(configurations, args.runs)
        medians = {name: summary(report, name, runs) for name, runs in results.items()}
        for conns in (50, 200):
            report.ratio_to_ceiling(f"street_front_vs_static_{conns}", medians[f"front_{conns}"]
                                    ["rps"], medians[f"static_{conns}"]["rps"], 0.25,
                                    f"{conns} connections", ceiling_name="nginx static")
            report.info(f"street_direct_vs_static_{conns}", 100 * medians[f"direct_{conns}"]
                        ["rps"] / medians[f"static_{conns}"]["rps"], "%")
        report.at_most("street_front_p95_200", medians["front_200"]["p95"], "ms", 50)
        report.info("street_direct_p95_200", medians["direct_200"]["p95"], "ms")
        report.at_most("street_5xx", sum(sum(r["5xx"] for r in runs)
                                         for runs in results.values()), "responses", 0,
                       "every run, malformed 1 % included")

        # --- a cold start: both restarted, nginx's cache gone, page files kept ---------------
        with (portal_process(folder / "node.toml") as (_, portal_port),
              nginx(folder, config, ids["library_dir"], portal_port, static) as (front, _, _)):
                resident = [*pages["listing"], *pages["item"], *pages["category"],
                            *pages["notice"], *pages["all_listings"]]
                first = []
                for path in rng.sample(resident, 300):
                    lang, cookie, _ = rng.choice(LANGUAGES)
                    status, _, took = fetch(front, Ask(path, lang, cookie))
                    if status != 200:
                        raise RuntimeError(f"{path}: {status} on the cold start")
                    first.append(took * 1000)
                report.at_most("first_render_p95_cold", percentile(first, 0.95), "ms", 1.0,
                               f"300 distinct pages, one at a time, just after a restart; "
                               f"p50 {percentile(first, 0.5):.2f} ms")
                cold = wrk(front, files["front"], seconds, 50, script, keep=keep("front_50_cold"))
                report.info("street_front_50_cold_rps", cold["rps"], "requests/s",
                            f"first run after the restart; p95 {cold['p95']:.1f} ms; "
                            f"5xx {cold['5xx']:.0f}")
                search(report, folder, front, portal_port, seconds, keep, rng)
    return report.exit_code()


SEARCH_LUA = r"""
local queries = { {QUERIES} }
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/search?q=" .. queries[(n - 1) % #queries + 1], {
    ["Host"] = "hub.mesh", ["Accept-Language"] = "en-GB,en;q=0.9",
    ["Accept-Encoding"] = "gzip"})
end
"""
#: Distinct queries written for each search run: more than one reader asks in a run.
QUERIES_PER_RUN = 6_000


def distinct_queries(rng: random.Random) -> Iterator[str]:
    """Every query of two to four different words of the loaded text, each once, in a
    random order (URL-encoded). Word order and repeats do not make a query new to the
    portal's search cache (it keeps answers under the normalised query), so none has
    them; a word alone is left out: there are only a few dozen."""
    words = sorted({w for w in _WORDS if w.isascii()})
    pool = [" ".join(c) for k in (2, 3, 4) for c in itertools.combinations(words, k)]
    rng.shuffle(pool)
    yield from (urllib.parse.quote_plus(q) for q in pool)


def search(report: Report, folder: Path, front: int, direct: int, seconds: int,
           keep: Callable[[str], Path | None], rng: random.Random) -> None:
    """Search p95 over queries nobody asked before: every run asks its own slice of
    :func:`distinct_queries`, so neither nginx's cache nor the portal's search cache
    has seen any of them (a run that asks more than its slice is refused)."""
    queries = distinct_queries(rng)

    def run(port: int, name: str) -> Callable[[], dict[str, float]]:
        def measured() -> dict[str, float]:
            batch = list(itertools.islice(queries, QUERIES_PER_RUN))
            if len(batch) < QUERIES_PER_RUN:
                raise RuntimeError("bench/street.py: out of distinct search queries")
            script = folder / f"search-{name}.lua"
            script.write_text(SEARCH_LUA.replace("{QUERIES}", ", ".join(
                f'"{q}"' for q in batch)) + COUNTING_LUA)
            found = wrk(port, None, seconds, 1, script, keep=keep(f"search_{name}"))
            asked = found["2xx"] + found["3xx"] + found["4xx"] + found["5xx"]
            if asked > len(batch):
                raise RuntimeError(f"bench/street.py: {asked:.0f} searches in one run, more "
                                   f"than the {len(batch)} distinct queries written for it: "
                                   "raise QUERIES_PER_RUN")
            return found

        return measured

    runs = interleaved({"front": run(front, "front"), "direct": run(direct, "direct")},
                       MIN_RUNS)
    for name, found in runs.items():
        p95 = median(r["p95"] for r in found)
        note = (f"one reader, every query new (2-4 words, many match thousands of rows); "
                f"median of {len(found)}; {median(r['rps'] for r in found):.0f} searches/s")
        if name == "front":
            note += f"; {median(r['portal'] for r in found):.0f} % answered by the portal"
            report.at_most("search_uncached_p95_front", p95, "ms", 20, note)
        else:
            report.info("search_uncached_p95_direct", p95, "ms", note)


if __name__ == "__main__":
    sys.exit(main())
