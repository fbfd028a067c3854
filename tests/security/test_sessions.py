"""Replay of the session attacks (issue 17, item 5): a copied cookie after sign-out.

Someone who listened on open Wi-Fi (or borrowed the browser) has a copy of an
organiser's session cookie. Before sessions lived on the node, the copy kept
working after the organiser signed out, and each use renewed it.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture, close_app, make_app

app = app_fixture()


def _cookie(auth: AuthActions) -> str:
    cookie = auth.client.get_cookie("meshhub_session")
    assert cookie is not None, "signed in, the browser holds a session cookie"
    return cookie.value


def test_a_copied_cookie_stops_working_when_its_owner_signs_out(app: Flask) -> None:
    owner = AuthActions(app.test_client())
    owner.login("olga")
    stolen = _cookie(owner)
    thief = app.test_client()
    thief.set_cookie("meshhub_session", stolen)
    assert thief.get("/organisers/").status_code == 200, "the copy works while she is in"
    owner.logout()
    response = thief.get("/organisers/")
    assert response.status_code == 302 and "/sign-in" in response.location
    # Replaying the very bytes again (a browser would have dropped the cookie
    # after the redirect cleared it; an attacker keeps it) still gets nothing.
    replay = app.test_client()
    replay.set_cookie("meshhub_session", stolen)
    assert replay.get("/organisers/").status_code == 302
    assert replay.get("/organisers/listings/").status_code == 302


def test_a_copied_cookie_cannot_use_admin_pages_without_the_password(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    application = make_app(tmp_path, HUB_CLOCK=lambda: now[0])
    try:
        admin = AuthActions(application.test_client())
        admin.login("ada")
        thief = AuthActions(application.test_client())
        thief.client.set_cookie("meshhub_session", _cookie(admin))
        now[0] += 16 * 60  # the cookie is used a while after the password was typed
        response = thief.client.get("/organisers/accounts/")
        assert response.status_code == 302 and "/organisers/confirm" in response.location
        response = thief.post("/organisers/accounts/", {
            "name": "mallory", "password": "a-long-enough-passphrase", "role": "admin"})
        assert response.status_code == 302 and "/organisers/confirm" in response.location
        with application.app_context():
            assert services(application).store.account("mallory") is None
    finally:
        close_app(application)
