"""'Report this listing' (issue 18, resident item 6): a resident reports a listing, it
waits for this node's moderators, who expire the listing or dismiss the reports; a
device can send only a few reports an hour."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture

app = app_fixture(REPORT_MAX_PER_WINDOW=2)


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def _listing(app: Flask, title: str = "Cheap phones, no questions") -> str:
    with app.app_context():
        return services(app).hub.post_listing("olga", category="for-sale", title=title,
                                              body="Cash only.").id


def _report(client: FlaskClient, listing_id: str, **data: str) -> object:
    url = f"/listing/{listing_id}/report"
    page = text(client.get(url))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    return client.post(url, data={"csrf_token": token.group(1), **data})


def test_a_report_reaches_the_moderators_who_expire_the_listing(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    listing_id = _listing(app)
    page = text(client.get(f"/listing/{listing_id}"))
    assert f'href="/listing/{listing_id}/report"' in page and "Report this listing" in page
    response = _report(client, listing_id, reason="scam", details="Stolen, I think")
    assert response.status_code == 303
    assert "waiting for a moderator" in text(client.get(response.headers["Location"]))
    auth.login("mo")
    queue = text(client.get("/organisers/moderation/"))
    assert "Cheap phones, no questions" in queue and "1 report" in queue
    assert "A scam, or something illegal" in queue and "Stolen, I think" in queue
    expire = re.search(rf'formaction="(/organisers/listings/{listing_id}/expire)"', queue)
    assert expire
    auth.post(expire.group(1), form_page="/organisers/moderation/")
    assert client.get(f"/listing/{listing_id}").status_code == 410
    assert "Cheap phones" not in text(client.get("/organisers/moderation/"))


def test_a_moderator_may_dismiss_reports(app: Flask, client: FlaskClient,
                                         auth: AuthActions) -> None:
    listing_id = _listing(app, "Garden chairs")
    _report(client, listing_id, reason="outdated")
    auth.login("mo")
    queue = text(client.get("/organisers/moderation/"))
    dismiss = re.search(r'formaction="([^"]*/dismiss)"', queue)
    assert dismiss
    auth.post(dismiss.group(1), form_page="/organisers/moderation/")
    assert "Garden chairs" not in text(client.get("/organisers/moderation/"))
    assert client.get(f"/listing/{listing_id}").status_code == 200


def test_a_report_needs_a_reason(app: Flask, client: FlaskClient) -> None:
    listing_id = _listing(app)
    response = _report(client, listing_id, details="no reason chosen")
    assert response.status_code == 400
    assert "Choose what is wrong with it." in text(response)
    with app.app_context():
        assert services(app).store.reports() == []


def test_reports_are_rate_limited_per_device(app: Flask, client: FlaskClient) -> None:
    listing_id = _listing(app)
    assert _report(client, listing_id, reason="other").status_code == 303
    assert _report(client, listing_id, reason="other").status_code == 303
    limited = _report(client, listing_id, reason="other")
    assert limited.status_code == 429 and "Retry-After" in limited.headers  # type: ignore[attr-defined]
    with app.app_context():
        (group,) = services(app).store.reports()
    assert group.count == 2


def test_only_moderators_see_reports(app: Flask, client: FlaskClient,
                                     auth: AuthActions) -> None:
    listing_id = _listing(app)
    _report(client, listing_id, reason="offensive")
    auth.login("olga")
    assert client.get("/organisers/moderation/").status_code == 403
    assert "reported" not in text(client.get("/organisers/"))
