"""The technicians' pages against real agents' health APIs served on loopback.

Three fake nodes run the real agent API (:func:`node.health.api.create_app`)
over a :class:`~node.health.HealthMonitor` fed by injected sources and a day of
history; a fourth peer is configured but nothing listens there. The portal
is configured as the first node (``agent.port``) with the others in
``agent.peers``, exactly as on a node.
"""

from __future__ import annotations

import math
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from node.health import (
    AlertTracker,
    Collector,
    HealthMonitor,
    HealthRing,
    SensorReading,
    Thresholds,
)
from node.health.api import create_app as agent_app
from portal import db, technicians
from portal.db import services
from portal.technicians.gather import Gatherer
from portal.technicians.pages import GATHERER_KEY
from tests.node.test_health_collector import fake_sources, settings
from tests.portal.browser import serve
from tests.portal.conftest import form_token, make_app, write_node_toml

TECHNICIAN = ("tess", "tess-password-1")
ORGANISER = ("olga", "olga-password-1")
ADMIN = ("ada", "ada-password-123")
HISTORY_SECONDS = 86400
STEP = 300
SVG = "{http://www.w3.org/2000/svg}"


@dataclass
class FakeNode:
    """One fake node: its agent's address and what it reports."""

    name: str
    target: str
    mesh_address: str
    monitor: HealthMonitor


def mesh_part(neighbours: list[tuple[str, float]]) -> dict[str, Any]:
    """A ``mesh`` section like node.mesh's, with (neighbour mesh address, cost) pairs."""
    return {"neighbours": [{"address": f"fe80::{i + 1}", "interface": "wlan0", "node": addr,
                            "cost": cost, "rxcost": cost, "txcost": 256, "reach_ratio": 1.0}
                           for i, (addr, cost) in enumerate(neighbours)],
            "routes": len(neighbours), "nodes": [a for a, _ in neighbours], "announced": [],
            "updated": time.time()}


#: The agents' checks of their uplinks (node.mesh.uplink), by node: the library's works
#: and is shared with the mesh, the school's line is silent.
UPLINKS: dict[str, dict[str, Any]] = {
    "library": {"healthy": True, "announced": True, "reason": "the uplink answers",
                "since": 1.7e9, "withdrawals": 0, "checks": 10, "failed_checks": 0},
    "school": {"healthy": False, "announced": False,
               "reason": "192.0.2.1:443: no answer within 1 s", "since": 1.7e9,
               "withdrawals": 1, "checks": 10, "failed_checks": 2}}


def make_monitor(path: Path, name: str, mesh_address: str, *, coordinates: tuple[float, float],
                 neighbours: list[tuple[str, float]], volts: float | None,
                 history: bool = True, temperature: float = 48.0) -> HealthMonitor:
    """A monitor with a day of samples every STEP seconds (two hours missing) up to now."""
    end = time.time()
    clock = {"now": end - HISTORY_SECONDS + 60}

    def wave(period: float) -> float:  # 0 now, so the latest values are the nominal ones
        return math.sin((end - clock["now"]) / period)

    def sensors() -> list[SensorReading]:
        if volts is None:
            return []
        return [SensorReading("power", "power", "ina219", True,
                              {"bus_voltage_volts": volts + 0.2 * wave(7200)})]

    sources = fake_sources(
        clock=lambda: clock["now"],
        cpu_usage_percent=lambda: 30 + 25 * wave(5400),
        soc_temperature_celsius=lambda: temperature + 6 * wave(9000),
        sensors=sensors, mesh=lambda: mesh_part(neighbours),
        ipv4_addresses=lambda: {"eth0": ["192.0.2.10"], "wlan0": [mesh_address]},
        default_route_interfaces=lambda: {"eth0"}, uplink=lambda: UPLINKS.get(name))
    collector_settings = settings(node_name=name, coordinates=coordinates,
                                  location=f"{name} roof",
                                  uplink_interface="eth0" if name in UPLINKS else "")
    monitor = HealthMonitor(Collector(collector_settings, sources), AlertTracker(Thresholds()),
                            HealthRing(path, capacity=2000, write_interval_seconds=3600))
    while clock["now"] < end:
        in_gap = HISTORY_SECONDS / 2 < end - clock["now"] < HISTORY_SECONDS / 2 + 7200
        if (history and not in_gap) or end - clock["now"] < STEP:
            monitor.tick()
        clock["now"] += STEP
    clock["now"] = end
    monitor.tick()
    return monitor


@pytest.fixture
def fake_mesh(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Three agents on loopback (library, school, bakery) and a dead peer's address."""
    plan = [("library", "10.42.0.1", (51.5080, -0.1280), [("10.42.0.2", 256), ("10.42.0.3", 1500)],
             12.3, 48.0),
            ("school", "10.42.0.2", (51.5100, -0.1250), [("10.42.0.1", 300)], None, 79.0),
            ("bakery", "10.42.0.3", (51.5060, -0.1230), [("10.42.0.1", 1200), ("10.42.9.9", 700)],
             11.9, 45.0)]
    with ExitStack() as stack:
        nodes = []
        for name, address, where, neighbours, volts, temperature in plan:
            monitor = make_monitor(tmp_path / f"{name}.sqlite3", name, address,
                                   coordinates=where, neighbours=neighbours, volts=volts,
                                   temperature=temperature)
            stack.callback(monitor.close)
            base = stack.enter_context(serve(agent_app(monitor), f"fake-agent-{name}"))
            nodes.append(FakeNode(name, base.removeprefix("http://"), address, monitor))
        dead = stack.enter_context(socket.socket())  # bound, never listening: refused
        dead.bind(("127.0.0.1", 0))
        yield {"nodes": nodes, "dead": f"127.0.0.1:{dead.getsockname()[1]}"}


def portal_for(tmp_path: Path, fake_mesh: dict[str, Any]) -> Flask:
    """A portal whose own agent is the library and whose peers are the others and the dead one."""
    own, *others = fake_mesh["nodes"]
    peers = ", ".join(f'"{n.target}"' for n in others) + f', "{fake_mesh["dead"]}"'
    port = own.target.rsplit(":", 1)[1]
    config = write_node_toml(tmp_path, f"[agent]\nport = {port}\npeers = [{peers}]\n")
    app = make_app(config)
    hub = services(app).hub
    for (name, password), role in ((TECHNICIAN, "technician"), (ORGANISER, "organiser"),
                                   (ADMIN, "admin")):
        hub.create_account(None, name=name, password=password, role=role)
    return app


@pytest.fixture
def portal(tmp_path: Path, fake_mesh: dict[str, Any]) -> Iterator[Flask]:
    """The portal of the library node; its gatherer is closed after the test."""
    app = portal_for(tmp_path, fake_mesh)
    yield app
    technicians.close(app)
    db.close(app)


def sign_in(client: FlaskClient, who: tuple[str, str], follow: bool = False) -> Any:
    """Sign in through the real form."""
    token = form_token(client, "/organisers/sign-in")
    return client.post("/organisers/sign-in", data={"name": who[0], "password": who[1],
                                                    "csrf_token": token},
                       follow_redirects=follow)


def cells(html: str, node: str) -> str:
    """The table row of ``node`` on the nodes' page."""
    match = re.search(rf"<tr[^>]*>\s*<th scope=\"row\"><a [^>]*><bdi>{node}</bdi>.*?</tr>",
                      html, re.S)
    assert match, f"no row for {node}"
    return match.group(0)


# --- roles -------------------------------------------------------------------------

def test_a_technician_lands_on_the_nodes_page_and_cannot_organise(portal: Flask) -> None:
    client = portal.test_client()
    assert client.get("/technicians/").status_code == 302  # anonymous: to sign-in
    response = sign_in(client, TECHNICIAN)
    assert response.headers["Location"].endswith("/technicians/")
    assert client.get("/technicians/").status_code == 200
    assert client.get("/technicians/map").status_code == 200
    for page in ("/organisers/", "/organisers/listings/", "/organisers/moderation/",
                 "/organisers/accounts/"):
        assert client.get(page).status_code == 403, page
    assert client.get("/organisers/password").status_code == 200  # own password: yes
    page = client.get("/technicians/").get_data(as_text=True)
    assert "Organisers’ dashboard" not in page and "Technician" in page


def test_organisers_and_admins_see_the_technicians_pages_too(portal: Flask) -> None:
    for who in (ORGANISER, ADMIN):
        client = portal.test_client()
        response = sign_in(client, who)
        assert response.headers["Location"].endswith("/organisers/")
        page = client.get("/technicians/")
        assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
        assert "Organisers’ dashboard" in page.get_data(as_text=True)
        assert "Node health" in client.get("/organisers/").get_data(as_text=True)


def test_admins_can_make_a_technician_in_the_accounts_page(portal: Flask) -> None:
    client = portal.test_client()
    sign_in(client, ADMIN)
    page = client.get("/organisers/accounts/").get_data(as_text=True)
    assert '<option value="technician">Technician</option>' in page
    assert '<option selected value="organiser">' in page  # the default is unchanged
    token = form_token(client, "/organisers/accounts/")
    response = client.post("/organisers/accounts/", data={
        "name": "theo", "display_name": "Theo (roof work)", "role": "technician",
        "password": "theo-password-1", "csrf_token": token})
    assert response.status_code == 302
    assert services(portal).hub.store.account("theo").role == "technician"


def test_a_technician_changes_their_own_password(portal: Flask) -> None:
    client = portal.test_client()
    sign_in(client, TECHNICIAN)
    token = form_token(client, "/organisers/password")
    response = client.post("/organisers/password", data={
        "current_password": TECHNICIAN[1], "new_password": "a new long passphrase",
        "confirm": "a new long passphrase", "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/technicians/")


# --- the nodes' table ------------------------------------------------------------------

def test_the_table_shows_every_node_and_the_dead_one_as_down(
        portal: Flask, fake_mesh: dict[str, Any]) -> None:
    client = portal.test_client()
    sign_in(client, TECHNICIAN)
    html = client.get("/technicians/").get_data(as_text=True)
    assert "3 of 4 nodes answer." in html
    library = cells(html, "library")
    assert "(this node)" in library and "Up" in library
    assert "12.3 V" in library and "25%" in library  # voltage, disk used
    assert ">2<" in library  # two neighbours
    assert "The processor is being slowed down" in library  # the fixture board throttles
    school = cells(html, "school")
    assert "The processor is too hot" in school and "79 °C" in school
    dead = fake_mesh["dead"]
    row = re.search(rf'<tr class="down">.*?{re.escape(dead)}.*?</tr>', html, re.S)
    assert row, "the unreachable peer is not listed as down"
    assert "Down" in row.group(0) and "unreachable since" in row.group(0)
    assert "never" in row.group(0)
    # the mesh's routes name a node nobody configured: it is asked too, and is down
    assert "10.42.9.9:" not in html  # not routed by the library itself: only bakery hears it


def test_a_node_that_stops_answering_stays_listed_as_down(
        tmp_path: Path, fake_mesh: dict[str, Any]) -> None:
    own = fake_mesh["nodes"][0]
    school = fake_mesh["nodes"][1]
    gatherer = Gatherer(own.target, [school.target], refresh_seconds=0, timeout=1)
    try:
        first = {s.name: s for s in gatherer.statuses(wait=5)}
        assert first["school"].up and first["school"].last_seen
        gatherer._fetch = lambda target, timeout: (_ for _ in ()).throw(  # type: ignore[assignment]
            __import__("node.health.document", fromlist=["DocumentError"]).DocumentError(
                f"{target}: unreachable (refused)"))
        time.sleep(0.01)
        later = {s.target: s for s in gatherer.statuses(wait=5)}
        gone = later[school.target]
        assert not gone.up and gone.down_since and gone.doc["node"]["name"] == "school"
        assert gone.last_seen == first["school"].last_seen
    finally:
        gatherer.close()


def test_a_hanging_peer_does_not_hold_the_page(tmp_path: Path,
                                               fake_mesh: dict[str, Any]) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        own = fake_mesh["nodes"][0]
        gatherer = Gatherer(own.target, [f"127.0.0.1:{silent.getsockname()[1]}"],
                            timeout=60, wait_seconds=0.5)
        try:
            statuses = gatherer.statuses()
            found = {s.target: s for s in statuses}
            silent_target = f"127.0.0.1:{silent.getsockname()[1]}"
            assert found[own.target].up
            # The witness that the page did not wait for the silent peer (its 60 s timeout):
            # it is still being asked, not yet called down.
            assert not found[silent_target].asked
        finally:
            silent.close()  # the connection waiting in its queue is reset: the ask ends
            gatherer.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("meshhub-technicians")]


# --- the node page ---------------------------------------------------------------------

def svg_of(html: str, index: int = 0) -> ET.Element:
    """The ``index``-th inline SVG of a page, parsed (so it is well-formed XML)."""
    found = re.findall(r"<svg .*?</svg>", html, re.S)
    return ET.fromstring(found[index])  # noqa: S314 (our own page)


def test_the_node_page_has_graphs_alerts_and_neighbours(
        portal: Flask, fake_mesh: dict[str, Any]) -> None:
    client = portal.test_client()
    sign_in(client, TECHNICIAN)
    library, school, bakery = fake_mesh["nodes"]
    response = client.get(f"/technicians/nodes/{library.target}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Node library" in html and "library roof" in html
    assert "What to check:" in html and "The supply voltage is too low" in html
    # neighbours matched to known nodes by mesh address, with costs and quality
    assert f'href="/technicians/nodes/{school.target}"' in html
    assert "1,500" in html and "poor" in html
    graphs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(graphs) == 6
    cpu = svg_of(html, 0)
    assert cpu.find(f"{SVG}title").text == "CPU busy"
    assert "lowest" in cpu.find(f"{SVG}desc").text
    lines = cpu.findall(f".//{SVG}polyline")
    assert len(lines) == 2, "the two-hour gap in the history must break the line"
    points = sum(len(p.get("points").split()) for p in lines)
    assert 120 <= points <= 145  # 10-minute averages over a day, minus the gap
    assert "The numbers behind the graphs" in html and "<details" in html
    week = client.get(f"/technicians/nodes/{library.target}?period=week")
    assert week.status_code == 200 and 'aria-current="page">Last 7 days' in week.get_data(
        as_text=True)
    # The agent's check of the uplink: working and shared, or down with the reason.
    assert "Uplink</dt><dd><bdi>eth0</bdi>:" in html and "works, shared with the mesh" in html
    school_page = client.get(f"/technicians/nodes/{school.target}").get_data(as_text=True)
    assert '<span class="state-down">down</span>' in school_page
    assert "192.0.2.1:443: no answer within 1 s" in school_page
    assert "the mesh uses another uplink if it has one" in school_page
    bakery_page = client.get(f"/technicians/nodes/{bakery.target}").get_data(as_text=True)
    assert "Uplink</dt>" not in bakery_page  # not a gateway
    voltage = svg_of(school_page, 3)
    assert voltage.find(f".//{SVG}text[@class='no-data']") is not None  # no power monitor


def test_the_node_page_of_a_down_node_and_of_an_unknown_address(
        portal: Flask, fake_mesh: dict[str, Any]) -> None:
    client = portal.test_client()
    sign_in(client, TECHNICIAN)
    client.get("/technicians/")
    page = client.get(f"/technicians/nodes/{fake_mesh['dead']}").get_data(as_text=True)
    assert "Down" in page and "The history could not be read" in page
    # never an address that is not a known node's (no fetching on a URL's say-so)
    assert client.get("/technicians/nodes/192.0.2.99:80").status_code == 404
    assert client.get(f"/technicians/nodes/{fake_mesh['nodes'][0].target}?period=year"
                      ).status_code == 404


# --- the map -----------------------------------------------------------------------------

def test_the_map_draws_nodes_by_coordinates_and_links_by_quality(
        portal: Flask, fake_mesh: dict[str, Any]) -> None:
    client = portal.test_client()
    sign_in(client, TECHNICIAN)
    html = client.get("/technicians/map").get_data(as_text=True)
    assert "placed by their coordinates" in html
    svg = svg_of(html)
    assert svg.find(f"{SVG}title").text == "Map of the mesh"
    nodes = svg.findall(f".//{SVG}g[@class='node']")
    assert len(nodes) == 5  # three nodes, the dead peer, and 10.42.9.9 heard by the bakery
    assert sorted(n.get("data-up") for n in nodes) == ["false", "true", "true", "true",
                                                       "unknown"]
    drawn = svg.findall(f".//{SVG}g[@class='links']/{SVG}line")
    links = {line.get("data-quality") for line in drawn}
    assert links == {"good", "fair", "poor"}
    dashes = {line.get("data-quality"): line.get("stroke-dasharray")
              for line in svg.findall(f".//{SVG}g[@class='links']/{SVG}line")}
    assert dashes["good"] is None and dashes["fair"] != dashes["poor"]
    assert "1,500" in html or ">1500<" in html
    # the library (west) is left of the bakery (east), the school (north) above both
    place = {}
    for group in nodes:
        label = group.find(f"{SVG}text").text
        circle = group.find(f"{SVG}circle")
        place[label.split(" ")[0]] = (float(circle.get("cx")), float(circle.get("cy")))
    assert place["library"][0] < place["bakery"][0]
    assert place["school"][1] < place["library"][1] and place["school"][1] < place["bakery"][1]


# --- page weight -------------------------------------------------------------------------

def test_pages_stay_under_50_kb_with_20_nodes(tmp_path: Path, portal: Flask,
                                              fake_mesh: dict[str, Any]) -> None:
    library = fake_mesh["nodes"][0]
    template = library.monitor.latest()
    assert template is not None
    docs: dict[str, dict[str, Any]] = {}
    for i in range(20):
        doc = {**template, "node": {**template["node"], "name": f"node-{i:02d}",
                                    "coordinates": [51.5 + i * 0.001, -0.12 + (i % 5) * 0.002]},
               "mesh": mesh_part([(f"10.42.0.{(i + k) % 20 + 1}", 200 + 90 * k)
                                  for k in (1, 2, 3)]),
               "network": {**template["network"],
                           "interfaces": {"mesh0": {"up": True, "ipv4": [f"10.42.0.{i + 1}"]}}}}
        docs[f"127.0.0.1:{20000 + i}" if i else library.target] = doc

    def fetch(target: str, timeout: float) -> dict[str, Any]:
        return docs[target]

    portal.extensions[GATHERER_KEY] = Gatherer(library.target, list(docs)[1:], fetch=fetch)
    client = portal.test_client()
    sign_in(client, TECHNICIAN)
    css = len(client.get("/static/hub.css").data)
    for url in ("/technicians/", "/technicians/map", f"/technicians/nodes/{library.target}",
                f"/technicians/nodes/{library.target}?period=week"):
        response = client.get(url)
        assert response.status_code == 200, url
        size = len(response.data) + css
        assert size < 50 * 1024, f"{url}: {size} bytes with 20 nodes"
    assert "20 of 20 nodes answer" in client.get("/technicians/").get_data(as_text=True)
