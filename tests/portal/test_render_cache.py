"""The in-process page cache (portal/pagecache.py): fast repeats, never a stale page.

Every test checks what a resident would see: after any change to the content
(by this portal, by another process writing the same database, or an item
reaching its expiry time) the next page shows the change.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from node.hub import open_hub
from portal import db, pagecache
from tests.node.test_store_support import FakeClock, cheap_hasher
from tests.portal.conftest import (
    ORGANISER,
    ORGANISER_PASSWORD,
    Seeder,
    make_app,
    write_node_toml,
)


def _cache(app: Flask) -> pagecache.PageCache:
    cache = app.extensions.get(pagecache.EXTENSION)
    assert cache is not None, "the page cache is on by default"
    return cache


def test_a_repeated_page_comes_from_memory_with_the_same_bytes(client: FlaskClient,
                                                               app: Flask) -> None:
    Seeder(app).listing(title="Sofa bed, free to collect")
    cache = _cache(app)
    first = client.get("/")
    hits = cache.hits
    second = client.get("/")
    assert cache.hits == hits + 1
    assert second.status_code == 200
    assert second.data == first.data
    assert second.headers["ETag"] == first.headers["ETag"]
    assert second.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert second.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"]


def test_a_write_in_this_process_shows_at_once(client: FlaskClient, app: Flask) -> None:
    seeder = Seeder(app)
    seeder.listing(title="First listing")
    assert b"Second listing" not in client.get("/").data
    client.get("/")  # now cached
    seeder.listing(title="Second listing")
    assert b"Second listing" in client.get("/").data


def test_a_write_by_another_process_shows_at_once(tmp_path: Path) -> None:
    config = write_node_toml(tmp_path)
    app = make_app(config)
    try:
        Seeder(app).listing(title="Kept by the portal")
        client = app.test_client()
        client.get("/listings/")
        client.get("/listings/")
        assert _cache(app).hits >= 1
        script = textwrap.dedent(f"""
            from argon2 import PasswordHasher
            from node.config import load_config
            from node.hub import open_hub
            store, hub = open_hub(load_config({str(config.path)!r}),
                                  password_hasher=PasswordHasher(time_cost=1, memory_cost=8,
                                                                 parallelism=1))
            hub.post_listing({ORGANISER!r}, category="wanted", title="Posted from a script",
                             body="by meshhub post")
            store.close()
        """)
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
        assert b"Posted from a script" in client.get("/listings/").data
    finally:
        db.close(app)


def test_a_listing_disappears_when_it_expires_without_any_write(tmp_path: Path) -> None:
    clock = FakeClock()
    app = make_app(write_node_toml(tmp_path), HUB_CLOCK=clock)
    try:
        Seeder(app).listing(title="Ladder to lend", expires_at=int(clock.now) + 60)
        client = app.test_client()
        assert b"Ladder to lend" in client.get("/listings/").data
        assert b"Ladder to lend" in client.get("/listings/").data  # from the cache
        clock.advance(61)
        assert b"Ladder to lend" not in client.get("/listings/").data
    finally:
        db.close(app)


def test_another_connection_on_the_same_file_invalidates(tmp_path: Path) -> None:
    config = write_node_toml(tmp_path)
    app = make_app(config)
    try:
        Seeder(app).notice(title="Water off on Tuesday")
        client = app.test_client()
        client.get("/notices/")
        store, hub = open_hub(config, password_hasher=cheap_hasher())
        try:
            hub.post_notice(ORGANISER, title="Water back on", body="Fixed.")
        finally:
            store.close()
        assert b"Water back on" in client.get("/notices/").data
    finally:
        db.close(app)


def test_languages_are_kept_apart(client: FlaskClient, app: Flask) -> None:
    english = client.get("/", headers={"Accept-Language": "en"}).data
    client.get("/", headers={"Accept-Language": "en"})
    spanish = client.get("/", headers={"Accept-Language": "es"}).data
    assert b'lang="es"' in spanish
    assert b'lang="en"' in english
    client.set_cookie("lang", "ar")
    assert b'lang="ar"' in client.get("/", headers={"Accept-Language": "es"}).data


def test_signed_in_organisers_never_get_a_shared_page(client: FlaskClient, app: Flask) -> None:
    Seeder(app).listing(title="Public listing")
    client.get("/")
    client.get("/")
    cache = _cache(app)
    hits = cache.hits
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "anything")
    response = client.get("/")
    assert cache.hits == hits
    assert response.headers["Cache-Control"] == "private, no-store"


def test_pages_setting_a_cookie_are_not_kept(client: FlaskClient, app: Flask) -> None:
    cache = _cache(app)
    client.get("/organisers/sign-in")
    hits = cache.hits
    fresh = app.test_client()
    response = fresh.get("/organisers/sign-in")
    assert cache.hits == hits
    assert "csrf_token" in response.get_data(as_text=True)
    assert cache.size_bytes == 0


def test_a_cached_page_answers_304_to_its_validators(client: FlaskClient, app: Flask) -> None:
    Seeder(app).listing(title="Sofa")
    first = client.get("/")
    client.get("/")
    hits = _cache(app).hits
    again = client.get("/", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.data == b""
    assert _cache(app).hits == hits + 1
    other = client.get("/", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.data == first.data


def test_errors_and_files_are_not_kept(client: FlaskClient, app: Flask) -> None:
    item = Seeder(app).library("pdf")
    client.get("/no-such-page")
    client.get(f"/library/{item.id}/download")
    assert _cache(app).size_bytes == 0


def test_cache_seconds_zero_turns_it_off(tmp_path: Path) -> None:
    app = make_app(write_node_toml(tmp_path, "[portal]\ncache_seconds = 0\n"))
    try:
        assert pagecache.EXTENSION not in app.extensions
        assert app.test_client().get("/").status_code == 200
    finally:
        db.close(app)


def test_memory_is_bounded(client: FlaskClient, app: Flask) -> None:
    cache = _cache(app)
    cache.max_bytes = 60_000
    for n in range(40):
        assert client.get(f"/search?q=word{n}").status_code == 200
    assert 0 < cache.size_bytes <= 60_000


def test_signing_in_still_works_with_the_cache(client: FlaskClient, app: Flask) -> None:
    Seeder(app).listing(title="Sofa")
    client.get("/")
    client.get("/")
    from tests.portal.conftest import form_token

    token = form_token(client, "/organisers/sign-in")
    response = client.post("/organisers/sign-in", data={
        "csrf_token": token, "name": ORGANISER, "password": ORGANISER_PASSWORD})
    assert response.status_code in (302, 303)
    page = client.get("/")
    assert page.headers["Cache-Control"] == "private, no-store"


class _StillDatabase:
    """A watcher whose database never changes and holds nothing that expires."""

    def version(self) -> int:
        return 1

    def next_expiry(self, version: int) -> None:
        return None

    def now(self) -> float:
        return 0.0

    def close(self) -> None:
        pass


def test_a_crowd_asking_for_a_missing_page_costs_one_render() -> None:
    renders = []
    gate = threading.Event()

    def slow_app(environ: dict[str, object], start_response: object) -> list[bytes]:
        renders.append(1)
        gate.wait(5)
        environ[pagecache.MARK] = True
        start_response("200 OK", [("Content-Type", "text/html"), ("ETag", '"x"')])  # type: ignore[operator]
        return [b"<p>page</p>"]

    followers = threading.Semaphore(0)

    class WatchedCache(pagecache.PageCache):
        """Counts the requests that found the render under way and will wait for it."""

        def _claim(self, key: tuple[str, ...]) -> tuple[threading.Event, bool]:
            event, leader = super()._claim(key)
            if not leader:
                followers.release()
            return event, leader

    cache = WatchedCache(slow_app, _StillDatabase, ttl=5,  # type: ignore[arg-type]
                                session_cookie="meshhub_session")
    bodies: list[bytes] = []

    def ask() -> None:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "HTTP_HOST": "hub"}
        bodies.append(b"".join(cache(environ, lambda status, headers, exc=None: None)))

    crowd = [threading.Thread(target=ask) for _ in range(6)]
    for thread in crowd:
        thread.start()
    for _ in range(5):  # the five others found the render under way and wait for it
        assert followers.acquire(timeout=10)
    gate.set()
    for thread in crowd:
        thread.join(5)
    assert len(renders) == 1
    assert bodies == [b"<p>page</p>"] * 6
    assert (cache.hits, cache.misses) == (5, 1)
