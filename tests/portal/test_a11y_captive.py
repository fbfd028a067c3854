"""WCAG 2.1 AA on the captive pages (welcome, connected), in Debian's headless Chromium."""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.gate.service import GateService
from portal import db
from tests.conftest import require_tool
from tests.node.test_gate import PHONE, FakeShell
from tests.portal.browser import CHROMIUM, CHROMIUM_ARGS, AxeAudit, follow, new_page, serve
from tests.portal.conftest import make_app, write_node_toml

#: As on a node, nginx is in front and names the phone in X-Forwarded-For (the browser
#: sends that header itself here: it plays both the phone and the proxy).
NETWORK = ('[mesh]\naddress = "10.42.0.7"\n[clients]\nsubnet = "10.64.7.0/24"\n'
           '[portal]\nbehind_proxy = true\n')


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[GateService]:
    """The node's real gate service (only its ip and nft faked, as in the gate's tests)."""
    me = pwd.getpwuid(os.getuid()).pw_name
    config = write_node_toml(tmp_path, NETWORK + f'[gate]\nsocket = "{tmp_path / "gate.sock"}"\n'
                                                 f'portal_user = "{me}"\n')
    service = GateService(config, runner=FakeShell())
    service.start()
    try:
        yield service
    finally:
        service.stop()


@pytest.mark.browser
def test_welcome_and_connected_pages_have_no_axe_violations(gate: GateService) -> None:
    require_tool(CHROMIUM)
    from playwright.sync_api import sync_playwright

    app = make_app(gate.cfg)
    try:
        with serve(app, "a11y-captive-waitress") as base, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = new_page(browser, extra_http_headers={"X-Forwarded-For": PHONE})
                audit = AxeAudit(page)
                page.goto(base + "/welcome")
                audit.check("welcome")
                follow(page, "main form button[type=submit]")
                assert page.url.endswith("/connected")
                audit.check("connected")
                assert not audit.problems, audit.report()
            finally:
                browser.close()
    finally:
        db.close(app)
