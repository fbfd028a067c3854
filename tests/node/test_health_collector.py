"""The collector on fixture /sys trees, canned nft output and injected sources."""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hardware.sensors import SensorReader, standard_openers
from hardware.simulated import SimulatedI2CBus, SimulatedINA219
from node.health import Collector, CollectorSettings, NetCounters, SensorReading, Sources
from node.health.collector import MESH_ABSENT_NOTE
from node.health.hw import board_sources, sensor_source
from node.health.probes import (
    GateAllowedCount,
    count_dhcp_leases,
    systemd_service_states,
)
from node.logs import OnceLogger

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "health"
NOW = 1_800_000_000.0


class NftRunner:
    """Answers ``nft -j list set`` like the real nft did (outputs captured in a namespace)."""

    def __init__(self, status: int = 0, out: str = "", err: str = "") -> None:
        self.status, self.out, self.err = status, out, err
        self.calls: list[list[str]] = []

    @classmethod
    def fixture(cls, name: str) -> NftRunner:
        return cls(0, (FIXTURES / "nft" / name).read_text())

    def __call__(self, argv: Sequence[str]) -> tuple[int, str, str]:
        self.calls.append(list(argv))
        return self.status, self.out, self.err


def fake_sources(root: Path = FIXTURES / "root", **overrides: Any) -> Sources:
    """Deterministic sources: a 4-core board with two interfaces and the fixture /sys."""
    values: dict[str, Any] = {
        "cpu_usage_percent": lambda: 12.5,
        "cpu_count": lambda: 4,
        "load_average": lambda: (0.5, 0.25, 0.125),
        "memory": lambda: SimpleNamespace(total=512 * 2**20, available=300 * 2**20),
        "disk_usage": lambda path: SimpleNamespace(total=32 * 10**9, used=8 * 10**9,
                                                   free=24 * 10**9),
        "boot_time": lambda: NOW - 3600,
        "partition_of": lambda path: "/dev/mmcblk0p2",
        "net_counters": lambda: {"eth0": NetCounters(1000, 2000, 10, 20, 0, 1),
                                 "wlan0": NetCounters(5, 6, 7, 8, 9, 10)},
        "interfaces_up": lambda: {"eth0": True, "wlan0": False},
        "ipv4_addresses": lambda: {"eth0": ["192.0.2.10"]},
        "default_route_interfaces": lambda: {"eth0"},
        "service_states": lambda: {"nginx": "up", "dnsmasq": "down"},
        "runner": NftRunner.fixture("three.json"),
        "sys_root": root / "sys",
        "clock": lambda: NOW,
        **board_sources(root),
    }
    values.update(overrides)
    return Sources(**values)


def settings(**overrides: Any) -> CollectorSettings:
    base: dict[str, Any] = {"node_name": "library-roof", "data_dir": "/nonexistent/meshhub",
                            "leases_file": str(FIXTURES / "leases" / "dnsmasq.leases"),
                            "uplink_interface": "eth0"}
    base.update(overrides)
    return CollectorSettings(**base)


def test_sample_reads_every_part_from_fixtures() -> None:
    doc = Collector(settings(), fake_sources()).sample()
    assert doc["schema_version"] == 1
    assert doc["time"] == NOW
    assert doc["node"]["name"] == "library-roof"
    assert doc["node"]["model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert doc["uptime_seconds"] == 3600
    assert doc["cpu"] == {"usage_ratio": 0.125, "load1": 0.5, "load5": 0.25, "load15": 0.125,
                          "count": 4}
    assert doc["memory"]["used_bytes"] == 212 * 2**20
    assert doc["disk"]["used_ratio"] == 0.25
    assert doc["disk"]["wear"] == {"device": "mmcblk0", "life_used_a_ratio": 0.2,
                                   "life_used_b_ratio": 1.1, "pre_eol": "normal"}
    assert doc["soc"]["temperature_celsius"] == pytest.approx(48.312)
    flags = doc["soc"]["throttling"]  # 0x50005
    assert flags["under_voltage"] and flags["throttled"] and not flags["frequency_capped"]
    assert flags["under_voltage_occurred"] and flags["throttled_occurred"]
    assert doc["network"]["interfaces"]["eth0"]["transmit_bytes"] == 2000
    assert doc["network"]["interfaces"]["wlan0"]["up"] is False
    assert doc["network"]["uplink"] == {"interface": "eth0", "configured": True, "present": True}
    assert doc["clients"] == {"dhcp_leases": 3, "gate_allowed": 3}
    assert doc["services"] == {"nginx": "up", "dnsmasq": "down"}
    json.dumps(doc, allow_nan=False)  # strictly JSON


def test_mesh_is_absent_not_faked() -> None:
    doc = Collector(settings(), fake_sources()).sample()
    assert doc["mesh"] is None
    assert doc["mesh_note"] == MESH_ABSENT_NOTE


def test_uplink_follows_the_configured_interface() -> None:
    missing = Collector(settings(uplink_interface="wan0"), fake_sources()).sample()
    assert missing["network"]["uplink"]["present"] is False
    unconfigured = Collector(settings(uplink_interface=""), fake_sources(
        default_route_interfaces=lambda: set())).sample()
    assert unconfigured["network"]["uplink"] == {"interface": None, "configured": False,
                                                 "present": False}


def test_dnsmasq_leases_count_current_ipv4_leases() -> None:
    problems = OnceLogger(logging.getLogger("test"))
    path = FIXTURES / "leases" / "dnsmasq.leases"
    # two future leases and one infinite one; the expired one and the IPv6 line do not count
    assert count_dhcp_leases(path, problems, now=NOW) == 3
    assert count_dhcp_leases(path, problems, now=1_900_000_050) == 2
    assert count_dhcp_leases(Path("/nonexistent/leases"), problems) is None
    assert problems.summary() == {}


def test_garbage_leases_file_is_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    collector = Collector(settings(leases_file=str(FIXTURES / "leases" / "garbage.leases")),
                          fake_sources())
    with caplog.at_level(logging.WARNING, logger="meshhub.health"):
        counts = [collector.sample()["clients"]["dhcp_leases"] for _ in range(3)]
    assert counts == [1, 1, 1]
    lines = [r.getMessage() for r in caplog.records if "leases" in r.getMessage()]
    assert len(lines) == 1
    assert "skipped 4 malformed line(s), first at line 2" in lines[0]
    assert "garbage.leases" in lines[0]


def test_huge_leases_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from node.health import probes

    monkeypatch.setattr(probes, "MAX_INPUT_BYTES", 100)
    path = tmp_path / "leases"
    path.write_text("1900000000 aa:bb:cc:dd:ee:01 10.64.3.10 x *\n" * 10)
    problems = OnceLogger(logging.getLogger("test"))
    assert count_dhcp_leases(path, problems, now=NOW) is None
    assert list(problems.summary()) == [f"leases:{path}"]


def gate_allowed_count(runner: NftRunner, problems: OnceLogger) -> int | None:
    """One read of the allow set's size, as without nftables' generation."""
    return GateAllowedCount(runner, lambda: None)(problems)


def test_gate_allow_set_from_real_nft_output() -> None:
    problems = OnceLogger(logging.getLogger("test"))
    runner = NftRunner.fixture("three.json")
    assert gate_allowed_count(runner, problems) == 3
    assert runner.calls == [["nft", "-j", "list", "set", "inet", "meshhub", "allowed"]]
    assert gate_allowed_count(NftRunner.fixture("empty.json"), problems) == 0
    # no gate on this node: the table does not exist -> absent, and not a problem
    no_table = NftRunner(1, "", "Error: No such file or directory\nlist set inet meshhub allowed")
    assert gate_allowed_count(no_table, problems) is None
    assert gate_allowed_count(NftRunner(127, "", "nft: command not found"), problems) is None
    assert problems.summary() == {}


def test_gate_allow_set_is_read_again_only_when_it_may_have_changed() -> None:
    """nft (a process) runs when the ruleset's generation moved (any transaction: an
    element added or removed) or the soonest element timeout ran out, not at every sample."""
    runner = NftRunner.fixture("three.json")  # elements expire in 86399 s, 3599 s, never
    generation = [7]
    clock = [0.0]
    count = GateAllowedCount(runner, lambda: generation[0], clock=lambda: clock[0])
    problems = OnceLogger(logging.getLogger("test"))
    assert [count(problems) for _ in range(5)] == [3] * 5
    assert len(runner.calls) == 1
    generation[0] = 8  # e.g. the gate allowed a phone
    assert count(problems) == 3
    assert len(runner.calls) == 2
    clock[0] = 3598.0
    count(problems)
    assert len(runner.calls) == 2
    clock[0] = 3599.5  # the second element's timeout ran out
    count(problems)
    assert len(runner.calls) == 3
    unknown = NftRunner.fixture("three.json")
    without = GateAllowedCount(unknown, lambda: None)  # no generation: read every time
    assert [without(problems) for _ in range(3)] == [3] * 3
    assert len(unknown.calls) == 3


def test_nftables_generation_moves_with_a_transaction() -> None:
    """In a network namespace of its own (gone with the process): the generation read over
    netlink moves when nft changes the ruleset."""
    script = ("import subprocess; from node.health.probes import nftables_generation as g; "
              "a = g(); subprocess.run(['nft', 'add', 'table', 'inet', 't'], check=True); "
              "b = g(); print(a, b)")
    if shutil.which("unshare") is None or shutil.which("nft") is None:
        pytest.skip("needs unshare and nft")
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", script],
                          capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"no network namespace of its own here: {done.stderr.strip()[-200:]}")
    before, after = done.stdout.split()
    assert before != "None" and after != "None"
    assert int(after) > int(before)


def test_the_storage_is_looked_up_once_not_at_every_sample() -> None:
    looked: list[str] = []

    def partition_of(path: str) -> str:
        looked.append(path)
        return "/dev/mmcblk0p2"

    collector = Collector(settings(), fake_sources(partition_of=partition_of))
    wears = [collector.sample()["disk"]["wear"] for _ in range(3)]
    assert wears == [wears[0]] * 3 and wears[0]["device"] == "mmcblk0"
    assert len(looked) == 1


@pytest.mark.parametrize("runner", [
    NftRunner(1, "", "Error: Operation not permitted"),
    NftRunner(0, "{not json", ""),
    NftRunner(0, '{"nftables": [{"set": {"name": "allowed", "elem": 5}}]}', ""),
    NftRunner(0, '{"nftables": "nope"}', ""),
], ids=["not-root", "not-json", "elem-not-list", "wrong-shape"])
def test_gate_failures_are_absent_and_logged_once(runner: NftRunner,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    collector = Collector(settings(), fake_sources(runner=runner))
    with caplog.at_level(logging.WARNING, logger="meshhub.health"):
        assert [collector.sample()["clients"]["gate_allowed"] for _ in range(3)] == [None] * 3
    assert len(caplog.records) == 1
    assert collector.problems.summary() == {"gate:nft": 3}


def test_missing_sys_files_give_absent_values(tmp_path: Path) -> None:
    doc = Collector(settings(), fake_sources(root=tmp_path)).sample()
    assert doc["soc"] == {"temperature_celsius": None, "throttling": None}
    assert doc["disk"]["wear"] is None
    assert doc["node"]["model"] is None


def test_malformed_sys_files_are_absent_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    collector = Collector(settings(), fake_sources(root=FIXTURES / "broken"))
    with caplog.at_level(logging.WARNING):
        docs = [collector.sample() for _ in range(3)]
    assert all(d["soc"]["temperature_celsius"] is None for d in docs)
    assert all(d["disk"]["wear"] is None for d in docs)
    wear_lines = [r for r in caplog.records if "life_time" in r.getMessage()
                  or "pre_eol_info" in r.getMessage()]
    assert len(wear_lines) == 2  # one per file, not one per sample


def test_garbage_values_from_sources_become_absent() -> None:
    sources = fake_sources(
        cpu_usage_percent=lambda: math.nan,
        load_average=lambda: (math.inf, "high", 1e300),
        memory=lambda: SimpleNamespace(total=-5, available=2**70),
        soc_temperature_celsius=lambda: float("nan"),
        net_counters=lambda: {"eth0": NetCounters(-1, 2**64, 0, 0, 0, 0)})
    doc = Collector(settings(), sources).sample()
    assert doc["cpu"]["usage_ratio"] is None
    assert doc["cpu"]["load1"] is None and doc["cpu"]["load5"] is None
    assert doc["cpu"]["load15"] is None
    assert doc["memory"]["total_bytes"] is None and doc["memory"]["available_bytes"] is None
    assert doc["soc"]["temperature_celsius"] is None
    assert doc["network"]["interfaces"]["eth0"]["receive_bytes"] is None
    assert doc["network"]["interfaces"]["eth0"]["transmit_bytes"] is None
    json.dumps(doc, allow_nan=False)


def test_a_failing_source_is_logged_once_then_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    state = {"fail": True}

    def memory() -> Any:
        if state["fail"]:
            raise OSError(5, "Input/output error")
        return SimpleNamespace(total=100, available=40)

    collector = Collector(settings(), fake_sources(memory=memory))
    with caplog.at_level(logging.INFO, logger="meshhub"):
        for _ in range(4):
            assert collector.sample()["memory"]["used_bytes"] is None
        state["fail"] = False
        assert collector.sample()["memory"]["used_bytes"] == 60
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "memory" in warnings[0].getMessage()
    assert any("recovered after 4" in r.getMessage() for r in caplog.records)


def test_counts_are_capped_whatever_the_machine_reports() -> None:
    many = {f"veth{i}": NetCounters(i, i, i, i, 0, 0) for i in range(1000)}
    sensors = [SensorReading(f"s{i}", "power", "ina219", True,
                             {f"v{j}_volts": 1.0 for j in range(100)}) for i in range(500)]
    doc = Collector(settings(), fake_sources(net_counters=lambda: many,
                                             sensors=lambda: sensors)).sample()
    assert len(doc["network"]["interfaces"]) == 128
    assert len(doc["sensors"]) == 64
    assert len(doc["sensors"][0]["values"]) == 16
    assert len(json.dumps(doc)) < 256 * 1024


def test_sensors_through_the_hardware_package_and_degrading() -> None:
    bus = SimulatedI2CBus({0x40: SimulatedINA219(volts=12.2, amps=0.5)})
    reader = SensorReader(standard_openers(bus, power_monitor="ina219"))
    collector = Collector(settings(), fake_sources(
        sensors=sensor_source(reader, {"power": "ina219"})))
    power = collector.sample()["sensors"][0]
    assert power["name"] == "power" and power["chip"] == "ina219" and power["available"]
    assert power["values"]["bus_voltage_volts"] == pytest.approx(12.2, abs=0.01)
    assert power["values"]["current_amperes"] == pytest.approx(0.5, abs=0.01)
    bus.detach(0x40)  # the sensor's wire came loose
    gone = collector.sample()["sensors"][0]
    assert gone["available"] is False and gone["reason"]
    reader.close()


def test_systemd_states(tmp_path: Path) -> None:
    runner = NftRunner(3, "active\nfailed\nactivating\n", "")
    assert systemd_service_states(["a", "b", "c"], runner, run_dir=tmp_path) == {
        "a": "up", "b": "down", "c": "unknown"}
    no_systemd = tmp_path / "absent"
    assert systemd_service_states(["a"], runner, run_dir=no_systemd) == {"a": "unknown"}
