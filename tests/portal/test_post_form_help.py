"""The post form helps (issue 18, organiser item 6): the "published" message is where
the organiser lands, required fields say so, and the expiry hint's example lies in the
future and names the node's time zone."""

from __future__ import annotations

import re
from datetime import datetime

from flask.testing import FlaskClient

from tests.portal.auth_actions import AuthActions, app_fixture

app = app_fixture("[portal]\nurgent_notice_hours = 36\n")


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def test_after_publish_the_page_opens_at_the_message(client: FlaskClient,
                                                     auth: AuthActions) -> None:
    auth.login("olga")
    for plural, data in (("listings", {"category": "free", "title": "Chairs",
                                       "body": "Four."}),
                         ("notices", {"title": "Quiz", "body": "Friday."})):
        response = auth.post(f"/organisers/{plural}/new", data,
                             form_page=f"/organisers/{plural}/new")
        assert response.status_code == 302
        assert "#" not in response.headers["Location"], "no jump past the message"
        assert "published." in text(client.get(response.headers["Location"]))


def test_required_fields_are_marked(client: FlaskClient, auth: AuthActions) -> None:
    auth.login("olga")
    for plural in ("listings", "notices"):
        page = text(client.get(f"/organisers/{plural}/new"))
        for name in ("title", "body"):
            label = re.search(rf'<label for="{name}">(.*?)</label>', page, re.S)
            assert label and "(required)" in label.group(1), (plural, name)
        expires = re.search(r'<label for="expires_at">(.*?)</label>', page, re.S)
        assert expires and "required" not in expires.group(1)


def test_the_expiry_hint_gives_a_future_example_in_the_nodes_time_zone(
        client: FlaskClient, auth: AuthActions) -> None:
    auth.login("olga")
    page = text(client.get("/organisers/notices/new"))
    hint = re.search(r'<p class="hint" id="expires_at-hint">(.*?)</p>', page, re.S)
    assert hint
    example = re.search(r"e\.g\. (\d{4}-\d{2}-\d{2} \d{2}:\d{2})", hint.group(1))
    assert example and datetime.strptime(example.group(1), "%Y-%m-%d %H:%M") > datetime.now()
    zone = client.application.config["BABEL_DEFAULT_TIMEZONE"]
    assert f"time zone ({zone})" in hint.group(1)
    assert "ends after 36 hours" in page, "the urgent box says how long"
