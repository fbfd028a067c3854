"""What protects residents: headers, the secret key, no third-party requests, error pages."""

from __future__ import annotations

import os
import stat
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.config import NodeConfig
from portal import db
from portal.security import CONTENT_SECURITY_POLICY, SECRET_FILE_NAME
from tests.portal.conftest import Seeder, every_page_type, form_token, make_app, write_node_toml

#: Attributes that make the browser fetch something (as opposed to <a href>, a link).
LOADING = {("img", "src"), ("script", "src"), ("link", "href"), ("iframe", "src"),
           ("object", "data"), ("embed", "src"), ("audio", "src"), ("video", "src"),
           ("video", "poster"), ("source", "src"), ("track", "src"), ("form", "action"),
           ("input", "src"), ("img", "srcset"), ("source", "srcset")}


class _Resources(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.links: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (tag, name) in LOADING and value is not None:
                self.loads.append(value)
            elif tag == "a" and name == "href" and value:
                self.links.append(value)
            elif name == "style":
                self.styles.append(value or "")
        if tag == "style":
            self.styles.append("<style>")


def is_local(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith("//")


def test_every_page_loads_only_from_this_node(client: FlaskClient, seed: Seeder) -> None:
    content = seed.neighbourhood()
    seed.listing(title="Links", body="[a site](https://example.org) ![x](https://t.example/p.png)")
    urls = every_page_type(content)
    for name, url in urls.items():
        response = client.get(url)
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, name
        parser = _Resources()
        parser.feed(response.get_data(as_text=True))
        remote = [u for u in parser.loads if not is_local(u)]
        assert remote == [], f"{name} ({url}) loads from elsewhere: {remote}"
        assert parser.styles == [], f"{name} has inline styles (blocked by the CSP)"
        assert "<script" not in response.get_data(as_text=True), name


def test_security_headers_on_every_response(client: FlaskClient) -> None:
    for url in ("/", "/static/hub.css", "/nope", "/language/es?next=/"):
        response = client.get(url)
        assert response.headers["X-Content-Type-Options"] == "nosniff", url
        assert response.headers["Referrer-Policy"] == "no-referrer", url
        assert "script-src 'none'" in response.headers["Content-Security-Policy"], url
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"], url


def test_secret_key_is_generated_private_and_kept(node_config: NodeConfig) -> None:
    first = make_app(node_config)
    key_file = node_config.data_dir / SECRET_FILE_NAME
    try:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert len(first.secret_key) >= 64 and first.secret_key != "dev"
        again = make_app(node_config)
        assert again.secret_key == first.secret_key
        db.close(again)
    finally:
        db.close(first)
    assert [p.name for p in key_file.parent.iterdir() if ".new" in p.name] == []


def test_each_node_gets_its_own_secret(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = make_app(write_node_toml(tmp_path / "a"))
    two = make_app(write_node_toml(tmp_path / "b"))
    assert one.secret_key != two.secret_key


def test_unreadable_secret_is_a_clear_error(node_config: NodeConfig) -> None:
    from node.errors import ConfigError

    node_config.data_dir.mkdir(parents=True)
    (node_config.data_dir / SECRET_FILE_NAME).write_text("short")
    with pytest.raises(ConfigError, match="too short"):
        make_app(node_config)


def test_flask_settings_from_node_toml(tmp_path: Path) -> None:
    config = write_node_toml(tmp_path, "[portal]\nupload_max_mb = 3\nbehind_proxy = true\n"
                             "[organisers]\nsession_hours = 2\n")
    app = make_app(config)
    assert app.config["MAX_CONTENT_LENGTH"] == 3 * 1024 * 1024
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 2 * 3600
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert "csrf" in app.extensions


def test_behind_proxy_rate_limits_the_real_client(tmp_path: Path) -> None:
    app = make_app(write_node_toml(tmp_path, "[portal]\nbehind_proxy = true\n"),
                   SUBMIT_MAX_PER_WINDOW=1)
    try:
        data = {"category": "free", "title": "Chair", "body": "A chair.", "contact": "me"}
        for address, expected in (("10.1.0.5", 303), ("10.1.0.5", 429), ("10.1.0.6", 303)):
            client = app.test_client()
            token = form_token(client, "/submit")
            response = client.post("/submit", data={**data, "csrf_token": token},
                                   headers={"X-Forwarded-For": address})
            assert response.status_code == expected, address
    finally:
        db.close(app)


def test_unexpected_failure_shows_a_friendly_500(app: Flask) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def broken() -> str:
        raise RuntimeError("database on fire")

    app.add_url_rule("/broken-for-test", "broken", broken)
    response = app.test_client().get("/broken-for-test")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong on this node" in page and "on fire" not in page


def test_method_not_allowed_keeps_allow_header(client: FlaskClient) -> None:
    response = client.post("/about")
    assert response.status_code in (400, 405)  # CSRF runs first on POST
    response = client.delete("/about")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]


def test_static_files_do_not_escape_their_folder(client: FlaskClient,
                                                 node_config: NodeConfig) -> None:
    client.get("/")
    assert (node_config.data_dir / SECRET_FILE_NAME).exists()
    for url in ("/static/../../data/portal-secret.key", "/static/%2e%2e/__init__.py",
                "/static/..%2f__init__.py", f"/static/{os.sep}etc/passwd"):
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 404, url
        assert "root:" not in response.get_data(as_text=True)
