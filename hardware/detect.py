"""What is on an I2C bus, and which of our drivers fits each chip.

:func:`scan` probes addresses like ``i2cdetect -r``: one ``read_byte`` per
address over 0x08-0x77 (the addresses below and above are reserved by the
I2C specification and skipped, as i2cdetect does by default). An address a
kernel driver owns answers ``EBUSY`` and is reported as in use ("UU").
:func:`identify` then reads ID registers to tell the chips apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.bme280 import BME280_CHIP_ID, BMP280_CHIP_IDS, BME280Reg
from hardware.bus import BUSY_ERRNO, I2CBus, swap16
from hardware.ina2xx import INA226_DIE, INA226_MANUFACTURER, INA226Reg

FIRST_ADDRESS, LAST_ADDRESS = 0x08, 0x77
INA_ADDRESSES = range(0x40, 0x50)
BME_ADDRESSES = (0x76, 0x77)


@dataclass(frozen=True)
class Found:
    """One responding address and what it seems to be."""

    address: int
    chip: str  #: "INA226", "BME280", "unknown", "in use by a kernel driver", ...
    driver: str | None  #: the ``hardware`` driver to use, or None
    note: str = ""


def scan(bus: I2CBus, first: int = FIRST_ADDRESS, last: int = LAST_ADDRESS
         ) -> list[tuple[int, bool]]:
    """Responding addresses as ``(address, kernel_owned)``; silent ones are left out."""
    found = []
    for address in range(first, last + 1):
        try:
            bus.read_byte(address)
        except OSError as exc:
            if exc.errno == BUSY_ERRNO:
                found.append((address, True))
            continue
        found.append((address, False))
    return found


def _word(bus: I2CBus, address: int, register: int) -> int | None:
    try:
        return swap16(bus.read_word_data(address, register))
    except OSError:
        return None


def identify(bus: I2CBus, address: int) -> Found:
    """Guess the chip at ``address`` from its ID registers (reads only, never writes)."""
    if address in INA_ADDRESSES:
        ids = (_word(bus, address, INA226Reg.MANUFACTURER_ID),
               _word(bus, address, INA226Reg.DIE_ID))
        if ids == (INA226_MANUFACTURER, INA226_DIE):
            return Found(address, "INA226", "ina226", "power monitor (ID 0x5449/0x2260)")
        if _word(bus, address, INA226Reg.CONFIG) is not None:
            return Found(address, "INA219", "ina219",
                         "power monitor; the INA219 has no ID register, so this is a guess "
                         "from the address")
    if address in BME_ADDRESSES:
        try:
            chip_id = bus.read_byte_data(address, BME280Reg.CHIP_ID)
        except OSError:
            chip_id = None
        if chip_id == BME280_CHIP_ID:
            return Found(address, "BME280", "bme280", "temperature, pressure, humidity")
        if chip_id in BMP280_CHIP_IDS:
            return Found(address, "BMP280", None,
                         "pressure and temperature only (no humidity); not supported")
        if chip_id == 0x61:
            return Found(address, "BME680", None, "gas sensor; not supported")
    return Found(address, "unknown", None)


def detect(bus: I2CBus) -> list[Found]:
    """Scan ``bus`` and identify every responding address."""
    return [Found(address, "in use by a kernel driver", None, "shown as UU by i2cdetect")
            if owned else identify(bus, address) for address, owned in scan(bus)]
