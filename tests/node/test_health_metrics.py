"""/metrics: Prometheus names and units, checked by promtool; absent means no series."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from node.health import AlertTracker, Collector, NetCounters, SensorReading, Thresholds
from node.health.metrics import make_registry
from tests.conftest import require_tool
from tests.node.test_health_collector import NftRunner, fake_sources, settings


def exposition(tmp_path: Path, **overrides: object) -> str:
    doc = Collector(settings(), fake_sources(**overrides)).sample()
    tracker = AlertTracker(Thresholds())
    tracker.update(doc)
    alerts = [a.as_dict() for a in tracker.active.values()]
    registry = make_registry(lambda: (doc, alerts, tracker.evaluated_kinds(doc)))
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    require_tool("promtool")
    return subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=30, check=False)


def test_promtool_accepts_the_metrics(tmp_path: Path) -> None:
    text = exposition(tmp_path)
    done = promtool_check(text)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == ""  # not even a lint warning


def test_values_and_names(tmp_path: Path) -> None:
    found = samples(exposition(tmp_path))
    assert found[("meshhub_cpu_usage_ratio", ())] == 0.125
    assert found[("meshhub_memory_used_bytes", ())] == 212 * 2**20
    assert found[("meshhub_soc_temperature_celsius", ())] == pytest.approx(48.312)
    assert found[("meshhub_network_receive_bytes_total", (("interface", "eth0"),))] == 1000
    assert found[("meshhub_network_up", (("interface", "wlan0"),))] == 0
    assert found[("meshhub_throttling_flag", (("flag", "under_voltage"),))] == 1
    assert found[("meshhub_gate_allowed_clients", ())] == 3
    assert found[("meshhub_dhcp_leases", ())] == 3
    assert found[("meshhub_service_up", (("service", "dnsmasq"),))] == 0
    assert found[("meshhub_alert_active", (("kind", "service_down"),))] == 1
    assert found[("meshhub_alert_active", (("kind", "too_hot"),))] == 0
    assert found[("meshhub_storage_life_used_ratio", (("device", "mmcblk0"), ("type", "A")))
                 ] == 0.2
    info = [k for k in found if k[0] == "meshhub_build_info"]
    assert dict(info[0][1])["model"] == "Raspberry Pi 4 Model B Rev 1.4"


def test_absent_things_have_no_series(tmp_path: Path) -> None:
    text = exposition(tmp_path, runner=NftRunner(1, "", "Error: No such file or directory"),
                      soc_temperature_celsius=lambda: None)
    names = {name for name, _ in samples(text)}
    assert "meshhub_gate_allowed_clients" not in names
    assert "meshhub_soc_temperature_celsius" not in names
    kinds = {dict(labels)["kind"] for name, labels in samples(text)
             if name == "meshhub_alert_active"}
    assert "node_lost" not in kinds and "link_degraded" not in kinds  # no mesh data yet
    assert not any("neighbour" in n or "route" in n for n in names)


def test_twenty_sensors_and_fifty_interfaces_pass_promtool(tmp_path: Path) -> None:
    sensors = [SensorReading(f"power{i}", "power", "ina226", i % 7 != 0,
                             {"bus_voltage_volts": 12.0 + i / 10, "current_amperes": 0.5,
                              "power_watts": 6.0} if i % 7 else {}, "no ACK")
               for i in range(20)]
    interfaces = {f"veth{i}": NetCounters(i * 100, i * 50, i, i, 0, 0) for i in range(50)}
    text = exposition(tmp_path, sensors=lambda: sensors, net_counters=lambda: interfaces)
    found = samples(text)
    assert found[("meshhub_power_bus_voltage_volts", (("sensor", "power3"),))] == 12.3
    assert ("meshhub_power_bus_voltage_volts", (("sensor", "power7"),)) not in found
    assert found[("meshhub_sensor_up", (("chip", "ina226"), ("sensor", "power7")))] == 0
    assert found[("meshhub_alert_active", (("kind", "sensor_unavailable"),))] == 3
    assert len([k for k in found if k[0] == "meshhub_network_transmit_bytes_total"]) == 50
    done = promtool_check(text)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_sample_yet_means_no_metrics() -> None:
    registry = make_registry(lambda: (None, [], []))
    assert generate_latest(registry) == b""
