"""WCAG 2.1 AA on the captive pages (welcome, connected), in Debian's headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.gate import GateStatus
from portal import db
from portal.captive.state import GATE_CLIENT_KEY
from tests.conftest import require_tool
from tests.portal.browser import CHROMIUM, CHROMIUM_ARGS, AxeAudit, serve
from tests.portal.conftest import make_app, write_node_toml


class OpenAfterConnect:
    """A gate that lets 127.0.0.1 through once it has been allowed."""

    present = True

    def __init__(self) -> None:
        self.allowed = False

    def status(self, ip: str) -> GateStatus:
        return GateStatus(ip, "02:00:00:00:00:50", self.allowed,
                          3600 if self.allowed else None, "portal")

    def allow(self, ip: str) -> GateStatus:
        self.allowed = True
        return self.status(ip)


@pytest.mark.browser
def test_welcome_and_connected_pages_have_no_axe_violations(tmp_path: Path) -> None:
    require_tool(CHROMIUM)
    from playwright.sync_api import sync_playwright

    app = make_app(write_node_toml(tmp_path))
    app.config[GATE_CLIENT_KEY] = OpenAfterConnect()
    try:
        with serve(app, "a11y-captive-waitress") as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                audit = AxeAudit(page)
                page.goto(base + "/welcome")
                audit.check("welcome")
                page.click("main form button[type=submit]")
                assert page.url.endswith("/connected")
                audit.check("connected")
                assert not audit.problems, audit.report()
            finally:
                browser.close()
    finally:
        db.close(app)
