"""The OPDS 1.2 catalogue, read by a real feed parser (feedparser) and checked against
the Atom/OPDS structure an e-reader relies on; acquisition links download the file."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.store.models import LibraryItem
from portal import db
from tests.portal.auth_actions import app_fixture
from tests.portal.conftest import sample_epub, sample_pdf, sample_wav

ATOM = "{http://www.w3.org/2005/Atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"
NAVIGATION = "application/atom+xml;profile=opds-catalog;kind=navigation"
ACQUISITION = "application/atom+xml;profile=opds-catalog;kind=acquisition"
OPEN_ACCESS = "http://opds-spec.org/acquisition/open-access"


app = app_fixture("[portal]\npage_size = 5\n")


@pytest.fixture
def items(app: Flask) -> dict[str, LibraryItem]:
    with app.app_context():
        hub = db.services(app).hub
        return {
            "epub": hub.add_library_file("olga", io.BytesIO(sample_epub()), filename="s.epub",
                                         title="Stories of Elm Street", author="Ada Reader",
                                         language="en", collection="Stories",
                                         description="Short *stories* & poems"),
            "pdf": hub.add_library_file("olga", io.BytesIO(sample_pdf()), filename="w.pdf",
                                        title="Water guide", collection="Health"),
            "audio": hub.add_library_file("olga", io.BytesIO(sample_wav()), filename="o.wav",
                                          title="Oral history"),
        }


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def get_feed(client: FlaskClient, url: str, kind: str) -> tuple[ET.Element, object]:
    """Fetch a feed; check its content type and the structure every OPDS feed must have."""
    response = client.get(url)
    assert response.status_code == 200, url
    assert response.content_type.startswith(kind), (url, response.content_type)
    root = ET.fromstring(response.data)  # noqa: S314 - our own output
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated"):
        element = root.find(f"{ATOM}{required}")
        assert element is not None and (element.text or "").strip(), (url, required)
    links = {link.get("rel"): link for link in root.findall(f"{ATOM}link")}
    assert links["self"].get("type") == kind
    assert links["start"].get("type") == NAVIGATION
    assert path_of(links["start"].get("href", "")) == "/opds"
    assert links["search"].get("type") == "application/opensearchdescription+xml"
    for entry in root.findall(f"{ATOM}entry"):
        for required in ("id", "title", "updated"):
            assert entry.find(f"{ATOM}{required}") is not None, (url, required)
    parsed = feedparser.parse(response.data)
    assert not parsed.bozo, (url, parsed.get("bozo_exception"))
    assert parsed.version == "atom10"
    return root, parsed


def test_root_is_a_navigation_feed(client: FlaskClient, items: dict[str, LibraryItem]) -> None:
    root, parsed = get_feed(client, "/opds", NAVIGATION)
    titles = [e.title for e in parsed.entries]  # type: ignore[attr-defined]
    assert titles == ["New in the library", "By kind", "By collection"]
    for entry in root.findall(f"{ATOM}entry"):
        (link,) = entry.findall(f"{ATOM}link")
        assert link.get("rel") == "subsection"
        assert link.get("type") in (NAVIGATION, ACQUISITION)
        get_feed(client, path_of(link.get("href", "")), link.get("type", ""))


def test_new_is_an_acquisition_feed_with_download_links(
        client: FlaskClient, items: dict[str, LibraryItem]) -> None:
    root, parsed = get_feed(client, "/opds/new", ACQUISITION)
    entries = {e.title: e for e in parsed.entries}  # type: ignore[attr-defined]
    assert set(entries) == {"Stories of Elm Street", "Water guide", "Oral history"}
    book = entries["Stories of Elm Street"]
    assert book.author == "Ada Reader"
    assert book.summary == "Short stories & poems"
    (acquire,) = [link for link in book.links if link.rel == OPEN_ACCESS]
    assert acquire.type == "application/epub+zip"
    download = client.get(path_of(acquire.href))
    assert download.status_code == 200 and download.data == sample_epub()
    (pdf_link,) = [link for link in entries["Water guide"].links if link.rel == OPEN_ACCESS]
    assert pdf_link.type == "application/pdf"
    assert client.get(path_of(pdf_link.href)).data == sample_pdf()
    language = root.find(f"{ATOM}entry/{{http://purl.org/dc/terms/}}language")
    assert language is not None and language.text == "en"


def test_by_kind_and_by_collection(client: FlaskClient, items: dict[str, LibraryItem]) -> None:
    _root, kinds = get_feed(client, "/opds/kinds", NAVIGATION)
    assert {e.title for e in kinds.entries} == {  # type: ignore[attr-defined]
        "E-books (EPUB)", "PDF documents", "Audio"}
    _root, epubs = get_feed(client, "/opds/kind/epub", ACQUISITION)
    assert [e.title for e in epubs.entries] == ["Stories of Elm Street"]  # type: ignore[attr-defined]
    _root, collections = get_feed(client, "/opds/collections", NAVIGATION)
    assert [e.title for e in collections.entries] == ["Health", "Stories"]  # type: ignore[attr-defined]
    _root, health = get_feed(client, "/opds/collection/Health", ACQUISITION)
    assert [e.title for e in health.entries] == ["Water guide"]  # type: ignore[attr-defined]
    assert client.get("/opds/kind/nonsense").status_code == 404
    assert client.get("/opds/collection/Nowhere").status_code == 404


def test_pagination_links(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        hub = db.services(app).hub
        for n in range(12):
            hub.add_library_file("olga", io.BytesIO(sample_pdf() + b"%" + str(n).encode()),
                                 filename=f"{n}.pdf", title=f"Leaflet {n}")
    seen: list[str] = []
    url: str | None = "/opds/new"
    pages = 0
    while url:
        root, parsed = get_feed(client, url, ACQUISITION)
        pages += 1
        links = {link.get("rel"): link.get("href") for link in root.findall(f"{ATOM}link")}
        assert path_of(links["first"] or "") == "/opds/new"
        assert path_of(links["last"] or "") == "/opds/new?page=3"
        assert ("previous" in links) == (pages > 1)
        total = root.find(f"{OPENSEARCH}totalResults")
        assert total is not None and total.text == "12"
        seen += [e.title for e in parsed.entries]  # type: ignore[attr-defined]
        url = path_of(links["next"]) if links.get("next") else None
    assert pages == 3 and sorted(seen) == sorted(f"Leaflet {n}" for n in range(12))
    assert client.get("/opds/new?page=4").status_code == 404


def test_opensearch_description_and_search_feed(client: FlaskClient,
                                                items: dict[str, LibraryItem]) -> None:
    response = client.get("/opds/opensearch.xml")
    assert response.content_type.startswith("application/opensearchdescription+xml")
    description = ET.fromstring(response.data)  # noqa: S314
    url = description.find(f"{OPENSEARCH}Url")
    assert url is not None and url.get("type") == ACQUISITION
    template = url.get("template", "")
    assert "{searchTerms}" in template
    search_url = path_of(template.replace("{searchTerms}", "water"))
    _root, parsed = get_feed(client, search_url, ACQUISITION)
    assert [e.title for e in parsed.entries] == ["Water guide"]  # type: ignore[attr-defined]
    _root, nothing = get_feed(client, "/opds/search?q=zzzqqq", ACQUISITION)
    assert nothing.entries == []  # type: ignore[attr-defined]


def test_empty_library_still_valid(client: FlaskClient) -> None:
    get_feed(client, "/opds", NAVIGATION)
    _root, parsed = get_feed(client, "/opds/new", ACQUISITION)
    assert parsed.entries == []  # type: ignore[attr-defined]
