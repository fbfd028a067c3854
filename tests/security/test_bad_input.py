"""Replays (issue 17, items 10 and 11): inputs that gave 500s, and a Markdown image trap.

* a ``Host`` with a label over 63 characters, or an empty label: werkzeug
  cannot encode it, and the error page itself failed to build its links;
* a ZIM archive whose entry's MIME type holds CR/LF: it reached the
  ``Content-Type`` header;
* ``![x](/language/ar?next=/)`` in a listing: every reader's browser fetched
  it as an image, which switched the reader's language.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.library.zim import inspect_zim
from node.library.zimbuild import ZimArticle, ZimSpec, build_zim
from node.markdown import render_html
from portal import db
from tests.portal.auth_actions import app_fixture

app = app_fixture()


@pytest.mark.parametrize("host", ["a" * 64 + ".hub.mesh", ".hub.mesh", "hub..mesh",
                                  "x" * 64, "a" * 64 + ".hub.mesh:8080"])
@pytest.mark.parametrize("path", ["/", "/welcome", "/generate_204", "/no-such-page",
                                  "/organisers/"])
def test_a_host_no_url_can_be_built_for_gets_400_not_500(
        client: FlaskClient, host: str, path: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        response = client.get(path, headers={"Host": host})
    assert response.status_code == 400
    assert response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "no traceback logged"


def test_a_good_host_still_gets_its_page(client: FlaskClient) -> None:
    assert client.get("/", headers={"Host": "hub.mesh"}).status_code == 200


@pytest.mark.parametrize("mimetype", ["text/html\r\nSet-Cookie: planted=1",
                                      "image/png\nX-Injected: 1", "no-slash",
                                      "image/png, text/html"])
def test_a_zim_entry_with_a_damaged_mime_type_is_served_as_binary(
        app: Flask, client: FlaskClient, tmp_path: Path, mimetype: str) -> None:
    archive = build_zim(tmp_path / "evil.zim", [
        ZimArticle("Home", "Home", "<p>home</p>"),
        ZimArticle("evil", "Evil", b"<script>alert(1)</script>", mimetype),
    ], ZimSpec(title="Evil\r\nX-Title: 1", main_path="Home", fulltext=False))
    with app.app_context(), archive.open("rb") as stream:
        item = db.services(app).hub.add_library_file("olga", stream, filename="evil.zim",
                                                     title="Evil")
    assert inspect_zim(archive).title == "Evil X-Title: 1", "metadata loses its CR/LF"
    response = client.get(f"/library/{item.id}/zim/evil")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "Set-Cookie" not in response.headers and "X-Injected" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"/library/{item.id}").status_code == 200


def test_a_markdown_image_cannot_fetch_a_page_of_the_node() -> None:
    html = render_html("![x](/language/ar?next=/) ![y](/organisers/sign-out) "
                       "![z](/library/abc/view?x=1) ![ok](/library/abc/view)")
    assert 'src="/language' not in html and 'src="/organisers' not in html
    assert 'src="/library/abc/view?' not in html
    assert '<a href="/language/ar?next=/" rel="nofollow noopener">x</a>' in html
    assert '<img src="/library/abc/view" alt="ok">' in html


def test_a_listing_with_such_an_image_leaves_the_readers_language_alone(
        app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        listing = db.services(app).hub.post_listing(
            "olga", category="free", title="Free chairs", body="![x](/language/ar?next=/)")
    page = client.get(f"/listing/{listing.id}").get_data(as_text=True)
    assert '<img src="/language' not in page
    assert 'href="/language/ar?next=/"' in page, "shown as a link the reader may follow"
