"""The I2C bus seam: the subset of smbus2's ``SMBus`` the drivers use.

Every driver takes its bus as an argument. On a node that is
``smbus2.SMBus(1)``; in tests and in ``meshhub hw detect --simulate`` it is a
:class:`hardware.simulated.SimulatedI2CBus`. The methods used are exactly those
of :class:`I2CBus` below, with smbus2's meaning:

* ``read_byte(addr)`` - receive one byte, no register (used only to probe);
* ``read_byte_data(addr, reg)`` / ``write_byte_data(addr, reg, value)``;
* ``read_word_data(addr, reg)`` / ``write_word_data(addr, reg, value)`` - SMBus
  words are **little-endian** (first byte on the wire is the low byte);
* ``read_i2c_block_data(addr, reg, length)`` /
  ``write_i2c_block_data(addr, reg, data)`` - several bytes from ``reg`` on;
* ``close()`` - used only by whoever opened the bus.

A chip that does not acknowledge its address raises ``OSError`` with errno
121 (``EREMOTEIO``) on Linux; a bus owned by a kernel driver gives errno 16.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from typing import Protocol

#: errno of a transfer nobody acknowledged (Linux i2c-dev: "Remote I/O error").
NACK_ERRNO = errno.EREMOTEIO
#: errno when a kernel driver owns the address (i2cdetect shows "UU").
BUSY_ERRNO = errno.EBUSY


class I2CBus(Protocol):
    """What a driver needs from a bus (a subset of ``smbus2.SMBus``)."""

    def read_byte(self, i2c_addr: int) -> int:
        """Receive one byte without selecting a register."""
        ...

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        """Read one byte from ``register``."""
        ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        """Write one byte to ``register``."""
        ...

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        """Read a 16-bit SMBus word (little-endian) from ``register``."""
        ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        """Write a 16-bit SMBus word (little-endian) to ``register``."""
        ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        """Read ``length`` bytes starting at ``register``."""
        ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        """Write ``data`` starting at ``register``."""
        ...

    def close(self) -> None:
        """Release the bus (its owner does this; drivers never close the bus)."""
        ...


def swap16(word: int) -> int:
    """Swap the two bytes of a 16-bit word.

    SMBus words travel low byte first; INA2xx registers travel high byte
    first. Reading an INA2xx register with ``read_word_data`` therefore gives
    the register with its bytes swapped, and this undoes it (and vice versa
    for writes).
    """
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def signed(value: int, bits: int) -> int:
    """Interpret the low ``bits`` of ``value`` as a two's-complement number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def open_bus(number: int) -> I2CBus:
    """Open ``/dev/i2c-<number>`` with smbus2 (imported only here, when needed)."""
    from smbus2 import SMBus

    return SMBus(number)
