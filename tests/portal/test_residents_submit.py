"""Residents submitting a listing: validation, CSRF, honeypot and rate limit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient

from portal import db
from tests.portal.auth_actions import AuthActions, close_app
from tests.portal.auth_actions import make_app as make_app_with_accounts
from tests.portal.conftest import form_token, page_token

GOOD = {"category": "free", "title": "Garden chairs", "body": "Four wooden chairs.",
        "price": "", "contact": "07700 900123", "website": ""}


def post(client: FlaskClient, **changes: Any):
    data = {**GOOD, **changes, "csrf_token": form_token(client, "/submit")}
    return client.post("/submit", data=data)


def pending(app: Flask) -> list:
    return db.services(app).store.submissions()


def test_form_has_a_label_for_every_field(client: FlaskClient) -> None:
    page = client.get("/submit").get_data(as_text=True)
    for field in ("category", "title", "body", "price", "contact", "website"):
        assert f'<label for="{field}">' in page, field
    assert "Leave this field empty" in page and 'tabindex="-1"' in page


def test_valid_submission_waits_for_review(app: Flask, client: FlaskClient) -> None:
    response = post(client)
    assert response.status_code == 303 and response.headers["Location"] == "/submit/thanks"
    thanks = client.get("/submit/thanks").get_data(as_text=True)
    assert "An organiser will review it" in thanks
    [submission] = pending(app)
    assert submission.title == "Garden chairs" and submission.status == "pending"
    assert "Garden chairs" not in client.get("/listings/").get_data(as_text=True)


def test_invalid_fields_are_explained_next_to_them(app: Flask, client: FlaskClient) -> None:
    response = post(client, title="  ", contact="", category="weapons", body="x" * 6000)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    for field in ("title", "contact", "category", "body"):
        assert re.search(rf'<p class="error" id="{field}-error">[^<]+</p>', page), field
        tag = re.search(rf'<(?:input|select|textarea)[^>]*\bid="{field}"[^>]*>', page).group(0)
        assert 'aria-describedby="' in tag and f"{field}-error" in tag, tag
        assert 'aria-invalid="true"' in tag
    assert "Give your listing a title." in page
    assert 'role="alert"' in page and 'href="#title"' in page
    assert 'value="07700' not in page  # the contact was emptied by the test
    assert pending(app) == []


def test_user_input_is_escaped_when_redisplayed(client: FlaskClient) -> None:
    page = post(client, title="", body='<script>alert("x")</script>').get_data(as_text=True)
    assert '<script>alert("x")' not in page
    assert "&lt;script&gt;" in page


def test_post_without_csrf_token_is_refused(app: Flask, client: FlaskClient) -> None:
    response = client.post("/submit", data=GOOD)
    assert response.status_code == 400
    assert "reload the page" in response.get_data(as_text=True)
    assert pending(app) == []


def test_filled_honeypot_looks_accepted_but_stores_nothing(app: Flask,
                                                           client: FlaskClient) -> None:
    response = post(client, website="http://spam.example")
    assert response.status_code == 303 and response.headers["Location"] == "/submit/thanks"
    assert pending(app) == []


def test_rate_limit_per_client(app: Flask, client: FlaskClient) -> None:
    limit = app.config["SUBMIT_MAX_PER_WINDOW"]
    for i in range(limit):
        assert post(client, title=f"Chair {i}").status_code == 303
    refused = post(client, title="One too many")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "try again in" in refused.get_data(as_text=True)
    assert len(pending(app)) == limit
    other = app.test_client()
    data = {**GOOD, "csrf_token": form_token(other, "/submit")}
    assert other.post("/submit", data=data,
                      environ_overrides={"REMOTE_ADDR": "10.0.0.9"}).status_code == 303


def test_oversized_post_gets_a_friendly_413(app: Flask, client: FlaskClient) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    response = client.post("/submit", data={**GOOD, "body": "x" * 20_000})
    assert response.status_code == 413
    assert "larger than this node accepts" in response.get_data(as_text=True)


def count_renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The templates the submit view renders from now on, by name."""
    from portal.residents import submit

    rendered: list[str] = []

    def counted(name: str, **context: object) -> str:
        rendered.append(name)
        return render_template(name, **context)

    monkeypatch.setattr(submit, "render_template", counted)
    return rendered


def test_the_empty_form_is_rendered_once_per_language_each_visitor_with_its_own_token(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = count_renders(monkeypatch)
    visitors = [app.test_client() for _ in range(3)]
    pages = [visitor.get("/submit").get_data(as_text=True) for visitor in visitors]
    tokens = [page_token(page) for page in pages]
    assert len(set(tokens)) == 3, "each visitor has their own token"
    for page, token in zip(pages[1:], tokens[1:], strict=True):
        assert page == pages[0].replace(tokens[0], token), "the same page, only the token differs"
    assert rendered == ["residents/submit.html"]
    spanish = visitors[0].get("/submit", headers={"Accept-Language": "es"})
    assert '<html lang="es"' in spanish.get_data(as_text=True) and len(rendered) == 2
    # Each token is its own visitor's: another's is refused, their own is accepted.
    other = visitors[1].post("/submit", data={**GOOD, "csrf_token": tokens[2]})
    assert other.status_code == 400 and pending(app) == []
    own = visitors[1].post("/submit", data={**GOOD, "csrf_token": tokens[1]})
    assert own.status_code == 303 and len(pending(app)) == 1


def test_a_form_sent_back_with_errors_is_its_senders_and_its_token_still_works(
        app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = count_renders(monkeypatch)
    refused = post(client, title="")
    assert refused.status_code == 400 and len(rendered) == 2  # the empty form, then this
    page = refused.get_data(as_text=True)
    assert "Give your listing a title." in page and 'value="07700 900123"' in page
    again = client.post("/submit", data={**GOOD, "csrf_token": page_token(page)})
    assert again.status_code == 303 and len(pending(app)) == 1


def test_a_signed_in_organiser_gets_the_form_rendered_for_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app_with_accounts(tmp_path)
    try:
        rendered = count_renders(monkeypatch)
        resident = app.test_client().get("/submit").get_data(as_text=True)
        organiser = app.test_client()
        assert AuthActions(organiser).login("olga").status_code == 302
        pages = [organiser.get("/submit").get_data(as_text=True) for _ in range(2)]
        assert len(rendered) == 3, "the shared form once, the organiser's each time"
        assert "Organisers’ dashboard" in pages[0] and "Organisers: sign in" in resident
        assert "Organisers’ dashboard" not in app.test_client().get("/submit").get_data(
            as_text=True)
    finally:
        close_app(app)
