"""Expired listings and notices: residents get an "ended" page (410, no contact details);
organisers can fix an expired item without reviving it, undo an expiry, and urgent
notices end by themselves (issue 18, organiser items 1-4)."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Flask
from flask.testing import FlaskClient

from node.store.models import Listing, Notice
from portal.db import services
from tests.portal.auth_actions import AuthActions, app_fixture

app = app_fixture("[portal]\nurgent_notice_hours = 6\n")


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def _listing(app: Flask, **fields: object) -> Listing:
    values: dict[str, object] = {"category": "services", "title": "Maths tutoring",
                                 "body": "Evenings, call **Sam**.", "price": "£10 an hour",
                                 "contact": "07700 900123"}
    values.update(fields)
    with app.app_context():
        return services(app).hub.post_listing("olga", **values)  # type: ignore[arg-type]


def _notice(app: Flask, **fields: object) -> Notice:
    values: dict[str, object] = {"title": "Water off on Elm Street",
                                 "body": "Ring 0800 123 for bottled water."}
    values.update(fields)
    with app.app_context():
        return services(app).hub.post_notice("olga", **values)  # type: ignore[arg-type]


def _fresh(app: Flask, kind: str, item_id: str) -> Listing | Notice:
    with app.app_context():
        item = getattr(services(app).store, kind)(item_id)
    assert item is not None
    return item  # type: ignore[no-any-return]


def test_an_expired_listing_answers_410_without_its_contact_details(
        app: Flask, client: FlaskClient) -> None:
    listing = _listing(app)
    assert client.get(f"/listing/{listing.id}").status_code == 200
    with app.app_context():
        services(app).hub.expire("listing", "olga", listing.id)
    response = client.get(f"/listing/{listing.id}")
    page = text(response)
    assert response.status_code == 410
    assert "has ended" in page and "Maths tutoring" in page
    assert "07700 900123" not in page and "Sam" not in page and "£10" not in page
    assert 'href="/listings/services"' in page, "points to the listing's category"


def test_an_expired_urgent_notice_answers_410_and_is_no_longer_marked_urgent(
        app: Flask, client: FlaskClient) -> None:
    notice = _notice(app, urgent=True)
    assert "Urgent" in text(client.get(f"/notices/{notice.id}"))
    with app.app_context():
        services(app).hub.expire("notice", "olga", notice.id)
    response = client.get(f"/notices/{notice.id}")
    page = text(response)
    assert response.status_code == 410
    assert "has ended" in page and "Water off on Elm Street" in page
    assert "0800 123" not in page
    assert 'class="badge"' not in page and "Urgent" not in page


def test_fixing_a_typo_in_an_expired_listing_keeps_it_expired(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    listing = _listing(app, title="Maths tutorng")
    with app.app_context():
        services(app).hub.expire("listing", "olga", listing.id)
    expired_at = _fresh(app, "listing", listing.id).expires_at
    auth.login("olga")
    edit_url = f"/organisers/listings/{listing.id}/edit"
    form = text(client.get(edit_url))
    shown = re.search(r'name="expires_at"[^>]*value="([^"]+)"'
                      r'|value="([^"]+)"[^>]*name="expires_at"', form)
    assert shown, "the expiry is prefilled"
    response = auth.post(edit_url, {
        "category": "services", "title": "Maths tutoring", "body": listing.body,
        "price": listing.price, "contact": listing.contact,
        "expires_at": shown.group(1) or shown.group(2)}, form_page=edit_url)
    assert response.status_code == 302, "must be in the future" in text(response)
    fixed = _fresh(app, "listing", listing.id)
    assert fixed.title == "Maths tutoring"
    assert fixed.expires_at == expired_at, "still expired, at the same moment"
    assert client.get(f"/listing/{listing.id}").status_code == 410


def test_an_expired_pinned_item_is_not_shown_as_pinned(app: Flask, client: FlaskClient,
                                                       auth: AuthActions) -> None:
    listing = _listing(app, pinned=True)
    auth.login("olga")
    row = re.compile(rf'<li id="item-{listing.id}">.*?</li>', re.S)
    before = row.search(text(client.get("/organisers/listings/")))
    assert before and "Pinned" in before.group(0)
    with app.app_context():
        services(app).hub.expire("listing", "olga", listing.id)
    after = row.search(text(client.get("/organisers/listings/")))
    assert after and "Expired" in after.group(0)
    assert "Pinned" not in after.group(0) and ">Unpin<" not in after.group(0)


def test_an_urgent_notice_without_expiry_gets_the_configured_default(
        app: Flask, auth: AuthActions) -> None:
    auth.login("olga")
    before = int(datetime.now().timestamp())
    response = auth.post("/organisers/notices/new", {
        "title": "Road closed", "body": "Use Oak Lane.", "urgent": "y"},
        form_page="/organisers/notices/new")
    assert response.status_code == 302
    with app.app_context():
        (notice,) = services(app).store.notices()
    assert notice.expires_at is not None
    assert before + 6 * 3600 <= notice.expires_at <= before + 6 * 3600 + 60


def test_a_plain_notice_without_expiry_keeps_none(app: Flask) -> None:
    assert _notice(app).expires_at is None


def test_marking_a_notice_urgent_later_gives_it_the_default_expiry(app: Flask) -> None:
    notice = _notice(app)
    with app.app_context():
        edited = services(app).hub.edit("notice", "olga", notice.id, urgent=True)
    assert edited.expires_at is not None


def test_expire_can_be_undone(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    later = int(datetime.now().timestamp()) + 7 * 86400
    listing = _listing(app, expires_at=later)
    auth.login("olga")
    response = auth.post(f"/organisers/listings/{listing.id}/expire",
                         form_page="/organisers/listings/")
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    assert "Undo" in page
    assert client.get(f"/listing/{listing.id}").status_code == 410
    undo = re.search(r'formaction="([^"]*/undo-expire)"|action="([^"]*/undo-expire)"', page)
    assert undo, "the page offers the undo button"
    response = auth.post(undo.group(1) or undo.group(2), form_page="/organisers/listings/")
    assert response.status_code == 302
    assert _fresh(app, "listing", listing.id).expires_at == later, "the old expiry is back"
    assert client.get(f"/listing/{listing.id}").status_code == 200
    assert "Undo" not in text(client.get("/organisers/listings/")), "offered once"


def test_undo_of_an_expiry_without_an_earlier_expiry_clears_it(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    notice = _notice(app)
    auth.login("olga")
    auth.post(f"/organisers/notices/{notice.id}/expire", form_page="/organisers/notices/")
    response = auth.post(f"/organisers/notices/{notice.id}/undo-expire",
                         form_page="/organisers/notices/")
    assert response.status_code == 302
    assert _fresh(app, "notice", notice.id).expires_at is None
    assert client.get(f"/notices/{notice.id}").status_code == 200


def test_expire_is_set_apart_from_pin(app: Flask, client: FlaskClient,
                                      auth: AuthActions) -> None:
    listing = _listing(app)
    auth.login("olga")
    row = re.search(rf'<li id="item-{listing.id}">.*?</li>', text(client.get(
        "/organisers/listings/")), re.S)
    assert row
    buttons = re.findall(r"<button[^>]*>.*?</button>", row.group(0), re.S)
    pin = next(b for b in buttons if ">Pin<" in b)
    expire = next(b for b in buttons if "Expire" in b)
    assert "button-secondary" in pin
    assert "button-link" in expire, "Expire is a quiet, link-styled button"
    assert row.group(0).index("Expire") > row.group(0).index(">Delete<") \
        or re.search(r'class="[^"]*\bdanger-zone\b', row.group(0)), "not next to Pin"
