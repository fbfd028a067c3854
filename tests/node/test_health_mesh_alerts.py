"""node_lost and link_degraded on samples shaped exactly as the agent makes them.

The mesh part comes from :meth:`node.mesh.MeshService.health` fed with babeld
output captured from a real babeld (``tests/fixtures/babel/``, see
``test_mesh_state.py``): ``monitor-neighbour-killed.txt`` is node 2's stream
while node 3's babeld was killed (its link goes to cost 65535, then is flushed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from node.config import parse_config
from node.health import AlertTracker, Thresholds
from node.mesh import MeshService

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "babel"
NODE3_LINK = "fe80::b498:47ff:fec6:9f02"


def mesh_service(tmp_path: Path, name: str = "n2", address: str = "10.42.0.2") -> MeshService:
    """A node's mesh service with routing on, its state fed by hand (nothing started)."""
    cfg = parse_config(f'[node]\nname = "{name}"\n[mesh]\naddress = "{address}"\n'
                       f'routing = true\n[agent]\nrun_dir = "{tmp_path}"\n')
    service = MeshService(cfg)
    service.state.reset(connected=True)
    return service


def fixture_lines(name: str) -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def sample(t: float, mesh: Any) -> dict[str, Any]:
    """A health sample with nothing wrong but what the mesh part says."""
    return {"time": t, "disk": {"path": "/data", "used_ratio": 0.1, "wear": None},
            "soc": {"temperature_celsius": 40.0, "throttling": None}, "sensors": [],
            "network": {"uplink": {"interface": None, "present": None}}, "services": {},
            "mesh": mesh}


def test_a_killed_neighbour_is_lost_after_the_threshold(tmp_path: Path) -> None:
    service = mesh_service(tmp_path)
    tracker = AlertTracker(Thresholds(node_lost_seconds=10))
    events: list[tuple[float, str, str, str]] = []
    last_usable = None
    for t, line in enumerate(fixture_lines("monitor-neighbour-killed.txt")):
        service.state.feed([line])
        health = service.health()
        if any(n["address"] == NODE3_LINK and n["cost"] < 65535
               for n in health["neighbours"]):  # type: ignore[index]
            last_usable = t
        started, ended = tracker.update(sample(t, health))
        events += [(t, "start", a.kind, a.subject) for a in started]
        events += [(t, "end", a.kind, a.subject) for a in ended]
    assert last_usable is not None
    # Named by the mesh address it announced, although babeld stopped routing to it
    # (and then flushed the link) before the alert; raised once, 10 s after it was last heard.
    assert events == [(last_usable + 10, "start", "node_lost", "10.42.0.3")]
    alert = tracker.active[("node_lost", "10.42.0.3")]
    assert f"{NODE3_LINK} on m-3" in alert.detail and "alert after 10 s" in alert.detail
    assert alert.as_dict()["title"] == "A neighbour node stopped answering"
    # Node 3 comes back: the alert ends.
    service.state.feed([f"add neighbour 1 address {NODE3_LINK} if m-3 reach 8000 ureach 0 "
                        "rxcost 96 txcost 96 cost 96"])
    started, ended = tracker.update(sample(1000, service.health()))
    assert started == [] and [(a.kind, a.subject, a.ended) for a in ended] == [
        ("node_lost", "10.42.0.3", 1000)]


def test_a_short_silence_is_not_a_lost_node(tmp_path: Path) -> None:
    service = mesh_service(tmp_path)
    tracker = AlertTracker(Thresholds(node_lost_seconds=60))
    last_usable = 0.0
    for i, line in enumerate(fixture_lines("monitor-neighbour-killed.txt")):
        service.state.feed([line])  # a line every 0.1 s: the whole capture spans 16 s
        health = service.health()
        if any(n["address"] == NODE3_LINK and n["cost"] < 65535
               for n in health["neighbours"]):  # type: ignore[index]
            last_usable = i / 10
        assert tracker.update(sample(i / 10, health)) == ([], [])
    assert tracker.update(sample(last_usable + 59.9, service.health())) == ([], [])
    started, _ = tracker.update(sample(last_usable + 60, service.health()))
    assert [(a.kind, a.subject) for a in started] == [("node_lost", "10.42.0.3")]


def test_babeld_restarting_is_not_every_neighbour_lost(tmp_path: Path) -> None:
    service = mesh_service(tmp_path, "n1", "10.42.0.1")
    tracker = AlertTracker(Thresholds(node_lost_seconds=60))
    service.state.feed(fixture_lines("dump-line3-end.txt"))
    assert tracker.update(sample(0, service.health())) == ([], [])
    service.state.reset(connected=False)  # babeld died; the agent restarts it
    assert service.health() is None
    for t in range(30, 300, 30):
        assert tracker.update(sample(t, None)) == ([], [])
    service.state.reset(connected=True)  # back, but no hello heard yet
    assert tracker.update(sample(300, service.health())) == ([], [])
    service.state.feed(fixture_lines("dump-line3-end.txt"))
    assert tracker.update(sample(330, service.health())) == ([], [])
    # Silent for 60 s after babeld came back: now it is lost.
    service.state.reset(connected=True)
    tracker.update(sample(360, service.health()))
    started, _ = tracker.update(sample(420, service.health()))
    assert [(a.kind, a.subject) for a in started] == [("node_lost", "10.42.0.2")]
    # Without mesh data the active alert is neither confirmed nor cleared.
    assert tracker.update(sample(450, None)) == ([], [])
    assert ("node_lost", "10.42.0.2") in tracker.active
    assert "node_lost" not in tracker.evaluated_kinds(sample(450, None))


def test_a_costly_link_is_degraded_until_it_recovers(tmp_path: Path) -> None:
    service = mesh_service(tmp_path, "n1", "10.42.0.1")
    tracker = AlertTracker(Thresholds(link_degraded_cost=1024, node_lost_seconds=60))
    service.state.feed(fixture_lines("dump-line3-end.txt"))
    assert tracker.update(sample(0, service.health())) == ([], [])
    link = "change neighbour 55a1dc54d630 address fe80::acc3:7dff:fec6:f20e if m-2"
    service.state.feed([f"{link} reach ff00 ureach 0000 rxcost 1536 txcost 96 cost 1632"])
    started, _ = tracker.update(sample(30, service.health()))
    assert [(a.kind, a.subject) for a in started] == [("link_degraded", "10.42.0.2 on m-2")]
    assert "link cost 1632" in started[0].detail and "8/16 hellos heard" in started[0].detail
    service.state.feed([f"{link} reach ffff ureach 0000 rxcost 96 txcost 96 cost 96"])
    started, ended = tracker.update(sample(60, service.health()))
    assert started == [] and [(a.kind, a.started, a.ended) for a in ended] == [
        ("link_degraded", 30, 60)]


def test_a_dead_link_is_lost_not_degraded(tmp_path: Path) -> None:
    service = mesh_service(tmp_path, "n1", "10.42.0.1")
    tracker = AlertTracker(Thresholds(link_degraded_cost=1024, node_lost_seconds=0))
    service.state.feed(fixture_lines("dump-line3-end.txt"))
    tracker.update(sample(0, service.health()))
    service.state.feed(["change neighbour 55a1dc54d630 address fe80::acc3:7dff:fec6:f20e "
                        "if m-2 reach 0000 ureach 0000 rxcost 65535 txcost 96 cost 65535"])
    started, _ = tracker.update(sample(5, service.health()))
    assert [(a.kind, a.subject) for a in started] == [("node_lost", "10.42.0.2")]


def test_garbage_in_the_mesh_part_raises_nothing() -> None:
    tracker = AlertTracker(Thresholds(node_lost_seconds=0))
    for t, mesh in enumerate([{"neighbours": None}, {"neighbours": ["x", 3, None]},
                              {"neighbours": [{"address": "fe80::1", "cost": "high"}]},
                              {"neighbours": [{"cost": 5000}]}, {}]):
        assert tracker.update(sample(t, mesh)) == ([], [])
