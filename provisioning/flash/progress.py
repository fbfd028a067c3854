"""A one-line progress bar on stderr: percentage, bytes, speed and time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from provisioning.flash.devices import human


class Progress:
    """Redraws at most every ``interval`` seconds; silent when ``stream`` is None."""

    def __init__(self, label: str, total: int | None, stream: TextIO | None = sys.stderr,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.25) -> None:
        self.label = label
        self.total = total
        self.stream = stream
        self.clock = clock
        self.interval = interval
        self.started = clock()
        self._last = 0.0

    def update(self, done: int, position: int | None = None, *, force: bool = False) -> str:
        """Show ``done`` bytes processed; ``position`` (of ``total``) drives % and ETA."""
        now = self.clock()
        if not force and now - self._last < self.interval:
            return ""
        self._last = now
        line = self.render(done, position, now - self.started)
        if self.stream is not None:
            self.stream.write("\r" + line.ljust(78))
            self.stream.flush()
        return line

    def render(self, done: int, position: int | None, elapsed: float) -> str:
        """The text of the bar (pure, for tests)."""
        speed = done / elapsed if elapsed > 0 else 0.0
        where = done if position is None else position
        if self.total:
            fraction = min(where / self.total, 1.0)
            bar = "#" * int(fraction * 20)
            left = elapsed * (1 - fraction) / fraction if fraction > 0 else None
            eta = _clock(left) if left is not None else "--:--"
            return (f"{self.label} [{bar:<20}] {fraction * 100:3.0f}%  {human(done)}  "
                    f"{human(int(speed))}/s  {eta} left")
        return f"{self.label} {human(done)}  {human(int(speed))}/s"

    def finish(self, done: int) -> None:
        """Draw the final state and end the line."""
        self.update(done, self.total, force=True)
        if self.stream is not None:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
