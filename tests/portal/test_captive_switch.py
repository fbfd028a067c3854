"""The organisers' network switch: admins only, a local file the agent reads."""

from __future__ import annotations

import json
from pathlib import Path

from node.gate import effective_mode
from tests.portal.auth_actions import AuthActions, close_app, make_app


def test_an_admin_opens_the_network_of_this_node_and_back(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        client = app.test_client()
        auth = AuthActions(client)
        auth.login("ada")
        page = client.get("/organisers/network")
        assert page.status_code == 200 and "this node only" in page.get_data(as_text=True)
        response = auth.post("/organisers/network", {"mode": "open"},
                             form_page="/organisers/network")
        assert response.status_code == 303
        config = app.config["NODE_CONFIG"]
        stored = json.loads((config.data_dir / "gate-mode.json").read_text())
        assert stored["mode"] == "open" and stored["set_by"] == "ada"
        assert effective_mode(config) == "open"
        assert auth.post("/organisers/network", {"mode": "config"},
                         form_page="/organisers/network").status_code == 303
        assert not (config.data_dir / "gate-mode.json").exists()
        assert auth.post("/organisers/network", {"mode": "wide-open"},
                         form_page="/organisers/network").status_code == 200
        assert not (config.data_dir / "gate-mode.json").exists()
    finally:
        close_app(app)


def test_an_organiser_may_not_switch(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    try:
        client = app.test_client()
        AuthActions(client).login("olga")
        assert client.get("/organisers/network").status_code == 403
    finally:
        close_app(app)
