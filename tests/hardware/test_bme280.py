"""BME280: the datasheet's worked example, trimming decoding, forced mode, timeouts."""

from __future__ import annotations

import pytest

from hardware.bme280 import (
    BME280,
    BME280Reg,
    Trimming,
    compensate_humidity,
    compensate_pressure,
    compensate_temperature,
    decode_data,
    measurement_seconds,
)
from hardware.errors import (
    BadCalibration,
    BusError,
    DeviceClosed,
    InvalidReading,
    SensorNotFound,
    SensorTimeout,
    WrongChip,
)
from hardware.simulated import EXAMPLE_TRIMMING, SimulatedBME280, SimulatedI2CBus
from tests.node.test_store_support import FakeClock

# Temperature and pressure trimming of the datasheet's worked example.
DATASHEET = EXAMPLE_TRIMMING


def trimming(**humidity: int) -> Trimming:
    values = {**DATASHEET.__dict__, "dig_H1": 0, "dig_H2": 0, "dig_H3": 0, "dig_H4": 0,
              "dig_H5": 0, "dig_H6": 0}
    values.update(humidity)
    return Trimming(**values)


def test_datasheet_temperature_example() -> None:
    # dig_T1=27504, dig_T2=26435, dig_T3=-1000, adc_T=519888 -> 25.08 °C, t_fine 128422.
    assert (DATASHEET.dig_T1, DATASHEET.dig_T2, DATASHEET.dig_T3) == (27504, 26435, -1000)
    celsius, t_fine = compensate_temperature(519888, DATASHEET)
    assert celsius == pytest.approx(25.08, abs=0.005)
    assert t_fine == 128422


def test_datasheet_pressure_example() -> None:
    # dig_P1..P9 = 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000;
    # adc_P=415148 with t_fine 128422 -> 100653.27 Pa.
    assert (DATASHEET.dig_P1, DATASHEET.dig_P9) == (36477, 6000)
    assert compensate_pressure(415148, 128422, DATASHEET) == pytest.approx(100653.27, abs=0.05)


def test_humidity_by_hand() -> None:
    # With H1=H3=H4=H5=H6=0 the formula reduces to adc_H * dig_H2 / 65536:
    # dig_H2 = 16384 -> a quarter of adc_H; adc_H = 200 -> 50 %.
    assert compensate_humidity(200, 128422, trimming(dig_H2=16384)) == pytest.approx(50.0)
    # dig_H1 = 75 then scales by (1 - 75 * 50 / 524288) = 0.992847...: 49.642 %.
    assert compensate_humidity(200, 128422, trimming(dig_H2=16384, dig_H1=75)) == \
        pytest.approx(50 * (1 - 75 * 50 / 524288))
    # dig_H4 = 1 subtracts 64 counts first: (264 - 64) / 4 = 50 %.
    assert compensate_humidity(264, 128422, trimming(dig_H2=16384, dig_H4=1)) == \
        pytest.approx(50.0)
    # The datasheet clamps to 0..100 %.
    assert compensate_humidity(1000, 128422, trimming(dig_H2=16384)) == 100.0
    assert compensate_humidity(0, 128422, trimming(dig_H2=16384, dig_H4=10)) == 0.0


def test_trimming_registers_round_trip_including_negative_h4_h5() -> None:
    odd = trimming(dig_H1=75, dig_H2=-362, dig_H3=12, dig_H4=-313, dig_H5=-50, dig_H6=-30)
    calib00, calib26 = odd.to_registers()
    assert len(calib00) == 26 and len(calib26) == 7
    assert Trimming.from_registers(calib00, calib26) == odd


def test_trimming_byte_layout_matches_the_datasheet() -> None:
    calib00, calib26 = DATASHEET.to_registers()
    assert calib00[0] | calib00[1] << 8 == 27504  # dig_T1 at 0x88/0x89, little-endian
    # dig_H4 = 313 = 0x139: 0xE4 holds 0x13, low nibble of 0xE5 holds 0x9;
    # dig_H5 = 50 = 0x032: high nibble of 0xE5 holds 0x2, 0xE6 holds 0x03.
    assert calib26[3:6] == [0x13, 0x29, 0x03]


@pytest.mark.parametrize("fill", [0x00, 0xFF])
def test_erased_trimming_memory_is_refused(fill: int) -> None:
    with pytest.raises(BadCalibration):
        Trimming.from_registers([fill] * 26, [fill] * 7)


def test_zero_dig_p1_is_refused_before_it_divides_by_zero() -> None:
    calib00, calib26 = trimming(dig_H2=1).to_registers()
    calib00[6:8] = [0, 0]  # dig_P1
    with pytest.raises(BadCalibration, match="dig_P1"):
        Trimming.from_registers(calib00, calib26)


def test_data_decoding_and_skipped_values() -> None:
    # 0x65 0x5A 0xC0 -> 0x655AC = 415148 (the pressure example), temperature 519888.
    data = [0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00, 0x6B, 0x21]
    assert decode_data(data) == (415148, 519888, 0x6B21)
    with pytest.raises(InvalidReading, match="skipped"):
        decode_data([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])
    with pytest.raises(InvalidReading, match="all ones"):
        decode_data([0xFF] * 8)


def test_measurement_time_from_the_datasheet() -> None:
    assert measurement_seconds(1, 1, 1) == pytest.approx(0.0093)


def test_driver_reads_what_the_simulated_chip_measures() -> None:
    chip = SimulatedBME280(temperature_c=18.25, pressure_pa=98765.0, humidity_percent=62.0)
    with BME280(SimulatedI2CBus({0x77: chip}), 0x77) as sensor:
        reading = sensor.read()
        assert reading.temperature_c == pytest.approx(18.25, abs=0.01)
        assert reading.pressure_pa == pytest.approx(98765.0, abs=2)
        assert reading.pressure_hpa == pytest.approx(987.65, abs=0.02)
        assert reading.humidity_percent == pytest.approx(62.0, abs=0.1)
        chip.temperature_c, chip.humidity_percent = -7.5, 95.0
        second = sensor.read()
    assert second.temperature_c == pytest.approx(-7.5, abs=0.01)
    assert second.humidity_percent == pytest.approx(95.0, abs=0.1)
    assert chip.conversions == 2


def test_data_changes_only_after_a_forced_conversion() -> None:
    chip = SimulatedBME280(temperature_c=20.0)
    bus = SimulatedI2CBus({0x76: chip})
    with BME280(bus, 0x76) as sensor:
        sensor.read()
        before = bus.read_i2c_block_data(0x76, BME280Reg.DATA, 8)
        chip.temperature_c = 30.0
        assert bus.read_i2c_block_data(0x76, BME280Reg.DATA, 8) == before
        assert sensor.read().temperature_c == pytest.approx(30.0, abs=0.01)
        assert bus.read_byte_data(0x76, BME280Reg.CTRL_MEAS) & 0b11 == 0  # back to sleep


def test_status_that_never_clears_times_out_quickly() -> None:
    chip = SimulatedBME280()
    clock = FakeClock()  # the driver's own sleeps move it: its time, not the machine's load
    with BME280(SimulatedI2CBus({0x76: chip}), 0x76, timeout=0.05, poll_interval=0.001,
                sleep=clock.advance, clock=clock) as sensor:
        chip.stuck_measuring = True
        started = clock.now
        with pytest.raises(SensorTimeout, match="still measuring") as info:
            sensor.read()
    # the conversion's wait (at most the timeout), then polls until the timeout, then one more
    assert clock.now - started <= 0.05 + 0.05 + 0.001 + 1e-9
    assert isinstance(info.value, TimeoutError)


def test_slow_conversion_is_waited_for() -> None:
    chip = SimulatedBME280(conversion_reads=20)
    with BME280(SimulatedI2CBus({0x76: chip}), 0x76, poll_interval=0.0) as sensor:
        assert sensor.read().temperature_c == pytest.approx(21.5, abs=0.01)


def test_chip_id_is_checked_at_open() -> None:
    bus = SimulatedI2CBus({0x76: SimulatedBME280(chip_id=0x58),
                           0x77: SimulatedBME280(chip_id=0x99)})
    with pytest.raises(WrongChip, match=r"BMP280.*pressure and temperature only"):
        BME280(bus, 0x76)
    with pytest.raises(WrongChip, match="0x99"):
        BME280(bus, 0x77)


def test_absent_and_failing_chip() -> None:
    with pytest.raises(SensorNotFound, match="0x76"):
        BME280(SimulatedI2CBus(), 0x76)
    chip = SimulatedBME280()
    bus = SimulatedI2CBus({0x76: chip})
    sensor = BME280(bus, 0x76)
    chip.present = False
    with pytest.raises(SensorNotFound):
        sensor.read()
    chip.present = True
    bus.close()  # a closed bus fails with EBADF: an I/O error, not "absent"
    with pytest.raises(BusError) as info:
        sensor.read()
    assert isinstance(info.value, OSError)
    sensor.close()
    sensor.close()
    with pytest.raises(DeviceClosed):
        sensor.read()


def test_oversampling_is_validated() -> None:
    with pytest.raises(ValueError, match="oversampling"):
        BME280(SimulatedI2CBus({0x76: SimulatedBME280()}), 0x76, oversampling=3)
