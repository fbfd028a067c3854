"""INA219/INA226: datasheet calibration, byte order, signs, overflow, lifecycle."""

from __future__ import annotations

import pytest

from hardware.bus import signed, swap16
from hardware.errors import (
    BadCalibration,
    DeviceClosed,
    HardwareError,
    SensorNotFound,
    WrongChip,
)
from hardware.ina2xx import (
    INA219,
    INA226,
    INA219Reg,
    decode_ina219_bus,
    ina219_calibration,
    ina226_calibration,
)
from hardware.simulated import SimulatedI2CBus, SimulatedINA219, SimulatedINA226


def test_ina219_calibration_follows_the_datasheet_procedure() -> None:
    # TI's procedure with a 0.1 ohm shunt and a chosen 100 µA LSB:
    # Cal = trunc(0.04096 / (0.0001 * 0.1)) = 4096, power LSB = 20 * 100 µA = 2 mW.
    cal = ina219_calibration(0.1, 2.0, current_lsb=100e-6)
    assert cal.register == 4096
    assert cal.current_lsb == pytest.approx(100e-6)
    assert cal.power_lsb == pytest.approx(2e-3)
    # 2 A * 0.1 ohm = 200 mV: the 320 mV range (PG = /8) is the smallest that fits.
    assert (cal.config >> 11) & 0b11 == 0b11


def test_ina219_minimum_lsb_and_even_register() -> None:
    # Minimum LSB = 2 A / 2**15 = 61.04 µA -> trunc(0.04096 / (61.04e-6 * 0.1)) = 6710.
    cal = ina219_calibration(0.1, 2.0)
    assert cal.register == 6710
    assert cal.register % 2 == 0  # bit 0 of the calibration register does not exist
    # 0.4 A through 0.1 ohm is 40 mV: the most sensitive range (PG = /1).
    assert (ina219_calibration(0.1, 0.4).config >> 11) & 0b11 == 0


def test_ina226_calibration_matches_the_datasheet_example() -> None:
    # INA226 datasheet: 2 mOhm shunt, 15 A, LSB rounded to 1 mA -> CAL = 2560.
    cal = ina226_calibration(0.002, 15.0, current_lsb=1e-3)
    assert cal.register == 2560
    assert cal.power_lsb == pytest.approx(25e-3)


@pytest.mark.parametrize(("ohms", "amps", "why"), [
    (0.1, 5.0, "320 mV"),  # 500 mV across the shunt: beyond the INA219's range
    (0.0, 1.0, "above 0 ohm"),
    (0.1, -1.0, "above 0 A"),
    (10.0, 0.00001, "16-bit"),  # calibration register would overflow
])
def test_ina219_impossible_calibration_is_refused(ohms: float, amps: float, why: str) -> None:
    with pytest.raises(BadCalibration, match=why):
        ina219_calibration(ohms, amps)


def test_ina226_shunt_range_is_checked() -> None:
    with pytest.raises(BadCalibration, match=r"81\.92 mV"):
        ina226_calibration(0.1, 1.0)  # 100 mV


def test_word_byte_swap_and_sign() -> None:
    assert swap16(0x1234) == 0x3412
    assert swap16(swap16(0xBEEF)) == 0xBEEF
    assert signed(0xFFFF, 16) == -1
    assert signed(0x8000, 16) == -32768
    assert signed(0x7FFF, 16) == 32767
    assert signed(0x800, 12) == -2048


def test_bus_register_decoding() -> None:
    # 12.0 V = 3000 * 4 mV, shifted left by 3, with CNVR (bit 1) set.
    volts, ready, overflow = decode_ina219_bus(3000 << 3 | 0b10)
    assert volts == pytest.approx(12.0) and ready and not overflow
    assert decode_ina219_bus(3000 << 3 | 0b01)[2] is True


def test_smbus_word_is_swapped_on_the_wire() -> None:
    # The chip sends 0x399F high byte first; an SMBus word read gives 0x9F39.
    bus = SimulatedI2CBus({0x40: SimulatedINA219()})
    assert bus.read_word_data(0x40, INA219Reg.CONFIG) == 0x9F39
    with INA219(bus, 0x40, shunt_ohms=0.1, max_expected_amps=2.0) as ina:
        chip = bus.chips[0x40]
        assert isinstance(chip, SimulatedINA219)
        assert chip.calibration == ina.calibration.register == 6710  # not 0x361A swapped


def test_ina219_reads_the_simulated_physical_state() -> None:
    chip = SimulatedINA219(volts=12.34, amps=1.25, shunt_ohms=0.1)
    bus = SimulatedI2CBus({0x40: chip})
    with INA219(bus, 0x40, shunt_ohms=0.1, max_expected_amps=2.0) as ina:
        reading = ina.read()
        assert reading.bus_voltage_v == pytest.approx(12.34, abs=0.004)
        assert reading.shunt_voltage_v == pytest.approx(0.125, abs=10e-6)
        assert reading.current_a == pytest.approx(1.25, abs=2 * ina.calibration.current_lsb)
        assert reading.power_w == pytest.approx(12.34 * 1.25, rel=0.01)
        chip.volts, chip.amps = 5.0, 0.2
        assert ina.read().current_a == pytest.approx(0.2, abs=2 * ina.calibration.current_lsb)


def test_negative_current_and_shunt_voltage_keep_their_sign() -> None:
    chip = SimulatedINA219(volts=12.0, amps=-0.75, shunt_ohms=0.1)
    with INA219(SimulatedI2CBus({0x40: chip}), 0x40) as ina:
        reading = ina.read()
    assert reading.shunt_voltage_v == pytest.approx(-0.075, abs=10e-6)
    assert reading.current_a is not None and reading.current_a == pytest.approx(-0.75, abs=2e-4)
    assert reading.power_w == pytest.approx(9.0, rel=0.01)  # the power register is a magnitude


def test_ina219_overflow_bit_voids_current_and_power() -> None:
    # 0.6 A through 0.1 ohm = 60 mV, beyond the 40 mV range chosen for 0.4 A.
    chip = SimulatedINA219(volts=12.0, amps=0.6, shunt_ohms=0.1)
    with INA219(SimulatedI2CBus({0x40: chip}), 0x40, max_expected_amps=0.4) as ina:
        reading = ina.read()
    assert reading.overflow is True
    assert reading.current_a is None and reading.power_w is None
    assert reading.bus_voltage_v == pytest.approx(12.0)
    assert reading.as_dict()["overflow"] == 1.0


def test_ina226_checks_ids_and_reads() -> None:
    chip = SimulatedINA226(volts=24.5, amps=-3.0, shunt_ohms=0.01)
    with INA226(SimulatedI2CBus({0x44: chip}), 0x44, shunt_ohms=0.01,
                max_expected_amps=8.0) as ina:
        reading = ina.read()
    assert reading.bus_voltage_v == pytest.approx(24.5, abs=0.00125)
    assert reading.shunt_voltage_v == pytest.approx(-0.03, abs=2.5e-6)
    assert reading.current_a == pytest.approx(-3.0, abs=1e-3)
    assert reading.power_w == pytest.approx(73.5, rel=0.01)


def test_ina226_math_overflow_flag() -> None:
    # Calibrated for 0.1 A, then 0.8 A flows: the current register overflows.
    chip = SimulatedINA226(volts=12.0, amps=0.8, shunt_ohms=0.1)
    with INA226(SimulatedI2CBus({0x40: chip}), 0x40, max_expected_amps=0.1) as ina:
        assert ina.read().overflow is True


def test_ina226_driver_refuses_an_ina219() -> None:
    bus = SimulatedI2CBus({0x40: SimulatedINA219()})
    with pytest.raises(WrongChip, match="0x5449/0x2260"):
        INA226(bus, 0x40)


def test_absent_chip_is_sensor_not_found() -> None:
    with pytest.raises(SensorNotFound, match="0x45") as info:
        INA219(SimulatedI2CBus(), 0x45)
    assert isinstance(info.value, LookupError) and isinstance(info.value, HardwareError)


def test_reset_chip_loses_calibration_and_close_is_idempotent() -> None:
    chip = SimulatedINA219(amps=1.0)
    bus = SimulatedI2CBus({0x40: chip})
    ina = INA219(bus, 0x40)
    assert chip.calibration == ina.calibration.register
    ina.close()
    ina.close()
    assert ina.closed
    with pytest.raises(DeviceClosed):
        ina.read()
    with pytest.raises(RuntimeError):  # DeviceClosed is a RuntimeError too
        ina.read()
