"""WCAG 2.1 AA, checked by axe-core in Debian's headless Chromium on every page type.

The portal runs under a real WSGI server (waitress) on a free loopback port,
with content seeded through the hub; the browser has JavaScript of its own
(axe needs it) but the pages have none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal import db
from tests.conftest import require_tool
from tests.portal.browser import CHROMIUM, CHROMIUM_ARGS, describe, follow, new_page, serve
from tests.portal.conftest import Seeder, every_page_type, make_app, write_node_toml


@pytest.fixture
def running_hub(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A seeded portal served by waitress on 127.0.0.1; stopped and joined afterwards."""
    app = make_app(write_node_toml(tmp_path))
    content = Seeder(app).neighbourhood()
    try:
        with serve(app, "a11y-waitress") as base:
            yield base, content
    finally:
        db.close(app)


@pytest.mark.browser
def test_every_page_type_has_no_axe_violations(running_hub: tuple[str, dict[str, Any]]) -> None:
    require_tool(CHROMIUM)
    from axe_playwright_python.sync_playwright import Axe
    from playwright.sync_api import sync_playwright

    base, content = running_hub
    axe = Axe()
    problems: list[str] = []
    checked: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = new_page(browser)

            def check(name: str) -> None:
                result = axe.run(page)
                checked.append(name)
                assert result.response["passes"], f"axe checked nothing on {name}"
                violations = result.response["violations"]
                if violations:
                    problems.append(describe(name, violations))

            for name, url in every_page_type(content).items():
                page.goto(base + url)
                check(name)
            page.goto(base + "/submit")
            page.select_option("#category", "free")
            page.fill("#title", "   ")
            follow(page, "main form[method=post] button[type=submit]")
            assert page.locator("#title-error").count() == 1
            check("submit with errors")
            page.goto(base + "/language/ar?next=/")
            assert page.get_attribute("html", "dir") == "rtl"
            check("home (ar)")
            page.goto(base + f"/notices/{content['notices'][0].id}")
            check("notice (ar)")
        finally:
            browser.close()
    assert len(checked) >= 24
    assert not problems, "axe found accessibility problems:\n" + "\n".join(problems)
