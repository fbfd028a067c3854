"""bench/wrk.py: the latencies wrk measured, without wrk's coordinated-omission correction."""

from __future__ import annotations

import random

import pytest

from bench.wrk import histogram_percentile, measured_latencies


def corrected(counts: dict[int, int], expected: int) -> dict[int, int]:
    """What wrk 4's ``stats_correct`` makes of a histogram (its C loop, in Python)."""
    data = dict(counts)
    top = max(data)
    for n in range(expected * 2, top + 1):
        count, m = data.get(n, 0), n - expected
        while count and m > expected:
            data[m] = data.get(m, 0) + count
            m -= expected
    return data


def wrk_output(counts: dict[int, int], duration: int, requests: int, timeouts: int = 0) -> str:
    pairs = " ".join(f"{value}:{count}" for value, count in sorted(counts.items()) if count)
    return (f"RESULT rps=1 p50=1 p95=1 p99=1 sockerr=0 s2=1 s3=0 s4=0 s5=0 portal=0\n"
            f"HISTOGRAM duration={duration} requests={requests} timeouts={timeouts} {pairs}\n")


def test_the_measured_latencies_come_back_from_wrks_corrected_histogram() -> None:
    rng = random.Random(1)
    # A closed loop's street: thousands of files in about a millisecond, 1 % of pages
    # from the portal taking hundreds.
    measured: dict[int, int] = {}
    for _ in range(20_000):
        value = rng.randint(300_000, 900_000) if rng.random() < 0.01 else rng.randint(50, 3_000)
        measured[value] = measured.get(value, 0) + 1
    connections, duration = 50, 3_000_000
    requests = sum(measured.values())
    step = duration // (requests // connections)
    printed = corrected(measured, step)
    assert sum(printed.values()) > 1.5 * requests  # made-up samples: the p95 of 1.8 s
    output = wrk_output(printed, duration, requests)
    assert measured_latencies(output, connections) == measured
    assert histogram_percentile(measured, 0.95) < 3_000
    assert histogram_percentile(printed, 0.95) > 100_000


def test_a_histogram_that_does_not_undo_is_refused() -> None:
    output = wrk_output({100: 5, 5_000: 1}, 1_000_000, 7)  # counts one request too many
    with pytest.raises(RuntimeError, match="does not undo"):
        measured_latencies(output, 1)


def test_histogram_percentile_is_nearest_rank() -> None:
    assert histogram_percentile({1: 94, 10: 5, 100: 1}, 0.95) == 10.0
    assert histogram_percentile({1: 95, 10: 5}, 0.95) == 1.0
