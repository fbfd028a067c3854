"""What a person sees on a 360×740 phone screen, in Debian's Chromium (issue 18).

Connect (welcome page), Download (a library PDF) and the "published" message
(after Publish) must be in the first viewport, without scrolling; an English
price on an Arabic page must read in its own order; and the pages these
changes touched stay free of axe violations at that size.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal import db
from portal.db import services
from tests.conftest import require_tool
from tests.portal.browser import ADMIN, CHROMIUM, CHROMIUM_ARGS, AxeAudit, follow, new_page, serve
from tests.portal.conftest import ORGANISER_PASSWORD, Seeder, make_app, write_node_toml

PHONE = {"width": 360, "height": 740}
PRICE = "£10 an hour, free for families on benefits"
#: The words of the price, for the JavaScript below: where each is drawn.
_WORD_BOXES = """(price) => {
  const found = [];
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const at = node.data.indexOf(price);
    if (at < 0) continue;
    const words = [];
    const re = /\\S+/g;
    let m;
    while ((m = re.exec(price))) {
      const range = document.createRange();
      range.setStart(node, at + m.index);
      range.setEnd(node, at + m.index + m[0].length);
      const box = range.getBoundingClientRect();
      words.push([m[0], box.left, box.top]);
    }
    found.push(words);
  }
  return found;
}"""


@pytest.fixture
def running_hub(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A seeded hub (a full neighbourhood, an Arabic-titled listing with an English price)."""
    app = make_app(write_node_toml(tmp_path))
    seed = Seeder(app)
    content = seed.neighbourhood()
    content["priced"] = seed.listing(category="services", title="دروس رياضيات للأطفال",
                                     price=PRICE, body="مساءً وفي عطلة نهاية الأسبوع.")
    content["pdf"] = seed.library("pdf", title="First aid at home",
                                  description="What to keep in the cupboard. " * 12)
    ended = seed.listing(title="Old pram", contact="07700 900123")
    services(app).hub.expire("listing", ADMIN, ended.id)
    content["ended"] = ended
    try:
        with serve(app, "viewport-waitress") as base:
            yield base, content
    finally:
        db.close(app)


def in_first_viewport(page: Any, locator: Any) -> bool:
    """True when ``locator`` is drawn wholly inside the first screen (no scrolling)."""
    box = locator.bounding_box()
    scrolled = page.evaluate("() => window.scrollY")
    return (box is not None and scrolled == 0 and box["y"] >= 0
            and box["y"] + box["height"] <= PHONE["height"]
            and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"])


def assert_reads_in_order(page: Any, where: str) -> None:
    """Every drawn copy of PRICE shows its words left to right, line by line."""
    occurrences = page.evaluate(_WORD_BOXES, PRICE)
    assert occurrences, f"the price is not on {where}"
    compared = 0
    for words in occurrences:
        for (first, left, top), (second, next_left, next_top) in itertools.pairwise(words):
            if abs(top - next_top) < 2:  # same line
                compared += 1
                assert left < next_left, f"on {where}, {first!r} is drawn after {second!r}"
    assert compared >= 3, f"too few words on one line to compare on {where}"


@pytest.mark.browser
def test_what_a_phone_shows_first(running_hub: tuple[str, dict[str, Any]]) -> None:
    require_tool(CHROMIUM)
    from playwright.sync_api import sync_playwright

    base, content = running_hub
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = new_page(browser, viewport=PHONE)
            audit = AxeAudit(page)
            for language in ("en", "ar", "es"):
                page.goto(f"{base}/language/{language}?next=/welcome")
                connect = page.locator("main form button[type=submit]")
                assert in_first_viewport(page, connect), f"Connect below the fold ({language})"
                assert not page.locator(".rules").is_visible(), "the rules start folded"
                audit.check(f"welcome ({language})")
            page.locator("details.rules-folded summary").click()
            assert page.locator(".rules").is_visible()
            audit.check("welcome, rules unfolded")

            page.goto(f"{base}/language/en?next=/library/{content['pdf'].id}")
            download = page.locator(f"a[href='/library/{content['pdf'].id}/download']")
            assert in_first_viewport(page, download), "Download below the fold"
            assert not page.locator("object.viewer").is_visible(), "no PDF box on a phone"
            audit.check("library PDF on a phone")

            page.goto(base + "/library/")
            assert not page.locator("details.filters nav").first.is_visible()
            first_item = page.locator("main .cards .card").first
            assert in_first_viewport(page, first_item), "the first item is below the fold"
            audit.check("library with folded filters")

            response = page.goto(f"{base}/listing/{content['ended'].id}")
            assert response is not None and response.status == 410
            audit.check("ended listing")

            page.goto(f"{base}/language/ar?next=/listings/services")
            assert_reads_in_order(page, "the services list (ar)")
            audit.check("listings (ar)")
            page.goto(f"{base}/listing/{content['priced'].id}")
            assert_reads_in_order(page, "the listing's page (ar)")

            page.goto(f"{base}/language/en?next=/organisers/sign-in")
            page.fill("#name", ADMIN)
            page.fill("#password", ORGANISER_PASSWORD)
            follow(page, "main form.stacked button[type=submit]")  # signed in before going on
            page.goto(base + "/organisers/listings/new")
            page.select_option("#category", "free")
            page.fill("#title", "Garden chairs")
            page.fill("#body", "Four chairs, collect from Elm Street.")
            follow(page, "main form.stacked button[type=submit]")
            message = page.locator(".flash", has_text="Listing published.")
            assert message.count() == 1
            assert in_first_viewport(page, message), "the published message is off screen"
            audit.check("listings after publishing")

            first = page.locator("main .manage > li").first
            follow(page, first.get_by_role("button", name="Expire now"))
            assert page.locator(".undo button").count() == 1
            audit.check("listings with Undo")
            follow(page, ".undo button")
            assert page.locator(".flash", has_text="restored").count() == 1

            page.goto(base + "/organisers/audit/")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the audit is {width} px wide on a phone"
            audit.check("audit on a phone")
        finally:
            browser.close()
    assert not audit.problems, audit.report()
