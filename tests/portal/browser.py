"""Shared by the browser tests: the portal under a real WSGI server, Chromium, axe.

The residents' and the organisers' accessibility tests (and anyone taking
screenshots) serve an app with waitress on a free loopback port, drive
Debian's Chromium through Playwright and collect axe-core's findings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@contextmanager
def serve(app: Flask, name: str = "test-waitress") -> Iterator[str]:
    """Serve ``app`` with waitress on 127.0.0.1 and yield its base URL; stop and join after."""
    from waitress.server import create_server

    from node.waitress_thread import WaitressThread

    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    served = WaitressThread(server, name)
    served.start()
    try:
        yield f"http://127.0.0.1:{served.port}"
    finally:
        served.stop()


#: How long a page may take to load or an element to appear before a browser test fails:
#: a liveness bound for a loaded CI machine (Playwright's own default, 30 s, was hit under
#: load), not a speed claim; bench/ measures how fast pages are.
BROWSER_TIMEOUT_MS = 120_000


def new_page(browser: Any, **options: Any) -> Any:
    """A new page of ``browser`` (``options`` as Playwright's ``new_page``) that waits up to
    :data:`BROWSER_TIMEOUT_MS` for navigations and elements."""
    page = browser.new_page(**options)
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    page.set_default_navigation_timeout(BROWSER_TIMEOUT_MS)
    return page


def follow(page: Any, target: Any) -> None:
    """Click a link or button that loads another page; return once that page has loaded.

    A bare click returns as soon as the navigation has begun, and ``wait_for_load_state``
    then may still answer for the old page, so what a test counts next can come from a
    half-loaded page (seen in CI under load). ``target`` is a selector or a locator.
    """
    clickable = page.locator(target) if isinstance(target, str) else target
    with page.expect_navigation(wait_until="load"):
        clickable.click()


def describe(name: str, violations: list[dict[str, Any]]) -> str:
    """Violations of one page, readable in a test report."""
    lines = [f"{name}:"]
    for violation in violations:
        lines.append(f"  [{violation['impact']}] {violation['id']}: {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"      {' '.join(map(str, node['target']))}: {node['html'][:160]}")
    return "\n".join(lines)


class AxeAudit:
    """Runs axe-core on a Playwright page and keeps every page's violations."""

    def __init__(self, page: Any) -> None:
        from axe_playwright_python.sync_playwright import Axe

        self.page = page
        self.axe = Axe()
        self.checked: list[str] = []
        self.problems: list[str] = []

    def check(self, name: str) -> None:
        """Check the page as it is now, under ``name`` in the report."""
        result = self.axe.run(self.page)
        self.checked.append(name)
        assert result.response["passes"], f"axe checked nothing on {name}"
        violations = result.response["violations"]
        if violations:
            self.problems.append(describe(name, violations))

    def report(self) -> str:
        """Every violation found so far, for an assertion message."""
        return "axe found accessibility problems:\n" + "\n".join(self.problems)


# --- the organisers' pages --------------------------------------------------------
ADMIN = "alice"  # the account tests.portal.conftest.Seeder creates (an admin)
PLAIN_ORGANISER = ("olga", "olga-password-1")


def seed_for_organisers(app: Flask) -> dict[str, Any]:
    """A neighbourhood (see ``Seeder.neighbourhood``) plus a plain organiser and a
    resident's submission waiting in the moderation queue."""
    from portal.db import services
    from tests.portal.conftest import Seeder

    content = Seeder(app).neighbourhood()
    hub = services(app).hub
    name, password = PLAIN_ORGANISER
    hub.create_account(None, name=name, password=password, role="organiser",
                       display_name="Olga (food bank)")
    content["submission"] = hub.submit_listing(
        category="wanted", title="Wanted: a ladder for a weekend",
        body="To paint the **fence**. I can collect from Elm Street.", contact="Flat 7")
    return content


def every_organiser_page_type(content: dict[str, Any]) -> dict[str, str]:
    """One URL of each signed-in organisers' page type (GET), for :func:`seed_for_organisers`."""
    listing, notice = content["listings"][0], content["notices"][0]
    item = content["library"]["pdf"]
    return {"dashboard": "/organisers/", "listings": "/organisers/listings/",
            "new listing": "/organisers/listings/new",
            "edit listing": f"/organisers/listings/{listing.id}/edit",
            "delete listing": f"/organisers/listings/{listing.id}/delete",
            "notices": "/organisers/notices/", "new notice": "/organisers/notices/new",
            "edit notice": f"/organisers/notices/{notice.id}/edit",
            "library": "/organisers/library/", "upload": "/organisers/library/upload",
            "edit library item": f"/organisers/library/{item.id}/edit",
            "delete library item": f"/organisers/library/{item.id}/delete",
            "moderation": "/organisers/moderation/",
            "submission": f"/organisers/moderation/{content['submission'].id}",
            "audit": "/organisers/audit/", "accounts": "/organisers/accounts/",
            "password": "/organisers/password", "not found": "/organisers/listings/nosuch/edit"}
