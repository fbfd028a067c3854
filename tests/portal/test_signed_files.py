"""A signed-in account's residents' pages made from the page files (portal/signed_files.py).

The renderer is driven by hand (``step``), not by its thread, so that each test decides
exactly when it has looked at the database. Which templates a request rendered
(Flask's ``template_rendered`` signal) tells a page made from its file from one rendered.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal import pagefiles, signed_files
from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture
from tests.portal.conftest import sample_pdf, templates_rendered

app = app_fixture("[portal]\nbehind_proxy = true\npage_size = 5\n")
LANGUAGES = {"en": "en-GB,en;q=0.9", "es": "es-ES,es;q=0.9", "ar": "ar"}
TECHNICIAN = ("tess", "tess-password-12")


@pytest.fixture
def renderer(app: Flask) -> Iterator[pagefiles.Renderer]:
    """A loaded node's page files, all rendered, and signed-in pages made from them."""
    with app.app_context():
        hub = services(app).hub
        for n in range(12):
            hub.post_listing("ada", category="for-sale" if n % 2 else "free",
                             title=f"Bicycle number {n}", body="Blue, with **stabilisers**.",
                             price=f"£{n}", contact="Flat 3")
        hub.post_notice("ada", title="Bins on Thursday", body="Because of the holiday.")
        hub.add_library_file("ada", io.BytesIO(sample_pdf()), filename="guide.pdf",
                             title="Water guide")
        hub.create_account(None, name=TECHNICIAN[0], password=TECHNICIAN[1], role="technician")
    config = app.config["NODE_CONFIG"]
    made = pagefiles.Renderer(app, config)
    signed_files.init_app(app, made)
    made.resume()
    while made.queue:
        made.step(budget=5.0)
    try:
        yield made
    finally:
        made.stop()


def _paths(app: Flask) -> list[str]:
    with app.app_context():
        store = services(app).store
        listing = store.listings(per_page=1).items[0].id
        notice = store.notices()[0].id
        item = store.library_items(per_page=1).items[0].id
    return ["/", "/listings/", "/listings/for-sale", "/listings/for-sale?page=2",
            "/listings/?page=3", "/notices/", f"/notices/{notice}", f"/listing/{listing}",
            "/library/", f"/library/{item}", "/about", "/rules"]


def _signed_in(app: Flask, name: str, password: str | None = None) -> FlaskClient:
    client = app.test_client()
    AuthActions(client).login(name, password)
    client.get("/organisers/" if name != TECHNICIAN[0] else "/technicians/")  # the flash
    return client


def _without_files(app: Flask, client: FlaskClient, path: str, lang: str,
                   cookie: str = "") -> tuple[bytes, dict]:
    """The portal's own render of ``path`` for ``client`` (signed files switched off)."""
    signed = app.extensions[signed_files.EXTENSION]
    funcs = app.before_request_funcs[None]
    funcs.remove(signed.answer)
    try:
        answer = client.get(path, headers={"Accept-Language": lang,
                                           **({"Cookie": cookie} if cookie else {})})
    finally:
        funcs.append(signed.answer)
    assert answer.status_code == 200, path
    return answer.data, dict(answer.headers)


HEADERS = ("Content-Type", "Cache-Control", "Vary", "Content-Security-Policy",
           "X-Content-Type-Options", "Referrer-Policy")


@pytest.mark.parametrize("name", ["olga", "ada", TECHNICIAN[0]])
def test_a_signed_in_page_is_the_portals_own_render_made_from_the_file(
        app: Flask, renderer: pagefiles.Renderer, name: str) -> None:
    password = TECHNICIAN[1] if name == TECHNICIAN[0] else None
    client = _signed_in(app, name, password)
    for path in _paths(app):
        for code, lang in LANGUAGES.items():
            renderer.step()
            with templates_rendered(app) as names:
                answer = client.get(path, headers={"Accept-Language": lang})
            assert answer.status_code == 200, path
            assert not [n for n in names if n != signed_files.FOOTER_TEMPLATE], (path, names)
            body, headers = _without_files(app, client, path, lang)
            assert answer.data == body, (name, path, code)
            for header in HEADERS:
                assert answer.headers.get(header) == headers.get(header), (path, header)
            assert answer.headers["Cache-Control"] == "private, no-store"
            assert answer.headers.get("ETag") is None
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    if name == TECHNICIAN[0]:
        assert "Node health" in page and "dashboard" not in page
    else:
        assert "Organisers’ dashboard" in page and "Node health" not in page
    assert "Organisers: sign in" not in page


#: What nginx's language maps leave to the portal: (Accept-Language, Cookie) -> the language.
ODD = [("xx-YY;q=banana", "", "en"), ("es;q=0.5,ar;q=0.5", "", "es"), ("*;q=-1", "", "en"),
       ("en-GB,en;q=0.9", "lang=klingon", "en"), ("ar;level=1", "lang=%00", "ar")]


@pytest.mark.parametrize(("language", "cookie", "expected"), ODD)
def test_a_residents_page_nginx_left_to_the_portal_is_its_file(
        app: Flask, renderer: pagefiles.Renderer, language: str, cookie: str,
        expected: str) -> None:
    phone, resident = app.test_client(), app.test_client()
    resident.get("/welcome")  # the welcome page's CSRF session, as a third of phones hold
    for path in _paths(app):
        headers = {"Accept-Language": language, **({"Cookie": cookie} if cookie else {})}
        for client in (phone, resident):
            renderer.step()
            with templates_rendered(app) as names:
                answer = client.get(path, headers=headers)
            assert answer.status_code == 200 and not names, (path, names)
            assert f'<html lang="{expected}"'.encode() in answer.data[:200]
            body, own = _without_files(app, client, path, language, cookie)
            assert answer.data == body, path
            for header in (*HEADERS, "ETag"):
                assert answer.headers.get(header) == own.get(header), (path, header)
            assert ("Set-Cookie" in answer.headers) == ("Set-Cookie" in own), path
        assert "public" in phone.get(path, headers=headers).headers["Cache-Control"]
    with templates_rendered(app) as names:  # Authorization: the portal's own answer, as before
        assert resident.get("/", headers={"Authorization": "Basic eDp5"}).status_code == 200
    assert "residents/home.html" in names


def test_a_post_is_on_the_organisers_next_page_at_once(
        app: Flask, renderer: pagefiles.Renderer) -> None:
    client = _signed_in(app, "olga")
    renderer.step()
    with templates_rendered(app) as names:
        before = client.get("/notices/").get_data(as_text=True)
    assert "residents/notices.html" not in names and "Organisers’ dashboard" in before
    with app.app_context():  # the notices page lists every notice: the new one is on it
        services(app).hub.post_notice("olga", title="Street party on Saturday",
                                      body="Bring a chair.")
    # No look of the renderer since the commit: the old file is still on disk.
    assert "Street party" not in (renderer.root / "en" / "notices" / "@index.html").read_text()
    with templates_rendered(app) as names:
        after = client.get("/notices/").get_data(as_text=True)
    assert "residents/notices.html" in names and "Street party on Saturday" in after
    renderer.step()  # the renderer looks: deletes the page, renders it again
    with templates_rendered(app) as names:
        again = client.get("/notices/").get_data(as_text=True)
    assert "residents/notices.html" not in names and "Street party on Saturday" in again


def test_a_renderer_that_has_not_looked_lately_means_a_render(
        app: Flask, renderer: pagefiles.Renderer) -> None:
    client = _signed_in(app, "olga")
    renderer.step()
    renderer.looked = time.monotonic() - renderer.margin - 0.5
    with templates_rendered(app) as names:
        assert client.get("/").status_code == 200
    assert "residents/home.html" in names


def test_a_flash_a_disabled_account_and_a_resident_get_their_own_pages(
        app: Flask, renderer: pagefiles.Renderer) -> None:
    client = app.test_client()
    auth = AuthActions(client)
    auth.login("olga")
    renderer.step()
    with templates_rendered(app) as names:  # the sign-in's flash waits: shown on the next page
        first = client.get("/notices/").get_data(as_text=True)
    assert "residents/notices.html" in names and 'class="flash' in first
    technician = _signed_in(app, *TECHNICIAN)
    resident = app.test_client()
    for _ in range(2):  # alternately: each gets the footer of its own account
        renderer.step()
        assert "Organisers’ dashboard" in client.get("/").get_data(as_text=True)
        assert "Node health" in technician.get("/").get_data(as_text=True)
        page = resident.get("/").get_data(as_text=True)
        assert "Organisers: sign in" in page and "dashboard" not in page
    with app.app_context():
        services(app).hub.set_disabled("ada", "olga", True)
    renderer.step()
    page = client.get("/").get_data(as_text=True)
    assert "Organisers: sign in" in page and "dashboard" not in page
    files = [p for p in renderer.root.rglob("*.html")]
    assert files and not any("Organisers’ dashboard" in p.read_text() or "Node health"
                             in p.read_text() for p in files)


@pytest.mark.parametrize(("path", "args", "expected"), [
    ("/", "", "en/@index.html"),
    ("/listings/for-sale", "page=3", "en/listings/for-sale@page-3.html"),
    ("/search", "q=bicycle", "en/search@a-q=bicycle.html"),
    ("/listings/", "page=1", "en/listings/@a-page=1.html"),
    ("/organisers/", "", "en/organisers/@index.html"),
    ("/../etc", "", None), ("/listings//x", "", None), ("/", "q=a b", None),
    ("/search", "q=" + "a" * 200, None),
])
def test_the_file_for_a_request_is_the_one_nginx_looks_for(path: str, args: str,
                                                          expected: str | None) -> None:
    assert pagefiles.file_for("en", path, args, ["en", "es"]) == expected
    assert pagefiles.file_for("fr", path, args, ["en", "es"]) is None
