"""Helpers for the organisers' tests: an app on a temporary node, and signing in.

Like Flask's tutorial ``AuthActions``, but CSRF stays switched on: every
POST carries the token that the page's own form holds, as a browser would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from node.config import parse_config
from portal import create_app
from portal.db import services

#: Accounts every organisers' test starts with: name -> (role, password).
ACCOUNTS = {
    "olga": ("organiser", "olga-password-1"),
    "mo": ("moderator", "mo-password-12"),
    "ada": ("admin", "ada-password-123"),
}
_TOKEN = re.compile(r'name="(?:[\w-]*-)?csrf_token" type="hidden" value="([^"]+)"'
                    r'|name="csrf_token" value="([^"]+)"')


def make_app(tmp_path: Path, toml: str = "", **test_config: Any) -> Flask:
    """A portal on a fresh node in ``tmp_path`` with the :data:`ACCOUNTS` created."""
    data_dir = tmp_path / "node"
    config = parse_config(f'[node]\ndata_dir = "{data_dir}"\n{toml}')
    app = create_app({
        "TESTING": True,
        # Argon2id, but cheap: tests sign in hundreds of times.
        "PASSWORD_HASHER": PasswordHasher(time_cost=1, memory_cost=8, parallelism=1,
                                          type=Type.ID),
        **test_config,
    }, config=config)
    with app.app_context():
        hub = services(app).hub
        for name, (role, password) in ACCOUNTS.items():
            hub.create_account(None, name=name, password=password, role=role)
    return app


def close_app(app: Flask) -> None:
    """Close the app's store (the test's tmp_path is removed by pytest)."""
    from portal.db import close

    close(app)


def app_fixture(toml: str = "", **test_config: Any) -> Callable[..., Iterator[Flask]]:
    """An ``app`` fixture: :func:`make_app` with ``toml`` (closed after the test).

    Assign it in a test module (``app = app_fixture("[portal]\\npage_size = 5\\n")``);
    it overrides conftest's ``app``, so conftest's ``client`` and ``auth`` use it.
    """

    @pytest.fixture(name="app")
    def app(tmp_path: Path) -> Iterator[Flask]:
        application = make_app(tmp_path, toml=toml, **test_config)
        yield application
        close_app(application)

    return app


def csrf_token(html: str) -> str:
    """The first CSRF token in a page."""
    match = _TOKEN.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1) or match.group(2)


class AuthActions:
    """Sign in and out through the real forms, and post forms with their token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def token(self, page: str = "/organisers/sign-in") -> str:
        """A valid CSRF token for this client's session, read from ``page``."""
        return csrf_token(self.client.get(page).get_data(as_text=True))

    def login(self, name: str = "olga", password: str | None = None, *,
              environ: dict[str, str] | None = None) -> TestResponse:
        """Submit the sign-in form (password default: the account's own)."""
        if password is None:
            password = ACCOUNTS[name][1]
        token = self.token()
        return self.client.post("/organisers/sign-in",
                                data={"name": name, "password": password, "csrf_token": token},
                                environ_base=environ or {})

    def logout(self) -> TestResponse:
        """Press the sign-out button."""
        return self.client.post("/organisers/sign-out",
                                data={"csrf_token": self.token("/organisers/")})

    def post(self, url: str, data: dict[str, Any] | None = None, *,
             form_page: str | None = None, **kwargs: Any) -> TestResponse:
        """POST ``data`` to ``url`` with the token of ``form_page`` (default: the dashboard)."""
        fields = dict(data or {})
        fields.setdefault("csrf_token", self.token(form_page or "/organisers/"))
        return self.client.post(url, data=fields, **kwargs)
