"""Every phone's portal sheet, against a fake gate: probes, Connect, the RFC 8908 API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.captive_probes import BY_HOST, BY_PATH
from node.gate import GateError, GateStatus, GateUnavailable
from portal import db
from portal.captive.state import GATE_CLIENT_KEY
from tests.portal.conftest import form_token, make_app, write_node_toml

PHONE = "10.64.7.50"
PORTAL = "http://10.64.7.1"
NETWORK = '[mesh]\naddress = "10.42.0.7"\n[clients]\nsubnet = "10.64.7.0/24"\n'

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


class FakeGate:
    """Stands in for node.gate.GateClient: a dict of allowed addresses."""

    def __init__(self) -> None:
        self.present = True
        self.allowed: dict[str, int] = {}
        self.mode = "portal"
        self.fail: Exception | None = None
        self.calls: list[tuple[str, str]] = []

    def _answer(self, ip: str) -> GateStatus:
        if self.fail:
            raise self.fail
        if not ip.startswith("10.64.7."):
            raise GateError("not-a-client", f"{ip} is not a client")
        ok = self.mode == "open" or ip in self.allowed
        return GateStatus(ip, "02:00:00:00:00:50", ok, self.allowed.get(ip), self.mode)

    def status(self, ip: str) -> GateStatus:
        self.calls.append(("status", ip))
        return self._answer(ip)

    def allow(self, ip: str) -> GateStatus:
        self.calls.append(("allow", ip))
        if self.fail:
            raise self.fail
        self.allowed[ip] = 86400
        return self._answer(ip)


@pytest.fixture
def gate() -> FakeGate:
    return FakeGate()


@pytest.fixture
def captive_app(tmp_path: Path, gate: FakeGate) -> Iterator[Flask]:
    app = make_app(write_node_toml(tmp_path, NETWORK))
    app.config[GATE_CLIENT_KEY] = gate
    yield app
    db.close(app)


@pytest.fixture
def phone(captive_app: Flask) -> FlaskClient:
    """A phone on the access point (its address is in the client subnet)."""
    client = captive_app.test_client()
    client.environ_base["REMOTE_ADDR"] = PHONE
    return client


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
                                                               gate: FakeGate) -> None:
    token = form_token(phone, "/welcome")
    response = phone.post("/welcome", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/connected"
    assert ("allow", PHONE) in gate.calls
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


def test_connect_needs_the_csrf_token(phone: FlaskClient, gate: FakeGate) -> None:
    assert phone.post("/welcome", data={}).status_code == 400
    assert not gate.allowed


def test_captive_api_follows_rfc_8908(phone: FlaskClient, gate: FakeGate) -> None:
    before = phone.get("/api/captive")
    assert before.headers["Content-Type"] == "application/captive+json"
    assert before.headers["Cache-Control"] == "private, no-store"
    assert json.loads(before.data) == {"captive": True, "user-portal-url": f"{PORTAL}/welcome",
                                       "venue-info-url": f"{PORTAL}/about"}
    gate.allowed[PHONE] = 3599
    after = json.loads(phone.get("/api/captive").data)
    assert after["captive"] is False and after["seconds-remaining"] == 3599
    assert after["can-extend-session"] is True


def test_gate_not_answering_keeps_the_phone_at_the_welcome_page(phone: FlaskClient,
                                                                gate: FakeGate) -> None:
    token = form_token(phone, "/welcome")
    gate.fail = GateUnavailable("down")
    assert phone.get("/generate_204").status_code == 302
    response = phone.post("/welcome", data={"csrf_token": token})
    assert response.status_code == 503
    assert "did not answer" in response.get_data(as_text=True)


def test_unknown_device_is_told_to_reconnect(phone: FlaskClient, gate: FakeGate) -> None:
    token = form_token(phone, "/welcome")
    gate.fail = GateError("unknown-device", "not seen")
    response = phone.post("/welcome", data={"csrf_token": token})
    assert response.status_code == 503 and "Reconnect" in response.get_data(as_text=True)


def test_open_mode_lets_every_probe_succeed(phone: FlaskClient, gate: FakeGate) -> None:
    gate.mode = "open"
    assert phone.get("/generate_204").status_code == 204
    assert "nothing to accept" in phone.get("/welcome").get_data(as_text=True)


def test_welcome_page_shows_the_house_rules_in_the_readers_language(
        phone: FlaskClient) -> None:
    page = phone.get("/welcome", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="es"' in page
    english = phone.get("/welcome").get_data(as_text=True)
    assert "Be kind and respectful" in english and "<script" not in english
    assert 'method="post"' in english and "Connect" in english


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
