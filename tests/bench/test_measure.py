"""bench/measure.py: the rules every benchmark reports by (order, medians, ceilings, verdicts)."""

from __future__ import annotations

import io
import os

from bench.measure import PeakMemory, Report, interleaved, median, percentile


def test_interleaved_rotates_the_order_every_round() -> None:
    order: list[str] = []
    results = interleaved({name: (lambda n=name: order.append(n) or len(order))
                           for name in "abc"}, runs=3)
    assert order == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert results["a"] == [1, 6, 8]


def test_median_and_percentile() -> None:
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_verdicts_and_exit_code() -> None:
    out = io.StringIO()
    report = Report(out)
    report.at_most("p95", 12.0, "ms", 20)
    report.at_least("rate", 900.0, "pages/s", 1000, limit_text="kiwix-serve")
    assert report.exit_code() == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("p95: 12.0 ms (target: <= 20.0 ms; met;")
    assert lines[1].startswith("rate: 900 pages/s (target: >= 1000 pages/s (kiwix-serve); MISSED")
    assert "rate" in lines[2]


def test_a_ratio_above_the_ceiling_is_a_measuring_error() -> None:
    out = io.StringIO()
    report = Report(out)
    report.ratio_to_ceiling("front", 148.0, 100.0, 0.25, ceiling_name="nginx static")
    assert "MEASURING ERROR" in out.getvalue()
    assert report.exit_code() == 1
    fine = Report(io.StringIO())
    fine.ratio_to_ceiling("front", 104.0, 100.0, 0.25)
    assert fine.exit_code() == 0


def test_peak_memory_samples_this_process() -> None:
    with PeakMemory(lambda: [os.getpid()], interval=0.01) as memory:
        block = bytearray(32 * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])
    assert memory.peak_rss_mb >= 32
    assert memory.peak_pss_mb > 0
