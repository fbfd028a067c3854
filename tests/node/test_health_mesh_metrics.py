"""/metrics from the mesh part the agent really produces: babeld's neighbours, routes, nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from node.config import parse_config
from node.health import AlertTracker, Collector, Thresholds
from node.health.metrics import make_registry
from node.mesh import MeshService
from tests.node.test_health_collector import fake_sources, settings
from tests.node.test_health_mesh_alerts import NODE3_LINK, fixture_lines, mesh_service
from tests.node.test_health_metrics import promtool_check, samples

NODE1_LINK = "fe80::4c4e:f8ff:fe87:2c46"


def exposition(mesh: Any) -> str:
    """The /metrics text of one sample whose mesh part is ``mesh()``."""
    doc = Collector(settings(), fake_sources(mesh=mesh)).sample()
    tracker = AlertTracker(Thresholds())
    tracker.update(doc)
    alerts = [a.as_dict() for a in tracker.active.values()]
    return generate_latest(make_registry(
        lambda: (doc, alerts, tracker.evaluated_kinds(doc)))).decode()


def test_mesh_series_from_babeld_output(tmp_path: Path) -> None:
    service = mesh_service(tmp_path)
    service.state.feed(fixture_lines("monitor-neighbour-killed.txt")[:20])  # both alive
    text = exposition(service.health)
    found = samples(text)
    node3 = (("interface", "m-3"), ("neighbour", NODE3_LINK))
    assert found[("meshhub_mesh_neighbours", ())] == 2
    assert found[("meshhub_mesh_neighbour_cost", node3)] == 96
    assert found[("meshhub_mesh_neighbour_rxcost", node3)] == 96
    assert found[("meshhub_mesh_neighbour_txcost", node3)] == 96
    assert found[("meshhub_mesh_neighbour_reachability_ratio", node3)] == 15 / 16  # fffe
    assert found[("meshhub_mesh_neighbour_info", (*node3[:1], ("neighbour", NODE3_LINK),
                                                  ("node", "10.42.0.3")))] == 1
    assert found[("meshhub_mesh_routes", ())] == 2
    assert found[("meshhub_mesh_nodes", ())] == 2
    kinds = {dict(labels)["kind"] for name, labels in found if name == "meshhub_alert_active"}
    assert {"node_lost", "link_degraded"} <= kinds
    assert found[("meshhub_alert_active", (("kind", "node_lost"),))] == 0
    done = promtool_check(text)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == ""  # not even a lint warning


def test_a_dying_link_keeps_its_cost_series_but_is_not_counted(tmp_path: Path) -> None:
    service = mesh_service(tmp_path)
    lines = fixture_lines("monitor-neighbour-killed.txt")
    dying = next(i for i, line in enumerate(lines)
                 if NODE3_LINK in line and "cost 65535" in line)
    service.state.feed(lines[:dying + 1])
    found = samples(exposition(service.health))
    node3 = (("interface", "m-3"), ("neighbour", NODE3_LINK))
    assert found[("meshhub_mesh_neighbours", ())] == 1
    assert found[("meshhub_mesh_neighbour_cost", node3)] == 65535
    service.state.feed(lines[dying + 1:])  # flushed
    found = samples(exposition(service.health))
    assert ("meshhub_mesh_neighbour_cost", node3) not in found
    assert found[("meshhub_mesh_neighbour_cost", (("interface", "m-1"),
                                                  ("neighbour", NODE1_LINK)))] == 96
    assert found[("meshhub_mesh_nodes", ())] == 1


def test_no_mesh_data_means_no_mesh_series(tmp_path: Path) -> None:
    routing_off = MeshService(parse_config(f'[node]\nname = "n9"\n[agent]\n'
                                           f'run_dir = "{tmp_path}"\n'))
    disconnected = mesh_service(tmp_path)
    disconnected.state.reset(connected=False)  # babeld not running
    for source in (routing_off.health, disconnected.health):
        assert source() is None
        names = {name for name, _ in samples(exposition(source))}
        assert "meshhub_cpu_usage_ratio" in names
        assert not [n for n in names if n.startswith("meshhub_mesh_")]


def test_babeld_running_with_no_neighbours_is_zero_not_absent(tmp_path: Path) -> None:
    service = mesh_service(tmp_path)  # connected, nothing heard yet
    found = samples(exposition(service.health))
    assert found[("meshhub_mesh_neighbours", ())] == 0
    assert found[("meshhub_mesh_routes", ())] == 0
    assert found[("meshhub_mesh_nodes", ())] == 0


def test_odd_neighbour_entries_do_not_break_the_exposition() -> None:
    mesh = {"neighbours": [{"address": "fe80::1", "interface": "m0", "cost": 96},
                           {"address": "fe80::1", "interface": "m0", "cost": 97},  # duplicate
                           {"address": 'fe80::"\\\n', "interface": "m\n1", "cost": "x"},
                           {"interface": "m2", "cost": 5}, "junk"],
            "routes": None, "nodes": "not a list"}
    text = exposition(lambda: mesh)
    found = samples(text)
    assert found[("meshhub_mesh_neighbour_cost", (("interface", "m0"),
                                                  ("neighbour", "fe80::1")))] == 96
    assert found[("meshhub_mesh_neighbours", ())] == 1
    assert not [n for n, _ in found if n in ("meshhub_mesh_routes", "meshhub_mesh_nodes")]
    done = promtool_check(text)
    assert done.returncode == 0, done.stdout + done.stderr
