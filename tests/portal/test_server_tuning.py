"""The server launcher's tuning: malloc arenas, mmap threshold and trimming; queue warnings."""

from __future__ import annotations

import logging
import os

import pytest

from portal.server import (
    MemoryTrimmer,
    QueueWarningThrottle,
    throttle_queue_warnings,
    tune_malloc,
)


def _record() -> logging.LogRecord:
    return logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1,
                             "Task queue depth is %d", (3,), None)


def test_one_queue_warning_per_interval_says_how_many_were_dropped() -> None:
    throttle = QueueWarningThrottle(interval=3600)
    assert throttle.filter(_record())
    assert not any(throttle.filter(_record()) for _ in range(50))
    throttle._last -= 3600  # an hour later
    later = _record()
    assert throttle.filter(later)
    assert later.getMessage() == "Task queue depth is 3 (50 similar warnings suppressed)"


def test_the_throttle_is_installed_once() -> None:
    throttle_queue_warnings()
    throttle_queue_warnings()
    filters = logging.getLogger("waitress.queue").filters
    assert sum(isinstance(f, QueueWarningThrottle) for f in filters) == 1


def test_malloc_is_tuned_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    glibc = ("CS_GNU_LIBC_VERSION" in getattr(os, "confstr_names", {})
             and bool(os.confstr("CS_GNU_LIBC_VERSION")))
    assert tune_malloc(2, 128 * 1024) is glibc
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert tune_malloc(2) is False  # the environment wins


def test_the_trimmer_gives_freed_heap_back_and_stops_cleanly() -> None:
    glibc = ("CS_GNU_LIBC_VERSION" in getattr(os, "confstr_names", {})
             and bool(os.confstr("CS_GNU_LIBC_VERSION")))
    trimmer = MemoryTrimmer(interval=0.01)
    garbage = [bytes(100_000) for _ in range(50)]  # 5 MB of heap, then freed
    del garbage
    trimmer.start()
    try:
        assert (trimmer._thread is not None) is glibc
        assert isinstance(trimmer.trim(), bool)
    finally:
        trimmer.stop()
    assert trimmer._thread is None  # the leak check would also catch a running thread
