"""Reading an offline encyclopaedia (a ZIM archive) inside the hub.

The archives are real ZIM files written by libzim's own writer: a few HTML
articles linking to each other (relatively, as ZIM articles do), an image, a
stylesheet, a redirect and a full-text index (or none).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from urllib.parse import urljoin

import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.library.zimbuild import ZimArticle, ZimSpec, build_zim
from node.store.models import LibraryItem
from portal import db
from portal.residents import zim as zim_views
from portal.residents.zim import archive_cache
from tests.portal.auth_actions import AuthActions, app_fixture, close_app, make_app


def png(width: int = 48, height: int = 48, rgb: tuple[int, int, int] = (29, 53, 87)) -> bytes:
    """A real PNG image of one colour."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    row = b"\x00" + bytes(rgb) * width
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(row * height)) + chunk(b"IEND", b""))


def page(title: str, body: str, css: str = "style.css") -> str:
    """An accessible article page as mwoffliner writes them (its own stylesheet, relative links)."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<link rel="stylesheet" href="{css}"></head>'
            f'<body class="article"><main><h1>{title}</h1>{body}</main></body></html>')


PUMP_PNG = png(8, 8, (200, 30, 30))
ARTICLES = [
    ZimArticle("Home", "Welcome to the pocket encyclopaedia", page(
        "Welcome to the pocket encyclopaedia",
        '<p>Read about <a href="Water">drinking water</a>, the <a href="wiki/Pump">hand pump</a>'
        ' and <a href="Caf%C3%A9">the café</a>.</p>')),
    ZimArticle("Water", "Drinking water", page(
        "Drinking water", '<p>Boil water for one minute before drinking it. '
        'See <a href="wiki/Pump">the pump</a>.</p>')),
    ZimArticle("wiki/Pump", "Hand pump", page(
        "Hand pump", '<p>The village hand pump lifts groundwater.</p>'
        '<img src="../img/pump.png" alt="A red hand pump"> <a href="../Water">Water</a>',
        css="../style.css")),
    ZimArticle("Café", "Café", page("Café", "<p>Coffee and tea by the square.</p>")),
    ZimArticle("img/pump.png", "", PUMP_PNG, "image/png"),
    ZimArticle("style.css", "", "main { max-width: 40em; }", "text/css"),
]


def make_zim(path: Path, *, fulltext: bool = True, title: str = "Pocket encyclopaedia",
             articles: list[ZimArticle] | None = None) -> Path:
    """A small real archive: main page Home, a redirect H2O -> Water, a 48x48 illustration."""
    return build_zim(path, articles or ARTICLES, ZimSpec(
        title=title, language="eng", description="Water, pumps and cafés",
        creator="Elm Street Library", main_path="Home",
        redirects={"H2O": ("H2O", "Water")}, illustration_png=png(), fulltext=fulltext))


app = app_fixture()


def add_zim(app: Flask, path: Path, **fields: str) -> LibraryItem:
    """Add the archive through the hub, as the organisers' upload form does."""
    with app.app_context(), path.open("rb") as stream:
        return db.services(app).hub.add_library_file("olga", stream, filename=path.name,
                                                     **{"title": "", **fields})


@pytest.fixture
def item(app: Flask, tmp_path: Path) -> LibraryItem:
    return add_zim(app, make_zim(tmp_path / "pocket.zim"), title="Pocket encyclopaedia")


def test_metadata_fills_the_item(app: Flask, tmp_path: Path, client: FlaskClient) -> None:
    item = add_zim(app, make_zim(tmp_path / "pocket.zim"), title="Our encyclopaedia")
    assert (item.media_type, item.mime, item.title) == ("zim", "application/x-zim",
                                                        "Our encyclopaedia")
    assert (item.author, item.language, item.description) == (
        "Elm Street Library", "en", "Water, pumps and cafés")
    html = client.get(f"/library/{item.id}").get_data(as_text=True)
    assert "5 articles" in html  # four pages and the redirect, as libzim counts them
    assert f'href="/library/{item.id}/zim/"' in html
    icon = client.get(f"/library/{item.id}/zim-illustration.png")
    assert icon.mimetype == "image/png" and icon.data == png()


def test_main_page_redirects_to_its_path_and_links_resolve(client: FlaskClient,
                                                           item: LibraryItem) -> None:
    base = f"/library/{item.id}/zim/"
    response = client.get(base)
    assert response.status_code == 302 and response.location == base + "Home"
    home = client.get(base + "Home")
    assert home.status_code == 200 and home.mimetype == "text/html"
    assert home.content_type == "text/html; charset=utf-8"
    html = home.get_data(as_text=True)
    assert "<h1>Welcome to the pocket encyclopaedia</h1>" in html
    # Follow each relative link exactly as a browser resolves it.
    for href, expected in (("Water", "Boil water"), ("wiki/Pump", "village hand pump"),
                           ("Caf%C3%A9", "Coffee and tea")):
        target = urljoin("http://hub" + base + "Home", href)
        assert expected in client.get(target[len("http://hub"):]).get_data(as_text=True)
    pump_url = base + "wiki/Pump"
    pump = client.get(pump_url).get_data(as_text=True)
    image = client.get(urljoin(pump_url, "../img/pump.png"))
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data == PUMP_PNG
    css = client.get(urljoin(pump_url, "../style.css"))
    assert css.mimetype == "text/css" and b"max-width" in css.data
    assert "Boil water" in client.get(urljoin(pump_url, "../Water")).get_data(as_text=True)
    assert 'href="../style.css"' in pump, "the article's own markup is kept"


def test_redirect_entries_are_followed(client: FlaskClient, item: LibraryItem) -> None:
    response = client.get(f"/library/{item.id}/zim/H2O")
    assert response.status_code == 302
    assert response.location == f"/library/{item.id}/zim/Water"
    followed = client.get(f"/library/{item.id}/zim/H2O", follow_redirects=True)
    assert "Boil water" in followed.get_data(as_text=True)


def test_hub_bar_is_inserted_after_body_and_article_kept(client: FlaskClient,
                                                        item: LibraryItem) -> None:
    html = client.get(f"/library/{item.id}/zim/Water").get_data(as_text=True)
    body_at = html.index('<body class="article">')
    bar_at = html.index('id="meshhub-zim-bar"')
    main_at = html.index("<main>")
    assert body_at < bar_at < main_at
    assert f'action="/library/{item.id}/zim-search"' in html
    assert 'href="/"' in html and f'href="/library/{item.id}"' in html
    assert html.count("<body") == 1
    # Not HTML: untouched bytes.
    css = client.get(f"/library/{item.id}/zim/style.css")
    assert css.data == b"main { max-width: 40em; }"


def test_content_security_policy_allows_archive_css_never_scripts(
        client: FlaskClient, item: LibraryItem) -> None:
    for path in ("Water", "style.css", "img/pump.png"):
        policy = client.get(f"/library/{item.id}/zim/{path}").headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'none'"
        assert directives["default-src"] == "'self'"
        assert "'self'" in directives["style-src"]
        assert "http" not in policy, "nothing from outside the node"


@pytest.mark.parametrize("bad", ["../../hub.sqlite3", "..", "wiki/../../x", "No such article",
                                 "wiki//Pump", "%00", "Water/", "./Water"])
def test_bad_paths_are_404(client: FlaskClient, item: LibraryItem, bad: str) -> None:
    assert client.get(f"/library/{item.id}/zim/{bad}").status_code == 404


def test_zim_routes_of_other_items_are_404(app: Flask, client: FlaskClient) -> None:
    from tests.portal.conftest import sample_pdf

    with app.app_context():
        pdf = db.services(app).hub.add_library_file("olga", io.BytesIO(sample_pdf()),
                                                    filename="a.pdf", title="A PDF")
    for url in (f"/library/{pdf.id}/zim/", f"/library/{pdf.id}/zim/Home",
                f"/library/{pdf.id}/zim-search?q=water", "/library/nosuchid/zim/Home",
                f"/library/{pdf.id}/zim-illustration.png"):
        assert client.get(url).status_code == 404, url


def test_corrupted_or_truncated_zim_is_refused_at_upload(app: Flask, client: FlaskClient,
                                                        tmp_path: Path) -> None:
    good = make_zim(tmp_path / "good.zim").read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    auth = AuthActions(client)
    auth.login("olga")
    for name, content, says in (("truncated.zim", good[: len(good) // 2], "cannot open it"),
                                ("flipped.zim", bytes(flipped), "checksum does not match")):
        response = auth.post("/organisers/library/upload",
                             {"title": "Broken", "author": "", "language": "", "description": "",
                              "collection": "", "file": (io.BytesIO(content), name)},
                             form_page="/organisers/library/upload",
                             content_type="multipart/form-data")
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert 'id="file-error"' in html and says in html and "damaged or incomplete" in html
    with app.app_context():
        assert db.services(app).store.library_items().total == 0
    library = Path(app.config["NODE_CONFIG"].data_dir) / "library"
    assert [p for p in library.rglob("*") if p.is_file()] == [], "nothing kept"
    assert client.get("/library/").status_code == 200


def test_a_file_damaged_after_it_was_added_never_breaks_the_library(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    item = add_zim(app, make_zim(tmp_path / "pocket.zim"), title="Pocket")
    with app.app_context():
        path = db.services(app).hub.blobs.path(item.sha256)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:100])  # e.g. a disk error, or a half-replicated file
    assert client.get("/library/").status_code == 200
    page_html = client.get(f"/library/{item.id}")
    assert page_html.status_code == 200
    assert "cannot be read on this node" in page_html.get_data(as_text=True)
    assert client.get(f"/library/{item.id}/zim/Home").status_code == 404
    assert client.get("/search?q=water").status_code == 200


def test_open_archive_cache_is_bounded(tmp_path: Path) -> None:
    app = make_app(tmp_path / "node2", toml="[library]\nzim_open_max = 2\n")
    try:
        client = app.test_client()
        items = [add_zim(app, make_zim(tmp_path / f"e{i}.zim", title=f"Encyclopaedia {i}"),
                         title=f"Encyclopaedia {i}") for i in range(4)]
        for item in items:
            assert client.get(f"/library/{item.id}/zim/Water").status_code == 200
        cache = archive_cache(app)
        assert cache.max_open == 2 and len(cache) == 2
        assert cache.keys() == [items[2].sha256, items[3].sha256], "least recently used out"
        opened = cache.opened
        client.get(f"/library/{items[3].id}/zim/Home")
        assert cache.opened == opened, "a cached archive is not opened again"
        client.get(f"/library/{items[0].id}/zim/Home")
        assert len(cache) == 2 and cache.opened == opened + 1
    finally:
        close_app(app)


def test_a_large_entry_streams_in_pieces_with_ranges_and_validators(
        app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    video = bytes(range(256)) * (6 * 1024 * 1024 // 256)  # 6 MiB, stored uncompressed
    archive = make_zim(tmp_path / "films.zim", fulltext=False, articles=[
        *ARTICLES, ZimArticle("video/pump.mp4", "", video, "video/mp4")])
    item = add_zim(app, archive, title="Films")
    url = f"/library/{item.id}/zim/video/pump.mp4"
    whole = client.get(url, buffered=False)
    assert whole.status_code == 200 and whole.mimetype == "video/mp4"
    assert whole.content_length == len(video)
    pieces = list(whole.response)
    whole.close()
    assert b"".join(pieces) == video
    assert len(pieces) > 1 and max(map(len, pieces)) <= zim_views.STREAM_CHUNK_BYTES, \
        "the entry was sent in one piece (copied whole into memory)"
    start = 5_000_000
    part = client.get(url, headers={"Range": f"bytes={start}-{start + 99}"})
    assert part.status_code == 206 and part.data == video[start:start + 100]
    assert part.headers["Content-Range"] == f"bytes {start}-{start + 99}/{len(video)}"
    etag = whole.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert "Content-Security-Policy" in whole.headers
