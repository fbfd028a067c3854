"""Residents' pages as files (portal/pagefiles.py), sent by the real nginx of the node's site.

Each test starts the renderer against the portal behind nginx (the ``front``
fixture of test_nginx.py) and waits for its witness (``.state.json`` complete,
a file appearing or disappearing), never for a fixed time.
"""

from __future__ import annotations

import gzip as gz
import http.client
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.waiting import wait_for
from portal import pagefiles
from portal.auth import PRIVATE_COOKIE
from portal.i18n import negotiate
from portal.nginx import language_maps
from tests.portal.conftest import ORGANISER, ORGANISER_PASSWORD
from tests.portal.test_nginx import Front, front  # noqa: F401 - the fixture

RENDER_WAIT = 180  # the renderer's work is the witness; generous, as CI is busy

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "referrer-policy",
                    "cache-control", "content-type")


def complete(root: Path) -> bool:
    """Whether the renderer says it has nothing left to render."""
    try:
        return bool(json.loads((root / pagefiles.STATE_NAME).read_text())["complete"])
    except (OSError, ValueError):
        return False


@pytest.fixture
def served(front: Front) -> Iterator[tuple[Front, pagefiles.Renderer]]:  # noqa: F811
    """The front with the renderer running and its first build done."""
    config = front.app.config["NODE_CONFIG"]
    renderer = pagefiles.start(front.app, config)  # with LazyFiles, as `portal serve` does
    assert renderer is not None
    try:
        wait_for("the first build", lambda: complete(renderer.root), timeout=RENDER_WAIT)
        yield front, renderer
    finally:
        renderer.stop()


def test_pages_are_sent_as_files_with_the_portals_bytes_and_headers(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, _ = served
    client = site.app.test_client()
    for path in ("/", "/listings/", "/listings/for-sale", "/notices/", "/library/", "/about",
                 f"/library/{site.library_id}"):
        status, headers, body = site.request(path, {"Accept-Language": "es-ES,es;q=0.9"})
        assert (status, headers["x-cache-status"]) == (200, "FILE"), path
        direct = client.get(path, headers={"Accept-Language": "es"})
        assert body == direct.data, path
        for name in SECURITY_HEADERS:
            assert headers[name] == direct.headers[name], (path, name)
        assert set(headers["vary"].replace(" ", "").split(",")) >= {"Cookie", "Accept-Language"}
    status, headers, _ = site.request("/", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["content-encoding"] == "gzip"
    assert headers["x-cache-status"] == "FILE"


def test_what_a_file_cannot_answer_goes_to_the_portal(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, _ = served
    for path, headers in (("/search?q=bicycle", {}), ("/?x=1", {}), ("/listings/?page=1", {}),
                          ("/", {"Cookie": "meshhub_session=abc; meshhub_private=1"}),
                          ("/", {"Cookie": "lang=fr"}),
                          ("/", {"Accept-Language": "es;q=0.5, ar;q=0.7"}),
                          ("/", {"User-Agent": "CaptiveNetworkSupport-407 wispr"}),
                          ("/", {"Host": "connectivitycheck.gstatic.com"})):
        _, answer, _ = site.request(path, headers)
        assert answer.get("x-cache-status") != "FILE", (path, headers)


@pytest.mark.parametrize("header", [
    "", "fr", "es", "EN-gb", "ar ; q=1", "de, es, en", "es-ES,en;q=0.9", "en;q=0, es",
    "x-ar, ar-EG", "de-DE,de;q=0.9,en;q=0.8", "*, es", "es, *", "english, es", "es_419",
    "ar;q=1.000, en", "de;q=0.9, es;q=0.8", "en;level=1, es"])
def test_nginx_picks_the_language_the_portal_would(
        served: tuple[Front, pagefiles.Renderer], header: str) -> None:
    site, _ = served
    status, headers, body = site.request("/", {"Accept-Language": header})
    expected = negotiate(header, ["en", "ar", "es"], "en")
    assert status == 200 and f'<html lang="{expected}"'.encode() in body, headers
    for cookie in ("lang=ar", "lang=es; other=1"):
        _, headers, body = site.request("/", {"Accept-Language": header, "Cookie": cookie})
        chosen = cookie.split(";")[0].split("=")[1]
        assert f'<html lang="{chosen}"'.encode() in body


def test_a_new_listing_replaces_exactly_its_pages(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, renderer = served
    about = renderer.root / pagefiles.file_name("en", "/about")
    about_before = about.stat().st_mtime_ns
    with site.app.app_context():
        listing = site.seeder.listing(title="Red kettle, barely used", category="wanted")

    def shows_it() -> bool:
        _, headers, body = site.request("/listings/wanted")
        return headers["x-cache-status"] == "FILE" and b"Red kettle" in body
    wait_for("the category page file with the new listing", shows_it, timeout=RENDER_WAIT)
    wait_for("the re-render", lambda: complete(renderer.root), timeout=RENDER_WAIT)
    for path in ("/", "/listings/", f"/listing/{listing.id}"):
        status, headers, body = site.request(path)
        assert (status, headers["x-cache-status"]) == (200, "FILE") and b"Red kettle" in body, path
    assert about.stat().st_mtime_ns == about_before  # untouched pages stay as they were


def test_an_expired_listing_leaves_every_file(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, renderer = served
    expires = int(time.time() + pagefiles.MARGIN_SECONDS) + 4
    with site.app.app_context():
        listing = site.seeder.listing(title="Garden chairs until soon", expires_at=expires)
    own = renderer.root / pagefiles.file_name("en", f"/listing/{listing.id}")
    wait_for("the listing's own file", own.exists, timeout=RENDER_WAIT)
    status, headers, _ = site.request(f"/listing/{listing.id}")
    assert (status, headers["x-cache-status"]) == (200, "FILE")
    wait_for("the file's removal before the expiry", lambda: not own.exists(),
             timeout=RENDER_WAIT)
    assert time.time() < expires
    wait_for("the expiry", lambda: time.time() >= expires, timeout=RENDER_WAIT)
    status, _, _ = site.request(f"/listing/{listing.id}")
    assert status == 410
    wait_for("the re-render after the expiry", lambda: complete(renderer.root),
             timeout=RENDER_WAIT)
    status, headers, body = site.request("/listings/for-sale")
    assert headers["x-cache-status"] == "FILE" and b"Garden chairs" not in body


def test_a_restart_serves_the_files_at_once_without_rendering_again(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, renderer = served
    renderer.stop()
    again = pagefiles.Renderer(site.app, site.app.config["NODE_CONFIG"])
    again.resume()
    assert again.queue == {} and again.rendered == 0
    status, headers, _ = site.request("/")
    assert (status, headers["x-cache-status"]) == (200, "FILE")


@pytest.mark.parametrize(("header", "expected"), [
    ("", "en"), ("fr", "en"), ("es-419", "es"), ("de, ar;q=0.5", "ar"),
    ("es;q=0.5, ar;q=0.7", "ar"), ("en;q=0, es", "es"), ("ar;q=abc, es", "es"),
    ("*;q=0.9, es;q=0.5", "en"), ("es, ar", "es"), ("AR", "ar")])
def test_negotiate(header: str, expected: str) -> None:
    assert negotiate(header, ["en", "ar", "es"], "en") == expected


def test_the_fingerprint_is_the_same_in_every_process(tmp_path: Path) -> None:
    """A restart must find its files still valid: no per-process ordering in the digest."""
    (tmp_path / "node.toml").write_text('[node]\ndata_dir = "data"\n[portal]\n'
                                        'behind_proxy = true\nlanguages = ["en", "es"]\n')
    code = ("import sys; from node.config import load_config; from portal.pagefiles import "
            "fingerprint; print(fingerprint(load_config(sys.argv[1])))")
    prints = {subprocess.run([sys.executable, "-c", code, str(tmp_path / "node.toml")],
                             env={**os.environ, "PYTHONHASHSEED": seed}, check=True,
                             capture_output=True, text=True).stdout for seed in ("1", "2", "3")}
    assert len(prints) == 1


def _cookies(headers: list[tuple[str, str]]) -> dict[str, str]:
    found = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            found[key] = rest.split(";")[0]
    return found


def _raw(site: Front, method: str, path: str, headers: dict[str, str],
         body: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def test_a_residents_csrf_session_gets_files_and_a_signed_in_organiser_does_not(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, _ = served
    _, headers, page = _raw(site, "GET", "/organisers/sign-in", {})
    session = _cookies(headers)["meshhub_session"]  # the sign-in form's CSRF token
    resident = {"Cookie": f"meshhub_session={session}"}
    status, answer, _ = site.request("/", resident)
    assert (status, answer["x-cache-status"]) == (200, "FILE")
    token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token is not None
    form = urllib.parse.urlencode({"csrf_token": token.group(1).decode(), "name": ORGANISER,
                                   "password": ORGANISER_PASSWORD})
    status, headers, _ = _raw(site, "POST", "/organisers/sign-in", {
        **resident, "Content-Type": "application/x-www-form-urlencoded"}, form)
    assert status in (302, 303)
    cookies = _cookies(headers)
    assert cookies[PRIVATE_COOKIE] == "1"
    signed_in = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}
    status, answer, _ = site.request("/", signed_in)
    assert status == 200 and answer.get("x-cache-status") != "FILE"
    assert answer["cache-control"] == "private, no-store"
    # A browser holding the cookie but signed in no more gets it deleted.
    stale = {"Cookie": f"meshhub_session={session}; {PRIVATE_COOKIE}=1"}
    status, headers, _ = _raw(site, "GET", "/", stale)
    assert status == 200 and _cookies(headers).get(PRIVATE_COOKIE) == ""


def _header_map(offered: list[str], default: str) -> Callable[[str], str]:
    """``$meshhub_lang_header`` as nginx evaluates the rendered map (PCRE, ASCII headers)."""
    text = language_maps(offered, default)
    block = text[text.index("map $http_accept_language"):]
    block = block[:block.index("\n}")]
    exact: dict[str, str] = {}
    patterns: list[tuple[re.Pattern[str], str]] = []
    for key, value in re.findall(r'^\s+("[^"]*"|\S+) (\S+);$', block, re.MULTILINE):
        key = key.strip('"')
        if key.startswith("~*"):
            patterns.append((re.compile(key[2:], re.IGNORECASE | re.ASCII), value.strip('"')))
        elif key != "default":
            exact[key] = value.strip('"')

    def choose(header: str) -> str:
        if header in exact:
            return exact[header]
        return next((value for pattern, value in patterns if pattern.search(header)), "")
    return choose


def test_the_language_maps_never_choose_otherwise_than_the_portal() -> None:
    """Random headers: whenever nginx's map decides, it decides as negotiate() does."""
    offered = ["en", "ar", "es"]
    choose = _header_map(offered, "en")
    tags = ["en", "EN-gb", "es", "es-419", "es_ES", "ar", "ar-EG", "fr", "fr-FR", "de", "pl",
            "x-ar", "english", "*", "zz", "q", "ara", "en-", ""]
    qualities = ["", ";q=1", ";q=0", ";q=0.5", ";q=0.001", ";q=0.000", ";q=1.000", ";q=abc",
                 ";Q=0.9", " ; q = 0.7", ";level=1", ";q=2", ";q=-1", ";q=0.0001", ";q=1.5"]
    rng = random.Random(16)
    decided = 0
    for _ in range(20_000):
        header = rng.choice([",", ", ", " ,", ",\t"]).join(
            rng.choice(tags) + rng.choice(qualities) for _ in range(rng.randint(1, 4)))
        chosen = choose(header)
        if chosen:
            decided += 1
            assert chosen == negotiate(header, offered, "en"), header
    assert decided > 5_000  # the maps decide most of them, not only the trivial ones
    for header, expected in (("fr-FR,fr;q=0.9,en;q=0.8", "en"), ("de-DE,de;q=0.9,es;q=0.8", "es"),
                             ("pl-PL,pl;q=0.9", "en"), ("de;q=1, ar;q=0.1", "ar"),
                             ("fr, es;q=0, en;q=0.5", ""), ("fr, es;q=0", ""),
                             ("fr;level=1, es;q=0.5", ""), ("fr, *;q=0.5, es;q=0.1", "")):
        assert choose(header) == expected, header


def test_a_search_is_kept_as_a_file_until_the_next_change(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, renderer = served
    client = site.app.test_client()
    path = "/search?q=bicycle"
    status, headers, first = site.request(path)
    assert (status, headers.get("x-cache-status")) == (200, "MISS")  # the portal's answer
    kept = renderer.root / pagefiles.lazy_name("en", "/search", "q=bicycle")
    wait_for("the answer kept (after it was sent)", kept.exists, timeout=RENDER_WAIT)
    assert kept.with_name(kept.name + ".gz").exists()
    status, headers, body = site.request(path, {"Accept-Language": "en-GB,en;q=0.9",
                                               "Cookie": "meshhub_session=abc"})
    assert (status, headers["x-cache-status"], body) == (200, "FILE", first)
    direct = client.get(path)
    for name in SECURITY_HEADERS:
        assert headers[name] == direct.headers[name], name
    _, headers, _ = site.request(path, {"Accept-Language": "es"})
    assert headers["x-cache-status"] != "FILE"  # another language: its own answer
    encoded = "/search?q=Blue+bicycle%21%C3%A9"  # the file is named by the query as sent
    _, _, answer = site.request(encoded)
    wait_for("the encoded query kept", (renderer.root / pagefiles.lazy_name(
        "en", "/search", encoded.partition("?")[2])).exists, timeout=RENDER_WAIT)
    status, headers, body = site.request(encoded)
    assert (status, headers["x-cache-status"], body) == (200, "FILE", answer)
    _, headers, _ = site.request(path, {"Cookie": f"meshhub_session=abc; {PRIVATE_COOKIE}=1"})
    assert headers["x-cache-status"] != "FILE"
    with site.app.app_context():
        site.seeder.listing(title="Red bicycle, new tyres")

    def shows_it() -> bool:
        return b"Red bicycle" in site.request(path)[2]
    wait_for("the search answer with the new listing", shows_it, timeout=RENDER_WAIT)
    wait_for("the answer kept again", kept.exists, timeout=RENDER_WAIT)
    status, headers, body = site.request(path)
    assert (status, headers["x-cache-status"]) == (200, "FILE") and b"Red bicycle" in body


def test_answers_are_kept_only_while_true_and_only_so_many(
        served: tuple[Front, pagefiles.Renderer], monkeypatch: pytest.MonkeyPatch) -> None:
    _, renderer = served
    before = renderer.generation
    renderer._delete("/search")  # a change between the render and the write
    assert not renderer.keep(before, "en", "/search", "q=old", b"<html>old</html>")
    assert not (renderer.root / pagefiles.lazy_name("en", "/search", "q=old")).exists()
    for path, args in (("/search", "page=2"), ("/search", "q=a/b"), ("/zim/x", "q=a"),
                       ("/search", "q=" + "a" * 200)):
        assert not renderer.keep(renderer.generation, "en", path, args, b"x"), (path, args)
    monkeypatch.setattr(pagefiles, "LAZY_MAX", 3)
    for n in range(5):
        assert renderer.keep(renderer.generation, "en", "/search", f"q=w{n}", b"<html></html>")
    names = {p.name for p in (renderer.root / "en").glob("search@a-*.html")}
    assert names == {"search@a-q=w2.html", "search@a-q=w3.html", "search@a-q=w4.html"}


def test_kept_searches_are_forgotten_after_ten_minutes(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    """What residents searched for does not stay on the node; a collection's answer may
    (a restart forgets searches too: test_a_restart_keeps_the_answers_still_true)."""
    _, renderer = served
    search = renderer.root / pagefiles.lazy_name("en", "/search", "q=midwife")
    collection = renderer.root / pagefiles.lazy_name("en", "/library/", "collection=maps")
    assert renderer.keep(renderer.generation, "en", "/search", "q=midwife", b"<html>s</html>")
    assert renderer.keep(renderer.generation, "en", "/library/", "collection=maps",
                         b"<html>c</html>")
    assert renderer.forget_searches(time.monotonic()) == 0  # a fresh answer stays
    assert search.exists() and collection.exists()
    later = time.monotonic() + pagefiles.SEARCH_KEEP_SECONDS + 1
    assert renderer.forget_searches(later) == 1
    assert not search.exists() and not search.with_name(search.name + ".gz").exists()
    assert collection.exists()


def test_a_private_or_cookie_setting_answer_is_never_kept(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    site, renderer = served
    site.request("/search?q=water", {"Cookie": "meshhub_session=abc"})
    site.request("/welcome?x=1")
    site.request("/listing/no-such-listing?x=1")  # a 404
    site.request("/search?q=tuesday")  # everyone's: the witness that the others were weighed
    witness = renderer.root / pagefiles.lazy_name("en", "/search", "q=tuesday")
    wait_for("the witness kept", witness.exists, timeout=RENDER_WAIT)
    assert {p.name for p in renderer.root.rglob("*@a-*")} == {witness.name, witness.name + ".gz"}


def test_warming_up_compiles_each_kind_of_page_and_writes_nothing(front: Front) -> None:  # noqa: F811
    """After a start the portal has its templates ready for what files cannot answer."""
    renderer = pagefiles.Renderer(front.app, front.app.config["NODE_CONFIG"])
    renderer.resume()
    before = sorted(renderer.root.rglob("*"))
    renderer.warm()
    cache = front.app.jinja_env.cache
    assert cache is not None
    loaded = {str(key[1]) for key in cache}  # (loader id, template name)
    assert {"residents/search.html", "residents/listing.html", "residents/listings.html"} <= loaded
    assert sorted(renderer.root.rglob("*")) == before
    renderer.stop()


def test_a_restart_keeps_the_answers_still_true(served: tuple[Front, pagefiles.Renderer]) -> None:
    """Answers other than searches survive a restart while true; searches never do."""
    site, renderer = served
    assert renderer.keep(renderer.generation, "en", "/search", "q=midwife", b"<html>x</html>")
    for path, args in (("/about", "x=1"), ("/listings/", "x=2")):
        assert renderer.keep(renderer.generation, "en", path, args, b"<html>x</html>")
    renderer.stop()
    again = pagefiles.Renderer(site.app, site.app.config["NODE_CONFIG"])
    again.resume()
    assert set(again.lazy) == {pagefiles.lazy_name("en", "/about", "x=1"),
                               pagefiles.lazy_name("en", "/listings/", "x=2")}
    assert not (again.root / pagefiles.lazy_name("en", "/search", "q=midwife")).exists()
    again.stop()
    with site.app.app_context():
        site.seeder.listing(title="Posted while the portal was down")
    third = pagefiles.Renderer(site.app, site.app.config["NODE_CONFIG"])
    third.resume()  # the new listing touches the listings, not the fixed pages
    assert set(third.lazy) == {pagefiles.lazy_name("en", "/about", "x=1")}
    assert not (third.root / pagefiles.lazy_name("en", "/listings/", "x=2")).exists()
    third.stop()


def test_a_replaced_page_file_is_seen_within_a_second_and_a_deleted_one_never_404s(
        served: tuple[Front, pagefiles.Renderer]) -> None:
    """nginx keeps page files open for a second (open_file_cache): a file the renderer
    replaced by rename is sent within about that, and a deleted one is answered by the
    portal, never with a 404, even while nginx holds the old one's .gz open."""
    site, renderer = served
    gzip = {"Accept-Encoding": "gzip"}
    name = pagefiles.file_name("en", "/about")
    status, headers, _ = site.request("/about", gzip)  # now in nginx's file cache
    assert (status, headers["x-cache-status"]) == (200, "FILE")
    renderer._write(name, b"<!doctype html><p>about, rendered again</p>")
    replaced = time.monotonic()
    wait_for("the re-rendered page through the front",
             lambda: site.request("/about")[2].endswith(b"rendered again</p>"), timeout=10)
    assert time.monotonic() - replaced < 3  # open_file_cache_valid 1s, counted in whole seconds
    for n in range(5):  # the cached lookup and the deletion fall in the same second nearly always
        version = f"<p>about, version {n}</p>".encode()
        renderer._write(name, b"<!doctype html>" + version)
        # Through gzip only: nginx has then looked at the page's name (try_files) without
        # opening it, and opened its .gz.
        wait_for("the new version through the front", lambda v=version: gz.decompress(
            site.request("/about", gzip)[2]).endswith(v), timeout=10)
        renderer._unlink(name)
        status, headers, _ = site.request("/about")  # no gzip: nginx opens the page itself
        assert status == 200, (status, headers)  # the portal answers
