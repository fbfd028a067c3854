# ruff: noqa: N815  (trimming names dig_T1.. follow the Bosch datasheet)
"""BME280 environment sensor (Bosch): temperature, pressure, relative humidity.

Three parts:

* the register map (:class:`BME280Reg`) and bit fields, declared once;
* pure compensation (:class:`Trimming` and the ``compensate_*`` functions):
  the double-precision formulas of the BME280 datasheet §8.1, tested against
  the datasheet's worked example (adc_T 519888 -> 25.08 °C, adc_P 415148 ->
  100653.27 Pa with the example trimming values);
* the driver (:class:`BME280`), which takes its bus, checks the chip ID
  (0x60) at open, reads the trimming values from 0x88..0xA1 and 0xE1..0xE7,
  and measures in forced mode, waiting on the status register with a timeout.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Self, TypeVar

from hardware.bus import NACK_ERRNO, I2CBus, signed
from hardware.device import I2CDevice
from hardware.errors import (
    BadCalibration,
    BusError,
    InvalidReading,
    SensorNotFound,
    SensorTimeout,
    WrongChip,
)

_T = TypeVar("_T")


class BME280Reg(IntEnum):
    """BME280 register map (datasheet §5.3, table 18)."""

    CALIB_00 = 0x88  #: 26 bytes: dig_T1..dig_P9, (0xA0 unused), dig_H1 at 0xA1
    CHIP_ID = 0xD0  #: 0x60 for a BME280 (0x58 BMP280, 0x61 BME680)
    RESET = 0xE0  #: write 0xB6 to reset
    CALIB_26 = 0xE1  #: 7 bytes: dig_H2..dig_H6
    CTRL_HUM = 0xF2  #: humidity oversampling; takes effect on the next CTRL_MEAS write
    STATUS = 0xF3  #: bit 3 measuring, bit 0 im_update (trimming being copied)
    CTRL_MEAS = 0xF4  #: bits 7..5 osrs_t, 4..2 osrs_p, 1..0 mode
    CONFIG = 0xF5
    DATA = 0xF7  #: 8 bytes: press msb/lsb/xlsb, temp msb/lsb/xlsb, hum msb/lsb


BME280_CHIP_ID = 0x60
BMP280_CHIP_IDS = (0x56, 0x57, 0x58)
RESET_WORD = 0xB6
STATUS_MEASURING = 1 << 3
STATUS_IM_UPDATE = 1 << 0
MODE_SLEEP, MODE_FORCED = 0b00, 0b01
CALIB_00_LENGTH = 26
CALIB_26_LENGTH = 7
DATA_LENGTH = 8
#: Oversampling factor -> register code.
OVERSAMPLING = {1: 0b001, 2: 0b010, 4: 0b011, 8: 0b100, 16: 0b101}
#: What the chip puts in a data register whose measurement was skipped.
SKIPPED_20BIT, SKIPPED_16BIT = 0x80000, 0x8000


@dataclass(frozen=True)
class Trimming:
    """The factory trimming values each chip stores (datasheet §4.2.2, table 16)."""

    dig_T1: int
    dig_T2: int
    dig_T3: int
    dig_P1: int
    dig_P2: int
    dig_P3: int
    dig_P4: int
    dig_P5: int
    dig_P6: int
    dig_P7: int
    dig_P8: int
    dig_P9: int
    dig_H1: int
    dig_H2: int
    dig_H3: int
    dig_H4: int
    dig_H5: int
    dig_H6: int

    @classmethod
    def from_registers(cls, calib00: Sequence[int], calib26: Sequence[int]) -> Self:
        """Decode the 26 bytes at 0x88 and the 7 bytes at 0xE1.

        Raises :class:`BadCalibration` for values no real chip has (erased or
        unreadable memory), which would otherwise divide by zero later.
        """
        if len(calib00) != CALIB_00_LENGTH or len(calib26) != CALIB_26_LENGTH:
            raise BadCalibration("BME280 trimming blocks have the wrong length")
        t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9 = struct.unpack(
            "<HhhHhhhhhhhh", bytes(calib00[:24]))
        e1, e2, e3, e4, e5, e6, e7 = calib26
        trimming = cls(t1, t2, t3, p1, p2, p3, p4, p5, p6, p7, p8, p9, dig_H1=calib00[25],
                       dig_H2=signed(e1 | e2 << 8, 16), dig_H3=e3,
                       dig_H4=signed(e4 << 4 | (e5 & 0x0F), 12),
                       dig_H5=signed(e6 << 4 | e5 >> 4, 12), dig_H6=signed(e7, 8))
        if len(set(calib00) | set(calib26)) == 1:
            raise BadCalibration(f"BME280 trimming memory reads all {calib00[0]:#04x}: "
                                 "the chip is faulty or not a BME280")
        if trimming.dig_T1 == 0 or trimming.dig_P1 == 0:
            raise BadCalibration("BME280 trimming values dig_T1/dig_P1 are 0: the chip is faulty")
        return trimming

    def to_registers(self) -> tuple[list[int], list[int]]:
        """Encode as the chip stores them (the inverse of :meth:`from_registers`)."""
        packed = struct.pack("<HhhHhhhhhhhh", self.dig_T1, self.dig_T2, self.dig_T3,
                             self.dig_P1, self.dig_P2, self.dig_P3, self.dig_P4, self.dig_P5,
                             self.dig_P6, self.dig_P7, self.dig_P8, self.dig_P9)
        calib00 = [*packed, 0, self.dig_H1 & 0xFF]
        h4, h5 = self.dig_H4 & 0xFFF, self.dig_H5 & 0xFFF
        calib26 = [self.dig_H2 & 0xFF, (self.dig_H2 >> 8) & 0xFF, self.dig_H3 & 0xFF,
                   h4 >> 4, (h4 & 0x0F) | ((h5 & 0x0F) << 4), h5 >> 4, self.dig_H6 & 0xFF]
        return calib00, calib26


def compensate_temperature(adc_t: int, trim: Trimming) -> tuple[float, int]:
    """Raw temperature -> (°C, t_fine); t_fine feeds the other two formulas."""
    var1 = (adc_t / 16384.0 - trim.dig_T1 / 1024.0) * trim.dig_T2
    var2 = (adc_t / 131072.0 - trim.dig_T1 / 8192.0) ** 2 * trim.dig_T3
    return (var1 + var2) / 5120.0, int(var1 + var2)


def compensate_pressure(adc_p: int, t_fine: int, trim: Trimming) -> float:
    """Raw pressure -> pascals. Raises :class:`InvalidReading` where the formula divides by 0."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * trim.dig_P6 / 32768.0
    var2 = var2 + var1 * trim.dig_P5 * 2.0
    var2 = var2 / 4.0 + trim.dig_P4 * 65536.0
    var1 = (trim.dig_P3 * var1 * var1 / 524288.0 + trim.dig_P2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * trim.dig_P1
    if var1 == 0:
        raise InvalidReading("BME280 pressure compensation divides by zero (bad trimming values)")
    pressure = 1048576.0 - adc_p
    pressure = (pressure - var2 / 4096.0) * 6250.0 / var1
    var1 = trim.dig_P9 * pressure * pressure / 2147483648.0
    var2 = pressure * trim.dig_P8 / 32768.0
    return pressure + (var1 + var2 + trim.dig_P7) / 16.0


def compensate_humidity(adc_h: int, t_fine: int, trim: Trimming) -> float:
    """Raw humidity -> % relative humidity, clamped to 0..100 as the datasheet does."""
    var_h = t_fine - 76800.0
    var_h = (adc_h - (trim.dig_H4 * 64.0 + trim.dig_H5 / 16384.0 * var_h)) * (
        trim.dig_H2 / 65536.0
        * (1.0 + trim.dig_H6 / 67108864.0 * var_h * (1.0 + trim.dig_H3 / 67108864.0 * var_h)))
    var_h = var_h * (1.0 - trim.dig_H1 * var_h / 524288.0)
    return min(100.0, max(0.0, var_h))


def decode_data(data: Sequence[int]) -> tuple[int, int, int]:
    """The 8 data bytes from 0xF7 -> (adc_P, adc_T, adc_H), checking for skipped values."""
    if len(data) != DATA_LENGTH:
        raise InvalidReading(f"BME280 data block has {len(data)} bytes, expected 8")
    adc_p = data[0] << 12 | data[1] << 4 | data[2] >> 4
    adc_t = data[3] << 12 | data[4] << 4 | data[5] >> 4
    adc_h = data[6] << 8 | data[7]
    if adc_t == SKIPPED_20BIT or adc_p == SKIPPED_20BIT or adc_h == SKIPPED_16BIT:
        raise InvalidReading("BME280 returned 'measurement skipped' values: no conversion ran")
    if all(byte == 0xFF for byte in data):
        raise InvalidReading("BME280 data registers read all ones: the bus or chip is failing")
    return adc_p, adc_t, adc_h


@dataclass(frozen=True)
class EnvironmentReading:
    """One compensated BME280 measurement."""

    temperature_c: float
    pressure_pa: float
    humidity_percent: float

    @property
    def pressure_hpa(self) -> float:
        """Pressure in hectopascals (millibars), as weather reports give it."""
        return self.pressure_pa / 100.0

    def as_dict(self) -> dict[str, float | None]:
        """The values by name, for health documents and metrics."""
        return asdict(self)


def measurement_seconds(osrs_t: int, osrs_p: int, osrs_h: int) -> float:
    """Longest time one forced conversion takes (datasheet §9.1, t_measure,max)."""
    return (1.25 + 2.3 * osrs_t + (2.3 * osrs_p + 0.575) + (2.3 * osrs_h + 0.575)) / 1000.0


class BME280(I2CDevice):
    """BME280 on ``bus`` at ``address`` (0x76, or 0x77 with SDO high).

    ``timeout`` bounds every wait on the chip; ``sleep`` and ``clock`` are
    injectable so that tests need not wait for real.
    """

    chip = "BME280"

    def __init__(self, bus: I2CBus, address: int = 0x76, *, oversampling: int = 1,
                 timeout: float = 0.5, poll_interval: float = 0.002,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(bus, address)
        if oversampling not in OVERSAMPLING:
            raise ValueError(f"oversampling must be one of {sorted(OVERSAMPLING)}")
        self.oversampling = oversampling
        self.timeout, self.poll_interval = timeout, poll_interval
        self._sleep, self._clock = sleep, clock
        chip_id = self._io(self.bus.read_byte_data, self.address, BME280Reg.CHIP_ID)
        if chip_id in BMP280_CHIP_IDS:
            raise WrongChip(f"the chip at {address:#04x} is a BMP280 (ID {chip_id:#04x}): it "
                            "measures pressure and temperature only, not humidity")
        if chip_id != BME280_CHIP_ID:
            raise WrongChip(f"the chip at {address:#04x} has ID {chip_id:#04x}, "
                            "not a BME280 (0x60)")
        self._io(self.bus.write_byte_data, self.address, BME280Reg.RESET, RESET_WORD)
        self._wait_status(STATUS_IM_UPDATE, "copying its trimming values after reset")
        self.trimming = Trimming.from_registers(
            self._io(self.bus.read_i2c_block_data, self.address, BME280Reg.CALIB_00,
                     CALIB_00_LENGTH),
            self._io(self.bus.read_i2c_block_data, self.address, BME280Reg.CALIB_26,
                     CALIB_26_LENGTH))

    def read(self) -> EnvironmentReading:
        """Run one forced conversion and return the compensated values."""
        code = OVERSAMPLING[self.oversampling]
        self._io(self.bus.write_byte_data, self.address, BME280Reg.CTRL_HUM, code)
        self._io(self.bus.write_byte_data, self.address, BME280Reg.CTRL_MEAS,
                 code << 5 | code << 2 | MODE_FORCED)
        n = self.oversampling
        self._sleep(min(measurement_seconds(n, n, n), self.timeout))
        self._wait_status(STATUS_MEASURING, "measuring")
        data = self._io(self.bus.read_i2c_block_data, self.address, BME280Reg.DATA, DATA_LENGTH)
        adc_p, adc_t, adc_h = decode_data(data)
        celsius, t_fine = compensate_temperature(adc_t, self.trimming)
        return EnvironmentReading(celsius, compensate_pressure(adc_p, t_fine, self.trimming),
                                  compensate_humidity(adc_h, t_fine, self.trimming))

    def _wait_status(self, bit: int, doing: str) -> None:
        deadline = self._clock() + self.timeout
        while self._io(self.bus.read_byte_data, self.address, BME280Reg.STATUS) & bit:
            if self._clock() >= deadline:
                raise SensorTimeout(f"BME280 at {self.address:#04x} was still {doing} after "
                                    f"{self.timeout:g} s")
            self._sleep(self.poll_interval)

    def _io(self, function: Callable[..., _T], *args: int) -> _T:
        try:
            return function(*args)
        except OSError as exc:
            if exc.errno == NACK_ERRNO:
                raise SensorNotFound(f"BME280: nothing answers at {self.address:#04x}; check the "
                                     "wiring and the address (0x76, or 0x77 with SDO high)"
                                     ) from exc
            raise BusError(exc.errno, f"BME280 at {self.address:#04x}: transfer failed: {exc}"
                           ) from exc
