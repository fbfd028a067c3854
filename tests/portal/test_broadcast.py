"""The emergency notice in the portal: the phone's sheet, "I have read this", the organisers' page.

The gate is the node's own :class:`~node.gate.service.GateService` on a Unix socket with
only ``ip``/``nft`` faked (the ``gate`` fixture of tests/portal/conftest.py); the broadcast
is read from the node's real store by the gate, as on a node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient

from node.broadcast import current_broadcast, send_broadcast
from node.gate.service import GateService
from portal import db
from tests.node.test_gate import MAC, FakeShell
from tests.portal.auth_actions import ACCOUNTS, AuthActions, app_fixture
from tests.portal.conftest import PHONE, PORTAL, form_token, make_app, page_token

PROBE = {"Host": "connectivitycheck.gstatic.com"}


@pytest.fixture
def captive_app(gate: GateService) -> Iterator[Flask]:
    app = make_app(gate.cfg)
    with app.app_context():
        db.services(app).hub.create_account(None, name="ada", password="ada-password-123",
                                            role="admin")
    yield app
    db.close(app)


def broadcast(app: Flask, gate: GateService, title: str = "Boil water") -> str:
    """Send a broadcast as the admin, and let the gate take it up (its watcher's step)."""
    sent = send_broadcast(db.services(app).hub, "ada", title=title,
                          body="Until **Friday**.", ends_at=int(time.time()) + 3600)
    gate.check_broadcast()
    return sent.notice


def test_an_accepted_phone_meets_the_notice_first_and_reading_it_lets_it_through(
        captive_app: Flask, gate: GateService, phone: FlaskClient, shell: FakeShell) -> None:
    phone.post("/welcome", data={"csrf_token": form_token(phone, "/welcome")})
    assert phone.get("/generate_204", headers=PROBE).status_code == 204
    broadcast(captive_app, gate)
    assert shell.sets["notice_read"] == {} and "broadcast" in shell.flushed

    probe = phone.get("/generate_204", headers=PROBE)
    assert (probe.status_code, probe.headers["Location"]) == (302, f"{PORTAL}/emergency")
    api = phone.get("/api/captive").get_json()
    assert api["captive"] is True and api["user-portal-url"] == f"{PORTAL}/emergency"
    assert "seconds-remaining" not in api
    # The sheet opens on the notice, whatever page it was given.
    assert phone.get("/welcome").headers["Location"] == f"{PORTAL}/emergency"
    assert phone.get("/connected").headers["Location"] == f"{PORTAL}/emergency"
    page = phone.get("/emergency")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "private, no-store"
    assert "Boil water" in html and "<strong>Friday</strong>" in html
    assert "I have read this" in html and "<script" not in html

    answer = phone.post("/emergency", data={"csrf_token": form_token(phone, "/emergency")})
    assert (answer.status_code, answer.headers["Location"]) == (303, "/connected")
    assert (PHONE, MAC) in shell.sets["notice_read"]
    assert phone.get("/generate_204", headers=PROBE).status_code == 204
    assert phone.get("/api/captive").get_json()["captive"] is False


def test_a_phone_that_never_accepted_reads_the_notice_then_meets_the_house_rules(
        captive_app: Flask, gate: GateService, phone: FlaskClient) -> None:
    broadcast(captive_app, gate)
    assert phone.get("/generate_204", headers=PROBE).headers["Location"] == \
        f"{PORTAL}/emergency"
    answer = phone.post("/emergency", data={"csrf_token": form_token(phone, "/emergency")})
    assert answer.headers["Location"] == f"{PORTAL}/welcome"
    assert phone.get("/generate_204", headers=PROBE).headers["Location"] == f"{PORTAL}/welcome"
    phone.post("/welcome", data={"csrf_token": form_token(phone, "/welcome")})
    assert phone.get("/generate_204", headers=PROBE).status_code == 204


def test_every_phone_gets_the_notice_rendered_once_with_its_own_token(
        captive_app: Flask, gate: GateService, shell: FakeShell,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.captive import views

    rendered: list[str] = []

    def counted(name: str, **context: object) -> str:
        rendered.append(name)
        return render_template(name, **context)

    monkeypatch.setattr(views, "render_template", counted)
    broadcast(captive_app, gate)
    phones = [captive_app.test_client() for _ in range(3)]
    for phone in phones:
        phone.environ_base["REMOTE_ADDR"] = PHONE
    pages = [phone.get("/emergency").get_data(as_text=True) for phone in phones]
    # Each page's own token: a second request's is signed with its own second's timestamp.
    tokens = [page_token(page) for page in pages]
    assert len(set(tokens)) == 3 and rendered == ["captive/emergency.html"]
    for page, token in zip(pages[1:], tokens[1:], strict=True):
        assert page == pages[0].replace(tokens[0], token), "the same page, only the token differs"
    assert "Boil water" in pages[0] and "<strong>Friday</strong>" in pages[0]
    assert phones[0].post("/emergency", data={"csrf_token": tokens[1]}).status_code == 400
    answer = phones[0].post("/emergency", data={"csrf_token": tokens[0]})
    assert answer.status_code == 303 and (PHONE, MAC) in shell.sets["notice_read"]
    read = phones[0].get("/emergency").get_data(as_text=True)
    assert "Boil water" in read and "I have read this" not in read and 'csrf_token' not in read


def test_a_new_broadcast_is_read_again_and_the_end_frees_everyone(
        captive_app: Flask, gate: GateService, phone: FlaskClient, shell: FakeShell) -> None:
    phone.post("/welcome", data={"csrf_token": form_token(phone, "/welcome")})
    broadcast(captive_app, gate, "First")
    phone.post("/emergency", data={"csrf_token": form_token(phone, "/emergency")})
    assert phone.get("/generate_204", headers=PROBE).status_code == 204
    broadcast(captive_app, gate, "Second")
    assert "Second" in phone.get("/emergency").get_data(as_text=True)
    assert phone.get("/generate_204", headers=PROBE).status_code == 302
    from node.broadcast import cancel_broadcast

    cancel_broadcast(db.services(captive_app).hub, "ada")
    gate.check_broadcast()
    assert gate.broadcast.held is None
    assert phone.get("/generate_204", headers=PROBE).status_code == 204  # accepted still


def test_a_probe_while_the_broadcast_ends_never_sends_a_reader_back_to_the_notice(
        captive_app: Flask, gate: GateService, phone: FlaskClient, shell: FakeShell) -> None:
    """The gate empties its sets (one nft transaction), then forgets the broadcast: a probe
    in between must not pair the emptied "read" set with the broadcast still held."""
    from node.broadcast import cancel_broadcast

    phone.post("/welcome", data={"csrf_token": form_token(phone, "/welcome")})
    broadcast(captive_app, gate)
    phone.post("/emergency", data={"csrf_token": form_token(phone, "/emergency")})
    cancel_broadcast(db.services(captive_app).hub, "ada")
    flushed, release = threading.Event(), threading.Event()

    def nft_then_pause(argv: Sequence[str], stdin: str | None) -> tuple[int, str, str]:
        answer = shell(argv, stdin)
        if "flush set" in (stdin or ""):  # the sets are empty now; `held` not yet changed
            flushed.set()
            release.wait(30)
        return answer

    gate.manager._run = nft_then_pause  # type: ignore[assignment]
    ending = threading.Thread(target=gate.check_broadcast)
    ending.start()
    answers: list[int] = []
    probe = threading.Thread(target=lambda: answers.append(
        phone.get("/generate_204", headers=PROBE).status_code))
    try:
        assert flushed.wait(30)
        probe.start()
        probe.join(0.2)
        assert probe.is_alive(), "the probe waits for the gate to finish the change"
    finally:
        release.set()
        ending.join(30)
        if probe.is_alive() or probe.ident is not None:
            probe.join(30)
    assert gate.broadcast.held is None and answers == [204]


app = app_fixture()


def _until(hours: float) -> str:
    return (datetime.now() + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def test_an_admin_sends_it_from_the_organisers_page_and_ends_it(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.login("ada")
    page = client.get("/organisers/broadcast").get_data(as_text=True)
    assert "There is no emergency notice now." in page and "Send to every phone" in page
    data = {"title": "Flood warning", "body": "Move to higher floors.", "ends_at": _until(2)}
    sent = auth.post("/organisers/broadcast", data, form_page="/organisers/broadcast")
    assert sent.status_code == 303
    with app.app_context():
        found = current_broadcast(db.services(app).store.path, time.time())
    assert found is not None and found.actor == "ada"
    page = client.get("/organisers/broadcast").get_data(as_text=True)
    assert "In force now" in page and "Flood warning" in page
    # The audit says who did it.
    assert "sent or ended an emergency notice" in client.get("/organisers/audit/").get_data(
        as_text=True)
    ended = auth.post("/organisers/broadcast/cancel", form_page="/organisers/broadcast")
    assert ended.status_code == 303
    with app.app_context():
        assert current_broadcast(db.services(app).store.path, time.time()) is None


@pytest.mark.parametrize(("ends", "problem"), [
    ("", "an emergency broadcast needs an end time"),
    (_until(24 * 8), "must be at most 7 days ahead"),
])
def test_a_missing_or_far_end_time_is_refused_on_the_form(
        client: FlaskClient, auth: AuthActions, ends: str, problem: str) -> None:
    auth.login("ada")
    answer = auth.post("/organisers/broadcast", {"title": "Flood", "body": "x", "ends_at": ends},
                       form_page="/organisers/broadcast")
    assert answer.status_code == 200 and problem in answer.get_data(as_text=True)


def test_an_organiser_needs_an_admin_to_allow_it(client: FlaskClient,
                                                 auth: AuthActions) -> None:
    auth.login("olga")
    page = client.get("/organisers/broadcast").get_data(as_text=True)
    assert "Your account may not send emergency notices." in page
    assert "Send to every phone" not in page
    assert auth.post("/organisers/broadcast/cancel",
                     form_page="/organisers/broadcast").status_code == 403
    auth.logout()
    auth.login("ada")
    allowed = auth.post("/organisers/accounts/olga/broadcast", {"broadcast": "1"},
                        form_page="/organisers/accounts/")
    assert allowed.status_code == 302
    assert "olga may send emergency notices." in client.get("/organisers/accounts/").get_data(
        as_text=True)
    auth.logout()
    auth.login("olga", ACCOUNTS["olga"][1])
    assert "Send to every phone" in client.get("/organisers/broadcast").get_data(as_text=True)
