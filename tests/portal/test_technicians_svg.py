"""The technicians' building blocks on their own: SVG output, the series endpoint, roles."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import cli
from node.config import ConfigError, parse_config
from node.errors import PermissionDenied
from node.health import AlertTracker, Collector, HealthMonitor, HealthRing, Thresholds
from node.health.alerts import KINDS
from node.health.api import create_app
from portal.technicians.labels import ALERT_TEXTS
from portal.technicians.svg import (
    QUALITIES,
    Chart,
    MapLink,
    MapNode,
    line_chart,
    mesh_map,
    nice_ticks,
    quality_of,
)
from tests.node.test_health_collector import fake_sources, settings

SVG = "{http://www.w3.org/2000/svg}"


def chart(**overrides: Any) -> Chart:
    values: dict[str, Any] = {
        "title": "CPU busy", "desc": "CPU over the day", "start": 0.0, "end": 1000.0,
        "step": 100.0, "format_value": lambda v: f"{v:.0%}",
        "format_time": lambda t: f"t{t:.0f}", "time_ticks": [0.0, 500.0, 1000.0],
        "y_min": 0.0, "y_max": 1.0}
    values.update(overrides)
    return Chart(**values)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # noqa: S314 (our own output) raises if not well-formed
    assert root.tag == f"{SVG}svg"
    return root


def test_a_line_chart_scales_points_into_the_plot_with_axes_and_labels() -> None:
    points = [(t * 100.0, t / 10) for t in range(11)]
    root = parse(line_chart(chart(), points, "cpu"))
    assert root.get("role") == "img" and root.get("aria-labelledby") == "cpu-t cpu-d"
    assert root.find(f"{SVG}title").text == "CPU busy"
    assert root.find(f"{SVG}desc").text == "CPU over the day"
    (line,) = root.findall(f".//{SVG}polyline")
    coords = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(coords) == 11
    xs, ys = [c[0] for c in coords], [c[1] for c in coords]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # time right, value up
    assert xs[0] == 64 and xs[-1] == 600 - 14  # the plot's left and right edges
    assert ys[0] == 190 - 30 and ys[-1] == 12  # 0 at the bottom, 1 at the top
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert {"0%", "50%", "100%", "t0", "t500", "t1000"} <= set(labels)


def test_gaps_break_the_line_and_lone_values_are_dots() -> None:
    points = [(0.0, 0.1), (100.0, 0.2), (200.0, None), (300.0, 0.3), (400.0, 0.4),
              (900.0, 0.5)]  # None, then a silence of five steps
    root = parse(line_chart(chart(), points, "g"))
    assert len(root.findall(f".//{SVG}polyline")) == 2
    assert len(root.findall(f".//{SVG}circle")) == 1


def test_an_empty_or_flat_series_still_draws_a_valid_graph() -> None:
    empty = parse(line_chart(chart(y_min=None, y_max=None, no_data="Nothing yet"), [], "e"))
    assert empty.find(f".//{SVG}text[@class='no-data']").text == "Nothing yet"
    assert not empty.findall(f".//{SVG}polyline")
    flat = parse(line_chart(chart(y_min=None, y_max=None, format_value=str),
                            [(0.0, 12.0), (100.0, 12.0)], "f"))
    (line,) = flat.findall(f".//{SVG}polyline")
    ys = {float(p.split(",")[1]) for p in line.get("points").split()}
    assert len(ys) == 1 and 12 < ys.pop() < 190 - 30  # inside the plot, not on an edge


def test_text_is_escaped() -> None:
    root = parse(line_chart(chart(title="<b>&", desc="a < b"), [], "x"))
    assert root.find(f"{SVG}title").text == "<b>&"


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    ticks = nice_ticks(41.3, 54.8)
    assert ticks[0] <= 41.3 and ticks[-1] >= 54.8 and len(ticks) <= 7
    assert nice_ticks(float("nan"), 1) == []


def test_link_quality_follows_babeld_costs() -> None:
    assert [quality_of(c, 1024) for c in (96, 256, 400, 1023, 1024, 65535, None)] == [
        "good", "good", "fair", "fair", "poor", "poor", "unknown"]


def map_svg(nodes: list[MapNode], links: list[MapLink]) -> tuple[ET.Element, bool]:
    svg, geographic = mesh_map(nodes, links, title="Map", desc="3 nodes", up_label="up",
                               down_label="down", unknown_label="?", legend_title="Links:",
                               quality_labels={k: k for k in QUALITIES}, no_nodes="none")
    return parse(svg), geographic


def test_the_map_uses_coordinates_when_there_are_some_and_a_circle_otherwise() -> None:
    nodes = [MapNode("a", "west", True, (51.50, -0.13)), MapNode("b", "east", True, (51.50, -0.10)),
             MapNode("c", "north", False, (51.52, -0.115), href="/n/c"),
             MapNode("d", "nowhere", None)]
    links = [MapLink("a", "b", 200, "good"), MapLink("a", "c", 2000, "poor"),
             MapLink("a", "zz", 5, "good")]  # a link to no drawn node is left out
    root, geographic = map_svg(nodes, links)
    assert geographic
    drawn = root.findall(f".//{SVG}g[@class='links']/{SVG}line")
    assert [d.get("data-quality") for d in drawn] == ["good", "poor"]
    assert drawn[1].get("stroke-dasharray") == QUALITIES["poor"][1]  # not colour alone
    places = {g.find(f"{SVG}text").text.split(" ")[0]: g.find(f"{SVG}circle")
              for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    x = {k: float(c.get("cx")) for k, c in places.items()}
    y = {k: float(c.get("cy")) for k, c in places.items()}
    assert x["west"] < x["north"] < x["east"] and y["north"] < y["west"]
    assert y["nowhere"] > max(y["west"], y["east"], y["north"])  # the bottom row
    assert root.find(f".//{SVG}a").get("href") == "/n/c"
    legend = [t.text for t in root.findall(f".//{SVG}g[@class='legend']/{SVG}text")]
    assert legend == ["Links:", "good", "fair", "poor", "unknown"]
    circle, circular = map_svg([MapNode(k, k, True) for k in "abc"], [])
    assert not circular
    assert len(circle.findall(f".//{SVG}g[@class='node']")) == 3
    empty, _ = map_svg([], [])
    assert "none" in [t.text for t in empty.iter(f"{SVG}text")]


def test_alert_texts_repeat_the_agents_words() -> None:
    assert set(ALERT_TEXTS) == set(KINDS)
    for kind, (title, check) in ALERT_TEXTS.items():
        assert title._args[0] == KINDS[kind].title, kind  # type: ignore[attr-defined]
        assert check._args[0] == KINDS[kind].check, kind  # type: ignore[attr-defined]


# --- the agent's /api/health/series ---------------------------------------------------

def call(app: Any, path: str, query: str) -> tuple[str, Any]:
    seen: dict[str, str] = {}

    def start(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(app({"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET",
                         "wsgi.input": io.BytesIO()}, start))
    return seen["status"], json.loads(body)


def test_the_series_endpoint_averages_per_step_including_unwritten_samples(
        tmp_path: Path) -> None:
    clock = {"now": 1_800_000_000.0}
    cpu = {"percent": 10.0}
    monitor = HealthMonitor(
        Collector(settings(), fake_sources(clock=lambda: clock["now"],
                                           cpu_usage_percent=lambda: cpu["percent"])),
        AlertTracker(Thresholds()),
        HealthRing(tmp_path / "h.sqlite3", capacity=100, write_interval_seconds=10_000,
                   clock=lambda: clock["now"]))
    try:
        for percent in (10, 30, 50, 70):  # two per 60 s bucket
            cpu["percent"] = percent
            monitor.tick()
            clock["now"] += 30
        monitor.ring.flush()
        cpu["percent"] = 90
        monitor.tick()  # queued in memory: still counted
        app = create_app(monitor)
        status, body = call(app, "/api/health/series", "since=1799999000&step=60")
        assert status == "200 OK"
        assert body["columns"][:3] == ["time", "samples", "cpu_ratio"]
        rows = body["points"]
        assert [r[1] for r in rows] == [2, 2, 1]
        assert [round(r[2], 3) for r in rows] == [0.2, 0.6, 0.9]
        assert rows[0][body["columns"].index("voltage_volts")] is None  # no power monitor
        assert rows[0][body["columns"].index("disk_ratio")] == 0.25
        assert call(app, "/api/health/series", "since=0&step=10")[0].startswith("400")
        assert call(app, "/api/health/series", "step=1")[0].startswith("400")
    finally:
        monitor.close()


# --- the technician role end to end --------------------------------------------------

def test_a_technician_account_reads_but_cannot_post(tmp_path: Path) -> None:
    from node.hub import open_hub

    config_path = tmp_path / "node.toml"
    config_path.write_text(f'[node]\ndata_dir = "{tmp_path / "data"}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config_path), "organiser", "add", "tess",
                                      "--role", "technician", "--password-stdin"],
                                input="tess-password-1\n")
    assert result.exit_code == 0, result.output
    assert "created technician tess" in result.output
    listed = CliRunner().invoke(cli, ["--config", str(config_path), "organiser", "list"])
    assert "technician" in listed.output
    store, hub = open_hub(parse_config(config_path.read_text(), config_path))
    try:
        with pytest.raises(PermissionDenied, match="technician"):
            hub.post_notice("tess", title="Hello", body="World")
        hub.set_password("tess", "tess", "another-password-2")  # one's own: allowed
        with pytest.raises(PermissionDenied):
            hub.set_role("tess", "tess", "admin")
    finally:
        store.close()


def test_coordinates_are_checked_in_node_toml() -> None:
    cfg = parse_config('[node]\ncoordinates = "51.5072, -0.1276"\n')
    assert cfg.get("node.coordinates") == "51.5072, -0.1276"
    for bad in ("north", "91, 0", "1, 2, 3", "nan, nan"):
        with pytest.raises(ConfigError, match="latitude, longitude"):
            parse_config(f'[node]\ncoordinates = "{bad}"\n')


def test_the_table_row_carries_the_update_state() -> None:
    from portal.technicians.gather import NodeStatus
    from portal.technicians.summary import row

    doc = {"time": 1000.0, "node": {"version": "0.1.0"},
           "update": {"running": "0.1.0", "held": "0.2.0", "step": "checking", "paused": False}}
    status = NodeStatus(target="10.42.0.2:9180", doc=doc, last_seen=1000.0, asked=True)
    line = row(status, now=1001.0)
    assert line.version == "0.1.0" and line.update["step"] == "checking"
    assert row(NodeStatus(target="x:1", asked=True, error="down"), now=1.0).update == {}
