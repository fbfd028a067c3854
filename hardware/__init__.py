"""Hardware of a meshhub node: I2C sensors, board facts, status LED and setup button.

Drivers take their bus (``smbus2.SMBus`` or :class:`~hardware.simulated.SimulatedI2CBus`);
board readers take a root path; gpiozero devices take a ``pin_factory``. This
package imports nothing from ``node``, ``portal`` or ``provisioning``; the
``meshhub hw`` command and the agent read ``node.toml`` and pass plain values.
See ``docs/hardware.md``.
"""

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
