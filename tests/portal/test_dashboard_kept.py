"""The organisers' dashboard kept rendered per account (portal/organisers/dashboard.py), used
only while a fresh render would be the same: each test checks what an organiser sees
after a change, and counts the renders (Flask's ``template_rendered``).

Two clocks are the tests' own (:func:`clocks`): the one a kept page's age is measured on,
so a page is kept however slow the machine, and the one CSRF tokens are signed with
(whole seconds), so two requests' tokens differ exactly when the test says a second
passed between them."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner

from portal.db import services
from portal.organisers import dashboard
from tests.node.test_store_support import FakeClock
from tests.portal.auth_actions import AuthActions, app_fixture, close_app, make_app
from tests.portal.conftest import templates_rendered

#: ``portal.cache_seconds`` for these tests (the default's value, said here: the tests
#: move the page's clock across it).
TTL = 5
app = app_fixture(MESHHUB_CACHE_SECONDS=TTL)
DASHBOARD = "organisers/dashboard.html"
SIGNED_IN = "Signed in as <bdi>%s</bdi>"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Clocks:
    """The test's clocks: ``page`` (seconds, what a kept dashboard's age is measured
    on: ``time.monotonic`` in portal/organisers/dashboard.py) and ``token`` (the whole
    second a CSRF token is signed at: itsdangerous's ``TimestampSigner``)."""

    def __init__(self) -> None:
        self.page = 1000.0
        self.token = int(time.time())


@pytest.fixture
def clocks(monkeypatch: pytest.MonkeyPatch) -> Clocks:
    """Stopped clocks for a kept page's age and for CSRF tokens, moved only by the test.

    A token carries the second it was signed in (Flask-WTF signs one per request), so
    two requests' pages differ in their token whenever a second boundary falls between
    them: comparing whole pages failed now and then on a real clock."""
    held = Clocks()
    monkeypatch.setattr(dashboard, "time", SimpleNamespace(monotonic=lambda: held.page))
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: held.token)
    return held


def tokens(page: str) -> list[str]:
    """The CSRF tokens on ``page``."""
    return _TOKEN.findall(page)


def without_tokens(page: str) -> str:
    """``page`` with its CSRF tokens left out."""
    return _TOKEN.sub('name="csrf_token" value=""', page)


def signed_in(app: Flask, name: str) -> FlaskClient:
    """A browser signed in as ``name`` whose sign-in message was shown already."""
    client = app.test_client()
    AuthActions(client).login(name)
    assert 'class="flash' in client.get("/organisers/").get_data(as_text=True)
    return client


def figure(page: str, label: str) -> str:
    found = re.search(rf"<dt>{label}</dt><dd><a [^>]+>(\d+)</a>", page)
    assert found, label
    return found.group(1)


def test_a_dashboard_is_rendered_once_until_a_commit(app: Flask, clocks: Clocks) -> None:
    olga = signed_in(app, "olga")
    with templates_rendered(app) as names:
        first = olga.get("/organisers/").get_data(as_text=True)
        clocks.token += 1  # the next request's token is signed a second later
        second = olga.get("/organisers/").get_data(as_text=True)
    assert names.count(DASHBOARD) == 1 and without_tokens(first) == without_tokens(second)
    # The kept page carries the request's own token, not the one of the render.
    assert len(tokens(first)) == len(tokens(second)) == 1 and tokens(first) != tokens(second)
    assert 'class="flash' not in second and figure(second, "Listings showing") == "0"
    with app.app_context():
        services(app).hub.post_listing("ada", category="free", title="Step ladder",
                                       body="To lend.", price="", contact="Flat 2")
    with templates_rendered(app) as names:
        after = olga.get("/organisers/").get_data(as_text=True)
    assert names.count(DASHBOARD) == 1
    assert figure(after, "Listings showing") == "1" and "Step ladder" in after


def test_each_account_and_session_gets_its_own_page_and_token(app: Flask) -> None:
    with app.app_context():
        services(app).hub.submit_listing(category="free", title="Sofa", body="Collect soon.")
    olga, mo, olga_elsewhere = signed_in(app, "olga"), signed_in(app, "mo"), \
        signed_in(app, "olga")
    for _ in range(2):  # alternately, each page kept once rendered
        pages = {who: client.get("/organisers/").get_data(as_text=True)
                 for who, client in (("olga", olga), ("mo", mo), ("olga2", olga_elsewhere))}
        assert SIGNED_IN % "olga" in pages["olga"] and SIGNED_IN % "olga" in pages["olga2"]
        assert SIGNED_IN % "mo" in pages["mo"] and "Submissions waiting" in pages["mo"]
        assert "Submissions waiting" not in pages["olga"]
        tokens = {who: set(_TOKEN.findall(page)) for who, page in pages.items()}
        assert all(len(found) == 1 for found in tokens.values())
        assert tokens["olga"] != tokens["olga2"] != tokens["mo"] != tokens["olga"]
    # Each browser's token signs that browser out, and only that one.
    token = tokens["olga2"].pop()
    assert olga.post("/organisers/sign-out", data={"csrf_token": token}).status_code == 400
    assert olga_elsewhere.post("/organisers/sign-out",
                               data={"csrf_token": token}).status_code in (302, 303)
    assert olga_elsewhere.get("/organisers/").status_code in (302, 303)
    assert SIGNED_IN % "olga" in olga.get("/organisers/").get_data(as_text=True)


def test_a_new_role_and_a_message_are_on_the_next_page(app: Flask) -> None:
    olga = signed_in(app, "olga")
    assert "Submissions waiting" not in olga.get("/organisers/").get_data(as_text=True)
    with app.app_context():
        services(app).hub.set_role("ada", "olga", "moderator")
    page = olga.get("/organisers/").get_data(as_text=True)
    assert "Submissions waiting" in page and "(Moderator)" in page
    with olga.session_transaction() as browser:
        browser["_flashes"] = [("success", "Saved the listing.")]
    with templates_rendered(app) as names:
        shown = olga.get("/organisers/").get_data(as_text=True)
        again = olga.get("/organisers/").get_data(as_text=True)
    assert "Saved the listing." in shown and "Saved the listing." not in again
    assert names.count(DASHBOARD) == 1  # the message's page was its own, not kept


def test_a_dashboard_is_rendered_again_once_older_than_cache_seconds(
        app: Flask, clocks: Clocks) -> None:
    olga = signed_in(app, "olga")
    with templates_rendered(app) as names:
        first = olga.get("/organisers/").get_data(as_text=True)
        clocks.page += TTL - 0.5
        kept = olga.get("/organisers/").get_data(as_text=True)
    assert names.count(DASHBOARD) == 1 and kept == first
    with templates_rendered(app) as names:
        clocks.page += 0.5
        again = olga.get("/organisers/").get_data(as_text=True)
        renewed = olga.get("/organisers/").get_data(as_text=True)
    assert names.count(DASHBOARD) == 1 and again == renewed == first


def test_an_expired_listing_leaves_the_figure_without_any_write(tmp_path: Path) -> None:
    clock = FakeClock()
    application = make_app(tmp_path, HUB_CLOCK=clock)
    try:
        with application.app_context():
            services(application).hub.post_listing(
                "ada", category="free", title="Tent", body="For the weekend.", price="",
                contact="Flat 5", expires_at=int(clock.now) + 60)
        olga = signed_in(application, "olga")
        assert figure(olga.get("/organisers/").get_data(as_text=True), "Listings showing") == "1"
        clock.advance(61)
        assert figure(olga.get("/organisers/").get_data(as_text=True), "Listings showing") == "0"
    finally:
        close_app(application)
