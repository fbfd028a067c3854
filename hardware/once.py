"""Log a repeating hardware problem once, and count the repeats.

A sensor that fails on every sample must not fill an SD card with the same
line. :class:`OnceLog` logs the first occurrence of each problem as a
:class:`~hardware.errors.HardwareWarning`, counts the rest, and logs one line
with the count when the problem goes away. Library code adds no handlers:
whoever runs the package (the ``meshhub`` command, the agent) configures logging.
"""

from __future__ import annotations

import logging
import threading

from hardware.errors import HardwareWarning

#: The package logger; children are named after the module.
log = logging.getLogger("meshhub.hardware")


class OnceLog:
    """First occurrence of each problem key logged at WARNING; repeats counted."""

    def __init__(self, logger: logging.Logger = log) -> None:
        self._logger = logger
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def warn(self, key: str, warning: HardwareWarning) -> int:
        """Record ``warning`` under ``key``; log it only the first time. Returns the count."""
        with self._lock:
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        if count == 1:
            self._logger.warning("%s (logged once; repeats are counted)", warning,
                                 extra={"hardware_warning": warning})
        return count

    def resolved(self, key: str) -> int:
        """Forget ``key`` (the problem went away); log the count if it repeated."""
        with self._lock:
            count = self._counts.pop(key, 0)
        if count:
            self._logger.info("%s: recovered after %d failed attempt(s)", key, count)
        return count

    def summary(self) -> dict[str, int]:
        """How many times each unresolved problem has occurred so far."""
        with self._lock:
            return dict(self._counts)
