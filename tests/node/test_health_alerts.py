"""Alerts start and end with the conditions, and say what to check."""

from __future__ import annotations

from typing import Any

from node.health import KINDS, AlertTracker, Thresholds


def doc(t: float, **parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "time": t, "disk": {"path": "/var/lib/meshhub", "used_ratio": 0.5, "wear": None},
        "soc": {"temperature_celsius": 50.0, "throttling": None}, "sensors": [],
        "network": {"uplink": {"interface": "eth0", "present": True}}, "services": {},
        "mesh": None}
    base.update(parts)
    return base


def test_an_alert_has_a_start_an_end_and_advice() -> None:
    tracker = AlertTracker(Thresholds(too_hot_celsius=75))
    assert tracker.update(doc(100)) == ([], [])
    started, ended = tracker.update(doc(130, soc={"temperature_celsius": 81.0}))
    assert [(a.kind, a.subject, a.started) for a in started] == [("too_hot", "soc", 130)]
    assert "81.0 °C" in started[0].detail and ended == []
    assert tracker.update(doc(160, soc={"temperature_celsius": 82.0})) == ([], [])
    started, ended = tracker.update(doc(190))
    assert started == [] and [(a.kind, a.started, a.ended) for a in ended] == [
        ("too_hot", 130, 190)]
    shown = ended[0].as_dict()
    assert shown["title"] == "The processor is too hot"
    assert "ventilation" in shown["check"]


def test_each_condition_raises_its_kind() -> None:
    tracker = AlertTracker(Thresholds(disk_full_percent=90, low_voltage_volts=11.8,
                                      uplink_required=True))
    started, _ = tracker.update(doc(
        1, disk={"path": "/data", "used_ratio": 0.95,
                 "wear": {"device": "mmcblk0", "life_used_a_ratio": 1.1,
                          "life_used_b_ratio": 0.2, "pre_eol": "normal"}},
        soc={"temperature_celsius": 40.0,
             "throttling": {"under_voltage": True, "throttled": False,
                            "frequency_capped": True, "under_voltage_occurred": True}},
        sensors=[{"name": "power", "available": True, "values": {"bus_voltage_volts": 11.5}},
                 {"name": "environment", "available": False, "reason": "no ACK at 0x76"}],
        network={"uplink": {"interface": "eth0", "present": False}},
        services={"dnsmasq": "down", "nginx": "up", "babeld": "unknown"}))
    assert sorted((a.kind, a.subject) for a in started) == [
        ("disk_full", "/data"), ("sd_wear", "mmcblk0"), ("sensor_unavailable", "environment"),
        ("service_down", "dnsmasq"), ("throttled", "soc"), ("undervoltage", "power"),
        ("undervoltage", "supply"), ("uplink_down", "eth0")]


def test_uplink_down_only_where_an_uplink_is_configured() -> None:
    tracker = AlertTracker(Thresholds(uplink_required=False))
    started, _ = tracker.update(doc(1, network={"uplink": {"interface": None,
                                                           "present": False}}))
    assert started == []


def test_mesh_alerts_are_declared_but_not_evaluated_without_mesh_data() -> None:
    assert KINDS["node_lost"].needs_mesh and KINDS["link_degraded"].needs_mesh
    tracker = AlertTracker(Thresholds())
    tracker.update(doc(1))
    assert "node_lost" not in tracker.evaluated_kinds(doc(1))
    assert "node_lost" in tracker.evaluated_kinds(doc(1, mesh={"neighbours": []}))


def test_mesh_alerts_once_neighbour_data_exists() -> None:
    tracker = AlertTracker(Thresholds(link_degraded_cost=1024, node_lost_seconds=0))
    two = {"neighbours": [{"address": "fe80::1", "cost": 256},
                          {"address": "fe80::2", "cost": 2000}]}
    started, _ = tracker.update(doc(1, mesh=two))
    assert [(a.kind, a.subject) for a in started] == [("link_degraded", "fe80::2")]
    started, ended = tracker.update(doc(2, mesh={"neighbours": [
        {"address": "fe80::2", "cost": 300}]}))
    assert [(a.kind, a.subject) for a in started] == [("node_lost", "fe80::1")]
    assert [(a.kind, a.subject) for a in ended] == [("link_degraded", "fe80::2")]
    assert tracker.update(doc(3, mesh={"neighbours": [{"address": "fe80::2", "cost": 300}]})
                          ) == ([], [])  # still lost, not re-raised
    _, ended = tracker.update(doc(4, mesh=two | {"neighbours": [
        {"address": "fe80::1", "cost": 256}, {"address": "fe80::2", "cost": 300}]}))
    assert [(a.kind, a.subject, a.started, a.ended) for a in ended] == [
        ("node_lost", "fe80::1", 2, 4)]


def test_every_kind_explains_itself() -> None:
    for kind in KINDS.values():
        assert kind.title and len(kind.check) > 40, kind.kind
