"""Lifecycle shared by every driver: idempotent close, context manager, DeviceClosed."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from hardware.bus import I2CBus
from hardware.errors import DeviceClosed


class I2CDevice:
    """A chip at ``address`` on ``bus``; the bus belongs to the caller.

    :meth:`close` only ends this driver's use of the chip (it is safe to call
    twice); closing the bus stays the caller's job, since several drivers
    usually share one bus.
    """

    #: Short chip name used in messages ("INA219", "BME280").
    chip = "I2C device"

    def __init__(self, bus: I2CBus, address: int) -> None:
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"I2C address {address:#04x} is outside 0x03-0x77")
        self._bus: I2CBus | None = bus
        self.address = address

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._bus is None

    @property
    def bus(self) -> I2CBus:
        """The bus, or :class:`DeviceClosed` after :meth:`close`."""
        if self._bus is None:
            raise DeviceClosed(f"{self.chip} at {self.address:#04x} is closed")
        return self._bus

    def close(self) -> None:
        """Stop using the chip. Calling it again does nothing."""
        self._bus = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self.chip} at {self.address:#04x} ({state})>"
