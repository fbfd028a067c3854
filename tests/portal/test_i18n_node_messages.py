"""Messages from ``node`` (the hub's validation, library refusals) reach people in their language.

``node`` builds them as :class:`node.messages.Message` (English text that keeps its
template and parameters); the portal translates them with
:func:`portal.i18n.translate_message` wherever it shows one.
"""

from __future__ import annotations

import copy
import html
import pickle
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient

from node.errors import ValidationError
from node.messages import N_, Message, msg
from portal.db import services
from portal.i18n import translate_message
from tests.portal.auth_actions import AuthActions, app_fixture

ROOT = Path(__file__).resolve().parents[2]


app = app_fixture()


def field_error(page: str, field: str) -> str:
    """The text shown next to ``field`` (the element its aria-describedby names)."""
    match = re.search(rf'id="{field}-error">(.*?)</p>', page, re.S)
    assert match, f"no error shown next to {field}"
    return html.unescape(match.group(1))


def flashes(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<p class="flash [a-z]+">(.*?)</p>', page, re.S)]


# --- the Message type ---------------------------------------------------------------

def test_a_message_is_its_english_text_and_keeps_template_and_params() -> None:
    message = msg(N_("at most %(max)d characters (this has %(count)d)"), max=120, count=130)
    assert message == "at most 120 characters (this has 130)"
    assert isinstance(message, str) and str(message) == message
    assert hash(message) == hash(str(message))
    assert message.template == "at most %(max)d characters (this has %(count)d)"
    assert message.params == {"max": 120, "count": 130}
    assert "title: " + message == "title: at most 120 characters (this has 130)"
    assert msg(N_("required")) == "required" and msg(N_("required")).params == {}


def test_params_survive_copying_and_pickling() -> None:
    message = msg(N_("already approved by %(who)s"), who="mo")
    for clone in (copy.copy(message), copy.deepcopy(message),
                  pickle.loads(pickle.dumps(message))):  # noqa: S301 - our own bytes
        assert isinstance(clone, Message)
        assert clone == "already approved by mo"
        assert (clone.template, clone.params) == (message.template, {"who": "mo"})


def test_the_hub_raises_messages_with_their_params(app: Flask) -> None:
    with app.app_context():
        hub = services(app).hub
        with pytest.raises(ValidationError) as info:
            hub.post_listing("olga", category="free", title="x" * 121, body="")
    title, body = info.value.fields["title"], info.value.fields["body"]
    assert title == "at most 120 characters (this has 121)", "the CLI's English is unchanged"
    assert isinstance(title, Message) and title.params == {"max": 120, "count": 121}
    assert isinstance(body, Message) and body.template == "required"
    assert str(info.value) == "title: at most 120 characters (this has 121); body: required"


def node_templates() -> set[str]:
    """Every template marked with N_() in node/ (whatever babel.cfg's keyword support)."""
    return {message for _f, _l, message, _c, _x in extract_from_dir(
        str(ROOT / "node"), [("**.py", "python")], keywords={"N_": None})}


@pytest.mark.parametrize("lang", ["ar", "es"])
def test_every_node_message_is_in_the_catalog_and_translated(lang: str) -> None:
    templates = node_templates()
    assert "required" in templates and "already approved by %(who)s" in templates
    path = ROOT / "portal" / "translations" / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    missing = sorted(t for t in templates
                     if catalog.get(t) is None or not catalog.get(t).string
                     or catalog.get(t).fuzzy)
    assert not missing, f"untranslated node messages in {lang} (docs/portal.md): {missing[:5]}"


# --- translating them -----------------------------------------------------------------

def test_translate_message_uses_the_readers_language_and_falls_back_to_english(
        app: Flask) -> None:
    zim = msg(N_("%(file)s: %(why)s; this ZIM archive is damaged or incomplete (was the "
                 "download or copy interrupted?). Download it again and compare its checksum."),
              file="wiki.zim", why=msg(N_("its checksum does not match its content")))
    with app.test_request_context(headers={"Accept-Language": "es"}):
        assert translate_message(msg(N_("at most %(max)d characters"), max=60)) \
            == "como máximo 60 caracteres"
        translated = translate_message(zim)
        assert translated.startswith("wiki.zim: su suma de comprobación no coincide"), \
            "a message inside a message is translated too"
        assert translate_message(msg(N_("not in any catalog %(n)d"), n=3)) == "not in any catalog 3"
        assert translate_message("a plain string") == "a plain string"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert translate_message(zim) == str(zim)


def test_hub_error_next_to_an_organisers_field_is_in_arabic(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    client.set_cookie("lang", "ar")
    auth.login("olga")
    data = {"category": "free", "title": "ك" * 130, "body": "نص", "price": "",
            "contact": "", "expires_at": ""}
    response = auth.post("/organisers/listings/new", data, form_page="/organisers/listings/new")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and '<html lang="ar" dir="rtl">' in page
    assert field_error(page, "title") == "120 حرفًا على الأكثر (في هذا الحقل 130)"
    assert "characters" not in field_error(page, "title")
    with app.app_context():
        assert services(app).store.listings(now=0).total == 0


def test_hub_errors_on_the_account_form_are_in_spanish(
        client: FlaskClient, auth: AuthActions) -> None:
    client.set_cookie("lang", "es")
    auth.login("ada")
    data = {"name": "olga", "display_name": "", "role": "organiser", "password": "short"}
    page = auth.post("/organisers/accounts/", data,
                     form_page="/organisers/accounts/").get_data(as_text=True)
    assert field_error(page, "name") == "ya existe una cuenta llamada 'olga'"
    assert field_error(page, "password") == \
        "debe tener al menos 10 caracteres (bastan unas cuantas palabras)"


def test_last_admin_flash_is_translated(client: FlaskClient, auth: AuthActions) -> None:
    client.set_cookie("lang", "ar")
    auth.login("ada")
    response = auth.post("/organisers/accounts/ada/role", {"role-ada-role": "organiser"},
                         form_page="/organisers/accounts/", follow_redirects=True)
    assert "ada هو آخر مدير؛ اجعل شخصًا آخر مديرًا أولًا" in flashes(response.get_data(as_text=True))


def test_approving_a_decided_submission_says_who_decided_in_spanish(
        app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    with app.app_context():
        submission = services(app).hub.submit_listing(category="wanted", title="Escalera",
                                                      body="Busco una escalera.")
        services(app).hub.decide_submission("ada", submission.id, approve=True)
    client.set_cookie("lang", "es")
    auth.login("mo")
    page_url = f"/organisers/moderation/{submission.id}"
    response = auth.post(f"{page_url}/approve", form_page=page_url, follow_redirects=True)
    assert response.status_code == 200
    assert "ya lo aprobó ada" in flashes(response.get_data(as_text=True))


def test_residents_see_a_hub_refusal_in_their_language(client: FlaskClient) -> None:
    client.set_cookie("lang", "es")
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                      client.get("/submit").get_data(as_text=True))
    assert token
    response = client.post("/submit", data={
        "csrf_token": token.group(1), "category": "free", "title": "Silla\x00rota",
        "body": "Una silla.", "price": "", "contact": "Portal 3", "website": ""})
    assert response.status_code == 400
    assert field_error(response.get_data(as_text=True), "title") == "contiene un carácter NUL"
