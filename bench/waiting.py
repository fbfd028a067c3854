"""Waiting for a witness: the one polling helper of the tests and the benchmarks.

Tests and benchmarks wait on something they can see happen (a file, a route, a page that
names the post), never on a fixed sleep; the timeout is a liveness bound sized for a
loaded machine, not a speed claim (those are measured in ``bench/``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(what: str, predicate: Callable[[], T], timeout: float = 30.0,
             interval: float = 0.05, detail: Callable[[], str] | None = None) -> T:
    """Poll ``predicate`` until it returns something true and return that value.

    Fails with an ``AssertionError`` naming ``what`` (and what ``detail()`` says, e.g. how
    far a post got) after ``timeout`` seconds, so a test that waits in vain says why.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            said = f"; {detail()}" if detail else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{said}")
        time.sleep(interval)
