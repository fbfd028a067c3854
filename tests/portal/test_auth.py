"""Organisers' sign-in, sign-out, sessions and the sign-in rate limits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.db import services
from tests.node.test_store_support import FakeClock
from tests.portal.auth_actions import (
    ACCOUNTS,
    AuthActions,
    app_fixture,
    close_app,
    csrf_token,
    make_app,
)

MISMATCH = "That account name and password do not match."


app = app_fixture("[organisers]\nsignin_max_attempts = 3\n")


def test_pages_need_sign_in_and_come_back_after_it(client: FlaskClient,
                                                    auth: AuthActions) -> None:
    response = client.get("/organisers/library/")
    assert response.status_code == 302
    assert response.location.startswith("/organisers/sign-in?next=/organisers/library/")
    page = client.get(response.location).get_data(as_text=True)
    assert 'value="/organisers/library/"' in page
    token = auth.token()
    response = client.post("/organisers/sign-in", data={
        "name": "olga", "password": ACCOUNTS["olga"][1], "csrf_token": token,
        "next": "/organisers/library/"})
    assert response.location == "/organisers/library/"
    assert client.get("/organisers/library/").status_code == 200


def test_sign_in_and_out(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.login("olga")
    assert response.status_code == 302 and response.location == "/organisers/"
    page = client.get("/organisers/").get_data(as_text=True)
    assert "Signed in as olga" in page and "Sign out" in page
    assert client.get("/organisers/sign-out").status_code == 405, "sign-out is POST only"
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/organisers/").status_code == 302


def test_session_cookie_is_httponly_and_samesite(client: FlaskClient, auth: AuthActions) -> None:
    response = auth.login("olga")
    cookie = next(h for h in response.headers.getlist("Set-Cookie")
                  if h.startswith("meshhub_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_wrong_password_and_unknown_account_get_the_same_answer(
        client: FlaskClient, auth: AuthActions) -> None:
    wrong = auth.login("olga", "not-her-password")
    unknown = auth.login("nobody", "whatever-password")
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert MISMATCH in response.get_data(as_text=True)
    assert client.get("/organisers/").status_code == 302, "still signed out"


def test_passwords_never_reach_the_log(auth: AuthActions,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth.login("olga", "secret-guess-123")
    auth.login("olga")
    assert "secret-guess-123" not in caplog.text
    assert ACCOUNTS["olga"][1] not in caplog.text
    assert "failed sign-in for 'olga'" in caplog.text


def test_sign_in_starts_a_fresh_session(client: FlaskClient, auth: AuthActions) -> None:
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login("olga")
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["organiser"] == "olga" and session["organiser_token"]


def test_next_never_leads_to_another_site(client: FlaskClient, auth: AuthActions) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        token = auth.token()
        response = client.post("/organisers/sign-in", data={
            "name": "olga", "password": ACCOUNTS["olga"][1], "csrf_token": token,
            "next": target})
        assert response.location == "/organisers/", target
        auth.logout()


def test_too_many_failures_for_one_account_block_even_the_right_password(
        client: FlaskClient, auth: AuthActions) -> None:
    for i in range(3):  # signin_max_attempts = 3 in this app
        auth.login("olga", f"guess-{i}", environ={"REMOTE_ADDR": f"10.0.0.{i + 1}"})
    response = auth.login("olga", environ={"REMOTE_ADDR": "10.0.0.99"})
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "Please wait 15 minutes" in page
    assert 850 <= int(response.headers["Retry-After"]) <= 900
    assert client.get("/organisers/").status_code == 302, "not signed in"
    assert auth.login("mo").status_code == 302, "other accounts are not blocked"


def test_too_many_failures_from_one_client_block_that_client(auth: AuthActions) -> None:
    here = {"REMOTE_ADDR": "192.0.2.7"}
    for name in ("olga", "mo", "someone"):
        auth.login(name, "wrong-password", environ=here)
    assert auth.login("ada", environ=here).status_code == 429, "even a new account name"
    assert auth.login("ada", environ={"REMOTE_ADDR": "192.0.2.8"}).status_code == 302


def test_success_resets_the_accounts_counter(app: Flask, auth: AuthActions) -> None:
    for i in range(2):
        auth.login("olga", "wrong-password", environ={"REMOTE_ADDR": f"10.1.0.{i}"})
    assert auth.login("olga", environ={"REMOTE_ADDR": "10.1.0.9"}).status_code == 302
    auth.logout()
    for i in range(2):
        auth.login("olga", "wrong-password", environ={"REMOTE_ADDR": f"10.2.0.{i}"})
    assert auth.login("olga", environ={"REMOTE_ADDR": "10.2.0.9"}).status_code == 302, \
        "two new failures after a success do not reach the limit of three"


def test_a_disabled_account_is_signed_out_at_its_next_request(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.login("olga")
    assert client.get("/organisers/").status_code == 200
    with app.app_context():
        services(app).hub.set_disabled("ada", "olga", True)
    response = client.get("/organisers/")
    assert response.status_code == 302 and "/sign-in" in response.location
    assert auth.login("olga").status_code == 200, "and cannot sign in again"


def test_a_password_change_signs_out_other_sessions(app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    other = AuthActions(app.test_client())
    other.login("olga")
    assert other.client.get("/organisers/").status_code == 200
    response = auth.post("/organisers/password", {
        "current_password": ACCOUNTS["olga"][1], "new_password": "a-brand-new-passphrase",
        "confirm": "a-brand-new-passphrase"}, form_page="/organisers/password")
    assert response.status_code == 302
    assert auth.client.get("/organisers/").status_code == 200, "this browser stays signed in"
    assert other.client.get("/organisers/").status_code == 302, "the other one is signed out"


@pytest.fixture
def clock() -> FakeClock:
    """The clock of :func:`timed_app` (the hub's and the sessions')."""
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def timed_app(tmp_path: Path, clock: FakeClock) -> Iterator[Flask]:
    """A portal whose clock the test moves (idle 12 h, lifetime 72 h, re-auth 15 min)."""
    application = make_app(tmp_path, HUB_CLOCK=clock)
    yield application
    close_app(application)


def test_session_expires_after_session_hours_without_activity(
        timed_app: Flask, clock: FakeClock) -> None:
    auth = AuthActions(timed_app.test_client())
    auth.login("olga")
    clock.now += 12 * 3600 - 5
    assert auth.client.get("/organisers/").status_code == 200, "still inside the idle limit"
    clock.now += 12 * 3600 - 5
    assert auth.client.get("/organisers/").status_code == 200, "each use restarts it"
    clock.now += 12 * 3600 + 1
    response = auth.client.get("/organisers/")
    assert response.status_code == 302
    assert "Your session expired" in auth.client.get(response.location).get_data(as_text=True)


def test_session_ends_after_its_absolute_lifetime_however_active(
        timed_app: Flask, clock: FakeClock) -> None:
    auth = AuthActions(timed_app.test_client())
    auth.login("olga")
    for _hour in range(71):
        clock.now += 3600
        assert auth.client.get("/organisers/").status_code == 200
    clock.now += 3601
    response = auth.client.get("/organisers/")
    assert response.status_code == 302 and "/sign-in" in response.location


def test_admin_actions_ask_for_the_password_again_after_reauth_minutes(
        timed_app: Flask, clock: FakeClock) -> None:
    auth = AuthActions(timed_app.test_client())
    auth.login("ada")
    assert auth.client.get("/organisers/accounts/").status_code == 200, "just typed it"
    clock.now += 15 * 60 + 1
    assert auth.client.get("/organisers/").status_code == 200, "ordinary pages still open"
    response = auth.client.get("/organisers/accounts/")
    assert response.status_code == 302
    assert response.location.startswith("/organisers/confirm?next=/organisers/accounts/")
    response = auth.post("/organisers/accounts/olga/disabled", {"disabled": "1"})
    assert response.status_code == 302 and "/organisers/confirm" in response.location
    with timed_app.app_context():
        assert not services(timed_app).store.account("olga").disabled, "nothing was done"
    page = auth.client.get("/organisers/confirm?next=/organisers/accounts/")
    token = csrf_token(page.get_data(as_text=True))
    wrong = auth.client.post("/organisers/confirm", data={
        "password": "not-it", "csrf_token": token, "next": "/organisers/accounts/"})
    assert wrong.status_code == 200 and "That is not your password." in wrong.get_data(
        as_text=True)
    right = auth.client.post("/organisers/confirm", data={
        "password": ACCOUNTS["ada"][1], "csrf_token": token, "next": "/organisers/accounts/"})
    assert right.status_code == 302 and right.location == "/organisers/accounts/"
    assert auth.client.get("/organisers/accounts/").status_code == 200


def test_sign_out_and_disabling_delete_sessions_on_the_node(app: Flask) -> None:
    from portal.auth import sessions

    olga, other_olga, ada = (AuthActions(app.test_client()) for _ in range(3))
    olga.login("olga")
    other_olga.login("olga")
    ada.login("ada")
    with app.app_context():
        assert sessions(app).count("olga") == 2
    olga.logout()
    with app.app_context():
        assert sessions(app).count("olga") == 1
    assert ada.post("/organisers/accounts/olga/disabled", {"disabled": "1"},
                    form_page="/organisers/accounts/").status_code == 302
    with app.app_context():
        assert sessions(app).count("olga") == 0


def test_a_post_without_csrf_token_is_refused(client: FlaskClient, auth: AuthActions) -> None:
    assert client.post("/organisers/sign-in",
                       data={"name": "olga", "password": ACCOUNTS["olga"][1]}).status_code == 400
    auth.login("olga")
    response = client.post("/organisers/listings/new", data={
        "category": "free", "title": "Forged", "body": "From another site"})
    assert response.status_code == 400
    assert "Forged" not in client.get("/listings/").get_data(as_text=True)


def test_anonymous_pages_do_not_touch_the_session(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers, "residents get no session cookie"
