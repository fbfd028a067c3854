"""ETags, 304s, Cache-Control and the X-Accel-Redirect hand-over, straight from the app."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask, url_for
from flask.testing import FlaskClient

from portal import db
from tests.portal.conftest import ORGANISER, ORGANISER_PASSWORD, Seeder, form_token, make_app

ACCEL = {"X-Sendfile-Type": "X-Accel-Redirect"}


def test_pages_carry_validators_and_answer_304(client: FlaskClient, app: Flask) -> None:
    Seeder(app).listing(title="Sofa bed, free to collect")
    first = client.get("/")
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)
    assert first.headers["Last-Modified"]
    assert client.get("/", headers={"If-None-Match": etag}).status_code == 304
    since = first.headers["Last-Modified"]
    assert client.get("/", headers={"If-Modified-Since": since}).status_code == 304


def test_a_change_gives_a_new_etag(client: FlaskClient, app: Flask) -> None:
    seeder = Seeder(app)
    seeder.listing(title="First listing")
    etag = client.get("/").headers["ETag"]
    seeder.listing(title="Second listing")
    again = client.get("/", headers={"If-None-Match": etag})
    assert again.status_code == 200
    assert b"Second listing" in again.data
    assert again.headers["ETag"] != etag


def test_anonymous_pages_may_be_micro_cached_by_the_front(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.headers["Cache-Control"] == "public, max-age=0, s-maxage=5"
    assert {"Cookie", "Accept-Language"} <= set(response.vary)


def test_cache_seconds_zero_means_always_revalidate(tmp_path: Path) -> None:
    from tests.portal.conftest import write_node_toml

    app = make_app(write_node_toml(tmp_path, "[portal]\ncache_seconds = 0\n"))
    try:
        assert app.test_client().get("/").headers["Cache-Control"] == "no-cache"
    finally:
        db.close(app)


def test_signed_in_pages_are_private(client: FlaskClient, app: Flask) -> None:
    Seeder(app).hub  # noqa: B018 - creates the organiser account
    token = form_token(client, "/organisers/sign-in")
    response = client.post("/organisers/sign-in", data={
        "csrf_token": token, "name": ORGANISER, "password": ORGANISER_PASSWORD})
    assert response.status_code == 302
    home = client.get("/")
    assert home.headers["Cache-Control"] == "private, no-store"


def test_a_page_that_sets_a_cookie_is_private(client: FlaskClient) -> None:
    response = client.get("/submit")  # the form's CSRF token starts a session
    assert "Set-Cookie" in response.headers
    assert response.headers["Cache-Control"] == "private, no-store"


def test_posts_and_errors_get_no_public_caching(client: FlaskClient) -> None:
    missing = client.get("/listings/no-such-listing")
    assert missing.status_code == 404
    assert "public" not in missing.headers.get("Cache-Control", "")


def test_static_urls_carry_a_content_hash_and_cache_for_a_year(tmp_path: Path,
                                                               app: Flask) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "site.css").write_text("body { color: #222; }\n")
    app.static_folder = str(static)
    with app.test_request_context():
        url = url_for("static", filename="site.css")
    assert re.search(r"/static/site\.css\?v=[0-9a-f]{12}$", url)
    client = app.test_client()
    versioned = client.get(url)
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    versioned.close()
    plain = client.get("/static/site.css")
    assert "max-age=31536000" not in plain.headers["Cache-Control"]
    assert plain.headers["ETag"]
    plain.close()
    stale = client.get(url.replace("?v=", "?v=0"))
    assert "immutable" not in stale.headers["Cache-Control"]
    stale.close()


def test_downloads_go_to_nginx_only_when_enabled_and_asked(tmp_path: Path) -> None:
    from tests.portal.conftest import write_node_toml

    config = write_node_toml(tmp_path, "[portal]\nbehind_proxy = true\n")
    app = make_app(config)
    try:
        item = Seeder(app).library("pdf")
        root = db.services(app).hub.blobs.root
        client = app.test_client()
        url = f"/library/{item.id}/download"
        plain = client.get(url)
        assert plain.status_code == 200
        assert "X-Accel-Redirect" not in plain.headers
        plain.close()
        mapping = {**ACCEL, "X-Accel-Mapping": f"{root}/=/_meshhub_library/"}
        offloaded = client.get(url, headers={**mapping, "Range": "bytes=0-9"})
        assert offloaded.status_code == 200  # nginx applies the Range itself
        assert offloaded.data == b""
        sha = item.sha256
        assert offloaded.headers["X-Accel-Redirect"] == f"/_meshhub_library/{sha[:2]}/{sha}"
        assert offloaded.headers["Content-Type"] == "application/pdf"
        assert "attachment" in offloaded.headers["Content-Disposition"]
        # A mapping that does not cover the library: the portal sends the file itself.
        elsewhere = client.get(url, headers={**ACCEL, "X-Accel-Mapping": "/srv/=/x/"})
        assert "X-Accel-Redirect" not in elsewhere.headers
        assert elsewhere.data.startswith(b"%PDF")
        elsewhere.close()
    finally:
        db.close(app)


def test_no_offloading_without_the_switch(client: FlaskClient, app: Flask) -> None:
    item = Seeder(app).library("pdf")
    root = db.services(app).hub.blobs.root
    response = client.get(f"/library/{item.id}/download",
                          headers={**ACCEL, "X-Accel-Mapping": f"{root}/=/_l/"})
    assert "X-Accel-Redirect" not in response.headers
    assert response.data.startswith(b"%PDF")
    response.close()
