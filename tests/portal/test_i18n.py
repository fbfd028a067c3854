"""Languages: the catalogs are complete and compiled, and the reader's choice is honoured."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask.testing import FlaskClient

from node.store.models import CATEGORIES, MEDIA_TYPES
from portal.i18n import safe_next
from portal.residents.labels import CATEGORY_LABELS, MEDIA_LABELS

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "portal" / "translations"
LANGUAGES = ("ar", "es")


def load_po(lang: str) -> Catalog:
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle, locale=lang)


def source_msgids() -> set[object]:
    """Every translatable string in the portal's code and templates (as pybabel sees it)."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: set[object] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map, options_map,
            keywords={"_": None, "gettext": None, "ngettext": (1, 2), "_l": None,
                      "lazy_gettext": None, "lazy_ngettext": (1, 2)}):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated(lang: str) -> None:
    catalog = load_po(lang)
    untranslated = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy or not all(strings):
            untranslated.append(message.id)
    assert not untranslated, (f"{len(untranslated)} untranslated in {lang}: run the steps "
                              f"in docs/portal.md; first: {untranslated[:5]}")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_catalog_covers_every_string_in_the_source(lang: str) -> None:
    known = {m.id if isinstance(m.id, str) else tuple(m.id) for m in load_po(lang) if m.id}
    missing = source_msgids() - known
    assert not missing, (f"strings not yet in the {lang} catalog (pybabel extract/update, "
                         f"see docs/portal.md): {sorted(map(str, missing))[:5]}")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiled_mo_matches_po(lang: str) -> None:
    catalog = load_po(lang)
    expected = io.BytesIO()
    write_mo(expected, catalog)
    with open(TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo", "rb") as handle:
        committed = read_mo(handle)
    fresh = read_mo(io.BytesIO(expected.getvalue()))
    assert _as_dict(committed) == _as_dict(fresh), f"run: pybabel compile -d {TRANSLATIONS}"


def _as_dict(catalog: Catalog) -> dict[object, object]:
    def key(value: object) -> object:
        return tuple(value) if isinstance(value, list | tuple) else value
    return {key(m.id): key(m.string) for m in catalog if m.id}


def test_every_category_and_media_type_has_a_label() -> None:
    assert set(CATEGORY_LABELS) == set(CATEGORIES)
    assert set(MEDIA_LABELS) == set(MEDIA_TYPES)


def test_language_follows_accept_language_then_default(client: FlaskClient) -> None:
    page = client.get("/", headers={"Accept-Language": "es-ES,es;q=0.9"}).get_data(as_text=True)
    assert '<html lang="es" dir="ltr">' in page and "Anuncios más recientes" in page
    page = client.get("/", headers={"Accept-Language": "de, ar;q=0.5"}).get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page and "أحدث الإعلانات" in page
    page = client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in page and "Newest listings" in page


def test_reader_picks_a_language_from_the_menu(client: FlaskClient) -> None:
    home = client.get("/about?x=1").get_data(as_text=True)
    assert 'href="/language/ar?next=/about?x%3D1"' in home
    response = client.get("/language/ar?next=/about?x=1")
    assert response.status_code == 303 and response.headers["Location"] == "/about?x=1"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("lang=ar;") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/about", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in page and "عن هذه الشبكة" in page
    assert "Vary" in client.get("/").headers


def test_unknown_language_is_404(client: FlaskClient) -> None:
    assert client.get("/language/xx?next=/").status_code == 404
    assert client.get("/language/../etc?next=/").status_code == 404


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example",
                                    "javascript:alert(1)", "evil", "", "/%0d%0aSet-Cookie:x",
                                    "/\nLocation: http://evil"])
def test_next_never_leaves_the_site(client: FlaskClient, target: str) -> None:
    response = client.get("/language/es", query_string={"next": target})
    location = response.headers["Location"]
    assert location.startswith("/") and not location.startswith("//")
    assert "evil" not in location or location.startswith("/%")
    assert safe_next(target) in ("/", target)


def test_dates_are_formatted_for_the_reader(client: FlaskClient, seed) -> None:
    listing = seed.listing(title="Mesa")
    client.set_cookie("lang", "es")
    page = client.get(f"/listing/{listing.id}").get_data(as_text=True)
    assert "Publicado el" in page
    import re
    assert re.search(r"\d{1,2} \w{3,5}\.? \d{4}", page)  # e.g. "26 nov 2026"
