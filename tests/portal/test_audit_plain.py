"""The audit in plain words, on a phone (issue 18, organiser item 8): it read like code
("changed expires_at"), named nodes by key fingerprints and people by login names, and
was a 576 px table on a 328 px screen."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Flask
from flask.testing import FlaskClient

from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture

app = app_fixture()


def test_the_audit_names_people_nodes_and_fields_in_words(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    with app.app_context():
        hub = services(app).hub
        hub.create_account(None, name="amira", password="amira-password-1", role="organiser",
                           display_name="Amira (food bank)")
        listing = hub.post_listing("amira", category="free", title="Garden chairs",
                                   body="Four.")
        later = int(datetime.now().timestamp()) + 86400
        hub.edit("listing", "amira", listing.id, expires_at=later, title="Garden chairs, 4")
        node_name = app.config["NODE_CONFIG"].node.name
    auth.login("ada")
    for url in ("/organisers/audit/", "/organisers/"):
        page = client.get(url).get_data(as_text=True)
        main = page[page.index("<main"):page.index("</main>")]
        assert "Amira (food bank)" in main, url
        assert ">amira<" not in main, f"{url}: the login name instead of the display name"
        assert "expires_at" not in main and "the end date" in main, url
        assert "the title" in main, url
        assert f"on node <bdi>{node_name}</bdi>" in main, url
        assert not re.search(r"\b[A-Z2-7]{4}(-[A-Z2-7]{4}){4}\b", main), f"{url}: a fingerprint"
        assert "<table" not in main, f"{url}: cards, not a wide table"
        assert "Garden chairs, 4" in main, "the item's title"
