"""Bus scanning, chip identification and the ``meshhub hw`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from hardware.detect import detect, identify, scan
from hardware.simulated import (
    SimulatedBME280,
    SimulatedI2CBus,
    SimulatedINA219,
    SimulatedINA226,
    example_bus,
)
from node.cli import cli


def test_scan_skips_reserved_addresses_and_reports_kernel_owned() -> None:
    bus = SimulatedI2CBus({0x03: SimulatedINA219(), 0x40: SimulatedINA219(),
                           0x78: SimulatedINA219()}, kernel_owned=[0x50])
    assert scan(bus) == [(0x40, False), (0x50, True)]


def test_identify_tells_the_chips_apart() -> None:
    bus = SimulatedI2CBus({0x40: SimulatedINA219(), 0x41: SimulatedINA226(),
                           0x76: SimulatedBME280(), 0x77: SimulatedBME280(chip_id=0x58),
                           0x20: SimulatedINA219()})
    assert identify(bus, 0x40).driver == "ina219"
    assert identify(bus, 0x41).chip == "INA226"
    assert identify(bus, 0x76).driver == "bme280"
    bmp = identify(bus, 0x77)
    assert bmp.chip == "BMP280" and bmp.driver is None and "pressure" in bmp.note
    assert identify(bus, 0x20).chip == "unknown"


def test_detect_never_writes_to_chips() -> None:
    ina = SimulatedINA219()
    ina.config = 0x1234  # configured by a running agent
    found = detect(SimulatedI2CBus({0x40: ina}, kernel_owned=[0x68]))
    assert [f.chip for f in found] == ["INA219", "in use by a kernel driver"]
    assert ina.config == 0x1234


def test_flaky_chip_during_detect_is_unknown_not_a_crash() -> None:
    bus = example_bus()
    bus.chips[0x76].flaky_every = 2  # answers the probe, then fails the chip-ID read
    found = {f.address: f.chip for f in detect(bus)}
    assert found == {0x40: "INA219", 0x41: "INA226", 0x76: "unknown"}


def test_hw_detect_simulate() -> None:
    result = CliRunner().invoke(cli, ["hw", "detect", "--simulate"])
    assert result.exit_code == 0, result.output
    assert "simulated bus 1" in result.output
    assert "0x40  INA219" in result.output
    assert "0x41  INA226" in result.output
    assert "0x76  BME280    driver: bme280" in result.output


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from node.cli import main; main()", *args],
                          capture_output=True, text=True, check=False)


def test_hw_detect_without_buses_is_one_clear_error(tmp_path: Path) -> None:
    result = run("hw", "detect", "--root", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith("meshhub: error: no I2C bus found")
    assert "raspi-config" in result.stderr and "--simulate" in result.stderr
    assert "Traceback" not in result.stderr


def test_hw_detect_missing_bus_number() -> None:
    result = run("hw", "detect", "--bus", "250")
    assert result.returncode == 1
    assert result.stderr.startswith("meshhub: error: /dev/i2c-250")


def test_hw_board_on_a_fixture_tree(tmp_path: Path) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    firmware = tmp_path / "sys/devices/platform/soc/soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text("50005\n")
    runner = CliRunner()
    text = runner.invoke(cli, ["hw", "board", "--root", str(tmp_path)])
    assert text.exit_code == 0, text.output
    assert "Raspberry Pi 4 Model B Rev 1.4" in text.output
    assert "under_voltage, throttled" in text.output and "0x50005" in text.output
    data = json.loads(runner.invoke(cli, ["hw", "board", "--json", "--root",
                                          str(tmp_path)]).output)
    assert data["throttled"]["under_voltage"] is True
    assert data["soc_temperature_c"] is None


def test_hw_read_simulate_uses_node_toml(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text("[hardware]\npower_monitor = 'ina226'\nina_address = 0x41\n"
                      "ina_max_amps = 0.5\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "hw", "read", "--simulate"])
    assert result.exit_code == 0, result.output
    assert "power: bus_voltage_v=5.1" in result.output
    assert "environment" not in result.output
    default = CliRunner().invoke(cli, ["--config", str(tmp_path / "absent.toml"),
                                       "hw", "read", "--simulate"])
    assert "environment: temperature_c=21.5" in default.output
