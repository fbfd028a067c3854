"""SensorReader: missing or failing sensors become 'unavailable', warned about once."""

from __future__ import annotations

import logging

import pytest

from hardware.errors import HardwareWarning
from hardware.once import OnceLog
from hardware.sensors import SensorReader, standard_openers
from hardware.simulated import (
    SimulatedBME280,
    SimulatedI2CBus,
    SimulatedINA219,
    SimulatedINA226,
)


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def test_all_present(caplog: pytest.LogCaptureFixture) -> None:
    bus = SimulatedI2CBus({0x40: SimulatedINA219(volts=12.0, amps=1.0),
                           0x76: SimulatedBME280(temperature_c=10.0)})
    openers = standard_openers(bus, power_monitor="ina219", bme280_address=0x76)
    with SensorReader(openers) as reader:
        results = reader.read_all()
    assert results["power"].available and results["environment"].available
    assert results["power"].values["bus_voltage_v"] == pytest.approx(12.0)
    assert results["environment"].values["temperature_c"] == pytest.approx(10.0, abs=0.01)
    assert warnings_logged(caplog) == []


def test_missing_sensor_is_unavailable_and_warned_once_with_a_count(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = SimulatedI2CBus({0x76: SimulatedBME280()})
    once = OnceLog()
    openers = standard_openers(bus, power_monitor="ina226", max_amps=0.5, bme280_address=0x76)
    with caplog.at_level(logging.INFO, logger="meshhub.hardware"), \
            SensorReader(openers, once=once) as reader:
        for attempt in range(1, 6):
            results = reader.read_all()
            assert results["environment"].available  # the other sensor keeps working
            assert not results["power"].available
            assert results["power"].failures == attempt
            assert "nothing answers at 0x40" in (results["power"].problem or "")
        records = warnings_logged(caplog)
        assert len(records) == 1
        assert "sensor 'power' unavailable" in records[0].getMessage()
        assert isinstance(records[0].hardware_warning, HardwareWarning)  # type: ignore[attr-defined]
        assert once.summary() == {"sensor 'power'": 5}
        # The chip is connected: the reader reopens it and says how long it was gone.
        bus.attach(0x40, SimulatedINA226())
        assert reader.read("power").available
        assert once.summary() == {}
        assert any("recovered after 5" in r.getMessage() for r in caplog.records)


def test_flaky_sensor_degrades_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    chip = SimulatedINA219(volts=5.0, amps=0.1)
    bus = SimulatedI2CBus({0x40: chip})
    with SensorReader(standard_openers(bus, power_monitor="ina219")) as reader:
        assert reader.read("power").available
        chip.fail_next = 3  # a loose wire for a moment
        outcomes = [reader.read("power").available for _ in range(4)]
    assert outcomes[-1] is True and False in outcomes
    assert len(warnings_logged(caplog)) == 1


def test_a_browned_out_chip_is_recalibrated() -> None:
    chip = SimulatedINA219(volts=5.0, amps=1.0)
    bus = SimulatedI2CBus({0x40: chip})
    with SensorReader(standard_openers(bus, power_monitor="ina219")) as reader:
        assert reader.read("power").values["current_a"] == pytest.approx(1.0, abs=1e-3)
        chip.present = False  # power glitch: the chip drops off and forgets everything
        assert not reader.read("power").available
        chip.present, chip.calibration = True, 0
        assert reader.read("power").values["current_a"] == pytest.approx(1.0, abs=1e-3)


def test_bugs_are_not_swallowed() -> None:
    def broken() -> SimulatedINA219:
        raise TypeError("a programming error")

    with SensorReader({"x": broken}) as reader, pytest.raises(TypeError):  # type: ignore[dict-item]
        reader.read("x")


def test_closed_reader_reports_unavailable() -> None:
    reader = SensorReader({})
    reader.close()
    reader.close()
    assert reader.read("power").problem == "sensor reader is closed"


def test_standard_openers_from_plain_settings() -> None:
    bus = SimulatedI2CBus()
    assert standard_openers(bus) == {}
    assert list(standard_openers(bus, power_monitor="ina226", bme280_address=0x77)) == \
        ["power", "environment"]
    with pytest.raises(ValueError, match="ina219, ina226 or none"):
        standard_openers(bus, power_monitor="ina3221")
