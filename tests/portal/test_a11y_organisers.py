"""WCAG 2.1 AA on the organisers' pages, checked by axe-core in Debian's headless Chromium.

The browser signs in through the real form (CSRF, session cookie) as an admin
and visits every organisers' page type, forms with errors among them; then a
plain organiser meets the "Not allowed" page. Like the residents' test, the
pages carry no JavaScript; only axe runs in the browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portal import db
from tests.conftest import require_tool
from tests.portal.browser import (
    ADMIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    PLAIN_ORGANISER,
    AxeAudit,
    every_organiser_page_type,
    follow,
    new_page,
    seed_for_organisers,
    serve,
)
from tests.portal.conftest import ORGANISER_PASSWORD, make_app, write_node_toml

SUBMIT = "main form.stacked button[type=submit]"


@pytest.fixture
def running_hub(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """A seeded portal with organisers' accounts, served by waitress on 127.0.0.1."""
    app = make_app(write_node_toml(tmp_path))
    content = seed_for_organisers(app)
    try:
        with serve(app, "a11y-organisers-waitress") as base:
            yield base, content
    finally:
        db.close(app)


def sign_in(page: Any, base: str, name: str, password: str) -> None:
    """Fill and submit the sign-in form as a person would."""
    page.goto(base + "/organisers/sign-in")
    page.fill("#name", name)
    page.fill("#password", password)
    follow(page, SUBMIT)


@pytest.mark.browser
def test_every_organisers_page_type_has_no_axe_violations(
        running_hub: tuple[str, dict[str, Any]]) -> None:
    require_tool(CHROMIUM)
    from playwright.sync_api import sync_playwright

    base, content = running_hub
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = new_page(browser)
            audit = AxeAudit(page)

            page.goto(base + "/organisers/sign-in")
            audit.check("sign-in")
            sign_in(page, base, ADMIN, "not the password")
            assert page.locator(".error-summary").count() == 1
            audit.check("sign-in with an error")

            sign_in(page, base, ADMIN, ORGANISER_PASSWORD)
            assert page.url == base + "/organisers/", "the admin did not land on the dashboard"
            for name, url in every_organiser_page_type(content).items():
                response = page.goto(base + url)
                assert response is not None
                assert response.status == (404 if name == "not found" else 200), name
                audit.check(name)

            # The row buttons post the page's one actions form (formaction), no JavaScript.
            page.goto(base + "/organisers/listings/")
            first = page.locator("main .manage > li").first
            item_id = first.get_attribute("id")
            follow(page, first.get_by_role("button", name="Pin", exact=True))
            assert page.locator(f"#{item_id} button", has_text="Unpin").count() == 1
            audit.check("listings after pinning")

            page.goto(base + "/organisers/listings/new")
            page.fill("#title", "")
            page.fill("#body", "What I typed stays here")
            follow(page, SUBMIT)
            assert page.locator("#title-error").count() == 1
            assert page.locator(".error-summary a[href='#title']").count() == 1
            audit.check("new listing with errors")
            page.goto(base + "/organisers/accounts/")
            page.fill("#name", "Not A Valid Name!")
            follow(page, SUBMIT)
            assert page.locator(".field-invalid").count() >= 1
            audit.check("create account with errors")
            page.goto(base + "/organisers/password")
            page.fill("#current_password", "wrong")
            page.fill("#new_password", "one new passphrase")
            page.fill("#confirm", "another passphrase")
            follow(page, SUBMIT)
            assert page.locator(".field-invalid").count() >= 1
            audit.check("change password with errors")

            page.goto(base + "/language/ar?next=/organisers/")
            assert page.get_attribute("html", "dir") == "rtl"
            audit.check("dashboard (ar)")
            page.goto(base + "/organisers/listings/")
            audit.check("listings (ar)")
            page.goto(base + "/language/en?next=/organisers/")
            follow(page, "nav.organisers-menu button[type=submit]")  # sign out

            sign_in(page, base, *PLAIN_ORGANISER)
            response = page.goto(base + "/organisers/accounts/")
            assert response is not None and response.status == 403
            audit.check("not allowed (403)")
        finally:
            browser.close()
    assert len(audit.checked) >= 26
    assert not audit.problems, audit.report()
