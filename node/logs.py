"""Package loggers, and a way to log a repeating failure once with a count.

Library code configures no handlers; the ``meshhub`` command does.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("meshhub")


class OnceLogger:
    """Logs the first occurrence of each problem and counts the repeats.

    A sensor that fails every second must not fill an SD card with the same
    line; :meth:`summary` reports how often each problem recurred. At most
    ``max_keys`` problems are told apart (a rogue peer inventing new addresses
    must not grow the log or the status without bound): beyond, new ones are
    counted together under :data:`OVERFLOW_KEY`, logged once.
    """

    OVERFLOW_KEY = "other problems (too many to tell apart)"

    def __init__(self, logger: logging.Logger, max_keys: int = 256) -> None:
        self._logger = logger
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def warning(self, key: str, message: str, *args: object) -> None:
        """Log ``message`` at WARNING the first time ``key`` is seen; count later ones."""
        with self._lock:
            if key not in self._counts and len(self._counts) >= self._max_keys:
                key = self.OVERFLOW_KEY
                message, args = ("more problems than can be told apart; counting them "
                                 "together (see the status's problems)"), ()
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        if count == 1:
            self._logger.warning(message, *args)

    def resolved(self, key: str) -> None:
        """Forget ``key``: the problem went away, so log it again if it comes back."""
        with self._lock:
            count = self._counts.pop(key, 0)
        if count > 1:
            self._logger.info("%s: recovered after %d repeated failures", key, count)

    def summary(self) -> dict[str, int]:
        """How many times each unresolved problem has occurred."""
        with self._lock:
            return dict(self._counts)
