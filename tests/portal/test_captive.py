"""Every phone's portal sheet: probes, Connect, the RFC 8908 API.

The gate is the node's own (:class:`node.gate.service.GateService` on a Unix socket,
the portal its :class:`node.gate.GateClient`); only its ``ip`` and ``nft`` are faked,
as in the gate's own tests (the ``gate`` fixture of tests/portal/conftest.py).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient

from node.captive_probes import BY_HOST, BY_PATH
from node.gate import GateStatus, mode_file, write_switch
from node.gate.service import GateService
from portal import db
from portal.captive.state import GateMemory
from tests.node.test_gate import MAC, FakeShell
from tests.portal.conftest import PHONE, PORTAL, form_token, make_app, page_token, write_node_toml

#: What each OS must get back once accepted: (status, exact body).
SUCCESS = {
    "/hotspot-detect.html": (200, b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success"
                                  b"</BODY></HTML>"),
    "/library/test/success.html": (200, b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>"
                                        b"Success</BODY></HTML>"),
    "/generate_204": (204, b""),
    "/gen_204": (204, b""),
    "/connecttest.txt": (200, b"Microsoft Connect Test"),
    "/ncsi.txt": (200, b"Microsoft NCSI"),
    "/success.txt": (200, b"success\n"),
    "/check_network_status.txt": (200, b"NetworkManager is online\n"),
}


@pytest.fixture
def captive_app(gate: GateService) -> Iterator[Flask]:
    app = make_app(gate.cfg)
    yield app
    db.close(app)


def test_every_probe_is_redirected_to_the_welcome_page_before_acceptance(
        phone: FlaskClient) -> None:
    for path in [*BY_PATH, "/anything"]:
        headers = {"Host": "captive.apple.com"} if path == "/anything" else {}
        response = phone.get(path, headers=headers)
        assert response.status_code == 302, path
        assert response.headers["Location"] == f"{PORTAL}/welcome", path
        assert response.headers["Cache-Control"] == "private, no-store", path
    for host in BY_HOST:
        assert phone.get("/", headers={"Host": host}).headers["Location"] == f"{PORTAL}/welcome"
    apple = phone.get("/x/y/z.html", headers={"Host": "www.airport.us",
                                              "User-Agent": "CaptiveNetworkSupport-443.1 wispr"})
    assert apple.status_code == 302


def test_connect_then_every_probe_gets_its_exact_success_answer(phone: FlaskClient,
                                                               shell: FakeShell) -> None:
    token = form_token(phone, "/welcome")
    response = phone.post("/welcome", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/connected"
    assert shell.allowed == {(PHONE, MAC): 24 * 3600}, "the gate let the phone's address through"
    page = phone.get("/connected")
    assert page.status_code == 200 and "connected" in page.get_data(as_text=True)
    assert "24 hours" in page.get_data(as_text=True)
    for path, (status, body) in SUCCESS.items():
        answer = phone.get(path, headers={"Host": "example.org"})
        assert (answer.status_code, answer.data) == (status, body), path
        assert answer.headers["Cache-Control"] == "private, no-store", path
    assert "Content-Type" not in phone.get("/generate_204").headers
    assert phone.get("/canonical.html").data.startswith(b'<meta http-equiv="refresh"')
    assert phone.get("/", headers={"Host": "nmcheck.gnome.org"}).data == \
        b"NetworkManager is online\n"
    assert phone.get("/", headers={"Host": "connectivity-check.ubuntu.com"}).status_code == 204
    # Windows opens /redirect in a browser: after acceptance it leads to the hub.
    assert phone.get("/redirect").headers["Location"] == f"{PORTAL}/"
    # Any other site (offline node: DNS answers the portal) leads to the hub, not a loop.
    assert phone.get("/news", headers={"Host": "example.org"}).headers["Location"] == \
        f"{PORTAL}/"


def test_connect_needs_the_csrf_token(phone: FlaskClient, shell: FakeShell) -> None:
    assert phone.post("/welcome", data={}).status_code == 400
    assert phone.get("/generate_204").status_code == 302, "the gate was asked (status)"
    assert not shell.allowed


def test_captive_api_follows_rfc_8908(phone: FlaskClient, shell: FakeShell) -> None:
    before = phone.get("/api/captive")
    assert before.headers["Content-Type"] == "application/captive+json"
    assert before.headers["Cache-Control"] == "private, no-store"
    assert json.loads(before.data) == {"captive": True, "user-portal-url": f"{PORTAL}/welcome",
                                       "venue-info-url": f"{PORTAL}/about"}
    shell.allowed[PHONE, MAC] = 3599  # nftables' element, with 3599 s left
    after = json.loads(phone.get("/api/captive").data)
    assert after["captive"] is False and after["seconds-remaining"] == 3599
    assert after["can-extend-session"] is True


def test_gate_not_answering_keeps_the_phone_at_the_welcome_page(phone: FlaskClient,
                                                                gate: GateService) -> None:
    token = form_token(phone, "/welcome")
    gate.stop()  # the agent restarting: its socket file is there, nobody listens on it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(gate.cfg.gate.socket))
        assert phone.get("/generate_204").status_code == 302
        response = phone.post("/welcome", data={"csrf_token": token})
    assert response.status_code == 503
    assert "did not answer" in response.get_data(as_text=True)


def test_unknown_device_is_told_to_reconnect(phone: FlaskClient, shell: FakeShell) -> None:
    token = form_token(phone, "/welcome")
    shell.neigh = "[]"  # the node's neighbour table does not know the phone
    response = phone.post("/welcome", data={"csrf_token": token})
    assert response.status_code == 503 and "Reconnect" in response.get_data(as_text=True)


def test_open_mode_lets_every_probe_succeed(phone: FlaskClient, gate: GateService) -> None:
    write_switch(mode_file(gate.cfg), "open", set_by="ada")  # as an organiser switches it
    gate.check_mode()  # the watcher's step: the gate applies the mode in force
    assert gate.manager.mode == "open"
    assert phone.get("/generate_204").status_code == 204
    assert "nothing to accept" in phone.get("/welcome").get_data(as_text=True)


def test_welcome_page_shows_the_house_rules_in_the_readers_language(
        phone: FlaskClient) -> None:
    page = phone.get("/welcome", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="es"' in page
    english = phone.get("/welcome").get_data(as_text=True)
    assert "Be kind and respectful" in english and "<script" not in english
    assert 'method="post"' in english and "Connect" in english


def test_the_welcome_page_is_rendered_once_per_language_each_phone_with_its_own_token(
        captive_app: Flask, shell: FakeShell, monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.captive import views
    from portal.token_pages import EXTENSION

    rendered: list[str] = []

    def counted(name: str, **context: object) -> str:
        rendered.append(name)
        return render_template(name, **context)

    monkeypatch.setattr(views, "render_template", counted)
    phones = [captive_app.test_client() for _ in range(3)]
    for phone in phones:
        phone.environ_base["REMOTE_ADDR"] = PHONE
    pages = [phone.get("/welcome").get_data(as_text=True) for phone in phones]
    tokens = [page_token(page) for page in pages]
    assert len(set(tokens)) == 3, "each phone has its own token"
    for page, token in zip(pages[1:], tokens[1:], strict=True):
        assert page == pages[0].replace(tokens[0], token), "the same page, only the token differs"
    cache = captive_app.extensions[EXTENSION]
    assert rendered == ["captive/welcome.html"] and cache.slot not in pages[0]
    spanish = phones[0].get("/welcome", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="es"' in spanish and len(rendered) == 2
    # Each token is its own phone's: another phone's is refused, its own is accepted.
    assert phones[1].post("/welcome", data={"csrf_token": tokens[2]}).status_code == 400
    assert not shell.allowed
    assert phones[1].post("/welcome", data={"csrf_token": tokens[1]}).status_code == 303
    assert shell.allowed == {(PHONE, MAC): 24 * 3600}
    # Now let through, with time left shown: that page is this phone's alone.
    accepted = phones[1].get("/welcome").get_data(as_text=True)
    assert "You are connected" in accepted and "Time left" in accepted
    assert len(rendered) == 3


def test_without_a_gate_the_demo_is_open_and_says_so(tmp_path: Path) -> None:
    app = make_app(write_node_toml(tmp_path, '[gate]\nsocket = "' + str(tmp_path / "none.sock")
                                   + '"\n'))
    try:
        client = app.test_client()
        assert client.get("/generate_204").status_code == 204
        assert "has no gate" in client.get("/welcome").get_data(as_text=True)
        token = form_token(client, "/welcome")
        assert client.post("/welcome", data={"csrf_token": token}).status_code == 303
        assert client.get("/", headers={"Host": "example.org"}).status_code == 200
    finally:
        db.close(app)


def test_requests_from_outside_the_client_subnet_are_not_held_back(
        captive_app: Flask) -> None:
    mesh = captive_app.test_client()
    mesh.environ_base["REMOTE_ADDR"] = "10.42.0.9"
    assert mesh.get("/generate_204").status_code == 204
    assert mesh.get("/").status_code == 200


def test_a_gate_slow_once_does_not_bring_the_sheet_back(phone: FlaskClient,
                                                         gate: GateService) -> None:
    """An accepted phone keeps the gate's answer of a moment ago when the gate does not
    answer in time; a phone the gate never let through stays at the welcome page."""
    token = form_token(phone, "/welcome")
    assert phone.post("/welcome", data={"csrf_token": token}).status_code == 303
    assert phone.get("/generate_204").status_code == 204
    gate.stop()  # busy or restarting: the socket file is there, nobody answers on it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(gate.cfg.gate.socket))
        for _ in range(3):  # the next probes, as a phone repeats them
            assert phone.get("/generate_204").status_code == 204
        api = json.loads(phone.get("/api/captive").data)
        assert api["captive"] is False and 0 < api["seconds-remaining"] <= 24 * 3600
        other = phone.get("/generate_204", environ_base={"REMOTE_ADDR": "10.64.7.99"})
        assert other.status_code == 302, "a device never let through is still held back"


def test_the_remembered_answer_runs_out() -> None:
    """Kept at most REMEMBER_SECONDS and never past the time the gate gave."""
    memory = GateMemory(seconds=60.0)
    memory.keep("10.64.7.20", GateStatus("10.64.7.20", MAC, True, 30))
    memory.keep("10.64.7.21", GateStatus("10.64.7.21", MAC, True, 3600))
    memory.keep("10.64.7.22", GateStatus("10.64.7.22", MAC, True, 3600))
    memory.keep("10.64.7.22", GateStatus("10.64.7.22", MAC, False, None))  # removed since
    assert memory.recall("10.64.7.20") is not None
    assert memory.recall("10.64.7.22") is None
    later = time.monotonic() + 31
    with mock.patch("portal.captive.state.time.monotonic", return_value=later):
        assert memory.recall("10.64.7.20") is None, "past the gate's own time"
        kept = memory.recall("10.64.7.21")
        assert kept is not None and 3600 - 32 <= (kept.seconds_remaining or 0) <= 3600 - 31
    with mock.patch("portal.captive.state.time.monotonic", return_value=later + 30):
        assert memory.recall("10.64.7.21") is None, "past REMEMBER_SECONDS"
    small = GateMemory(devices=2)
    for last in range(3):
        small.keep(f"10.64.7.{last}", GateStatus(f"10.64.7.{last}", MAC, True, None))
    assert small.recall("10.64.7.0") is None and small.recall("10.64.7.2") is not None
