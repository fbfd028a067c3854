"""What a resident meets first on a phone (issue 18, resident items 2-4): Connect
before the folded house rules, Download before any preview (no PDF box on narrow
screens), and library filters folded, with counts and without empty kinds.
The browser checks of the first viewport are in test_first_viewport.py."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.portal.conftest import Seeder


def text(response: object) -> str:
    return response.get_data(as_text=True)  # type: ignore[attr-defined]


def test_connect_comes_before_the_folded_house_rules(client: FlaskClient) -> None:
    page = text(client.get("/welcome"))
    connect = page.index(">Connect</button>")
    details = re.search(r"<details[^>]*>\s*<summary>.*?House rules.*?</summary>(.*?)</details>",
                        page, re.S)
    assert details, "the rules are folded in <details>"
    assert connect < details.start()
    assert "Be kind and respectful" in details.group(1)
    assert "house rules" in page[:connect], "the sentence before Connect names the rules"


def test_download_comes_before_any_preview(client: FlaskClient, seed: Seeder) -> None:
    item = seed.library("pdf", description="A *long* description. " * 40)
    page = text(client.get(f"/library/{item.id}"))
    download = page.index(f'href="/library/{item.id}/download"')
    assert download < page.index('class="body"') < page.index("<object")
    assert re.search(r'<object class="[^"]*\bviewer-pdf\b', page)
    css = text(client.get("/static/hub.css"))
    assert re.search(r"@media \(max-width:[^)]+\)\{\.viewer-pdf\{display:none\}", css), \
        "no PDF box on a phone"
    assert f'href="/library/{item.id}/view"' in page, "a phone can still open it"


def test_library_filters_are_folded_with_counts_and_no_empty_kinds(
        client: FlaskClient, seed: Seeder) -> None:
    seed.library("pdf", title="A", collection="Guides")
    seed.library("pdf", title="B", collection="Health")
    seed.library("audio", title="C", collection="Guides")
    page = text(client.get("/library/"))
    folded = re.search(r"<details class=\"filters\">(.*?)</details>", page, re.S)
    assert folded, "folded (closed) when no filter is chosen"
    filters = folded.group(1)
    assert "All kinds (3)" in filters and "PDF documents (2)" in filters
    assert "Audio (1)" in filters
    assert "type=video" not in filters and "type=epub" not in filters, "empty kinds are hidden"
    assert page.index("</details>") < page.index('class="cards"')
    chosen = text(client.get("/library/?collection=Guides"))
    assert re.search(r"<details class=\"filters\" open>", chosen), "open while filtering"
    assert "PDF documents (1)" in chosen and "Audio (1)" in chosen


def test_every_page_type_has_a_meta_description(client: FlaskClient, seed: Seeder) -> None:
    from tests.portal.conftest import every_page_type

    urls = every_page_type(seed.neighbourhood())
    for name, url in urls.items():
        page = text(client.get(url))
        found = re.findall(r'<meta name="description" content="([^"]*)">', page)
        assert len(found) == 1 and len(found[0].strip()) > 20, name
    listing = text(client.get(urls["listing"]))
    assert 'content="Well kept, collection from Elm Street.' in listing, "the item's own words"


def test_the_contact_page_shows_what_node_toml_says(tmp_path: object) -> None:
    from pathlib import Path

    from portal import db
    from tests.portal.conftest import make_app, write_node_toml

    config = write_node_toml(Path(str(tmp_path)), '[portal]\ncontact = ['
                             '"Elm Street Residents: Tuesdays 18:00-20:00 at the library", '
                             '"Food bank: 07700 900456"]\n')
    app = make_app(config)
    try:
        client = app.test_client()
        home = text(client.get("/"))
        assert 'href="/contact"' in home, "every page's footer links to it"
        page = text(client.get("/contact"))
        assert "Tuesdays 18:00-20:00 at the library" in page and "07700 900456" in page
    finally:
        db.close(app)


def test_without_contacts_the_page_points_to_the_node(client: FlaskClient) -> None:
    page = text(client.get("/contact"))
    assert "Ask at a community building near you." in page and "Library roof" in page
