"""WCAG 2.1 AA on the library's new pages (axe-core in Debian's Chromium): a ZIM item's
page, archive articles with the hub's bar inserted, an encyclopaedia's search (with and
without a full-text index) and the hub's search showing encyclopaedia hits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from node.store.models import LibraryItem
from portal import db
from tests.conftest import require_tool
from tests.portal.browser import CHROMIUM, CHROMIUM_ARGS, AxeAudit, follow, new_page, serve
from tests.portal.conftest import Seeder, make_app, write_node_toml
from tests.portal.test_zim_browse import make_zim


@pytest.fixture
def running_library(tmp_path: Path) -> Iterator[tuple[str, LibraryItem, LibraryItem]]:
    """A portal with two archives (indexed and not), served by waitress on 127.0.0.1."""
    app = make_app(write_node_toml(tmp_path))
    Seeder(app).hub  # noqa: B018 - creates the organiser account
    try:
        indexed = _add(app, make_zim(tmp_path / "indexed.zim"), "Pocket encyclopaedia")
        plain = _add(app, make_zim(tmp_path / "plain.zim", fulltext=False), "Plain archive")
        with serve(app, "a11y-library-waitress") as base:
            yield base, indexed, plain
    finally:
        db.close(app)


def _add(app: object, path: Path, title: str) -> LibraryItem:
    from tests.portal.conftest import ORGANISER

    with path.open("rb") as stream:
        return db.services(app).hub.add_library_file(  # type: ignore[arg-type]
            ORGANISER, stream, filename=path.name, title=title)


@pytest.mark.browser
def test_library_pages_have_no_axe_violations(
        running_library: tuple[str, LibraryItem, LibraryItem]) -> None:
    require_tool(CHROMIUM)
    from playwright.sync_api import sync_playwright

    base, indexed, plain = running_library
    pages = {
        "zim item": f"/library/{indexed.id}",
        "zim main page": f"/library/{indexed.id}/zim/",
        "zim article": f"/library/{indexed.id}/zim/wiki/Pump",
        "zim search": f"/library/{indexed.id}/zim-search?q=water",
        "zim search form": f"/library/{indexed.id}/zim-search",
        "zim search, no index": f"/library/{plain.id}/zim-search?q=hand",
        "zim search, nothing": f"/library/{indexed.id}/zim-search?q=zzzqqq",
        "hub search with encyclopaedia hits": "/search?q=pump",
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = new_page(browser)
            audit = AxeAudit(page)
            for name, url in pages.items():
                response = page.goto(base + url)
                assert response is not None and response.ok, (name, url)
                audit.check(name)
            page.goto(base + f"/library/{indexed.id}/zim/Water")
            page.fill("#meshhub-zim-q", "pump")
            follow(page, "#meshhub-zim-bar button[type=submit]")
            assert "/zim-search?q=pump" in page.url
            assert page.locator("text=Hand pump").count() >= 1
            audit.check("zim search from the bar")
            page.goto(base + "/language/ar?next=" + f"/library/{indexed.id}/zim/Water")
            assert page.get_attribute("#meshhub-zim-bar", "dir") == "rtl"
            audit.check("zim article with the bar in Arabic")
        finally:
            browser.close()
    assert not audit.problems, audit.report()
