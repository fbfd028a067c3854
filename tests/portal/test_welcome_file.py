"""The welcome page for new phones as a file, its CSRF token made by nginx (portal/welcome_file.py).

Through the real nginx of the node's site (the ``served`` fixture of test_pagefiles.py):
the file answers new phones with a token of their own, set as a cookie; Connect
takes the token only with that cookie; what is not for every new phone reaches the
portal. Without nginx, against the node's own gate service (``gate`` fixture): the
files follow the gate's mode and an emergency broadcast, and a phone that accepted
gets its own page with the time left.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bench.waiting import wait_for
from node.broadcast import send_broadcast
from node.gate import mode_file, write_switch
from node.gate.service import GateService
from portal import db, pagefiles, welcome_file
from portal.auth import PRIVATE_COOKIE
from tests.portal.conftest import PHONE, form_token, make_app
from tests.portal.test_nginx import Front, front  # noqa: F401 - the fixture
from tests.portal.test_pagefiles import RENDER_WAIT, served  # noqa: F401 - the fixture

_FORM_TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]*)"')
_COOKIE = re.compile(rf"{welcome_file.TOKEN_COOKIE}=([^;]*); Path=/welcome; HttpOnly; "
                     r"SameSite=Strict$")


def _token_and_cookie(headers: dict[str, str], body: bytes) -> tuple[str, str]:
    """(the form's token, the token cookie nginx set) of a welcome page answer."""
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    form = _FORM_TOKEN.search(body.decode())
    cookie = _COOKIE.fullmatch(headers.get("set-cookie", ""))
    assert form and cookie, (headers, body[:200])
    return form.group(1), cookie.group(1)


def _new_phone(site: Front, extra: dict[str, str] | None = None) -> tuple[str, str]:
    status, headers, body = site.request("/welcome", {"Host": "hub.mesh", **(extra or {})})
    assert (status, headers["x-cache-status"]) == (200, "FILE")
    return _token_and_cookie(headers, body)


def _post(site: Front, token: str | None, cookie: str | None,
          extra: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    headers = {"Host": "hub.mesh", "Content-Type": "application/x-www-form-urlencoded",
               **(extra or {})}
    if cookie is not None:
        headers["Cookie"] = f"{welcome_file.TOKEN_COOKIE}={cookie}"
    status, answer, _ = site.request("/welcome", headers, method="POST",
                                     body="" if token is None else f"csrf_token={token}")
    return status, answer


@pytest.fixture
def welcome_served(served: tuple[Front, pagefiles.Renderer]  # noqa: F811
                   ) -> Iterator[tuple[Front, pagefiles.Renderer]]:
    site, renderer = served
    wait_for("the welcome files", lambda: all(
        (renderer.root / name).exists() for name in renderer.welcome.names()),
        timeout=RENDER_WAIT)
    yield site, renderer


def test_new_phones_get_the_file_each_with_its_own_token_as_page_and_cookie(
        welcome_served: tuple[Front, pagefiles.Renderer]) -> None:
    site, _ = welcome_served
    tokens = [_new_phone(site), _new_phone(site, {"Accept-Encoding": "gzip"})]
    for form, cookie in tokens:
        assert form == cookie and re.fullmatch(r"[0-9a-f]{32}", form)
    assert tokens[0][0] != tokens[1][0], "every phone gets its own token"
    status, headers, body = site.request("/welcome", {"Host": "hub.mesh"})
    assert status == 200 and welcome_file.SLOT.encode() not in body
    assert "etag" not in headers and "last-modified" not in headers, "never revalidated"
    # The portal's page but for the token, with the portal's headers.
    direct = site.app.test_client().get("/welcome", headers={"Host": "hub.mesh"})
    blank = _FORM_TOKEN.sub("token", body.decode())
    assert blank == _FORM_TOKEN.sub("token", direct.get_data(as_text=True))
    for name in ("content-security-policy", "x-content-type-options", "referrer-policy",
                 "cache-control", "content-type"):
        assert headers[name] == direct.headers[name], name
    assert headers["cache-control"] == "private, no-store"
    # A phone keeps the token it holds; a cookie that is not nginx's kind of token is
    # neither kept nor written into the page.
    form, cookie = _new_phone(site, {"Cookie": f"{welcome_file.TOKEN_COOKIE}={'a1' * 16}"})
    assert form == cookie == "a1" * 16
    form, _ = _new_phone(site, {"Cookie": f'{welcome_file.TOKEN_COOKIE}="><b>x</b>'})
    assert re.fullmatch(r"[0-9a-f]{32}", form)
    # In the reader's language.
    _, _, spanish = site.request("/welcome", {"Host": "hub.mesh", "Accept-Language": "es"})
    assert b'<html lang="es"' in spanish


def test_connect_takes_the_token_only_with_its_cookie(
        welcome_served: tuple[Front, pagefiles.Renderer]) -> None:
    site, _ = welcome_served
    mine, other = _new_phone(site)[0], _new_phone(site)[0]
    assert _post(site, None, mine)[0] == 400, "no token in the form"
    assert _post(site, mine, None)[0] == 400, "no cookie"
    assert _post(site, other, mine)[0] == 400, "another phone's token"
    assert _post(site, "a" * 31, "a" * 31)[0] == 400, "not nginx's kind of token"
    assert _post(site, mine, mine, {"Origin": "http://evil.example"})[0] == 400
    status, headers = _post(site, mine, mine, {"Origin": "http://hub.mesh"})
    assert (status, headers["location"]) == (303, "/connected")


def test_what_is_not_for_every_new_phone_reaches_the_portal(
        welcome_served: tuple[Front, pagefiles.Renderer]) -> None:
    site, _ = welcome_served
    for path, headers in (("/welcome?x=1", {}),
                          ("/welcome", {"Cookie": f"{PRIVATE_COOKIE}=1"}),
                          ("/welcome", {"Cookie": f"{welcome_file.JOINED_COOKIE}=1"}),
                          ("/welcome", {"Accept-Language": "es;q=0.5, ar;q=0.7"}),
                          ("/welcome", {"User-Agent": "CaptiveNetworkSupport-407 wispr"}),
                          ("/welcome", {"Host": "connectivitycheck.gstatic.com"})):
        _, answer, _ = site.request(path, {"Host": "hub.mesh", **headers})
        assert answer.get("x-cache-status") != "FILE", (path, headers)
        assert welcome_file.TOKEN_COOKIE not in answer.get("set-cookie", ""), (path, headers)


@pytest.fixture
def gated(gate: GateService) -> Iterator[tuple[Flask, pagefiles.Renderer]]:
    """A portal on the node's gate with its renderer running (no nginx)."""
    app = make_app(gate.cfg)
    with app.app_context():
        db.services(app).hub.create_account(None, name="ada", password="ada-password-123",
                                            role="admin")
    renderer = pagefiles.Renderer(app, gate.cfg)
    renderer.start()
    try:
        yield app, renderer
    finally:
        renderer.stop()
        db.close(app)


def _file(renderer: pagefiles.Renderer) -> str:
    try:
        return (renderer.root / "en" / welcome_file.FILE_NAME).read_text()
    except FileNotFoundError:
        return ""


def test_the_file_follows_the_gates_mode_and_stays_away_during_a_broadcast(
        gated: tuple[Flask, pagefiles.Renderer], gate: GateService) -> None:
    app, renderer = gated
    page = wait_for("the welcome file", lambda: _file(renderer), timeout=RENDER_WAIT)
    assert "Connect" in page and "You are connected" not in page and "has no gate" not in page
    assert page.count(welcome_file.SLOT) == 1
    with app.app_context():
        send_broadcast(db.services(app).hub, "ada", title="Boil water", body="Until Friday.",
                       ends_at=int(time.time()) + 3600)
    wait_for("the file's removal", lambda: not _file(renderer), timeout=RENDER_WAIT)
    gate.check_broadcast()
    phone = app.test_client()
    phone.environ_base["REMOTE_ADDR"] = PHONE
    assert phone.get("/welcome").status_code == 302, "the portal sends it to the notice"
    with app.app_context():
        from node.broadcast import cancel_broadcast

        cancel_broadcast(db.services(app).hub, "ada")
    wait_for("the file again", lambda: _file(renderer), timeout=RENDER_WAIT)
    write_switch(mode_file(gate.cfg), "open", set_by="ada")
    wait_for("the open network's file", lambda: "nothing to accept" in _file(renderer),
             timeout=RENDER_WAIT)


def test_a_phone_that_accepted_gets_its_own_page_with_the_time_left(
        gate: GateService) -> None:
    app = make_app(gate.cfg)
    try:
        phone: FlaskClient = app.test_client()
        phone.environ_base["REMOTE_ADDR"] = PHONE
        token = "b2" * 16  # as nginx's file gave it: form and cookie
        phone.set_cookie(welcome_file.TOKEN_COOKIE, "c3" * 16, path="/welcome")
        assert phone.post("/welcome", data={"csrf_token": token}).status_code == 400
        phone.set_cookie(welcome_file.TOKEN_COOKIE, token, path="/welcome")
        answer = phone.post("/welcome", data={"csrf_token": token})
        assert answer.status_code == 303
        joined = answer.headers["Set-Cookie"]
        assert joined.startswith(f"{welcome_file.JOINED_COOKIE}=1;")
        assert "Max-Age=86400" in joined and "Path=/welcome" in joined and "HttpOnly" in joined
        page = phone.get("/welcome").get_data(as_text=True)
        assert "You are connected" in page and "24 hours" in page
        # A phone the portal rendered the page for still uses its session's token.
        other = app.test_client()
        other.environ_base["REMOTE_ADDR"] = PHONE
        assert other.post("/welcome", data={"csrf_token": form_token(other, "/welcome")}
                          ).status_code == 303
    finally:
        db.close(app)
