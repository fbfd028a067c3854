"""The technicians' pages in Debian's headless Chromium: axe-clean, and graphs and map legible.

A technician signs in through the real form; the nodes' table, a node page
(graphs for a day and a week, with the numbers' table opened) and the map
are checked by axe-core and photographed. The screenshots must show the
drawings: non-blank, the size the SVG asked for, with the lines the DOM says.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from portal import db, technicians
from tests.conftest import require_tool
from tests.portal.browser import CHROMIUM, CHROMIUM_ARGS, AxeAudit, follow, new_page, serve
from tests.portal.test_technicians import TECHNICIAN, fake_mesh, portal_for  # noqa: F401

SUBMIT = "main form.stacked button[type=submit]"


@pytest.fixture
def running(tmp_path: Path, fake_mesh: dict[str, Any]) -> Iterator[tuple[str, Flask]]:  # noqa: F811
    """The library node's portal under waitress, its peers the fake agents."""
    app = portal_for(tmp_path, fake_mesh)
    try:
        with serve(app, "a11y-technicians-waitress") as base:
            yield base, app
    finally:
        technicians.close(app)
        db.close(app)


def png_colours(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours) of an 8-bit RGB(A) PNG, decoded with zlib only."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 4
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = io.BytesIO(zlib.decompress(idat))
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for _ in range(height):
        kind = raw.read(1)[0]
        line = bytearray(raw.read(stride))
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        for x in range(0, stride, channels * 3):  # every third pixel is plenty
            colours.add(bytes(line[x:x + 3]))
        previous = line
    return width, height, len(colours)


def shoot(page: Any, selector: str, path: Path) -> tuple[int, int, int]:
    """Screenshot one element into ``path``; its (width, height, colours)."""
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(path))
    return png_colours(path.read_bytes())


@pytest.mark.browser
def test_technicians_pages_are_accessible_and_their_drawings_legible(
        running: tuple[str, Flask], fake_mesh: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    require_tool(CHROMIUM)
    from playwright.sync_api import sync_playwright

    base, _app = running
    library = fake_mesh["nodes"][0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = new_page(browser, viewport={"width": 1100, "height": 900})
            audit = AxeAudit(page)
            page.goto(base + "/organisers/sign-in")
            page.fill("#name", TECHNICIAN[0])
            page.fill("#password", TECHNICIAN[1])
            follow(page, SUBMIT)
            assert page.url == base + "/technicians/"
            assert page.locator("table.nodes tbody tr").count() == 4
            assert page.locator("table.nodes tr.down").count() == 1
            audit.check("nodes")
            page.screenshot(path=str(tmp_path / "nodes.png"), full_page=True)

            page.goto(f"{base}/technicians/nodes/{library.target}")
            assert page.locator("svg.chart").count() == 6
            assert page.locator("svg.chart").first.locator("polyline").count() == 2
            width, height, colours = shoot(page, "svg.chart", tmp_path / "cpu.png")
            assert abs(width - 600) <= 4 and abs(height - 190) <= 4, (width, height)
            assert colours >= 4, "the CPU graph looks blank"
            page.locator("details.numbers summary").click()  # opens in place, no new page
            assert page.locator("details.numbers table tbody tr").count() >= 20
            audit.check("node page (24 hours, numbers open)")
            page.screenshot(path=str(tmp_path / "node-day.png"), full_page=True)

            page.goto(f"{base}/technicians/nodes/{library.target}?period=week")
            audit.check("node page (7 days)")
            shoot(page, "svg.chart >> nth=2", tmp_path / "temperature-week.png")

            page.goto(f"{base}/technicians/nodes/{fake_mesh['dead']}")
            audit.check("node page of a down node")

            page.goto(base + "/technicians/map")
            svg = page.locator("svg.mesh-map")
            assert svg.locator("g.node").count() == 5
            assert svg.locator("g.links line").count() == 3
            width, height, colours = shoot(page, "svg.mesh-map", tmp_path / "map.png")
            assert abs(width - 720) <= 4 and abs(height - 480) <= 4, (width, height)
            assert colours >= 6, "the map looks blank"
            audit.check("map")

            page.goto(base + "/language/ar?next=/technicians/map")
            assert page.get_attribute("html", "dir") == "rtl"
            audit.check("map (ar)")
        finally:
            browser.close()
    assert not audit.problems, audit.report()
