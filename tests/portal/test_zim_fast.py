"""The short way for encyclopaedia entries (portal.residents.zimfast) answers exactly as Flask.

Each request is sent twice: through the whole app (the short way first) and
straight to the Flask app behind it. Status, headers (but Date) and body must
be the same, and the short way must really have answered. What it must not
answer (redirects, 404s, Range, 304s, organisers) reaches Flask unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from werkzeug.test import Client

from node.store.models import LibraryItem
from portal import db
from portal.residents.zimfast import ZimFastPath
from tests.portal.auth_actions import AuthActions, app_fixture
from tests.portal.test_zim_browse import PUMP_PNG, add_zim, make_zim

app = app_fixture()


@pytest.fixture
def item(app: Flask, tmp_path: Path) -> LibraryItem:
    return add_zim(app, make_zim(tmp_path / "pocket.zim"), title="Pocket encyclopaedia")


def fast_path(app: Flask) -> ZimFastPath:
    fast = app.extensions["meshhub.zimfast"]
    assert isinstance(fast, ZimFastPath)
    return fast


def both(app: Flask, path: str, method: str = "GET",
         headers: dict[str, str] | None = None) -> tuple[object, object]:
    """The answer of the whole app and of Flask alone: (status, headers without Date, body)."""
    fast = fast_path(app)
    answers = []
    for wsgi in (app.wsgi_app, fast.inner):
        response = Client(wsgi).open(path, method=method, headers=headers or {})
        kept = sorted((k, v) for k, v in response.headers.items() if k != "Date")
        answers.append((response.status, kept, response.get_data()))
        response.close()
    return answers[0], answers[1]


@pytest.mark.parametrize(("entry", "headers"), [
    ("Home", {}),
    ("Water", {"Accept-Language": "es"}),
    ("Water", {"Cookie": "lang=ar"}),
    ("Caf%C3%A9", {"Accept-Language": "fr, en;q=0.5"}),
    ("wiki/Pump", {}),
    ("style.css", {}),
    ("img/pump.png", {}),
])
def test_the_short_way_answers_exactly_as_flask(app: Flask, item: LibraryItem, entry: str,
                                                headers: dict[str, str]) -> None:
    before = fast_path(app).served
    fast, flask = both(app, f"/library/{item.id}/zim/{entry}", headers=headers)
    assert fast_path(app).served == before + 1, "the short way did not answer"
    assert fast == flask
    assert fast[0] == "200 OK"  # type: ignore[index]


def test_head_and_the_bar_in_the_readers_language(app: Flask, item: LibraryItem) -> None:
    fast, flask = both(app, f"/library/{item.id}/zim/Water", method="HEAD",
                       headers={"Accept-Language": "es"})
    assert fast == flask and fast[2] == b""  # type: ignore[index]
    body = Client(app.wsgi_app).get(f"/library/{item.id}/zim/Water",
                                    headers={"Accept-Language": "es"}).get_data(as_text=True)
    english = Client(app.wsgi_app).get(f"/library/{item.id}/zim/Water").get_data(as_text=True)
    assert 'id="meshhub-zim-bar"' in body and 'lang="es"' in body
    assert 'lang="en"' in english


@pytest.mark.parametrize(("entry", "headers", "status"), [
    ("H2O", {}, "302 FOUND"),  # a redirect entry
    ("Nowhere", {}, "404 NOT FOUND"),
    ("img/pump.png", {"Range": "bytes=0-3"}, "206 PARTIAL CONTENT"),
    ("../Water", {}, "404 NOT FOUND"),
])
def test_what_it_leaves_to_flask(app: Flask, item: LibraryItem, entry: str,
                                 headers: dict[str, str], status: str) -> None:
    before = fast_path(app).served
    fast, flask = both(app, f"/library/{item.id}/zim/{entry}", headers=headers)
    assert fast_path(app).served == before
    assert fast[0] == flask[0] == status  # type: ignore[index]
    if status.startswith("206"):
        assert fast[2] == PUMP_PNG[:4]  # type: ignore[index]


def test_a_revalidation_gets_flasks_304(app: Flask, item: LibraryItem) -> None:
    client = Client(app.wsgi_app)
    first = client.get(f"/library/{item.id}/zim/Water")
    again = client.get(f"/library/{item.id}/zim/Water",
                       headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304


def test_signed_in_organisers_go_through_flask(app: Flask, item: LibraryItem,
                                               auth: AuthActions) -> None:
    auth.login("olga")
    before = fast_path(app).served
    response = auth.client.get(f"/library/{item.id}/zim/Water")
    assert response.status_code == 200 and b"Boil water" in response.data
    assert fast_path(app).served == before
    assert "private" in response.headers["Cache-Control"]


def test_a_deleted_or_renamed_item_is_seen_at_once(app: Flask, item: LibraryItem) -> None:
    client = Client(app.wsgi_app)
    url = f"/library/{item.id}/zim/Water"
    assert "Pocket encyclopaedia" in client.get(url).get_data(as_text=True)
    with app.app_context():
        db.services(app).hub.edit_library_item("olga", item.id, title="Street encyclopaedia")
    assert "Street encyclopaedia" in client.get(url).get_data(as_text=True)
    with app.app_context():
        db.services(app).hub.delete_library_item("olga", item.id)
    assert client.get(url).status_code == 404
