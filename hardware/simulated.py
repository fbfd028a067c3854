"""Simulated I2C chips on a simulated bus, for tests and ``meshhub hw detect --simulate``.

The drivers in this package run unchanged against :class:`SimulatedI2CBus`:
it offers the same methods as ``smbus2.SMBus`` (see :mod:`hardware.bus`) and
hands each transfer to the chip attached at that address. The chips follow
their datasheets: register maps and chip IDs, calibration registers written by
the driver and used to compute the current and power registers from a
physical state (``volts``, ``amps``; ``temperature_c``, ``pressure_pa``,
``humidity_percent``) that a test may change, a BME280 whose data registers
change only after a forced conversion and whose "measuring" status bit clears
after a number of status reads.

Faults a test can inject on any chip: ``present = False`` (the address is no
longer acknowledged: ``OSError`` errno 121, like a real NACK),
``fail_next = n`` (the next n transfers fail with errno 121) and
``flaky_every = k`` (every k-th transfer fails).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Mapping, Sequence

from hardware.bme280 import (
    BME280_CHIP_ID,
    MODE_SLEEP,
    RESET_WORD,
    SKIPPED_16BIT,
    SKIPPED_20BIT,
    STATUS_IM_UPDATE,
    STATUS_MEASURING,
    BME280Reg,
    Trimming,
    compensate_humidity,
    compensate_pressure,
    compensate_temperature,
)
from hardware.bus import BUSY_ERRNO, NACK_ERRNO, swap16
from hardware.ina2xx import INA226_DIE, INA226_MANUFACTURER, INA226_OVF, INA219Reg, INA226Reg

#: The datasheet's example trimming values (BMP280 datasheet §3.12) for
#: temperature and pressure, and typical humidity values read from a real chip.
EXAMPLE_TRIMMING = Trimming(
    dig_T1=27504, dig_T2=26435, dig_T3=-1000,
    dig_P1=36477, dig_P2=-10685, dig_P3=3024, dig_P4=2855, dig_P5=140, dig_P6=-7,
    dig_P7=15500, dig_P8=-14600, dig_P9=6000,
    dig_H1=75, dig_H2=362, dig_H3=0, dig_H4=313, dig_H5=50, dig_H6=30)


def _nack(what: str) -> OSError:
    return OSError(NACK_ERRNO, f"{os.strerror(NACK_ERRNO)} ({what})")


class SimulatedChip:
    """Register access and fault injection shared by the simulated chips."""

    def __init__(self) -> None:
        self.present = True
        self.fail_next = 0
        self.flaky_every = 0
        self.transfers = 0

    def begin_transfer(self) -> None:
        """Called by the bus before each transfer: raises the injected faults."""
        if not self.present:
            raise _nack("chip absent")
        self.transfers += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise _nack("injected failure")
        if self.flaky_every and self.transfers % self.flaky_every == 0:
            raise _nack("flaky chip")

    def read(self, register: int, length: int) -> list[int]:
        """Return ``length`` bytes starting at ``register``."""
        raise NotImplementedError

    def write(self, register: int, data: Sequence[int]) -> None:
        """Store ``data`` starting at ``register``."""
        raise NotImplementedError

    def receive_byte(self) -> int:
        """A byte read without a register (what ``i2cdetect -r`` does)."""
        return self.read(0, 1)[0]


class _SimulatedINA(SimulatedChip):
    """16-bit big-endian registers computed from ``volts`` and ``amps``."""

    DEFAULT_CONFIG = 0

    def __init__(self, *, volts: float = 12.0, amps: float = 0.5,
                 shunt_ohms: float = 0.1) -> None:
        super().__init__()
        self.volts, self.amps, self.shunt_ohms = volts, amps, shunt_ohms
        self.config, self.calibration = self.DEFAULT_CONFIG, 0

    def registers(self) -> dict[int, int]:
        """Every readable register's current value (computed from the physical state)."""
        raise NotImplementedError

    def read(self, register: int, length: int) -> list[int]:
        value = self.registers().get(register, 0)
        word = [value >> 8, value & 0xFF]
        return [word[i % 2] for i in range(length)]

    def write(self, register: int, data: Sequence[int]) -> None:
        if len(data) < 2:
            return  # a pointer write, or a half word the chip ignores
        value = data[0] << 8 | data[1]
        if register == INA219Reg.CONFIG:
            self.config, self.calibration = (
                (self.DEFAULT_CONFIG, 0) if value & 0x8000 else (value, self.calibration))
        elif register == INA219Reg.CALIBRATION:
            self.calibration = self._calibration_bits(value)

    def _calibration_bits(self, value: int) -> int:
        return value

    def _math(self, shunt_reg: int, bus_reg: int, divisor: int,
              power_divisor: int) -> tuple[int, int, bool]:
        current = int(shunt_reg * self.calibration / divisor)
        power = int(abs(current) * bus_reg / power_divisor)
        overflow = not -0x8000 <= current <= 0x7FFF or power > 0xFFFF
        return current & 0xFFFF, min(power, 0xFFFF), overflow


class SimulatedINA219(_SimulatedINA):
    """An INA219 (no ID registers; configuration 0x399F after reset)."""

    DEFAULT_CONFIG = 0x399F

    def _calibration_bits(self, value: int) -> int:
        return value & 0xFFFE

    def registers(self) -> dict[int, int]:
        full_scale = 4000 << ((self.config >> 11) & 0b11)
        wanted = round(self.amps * self.shunt_ohms / 10e-6)
        shunt = max(-full_scale, min(full_scale, wanted))
        bus_max = 8191 if self.config & (1 << 13) else 4000
        bus = max(0, min(bus_max, round(self.volts / 0.004)))
        current, power, overflow = self._math(shunt, bus, 4096, 5000)
        overflow = overflow or shunt != wanted
        return {INA219Reg.CONFIG: self.config, INA219Reg.SHUNT_VOLTAGE: shunt & 0xFFFF,
                INA219Reg.BUS_VOLTAGE: bus << 3 | 0b10 | int(overflow),
                INA219Reg.POWER: power, INA219Reg.CURRENT: current,
                INA219Reg.CALIBRATION: self.calibration}


class SimulatedINA226(_SimulatedINA):
    """An INA226 (manufacturer 0x5449, die 0x2260; configuration 0x4127 after reset)."""

    DEFAULT_CONFIG = 0x4127

    def _calibration_bits(self, value: int) -> int:
        return value & 0x7FFF

    def registers(self) -> dict[int, int]:
        shunt = max(-0x8000, min(0x7FFF, round(self.amps * self.shunt_ohms / 2.5e-6)))
        bus = max(0, min(0x7FFF, round(self.volts / 1.25e-3)))
        current, power, overflow = self._math(shunt, bus, 2048, 20000)
        return {INA226Reg.CONFIG: self.config, INA226Reg.SHUNT_VOLTAGE: shunt & 0xFFFF,
                INA226Reg.BUS_VOLTAGE: bus, INA226Reg.POWER: power, INA226Reg.CURRENT: current,
                INA226Reg.CALIBRATION: self.calibration,
                INA226Reg.MASK_ENABLE: 0b1000 | (INA226_OVF if overflow else 0),
                INA226Reg.MANUFACTURER_ID: INA226_MANUFACTURER, INA226Reg.DIE_ID: INA226_DIE}


def _invert(function: Callable[[int], float], target: float, bits: int) -> int:
    """The raw value whose compensated value is closest to ``target`` (monotonic search)."""
    low, high = 0, (1 << bits) - 1
    rising = function(high) > function(low)
    while high - low > 1:
        middle = (low + high) // 2
        if (function(middle) < target) == rising:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda raw: abs(function(raw) - target))


class SimulatedBME280(SimulatedChip):
    """A BME280: chip ID, trimming memory, forced conversions, measuring status bit.

    ``conversion_reads`` status reads see the "measuring" bit before a forced
    conversion completes; ``stuck_measuring`` makes it never complete. Set
    ``chip_id = 0x58`` to play a BMP280.
    """

    def __init__(self, *, temperature_c: float = 21.5, pressure_pa: float = 101325.0,
                 humidity_percent: float = 45.0, trimming: Trimming = EXAMPLE_TRIMMING,
                 chip_id: int = BME280_CHIP_ID, conversion_reads: int = 2) -> None:
        super().__init__()
        self.temperature_c, self.pressure_pa = temperature_c, pressure_pa
        self.humidity_percent = humidity_percent
        self.trimming, self.conversion_reads = trimming, conversion_reads
        self.stuck_measuring = False
        self.conversions = 0
        self.memory = bytearray(256)
        self.memory[BME280Reg.CHIP_ID] = chip_id
        calib00, calib26 = trimming.to_registers()
        self.memory[BME280Reg.CALIB_00:BME280Reg.CALIB_00 + len(calib00)] = bytes(calib00)
        self.memory[BME280Reg.CALIB_26:BME280Reg.CALIB_26 + len(calib26)] = bytes(calib26)
        self._reset()

    def _reset(self) -> None:
        for register in (BME280Reg.CTRL_HUM, BME280Reg.CTRL_MEAS, BME280Reg.CONFIG):
            self.memory[register] = 0
        data = BME280Reg.DATA
        self.memory[data:data + 8] = bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])
        self._latched_hum = 0
        self._measuring_left = -1
        self._im_update_left = 1

    def read(self, register: int, length: int) -> list[int]:
        if register == BME280Reg.STATUS:
            self.memory[BME280Reg.STATUS] = self._status()
        return [self.memory[(register + i) & 0xFF] for i in range(length)]

    def write(self, register: int, data: Sequence[int]) -> None:
        for offset, value in enumerate(data):
            self._write_byte((register + offset) & 0xFF, value)

    def _write_byte(self, register: int, value: int) -> None:
        if register == BME280Reg.RESET:
            if value == RESET_WORD:
                self._reset()
        elif register == BME280Reg.CTRL_MEAS:
            self.memory[register] = value
            self._latched_hum = self.memory[BME280Reg.CTRL_HUM] & 0b111
            if value & 0b11 != MODE_SLEEP:
                self._measuring_left = self.conversion_reads
        elif register in (BME280Reg.CTRL_HUM, BME280Reg.CONFIG):
            self.memory[register] = value

    def _status(self) -> int:
        status = 0
        if self._im_update_left > 0:
            self._im_update_left -= 1
            status |= STATUS_IM_UPDATE
        if self._measuring_left >= 0:
            if self._measuring_left > 0 or self.stuck_measuring:
                self._measuring_left = max(0, self._measuring_left - 1)
                status |= STATUS_MEASURING
            else:
                self._convert()
        return status

    def _convert(self) -> None:
        """Finish a forced conversion: raw values from the physical state, back to sleep."""
        self._measuring_left = -1
        self.conversions += 1
        ctrl = self.memory[BME280Reg.CTRL_MEAS]
        trim = self.trimming
        adc_t = _invert(lambda raw: compensate_temperature(raw, trim)[0], self.temperature_c, 20)
        t_fine = compensate_temperature(adc_t, trim)[1]
        adc_p = _invert(lambda raw: compensate_pressure(raw, t_fine, trim), self.pressure_pa, 20)
        adc_h = _invert(lambda raw: compensate_humidity(raw, t_fine, trim),
                        self.humidity_percent, 16)
        if not ctrl >> 5:
            adc_t = SKIPPED_20BIT
        if not (ctrl >> 2) & 0b111:
            adc_p = SKIPPED_20BIT
        if not self._latched_hum:
            adc_h = SKIPPED_16BIT
        self.memory[BME280Reg.DATA:BME280Reg.DATA + 8] = bytes([
            adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4,
            adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4, adc_h >> 8, adc_h & 0xFF])
        self.memory[BME280Reg.CTRL_MEAS] = ctrl & ~0b11 & 0xFF

    def receive_byte(self) -> int:
        return self.memory[BME280Reg.CHIP_ID]


class SimulatedI2CBus:
    """A bus with simulated chips at addresses; same methods as ``smbus2.SMBus``.

    ``kernel_owned`` addresses answer with ``EBUSY`` like an address a kernel
    driver has claimed (``UU`` in i2cdetect).
    """

    def __init__(self, chips: Mapping[int, SimulatedChip] | None = None, *,
                 number: int = 1, kernel_owned: Sequence[int] = ()) -> None:
        self.number = number
        self.chips: dict[int, SimulatedChip] = dict(chips or {})
        self.kernel_owned = set(kernel_owned)
        self.closed = False

    def attach(self, address: int, chip: SimulatedChip) -> SimulatedChip:
        """Put ``chip`` on the bus at ``address`` and return it."""
        self.chips[address] = chip
        return chip

    def detach(self, address: int) -> None:
        """Take the chip at ``address`` off the bus (it no longer answers)."""
        self.chips.pop(address, None)

    def _chip(self, address: int) -> SimulatedChip:
        if self.closed:
            raise OSError(errno.EBADF, "simulated bus is closed")
        if address in self.kernel_owned:
            raise OSError(BUSY_ERRNO, os.strerror(BUSY_ERRNO))
        chip = self.chips.get(address)
        if chip is None:
            raise _nack(f"no chip at {address:#04x}")
        chip.begin_transfer()
        return chip

    @staticmethod
    def _check(value: int, limit: int) -> int:
        if not isinstance(value, int) or not 0 <= value <= limit:
            raise ValueError(f"value {value!r} out of range 0..{limit}")
        return value

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        """Receive one byte (no register)."""
        return self._chip(i2c_addr).receive_byte()

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Read one byte from ``register``."""
        return self._chip(i2c_addr).read(self._check(register, 0xFF), 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        """Write one byte to ``register``."""
        self._chip(i2c_addr).write(self._check(register, 0xFF), [self._check(value, 0xFF)])

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Read an SMBus word: first byte on the wire is the low byte."""
        first, second = self._chip(i2c_addr).read(self._check(register, 0xFF), 2)
        return first | second << 8

    def write_word_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        """Write an SMBus word: the low byte goes on the wire first."""
        big_endian = swap16(self._check(value, 0xFFFF))
        self._chip(i2c_addr).write(self._check(register, 0xFF),
                                   [big_endian >> 8, big_endian & 0xFF])

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        """Read ``length`` (at most 32) bytes from ``register`` on."""
        return self._chip(i2c_addr).read(self._check(register, 0xFF), self._check(length, 32))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                             force: bool | None = None) -> None:
        """Write ``data`` (at most 32 bytes) from ``register`` on."""
        self._check(len(data), 32)
        self._chip(i2c_addr).write(self._check(register, 0xFF),
                                   [self._check(v, 0xFF) for v in data])

    def close(self) -> None:
        """Close the bus; later transfers fail as on a closed file descriptor."""
        self.closed = True

    def __enter__(self) -> SimulatedI2CBus:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def example_bus(number: int = 1) -> SimulatedI2CBus:
    """A bus as a solar node might have it: INA219 at 0x40, INA226 at 0x41, BME280 at 0x76."""
    return SimulatedI2CBus({0x40: SimulatedINA219(volts=12.6, amps=0.42),
                            0x41: SimulatedINA226(volts=5.1, amps=0.35, shunt_ohms=0.1),
                            0x76: SimulatedBME280()}, number=number)
