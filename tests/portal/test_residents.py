"""The residents' pages, through the Flask test client: every route and its error paths."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from node.store.models import CATEGORIES
from tests.portal.conftest import ORGANISER, Seeder, sample_pdf


def text(response) -> str:
    return response.get_data(as_text=True)


def test_home_puts_urgent_notices_first_then_listings_and_library(client: FlaskClient,
                                                                   seed: Seeder) -> None:
    seed.notice(title="Repair café on Saturday")
    seed.notice(title="Water off on Elm Street", urgent=True)
    seed.listing(title="Sofa, free to collect", category="free")
    seed.library("pdf", title="Water guide")
    page = text(client.get("/"))
    assert page.index("Water off on Elm Street") < page.index("Sofa, free to collect")
    assert page.index("Sofa, free to collect") < page.index("Water guide")
    assert 'class="badge">Urgent' in page  # marked in words, not by colour alone
    assert 'role="search"' in page and 'name="q"' in page


def test_empty_hub_pages_say_so(client: FlaskClient) -> None:
    assert "There are no listings yet." in text(client.get("/"))
    assert "There are no notices at the moment." in text(client.get("/notices/"))
    assert "Nothing here at the moment." in text(client.get("/library/"))


def test_listings_by_category_with_pagination(client: FlaskClient, seed: Seeder) -> None:
    for i in range(25):
        seed.listing(category="free", title=f"Free thing {i:02d}")
    seed.listing(category="jobs", title="Paper round")
    first = text(client.get("/listings/free"))
    assert "25 listings" in first and "Page 1 of 2" in first
    assert "Paper round" not in first
    assert 'href="/listings/free?page=2"' in first
    second = client.get("/listings/free?page=2")
    assert second.status_code == 200 and text(second).count('class="card"') == 5
    assert "Paper round" in text(client.get("/listings/jobs"))
    assert "26 listings" in text(client.get("/listings/"))
    for category in CATEGORIES:
        assert client.get(f"/listings/{category}").status_code == 200


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=abc", "page=3", "page=1e3",
                                   "page=99999999999"])
def test_bad_page_numbers_are_404(client: FlaskClient, seed: Seeder, query: str) -> None:
    seed.listing()
    assert client.get(f"/listings/?{query}").status_code == 404
    assert client.get(f"/library/?{query}").status_code == 404


def test_unknown_category_and_ids_are_404(client: FlaskClient) -> None:
    for url in ("/listings/bicycles", "/listing/nope", "/notices/nope", "/library/nope",
                "/library/nope/download", "/library/?type=spreadsheet",
                "/library/?collection=Missing"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Page not found" in text(response)


@pytest.mark.parametrize("url", [
    "/library/../../etc/passwd", "/library/%2e%2e/%2e%2e/etc/passwd",
    "/library/..%2f..%2fetc%2fpasswd", "/static/../portal-secret.key",
    "/static/%2e%2e/%2e%2e/data/portal-secret.key", "/listing/..%2F..%2Fetc%2Fpasswd",
    "/library/%2e%2e%2f%2e%2e%2fdata%2fhub.sqlite3/download"])
def test_path_traversal_never_reaches_a_file(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 404
    assert "root:" not in text(response)


def test_listing_page_escapes_user_text_and_renders_markdown(client: FlaskClient,
                                                             seed: Seeder) -> None:
    listing = seed.listing(title="<script>alert('t')</script>Lamp",
                           body="**Bright** lamp <img src=x onerror=alert(1)>",
                           contact="<b>07700 900123</b>")
    page = text(client.get(f"/listing/{listing.id}"))
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "<strong>Bright</strong>" in page
    assert "<img src=x" not in page and "onerror" not in page.replace("onerror=alert(1)&gt;", "")
    assert "&lt;b&gt;07700 900123&lt;/b&gt;" in page


def test_expired_listing_disappears_from_lists_but_its_page_says_so(client: FlaskClient,
                                                                    seed: Seeder) -> None:
    gone = seed.listing(title="Old pram")
    seed.hub.expire("listing", ORGANISER, gone.id)
    assert "Old pram" not in text(client.get("/listings/"))
    ended = client.get(f"/listing/{gone.id}")
    assert ended.status_code == 410 and "This listing has ended." in text(ended)


def test_notices_urgent_first_expired_hidden_and_printable(client: FlaskClient,
                                                           seed: Seeder) -> None:
    seed.notice(title="Quiz night")
    urgent = seed.notice(title="Road closed: Elm Street", urgent=True)
    seed.hub.expire("notice", ORGANISER, seed.notice(title="Expired fair").id)
    page = text(client.get("/notices/"))
    assert page.index("Road closed") < page.index("Quiz night")
    assert "Expired fair" not in page
    notice = text(client.get(f"/notices/{urgent.id}"))
    assert "<h1 dir=\"auto\">Road closed: Elm Street</h1>" in notice and "Urgent" in notice
    # Printed for a lamp post: the hub's name on the mesh, not the address it was read at
    # (a page file is rendered for no browser's Host).
    assert '<p class="print-only">' in notice and "http://hub.mesh/</p>" in notice
    assert "localhost" not in notice
    css = text(client.get("/static/hub.css"))
    assert "@media print" in css


def test_library_browse_by_collection_and_type(client: FlaskClient, seed: Seeder) -> None:
    seed.library("pdf", title="Water guide", collection="Guides")
    seed.library("audio", title="Oral history", collection="Stories")
    page = text(client.get("/library/"))
    assert "<bdi>Guides</bdi> (1)" in page and "<bdi>Stories</bdi> (1)" in page
    guides = text(client.get("/library/?collection=Guides"))
    assert "Water guide" in guides and "Oral history" not in guides
    audio = text(client.get("/library/?type=audio"))
    assert "Oral history" in audio and "Water guide" not in audio


@pytest.mark.parametrize(("media_type", "element"), [
    ("pdf", '<object class="viewer viewer-pdf" data="/library/'), ("audio", "<audio controls"),
    ("video", "<video class=\"viewer\" controls"), ("image", '<img class="viewer"'),
    ("epub", "reading app")])
def test_library_item_uses_the_browsers_own_viewer(client: FlaskClient, seed: Seeder,
                                                   media_type: str, element: str) -> None:
    item = seed.library(media_type)
    page = text(client.get(f"/library/{item.id}"))
    assert element in page
    assert f'href="/library/{item.id}/download"' in page


def test_download_has_safe_name_and_exact_bytes(client: FlaskClient, seed: Seeder) -> None:
    item = seed.library("pdf", title="Guide")
    response = client.get(f"/library/{item.id}/download")
    assert response.status_code == 200 and response.data == sample_pdf()
    assert response.headers["Content-Disposition"] == "attachment; filename=water-guide.pdf"
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Accept-Ranges"] == "bytes"
    inline = client.get(f"/library/{item.id}/view")
    assert inline.headers["Content-Disposition"].startswith("inline")
    assert "frame-ancestors 'self'" in inline.headers["Content-Security-Policy"]


def test_download_answers_range_requests(client: FlaskClient, seed: Seeder) -> None:
    item = seed.library("pdf")
    data = sample_pdf()
    part = client.get(f"/library/{item.id}/download", headers={"Range": "bytes=5-14"})
    assert part.status_code == 206
    assert part.data == data[5:15]
    assert part.headers["Content-Range"] == f"bytes 5-14/{len(data)}"
    tail = client.get(f"/library/{item.id}/download", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == data[-10:]
    beyond = client.get(f"/library/{item.id}/download",
                        headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(data)}"


def test_non_viewable_types_have_no_inline_view(client: FlaskClient, seed: Seeder) -> None:
    item = seed.library("epub")
    assert client.get(f"/library/{item.id}/view").status_code == 404
    assert client.get(f"/library/{item.id}/download").status_code == 200


def test_missing_file_is_explained_not_crashed(client: FlaskClient, seed: Seeder) -> None:
    item = seed.library("pdf")
    seed.hub.blobs.path(item.sha256).unlink()
    page = client.get(f"/library/{item.id}")
    assert page.status_code == 200 and "has not reached this node yet" in text(page)
    assert client.get(f"/library/{item.id}/download").status_code == 404


def test_search_is_bookmarkable_labelled_and_paginated(client: FlaskClient,
                                                       seed: Seeder) -> None:
    for i in range(23):
        seed.listing(title=f"Bicycle number {i}", body="A bicycle in good order.")
    seed.notice(title="Bicycle repair workshop", body="Bring your bicycle.")
    seed.library("pdf", title="Bicycle maintenance", description="Fixing a bicycle.")
    first = text(client.get("/search?q=bicycle"))
    assert "25 results for “<bdi>bicycle</bdi>”" in first
    assert 'value="bicycle"' in first and "Page 1 of 2" in first
    assert 'href="/search?page=2&amp;q=bicycle"' in first or \
        'href="/search?q=bicycle&amp;page=2"' in first
    everything = first + text(client.get("/search?q=bicycle&page=2"))
    for label, url in (("Listing", "/listing/"), ("Notice", "/notices/"),
                       ("Library", "/library/")):
        assert f'<span class="tag">{label}</span> <a href="{url}' in everything
    assert client.get("/search?q=bicycle&page=9").status_code == 404


def test_empty_and_odd_searches(client: FlaskClient, seed: Seeder) -> None:
    seed.listing(title="Lamp")
    empty = client.get("/search")
    assert empty.status_code == 200 and "result" not in text(empty)
    for query in ('"', "AND OR NOT", "*", "lamp)", "x" * 5000, "<script>", "NEAR(", "^"):
        response = client.get("/search", query_string={"q": query})
        assert response.status_code == 200, query
        assert "<script>" not in text(response).split("<main", 1)[1]
    nothing = text(client.get("/search?q=zzzzqqq"))
    assert "0 results" in nothing and "Nothing matched" in nothing


def test_fixed_pages(client: FlaskClient) -> None:
    assert "Be kind and respectful" in text(client.get("/rules"))
    privacy = text(client.get("/privacy"))
    assert "erased 30 days after" in privacy and "cookie" in privacy
    about = text(client.get("/about"))
    assert "elm-library" in about and "Library roof" in about and "Elm Street Neighbours" in about


def test_privacy_page_reads_retention_from_node_toml(tmp_path) -> None:
    from portal import db
    from tests.portal.conftest import make_app, write_node_toml

    app = make_app(write_node_toml(tmp_path, "[privacy]\nsubmission_retention_days = 7\n"))
    try:
        assert "erased 7 days after" in text(app.test_client().get("/privacy"))
    finally:
        db.close(app)
