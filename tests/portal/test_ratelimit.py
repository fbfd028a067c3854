"""The rate limiter that guards sign-in and residents' submissions."""

from __future__ import annotations

from portal.ratelimit import RateLimiter
from tests.node.test_store_support import FakeClock


def test_blocks_after_limit_and_recovers_after_window() -> None:
    clock = FakeClock(1000.0)
    limiter = RateLimiter(3, 60, clock=clock)
    assert [limiter.hit("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.retry_after("a") == 60
    assert limiter.hit("b"), "other keys are not affected"
    clock.now += 61
    assert limiter.retry_after("a") == 0 and limiter.hit("a")


def test_reset_forgets_a_key() -> None:
    limiter = RateLimiter(1, 60, clock=FakeClock(1000.0))
    assert limiter.hit("a") and not limiter.hit("a")
    limiter.reset("a")
    assert limiter.hit("a")


def test_memory_is_bounded() -> None:
    limiter = RateLimiter(1, 60, clock=FakeClock(1000.0), max_keys=100)
    for i in range(1000):
        limiter.hit(f"client-{i}")
    assert len(limiter._events) == 100
