"""Searching offline encyclopaedias: their own full-text index, title suggestions, the
hub's global search, and many threads searching one archive at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.library.zim import OpenArchive
from node.library.zimbuild import ZimArticle
from node.store.models import LibraryItem
from portal import db
from tests.portal.auth_actions import app_fixture
from tests.portal.test_zim_browse import add_zim, make_zim, page

app = app_fixture()


@pytest.fixture
def indexed(app: Flask, tmp_path: Path) -> LibraryItem:
    return add_zim(app, make_zim(tmp_path / "indexed.zim"), title="Pocket encyclopaedia")


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def test_full_text_search_finds_words_inside_articles(client: FlaskClient,
                                                      indexed: LibraryItem) -> None:
    html = text(client.get(f"/library/{indexed.id}/zim-search?q=groundwater"))
    assert "About 1 article for “groundwater”" in html
    assert f'href="/library/{indexed.id}/zim/wiki/Pump"' in html and "Hand pump" in html
    assert "no full-text index" not in html
    empty = text(client.get(f"/library/{indexed.id}/zim-search?q=zzzqqq"))
    assert "Nothing matched" in empty


def test_title_suggestions_are_shown_above_results(client: FlaskClient,
                                                   indexed: LibraryItem) -> None:
    html = text(client.get(f"/library/{indexed.id}/zim-search?q=drinking"))
    titles = html.index("<h2>Titles</h2>")
    assert html.index("Drinking water", titles) > titles
    assert f'href="/library/{indexed.id}/zim/Water"' in html


def test_archive_without_full_text_index_uses_titles(app: Flask, client: FlaskClient,
                                                     tmp_path: Path) -> None:
    item = add_zim(app, make_zim(tmp_path / "plain.zim", fulltext=False), title="Plain")
    html = text(client.get(f"/library/{item.id}/zim-search?q=hand"))
    assert "only article titles are searched" in html
    assert "Hand pump" in html
    assert "Nothing matched" in text(client.get(f"/library/{item.id}/zim-search?q=groundwater"))


def test_search_page_without_query_and_bad_pages(client: FlaskClient,
                                                indexed: LibraryItem) -> None:
    form = client.get(f"/library/{indexed.id}/zim-search")
    assert form.status_code == 200 and 'id="zim-q"' in text(form)
    assert client.get(f"/library/{indexed.id}/zim-search?q=water&page=9").status_code == 404
    assert client.get(f"/library/{indexed.id}/zim-search?q=water&page=x").status_code == 404


def test_search_results_are_paginated(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    articles = [ZimArticle(f"Well_{n}", f"Well number {n}",
                           page(f"Well number {n}", "<p>A deep well of clean water.</p>"))
                for n in range(45)]
    item = add_zim(app, make_zim(tmp_path / "wells.zim", articles=articles), title="Wells")
    first = text(client.get(f"/library/{item.id}/zim-search?q=well"))
    assert "About 45 articles" in first and first.count('class="card"') == 20
    assert 'rel="next"' in first
    last = text(client.get(f"/library/{item.id}/zim-search?q=well&page=3"))
    assert last.count('class="card"') == 5 and 'rel="prev"' in last


def test_global_search_shows_encyclopaedia_hits(app: Flask, client: FlaskClient,
                                                indexed: LibraryItem) -> None:
    with app.app_context():
        db.services(app).hub.post_notice("olga", title="Pump repair on Friday",
                                         body="The hand pump on the square is being fixed.")
    html = text(client.get("/search?q=pump"))
    assert "Pump repair on Friday" in html, "the hub's own results stay"
    section = html.index("In the library’s encyclopaedias")
    assert html.index("Hand pump", section) > section
    assert f'href="/library/{indexed.id}/zim/wiki/Pump"' in html
    assert f'href="/library/{indexed.id}/zim-search?q=pump"' in html
    nothing = text(client.get("/search?q=zzzqqq"))
    assert "In the library’s encyclopaedias" not in nothing


def test_global_search_reads_the_library_once_per_change(
        app: Flask, client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which encyclopaedias there are is read again only when the content changed."""
    from node.store import Store

    calls: list[str | None] = []
    original = Store.library_items

    def counted(self: Store, *args: object, **kwargs: object) -> object:
        calls.append(kwargs.get("media_type"))  # type: ignore[arg-type]
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "library_items", counted)
    assert "In the library’s encyclopaedias" not in text(client.get("/search?q=pump"))
    assert "In the library’s encyclopaedias" not in text(client.get("/search?q=hand"))
    assert calls == ["zim"], "two searches, one look at the library"
    item = add_zim(app, make_zim(tmp_path / "new.zim"), title="Pocket encyclopaedia")
    html = text(client.get("/search?q=water"))
    assert f'href="/library/{item.id}/zim-search?q=water"' in html, "the new archive is asked"
    assert calls == ["zim", "zim"]


def test_global_search_skips_damaged_archives(app: Flask, client: FlaskClient,
                                              indexed: LibraryItem) -> None:
    with app.app_context():
        path = db.services(app).hub.blobs.path(indexed.sha256)
    path.chmod(0o644)
    path.write_bytes(b"ZIM\x04" + b"\x00" * 200)
    response = client.get("/search?q=pump")
    assert response.status_code == 200
    assert "In the library’s encyclopaedias" not in text(response)


def test_many_threads_search_one_archive_at_once(tmp_path: Path) -> None:
    archive = OpenArchive.open(make_zim(tmp_path / "shared.zim"))
    expected = {"groundwater": ["wiki/Pump"], "boil": ["Water"], "coffee": ["Café"]}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(60):
                word = list(expected)[(n + i) % 3]
                total, hits = archive.search(word, count=5)
                assert total == 1 and [h.path for h in hits] == expected[word]
                _, titles = archive.suggest("hand", count=5)
                assert [h.path for h in titles] == ["wiki/Pump"]
                content = archive.entry("Water")
                assert content is not None and b"Boil water" in bytes(content.content)  # type: ignore[union-attr]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,), name=f"zim-search-{n}")
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_concurrent_requests_through_the_portal(app: Flask, indexed: LibraryItem) -> None:
    errors: list[str] = []

    def worker() -> None:
        client = app.test_client()
        for _ in range(15):
            for url, needle in ((f"/library/{indexed.id}/zim-search?q=boil", "Drinking water"),
                                (f"/library/{indexed.id}/zim/Water", "Boil water"),
                                ("/search?q=hand", "Hand pump")):
                response = client.get(url)
                if response.status_code != 200 or needle not in text(response):
                    errors.append(f"{url}: {response.status_code}")

    threads = [threading.Thread(target=worker, name=f"zim-portal-{n}") for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
