"""Reading several sensors without ever stopping the caller.

:class:`SensorReader` holds a named opener per sensor (a function returning a
driver) and, on each :meth:`SensorReader.read_all`, gives every sensor's
values or marks it *unavailable*. A missing or failing sensor is logged once
as a :class:`~hardware.errors.HardwareWarning` with its repeats counted (see
:mod:`hardware.once`), and retried on the next read: a driver that failed is
closed and reopened, because a chip that browned out has lost its
configuration (an INA219 forgets its calibration register).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hardware.bme280 import BME280
from hardware.bus import I2CBus
from hardware.errors import HardwareError, HardwareWarning
from hardware.ina2xx import INA219, INA226
from hardware.once import OnceLog


class Reading(Protocol):
    """What a driver's ``read()`` returns."""

    def as_dict(self) -> dict[str, float | None]:
        """Values by name."""
        ...


class Sensor(Protocol):
    """What :class:`SensorReader` needs from a driver."""

    def read(self) -> Reading:
        """Take one reading."""
        ...

    def close(self) -> None:
        """Stop using the chip."""
        ...


Opener = Callable[[], Sensor]


@dataclass(frozen=True)
class SensorResult:
    """One sensor's outcome: its values, or why it is unavailable."""

    name: str
    available: bool
    values: Mapping[str, float | None] = field(default_factory=dict)
    problem: str | None = None  #: what went wrong, for people
    failures: int = 0  #: failed attempts in a row (0 when available)


class SensorReader:
    """Named sensors read together; failures become "unavailable", never exceptions.

    Only hardware failures (:class:`~hardware.errors.HardwareError` and
    ``OSError``) are absorbed; a bug in the caller's opener still raises.
    """

    def __init__(self, openers: Mapping[str, Opener], *, once: OnceLog | None = None) -> None:
        self._openers = dict(openers)
        self._drivers: dict[str, Sensor] = {}
        self._once = once or OnceLog()
        self._closed = False

    @property
    def names(self) -> list[str]:
        """The sensors' names, in the order given."""
        return list(self._openers)

    def read(self, name: str) -> SensorResult:
        """Read one sensor (opening it first if needed)."""
        if self._closed:
            return SensorResult(name, False, problem="sensor reader is closed")
        try:
            driver = self._drivers.get(name)
            if driver is None:
                driver = self._drivers[name] = self._openers[name]()
            values = driver.read().as_dict()
        except (HardwareError, OSError) as exc:
            self._drop(name)
            warning = HardwareWarning(f"sensor {name!r} unavailable: {exc}")
            count = self._once.warn(f"sensor {name!r}", warning)
            return SensorResult(name, False, problem=str(exc), failures=count)
        self._once.resolved(f"sensor {name!r}")
        return SensorResult(name, True, values)

    def read_all(self) -> dict[str, SensorResult]:
        """Read every sensor; the result has one entry per sensor, always."""
        return {name: self.read(name) for name in self._openers}

    def _drop(self, name: str) -> None:
        driver = self._drivers.pop(name, None)
        if driver is not None:
            driver.close()

    def close(self) -> None:
        """Close every open driver (the bus stays the caller's). Safe to call twice."""
        for name in list(self._drivers):
            self._drop(name)
        self._closed = True

    def __enter__(self) -> SensorReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def standard_openers(bus: I2CBus, *, power_monitor: str = "none", ina_address: int = 0x40,
                     shunt_ohms: float = 0.1, max_amps: float = 2.0,
                     bme280_address: int = 0) -> dict[str, Opener]:
    """Openers for a node's usual sensors, from plain settings (``[hardware]`` in node.toml).

    ``power_monitor`` is ``"ina219"``, ``"ina226"`` or ``"none"``;
    ``bme280_address`` 0 means no BME280 is fitted.
    """
    openers: dict[str, Opener] = {}
    chips: dict[str, type[INA219] | type[INA226]] = {"ina219": INA219, "ina226": INA226}
    if power_monitor != "none":
        if power_monitor not in chips:
            raise ValueError(f"unknown power monitor {power_monitor!r}: ina219, ina226 or none")
        chip = chips[power_monitor]
        openers["power"] = lambda: chip(bus, ina_address, shunt_ohms=shunt_ohms,
                                        max_expected_amps=max_amps)
    if bme280_address:
        openers["environment"] = lambda: BME280(bus, bme280_address)
    return openers
