"""A small sliding-window rate limiter for sign-in attempts and submissions.

It lives in the portal process's memory (one waitress process per node), is
thread-safe, and bounds its own size so that a flood of distinct keys cannot
exhaust a 512 MB node.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


class RateLimiter:
    """Allow at most ``max_events`` per key within ``window_seconds``."""

    def __init__(self, max_events: int, window_seconds: float, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.max_events = max_events
        self.window_seconds = window_seconds
        self._clock = clock
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            events = deque()
            self._events[key] = events
            while len(self._events) > self._max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        while events and events[0] <= now - self.window_seconds:
            events.popleft()
        return events

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may act again; 0 when it may act now."""
        with self._lock:
            now = self._clock()
            events = self._recent(key, now)
            if len(events) < self.max_events:
                return 0.0
            return max(0.0, events[0] + self.window_seconds - now)

    def hit(self, key: str) -> bool:
        """Record one event for ``key``; ``False`` if it was over the limit (not recorded)."""
        with self._lock:
            now = self._clock()
            events = self._recent(key, now)
            if len(events) >= self.max_events:
                return False
            events.append(now)
            return True

    def reset(self, key: str) -> None:
        """Forget ``key``'s events (e.g. after a successful sign-in)."""
        with self._lock:
            self._events.pop(key, None)


_APP_LIMITERS_LOCK = threading.Lock()


def app_limiter(app: Flask, name: str) -> RateLimiter:
    """The application's one limiter for ``name`` (e.g. ``"SUBMIT"``), made on first use.

    Its budget comes from the app's ``NAME_MAX_PER_WINDOW`` and
    ``NAME_WINDOW_SECONDS`` settings, so tests shrink it through config; one
    instance per app keeps every thread of the portal counting the same events.
    """
    key = f"meshhub.{name.lower()}_limiter"
    with _APP_LIMITERS_LOCK:
        limiter = app.extensions.get(key)
        if limiter is None:
            limiter = RateLimiter(app.config[f"{name}_MAX_PER_WINDOW"],
                                  app.config[f"{name}_WINDOW_SECONDS"])
            app.extensions[key] = limiter
    return limiter
