"""Errors and warnings of the hardware package.

Each error derives from :class:`HardwareError` and from the builtin that fits
it, so a caller may catch either (``except TimeoutError`` keeps working).
:class:`HardwareWarning` marks degraded-but-running states: a sensor missing,
a reading skipped. Nothing here imports ``node``: the hardware package stands
on its own so that it can be tested, and reused, without the rest.
"""

from __future__ import annotations


class HardwareError(Exception):
    """Base class of every error raised by ``hardware``."""


class SensorNotFound(HardwareError, LookupError):
    """Nothing answers at the sensor's I2C address (or no such bus exists)."""


class WrongChip(HardwareError, LookupError):
    """Something answers at the address, but its ID registers name another chip."""


class SensorTimeout(HardwareError, TimeoutError):
    """A chip did not finish a conversion within the allowed time."""


class BadCalibration(HardwareError, ValueError):
    """Calibration values are impossible: from the chip's memory or from ``node.toml``."""


class InvalidReading(HardwareError, ValueError):
    """A chip returned a value that cannot be a measurement (skipped, all ones, overflow)."""


class BusError(HardwareError, OSError):
    """An I2C transfer failed part-way (the chip answered before, then stopped)."""


class DeviceClosed(HardwareError, RuntimeError):
    """A driver or device was used after :meth:`close`."""


class HardwareWarning(UserWarning):
    """A degraded-but-running state: a sensor unavailable, a reading skipped."""
