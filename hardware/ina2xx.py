"""INA219 and INA226 power monitors (Texas Instruments): bus voltage, current, power.

Three parts, as for every driver here:

* the register maps (:class:`INA219Reg`, :class:`INA226Reg`), declared once;
* pure calibration and decoding (:func:`ina219_calibration`,
  :func:`ina226_calibration`, :func:`decode_ina219_bus`), tested against the
  datasheets' worked examples;
* the drivers (:class:`INA219`, :class:`INA226`), which take their bus.

The chips' registers are 16 bits, sent **high byte first**. SMBus words are
little-endian, so every ``read_word_data``/``write_word_data`` goes through
:func:`hardware.bus.swap16`.

Calibration follows the datasheets (INA219 §8.5.1, INA226 §7.5): the smallest
current LSB that covers ``max_expected_amps`` is ``max_expected_amps / 2**15``
(or pass ``current_lsb`` to choose a rounder one), the calibration register is
``trunc(K / (current_lsb * shunt_ohms))`` with K = 0.04096 (INA219) or
0.00512 (INA226), and the LSB actually used is recomputed from the truncated
register so that currents come out exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import IntEnum

from hardware.bus import NACK_ERRNO, I2CBus, signed, swap16
from hardware.device import I2CDevice
from hardware.errors import BadCalibration, BusError, SensorNotFound, WrongChip


class INA219Reg(IntEnum):
    """INA219 register map (datasheet table 8-5)."""

    CONFIG = 0x00
    SHUNT_VOLTAGE = 0x01  #: signed, LSB 10 µV
    BUS_VOLTAGE = 0x02  #: bits 15..3 value (LSB 4 mV), bit 1 CNVR, bit 0 OVF
    POWER = 0x03  #: LSB 20 × current LSB
    CURRENT = 0x04  #: signed, LSB = current LSB
    CALIBRATION = 0x05  #: bit 0 always 0


class INA226Reg(IntEnum):
    """INA226 register map (datasheet §7.6, register set)."""

    CONFIG = 0x00
    SHUNT_VOLTAGE = 0x01  #: signed, LSB 2.5 µV
    BUS_VOLTAGE = 0x02  #: 15 bits, LSB 1.25 mV
    POWER = 0x03  #: LSB 25 × current LSB
    CURRENT = 0x04  #: signed, LSB = current LSB
    CALIBRATION = 0x05  #: bit 15 reserved
    MASK_ENABLE = 0x06  #: bit 3 CVRF (conversion ready), bit 2 OVF (math overflow)
    ALERT_LIMIT = 0x07
    MANUFACTURER_ID = 0xFE  #: 0x5449, "TI"
    DIE_ID = 0xFF  #: 0x2260


INA219_RESET = 0x8000
INA219_SHUNT_LSB_V = 10e-6
INA219_BUS_LSB_V = 0.004
INA219_CAL_K = 0.04096
#: Programmable gain: shunt full-scale volts -> PG bits (config bits 12..11).
INA219_GAIN_RANGES: tuple[tuple[float, int], ...] = ((0.04, 0b00), (0.08, 0b01),
                                                     (0.16, 0b10), (0.32, 0b11))
#: 32 V bus range, 12-bit ADCs, shunt and bus continuous (PG bits are OR-ed in).
INA219_CONFIG_BASE = (1 << 13) | (0b0011 << 7) | (0b0011 << 3) | 0b111

INA226_RESET = 0x8000
INA226_SHUNT_LSB_V = 2.5e-6
INA226_BUS_LSB_V = 1.25e-3
INA226_CAL_K = 0.00512
INA226_SHUNT_FULL_SCALE_V = 0.08192
INA226_MANUFACTURER = 0x5449
INA226_DIE = 0x2260
INA226_OVF = 1 << 2
#: Average 16 samples, 1.1 ms conversions, shunt and bus continuous.
INA226_CONFIG = 0x4000 | (0b010 << 9) | (0b100 << 6) | (0b100 << 3) | 0b111


@dataclass(frozen=True)
class Calibration:
    """What the driver writes to the chip and how it scales the chip's answers."""

    register: int  #: value for the calibration register
    current_lsb: float  #: amperes per bit of the current register (as realised)
    power_lsb: float  #: watts per bit of the power register
    config: int  #: value for the configuration register


def _check_inputs(shunt_ohms: float, max_expected_amps: float) -> None:
    if not (math.isfinite(shunt_ohms) and shunt_ohms > 0):
        raise BadCalibration(f"shunt resistance must be above 0 ohm, got {shunt_ohms!r}"
                             " (hardware.ina_shunt_ohms in node.toml)")
    if not (math.isfinite(max_expected_amps) and max_expected_amps > 0):
        raise BadCalibration(f"maximum expected current must be above 0 A, got "
                             f"{max_expected_amps!r} (hardware.ina_max_amps in node.toml)")


def ina219_calibration(shunt_ohms: float, max_expected_amps: float,
                       current_lsb: float | None = None) -> Calibration:
    """Calibration register, scaling and gain for an INA219 (datasheet §8.5.1).

    The gain is the most sensitive one whose full scale still covers
    ``max_expected_amps * shunt_ohms``.
    """
    _check_inputs(shunt_ohms, max_expected_amps)
    shunt_max = max_expected_amps * shunt_ohms
    gain = next((bits for volts, bits in INA219_GAIN_RANGES if shunt_max <= volts * (1 + 1e-9)),
                None)
    if gain is None:
        raise BadCalibration(
            f"{max_expected_amps:g} A through {shunt_ohms:g} ohm is {shunt_max * 1000:.0f} mV "
            "across the shunt; the INA219 measures at most 320 mV: use a smaller shunt")
    lsb = current_lsb if current_lsb is not None else max_expected_amps / 32768
    exact = int(INA219_CAL_K / (lsb * shunt_ohms))
    register = exact & 0xFFFE  # bit 0 of the register is always 0
    if not 2 <= exact <= 0xFFFF:
        raise BadCalibration(f"INA219 calibration for {shunt_ohms:g} ohm, {max_expected_amps:g} A "
                             "does not fit the 16-bit register: check the shunt value")
    real_lsb = INA219_CAL_K / (register * shunt_ohms)
    return Calibration(register, real_lsb, 20 * real_lsb, INA219_CONFIG_BASE | (gain << 11))


def ina226_calibration(shunt_ohms: float, max_expected_amps: float,
                       current_lsb: float | None = None) -> Calibration:
    """Calibration register and scaling for an INA226 (datasheet §7.5, equation 1)."""
    _check_inputs(shunt_ohms, max_expected_amps)
    shunt_max = max_expected_amps * shunt_ohms
    if shunt_max > INA226_SHUNT_FULL_SCALE_V:
        raise BadCalibration(
            f"{max_expected_amps:g} A through {shunt_ohms:g} ohm is {shunt_max * 1000:.1f} mV "
            "across the shunt; the INA226 measures at most 81.92 mV: use a smaller shunt")
    lsb = current_lsb if current_lsb is not None else max_expected_amps / 32768
    register = int(INA226_CAL_K / (lsb * shunt_ohms))
    if not 1 <= register <= 0x7FFF:
        raise BadCalibration(f"INA226 calibration for {shunt_ohms:g} ohm, {max_expected_amps:g} A "
                             "does not fit the 15-bit register: check the shunt value")
    real_lsb = INA226_CAL_K / (register * shunt_ohms)
    return Calibration(register, real_lsb, 25 * real_lsb, INA226_CONFIG)


def decode_ina219_bus(raw: int) -> tuple[float, bool, bool]:
    """INA219 bus voltage register -> (volts, conversion ready, math overflow)."""
    return (raw >> 3) * INA219_BUS_LSB_V, bool(raw & 0b10), bool(raw & 0b01)


@dataclass(frozen=True)
class PowerReading:
    """One reading of a power monitor.

    ``current_a`` is negative when current flows backwards through the shunt
    (a battery charging, say); ``power_w`` is the chip's power register, a
    magnitude. When ``overflow`` is set the chip's arithmetic overflowed and
    current and power are ``None``.
    """

    bus_voltage_v: float
    shunt_voltage_v: float
    current_a: float | None
    power_w: float | None
    overflow: bool = False

    def as_dict(self) -> dict[str, float | None]:
        """The values by name, for health documents and metrics."""
        values = asdict(self)
        values["overflow"] = float(self.overflow)
        return values


class _INA2xx(I2CDevice):
    """Word access with the byte swap, and OSError turned into hardware errors."""

    def _read(self, register: int) -> int:
        try:
            return swap16(self.bus.read_word_data(self.address, register))
        except OSError as exc:
            raise self._io_error(exc, f"read register {register:#04x}") from exc

    def _write(self, register: int, value: int) -> None:
        try:
            self.bus.write_word_data(self.address, register, swap16(value & 0xFFFF))
        except OSError as exc:
            raise self._io_error(exc, f"write register {register:#04x}") from exc

    def _io_error(self, exc: OSError, what: str) -> Exception:
        if exc.errno == NACK_ERRNO:
            return SensorNotFound(f"{self.chip}: nothing answers at {self.address:#04x} ({what}); "
                                  "check the wiring, the power and the address jumpers")
        return BusError(exc.errno, f"{self.chip} at {self.address:#04x}: {what} failed: {exc}")

    def _finish_open(self, calibration: Calibration) -> None:
        self.calibration = calibration
        self._write(INA219Reg.CONFIG, calibration.config)
        self._write(INA219Reg.CALIBRATION, calibration.register)
        if self._read(INA219Reg.CALIBRATION) != calibration.register:
            raise WrongChip(f"{self.chip} at {self.address:#04x} did not keep its calibration "
                            f"register: is this really an {self.chip}?")


class INA219(_INA2xx):
    """INA219 on ``bus`` at ``address`` (0x40-0x4F), calibrated for the given shunt."""

    chip = "INA219"

    def __init__(self, bus: I2CBus, address: int = 0x40, *, shunt_ohms: float = 0.1,
                 max_expected_amps: float = 2.0, current_lsb: float | None = None) -> None:
        super().__init__(bus, address)
        calibration = ina219_calibration(shunt_ohms, max_expected_amps, current_lsb)
        self._write(INA219Reg.CONFIG, INA219_RESET)
        self._finish_open(calibration)

    def read(self) -> PowerReading:
        """Bus and shunt voltage, current and power, as the chip last converted them."""
        shunt = signed(self._read(INA219Reg.SHUNT_VOLTAGE), 16) * INA219_SHUNT_LSB_V
        volts, _ready, overflow = decode_ina219_bus(self._read(INA219Reg.BUS_VOLTAGE))
        if overflow:
            return PowerReading(volts, shunt, None, None, overflow=True)
        current = signed(self._read(INA219Reg.CURRENT), 16) * self.calibration.current_lsb
        power = self._read(INA219Reg.POWER) * self.calibration.power_lsb
        return PowerReading(volts, shunt, current, power)


class INA226(_INA2xx):
    """INA226 on ``bus`` at ``address``; its ID registers are checked at open."""

    chip = "INA226"

    def __init__(self, bus: I2CBus, address: int = 0x40, *, shunt_ohms: float = 0.1,
                 max_expected_amps: float = 0.8, current_lsb: float | None = None) -> None:
        super().__init__(bus, address)
        calibration = ina226_calibration(shunt_ohms, max_expected_amps, current_lsb)
        maker, die = self._read(INA226Reg.MANUFACTURER_ID), self._read(INA226Reg.DIE_ID)
        if (maker, die) != (INA226_MANUFACTURER, INA226_DIE):
            raise WrongChip(f"no INA226 at {self.address:#04x}: ID registers read "
                            f"{maker:#06x}/{die:#06x}, expected 0x5449/0x2260 "
                            "(an INA219 has no ID registers: set the driver to ina219)")
        self._write(INA226Reg.CONFIG, INA226_RESET)
        self._finish_open(calibration)

    def read(self) -> PowerReading:
        """Bus and shunt voltage, current and power, as the chip last converted them."""
        overflow = bool(self._read(INA226Reg.MASK_ENABLE) & INA226_OVF)
        shunt = signed(self._read(INA226Reg.SHUNT_VOLTAGE), 16) * INA226_SHUNT_LSB_V
        volts = (self._read(INA226Reg.BUS_VOLTAGE) & 0x7FFF) * INA226_BUS_LSB_V
        if overflow:
            return PowerReading(volts, shunt, None, None, overflow=True)
        current = signed(self._read(INA226Reg.CURRENT), 16) * self.calibration.current_lsb
        power = self._read(INA226Reg.POWER) * self.calibration.power_lsb
        return PowerReading(volts, shunt, current, power)
