"""Hardware of a meshhub node: I2C sensors, board facts, status LED and setup button.

Drivers take their bus (``smbus2.SMBus`` or :class:`~hardware.simulated.SimulatedI2CBus`);
board readers take a root path; gpiozero devices take a ``pin_factory``. This
package imports nothing from ``node``, ``portal`` or ``provisioning``; the
``meshhub hw`` command and the agent read ``node.toml`` and pass plain values.
See ``docs/hardware.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hardware.bme280 import BME280, EnvironmentReading
    from hardware.board import BoardFacts, ThrottleFlags, parse_throttled, read_board
    from hardware.detect import Found, detect
    from hardware.errors import (
        BadCalibration,
        BusError,
        DeviceClosed,
        HardwareError,
        HardwareWarning,
        InvalidReading,
        SensorNotFound,
        SensorTimeout,
        WrongChip,
    )
    from hardware.ina2xx import INA219, INA226, PowerReading
    from hardware.sensors import SensorReader, SensorResult, standard_openers
    from hardware.status import NodeState, SetupButton, StatusLED

#: Where each public name lives: the package loads a module when one of its names is
#: first asked for (PEP 562), so the agent's ``from hardware import board`` does not load
#: every sensor driver on a node that has none (docs/scale.md).
_WHERE = {
    "BME280": "hardware.bme280",
    "BadCalibration": "hardware.errors",
    "BoardFacts": "hardware.board",
    "BusError": "hardware.errors",
    "DeviceClosed": "hardware.errors",
    "EnvironmentReading": "hardware.bme280",
    "Found": "hardware.detect",
    "HardwareError": "hardware.errors",
    "HardwareWarning": "hardware.errors",
    "INA219": "hardware.ina2xx",
    "INA226": "hardware.ina2xx",
    "InvalidReading": "hardware.errors",
    "NodeState": "hardware.status",
    "PowerReading": "hardware.ina2xx",
    "SensorNotFound": "hardware.errors",
    "SensorReader": "hardware.sensors",
    "SensorResult": "hardware.sensors",
    "SensorTimeout": "hardware.errors",
    "SetupButton": "hardware.status",
    "StatusLED": "hardware.status",
    "ThrottleFlags": "hardware.board",
    "WrongChip": "hardware.errors",
    "detect": "hardware.detect",
    "parse_throttled": "hardware.board",
    "read_board": "hardware.board",
    "standard_openers": "hardware.sensors",
}

__all__ = [
    "BME280",
    "INA219",
    "INA226",
    "BadCalibration",
    "BoardFacts",
    "BusError",
    "DeviceClosed",
    "EnvironmentReading",
    "Found",
    "HardwareError",
    "HardwareWarning",
    "InvalidReading",
    "NodeState",
    "PowerReading",
    "SensorNotFound",
    "SensorReader",
    "SensorResult",
    "SensorTimeout",
    "SetupButton",
    "StatusLED",
    "ThrottleFlags",
    "WrongChip",
    "detect",
    "parse_throttled",
    "read_board",
    "standard_openers",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module when first asked for."""
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and the public ones not loaded yet."""
    return sorted(set(globals()) | set(__all__))
