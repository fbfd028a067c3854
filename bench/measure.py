"""Honest measuring for bench/: interleaved runs, medians, ceilings, peak memory, verdicts.

Every benchmark in bench/ prints its figures through :class:`Report`, one line
each, in the form::

    name: value unit (target: <= 50 ms; met; median of 5, load 3.1)

and exits non-zero when a figure misses its target (``make bench`` stops
being green). The rules it helps to keep:

- **Interleaved runs.** :func:`interleaved` runs each configuration at least
  :data:`MIN_RUNS` times, in a different order every round (A B C, B C A, ...),
  so that a slow spell of a loaded machine does not fall on one configuration.
  Figures are the medians of those runs.
- **Physical ceilings.** A ratio to something that does strictly less work
  (nginx serving the same bytes as files, ``dd`` writing the same bytes) above
  :data:`CEILING_SLACK` (105 %) is a measuring error, reported as such, never as
  a result.
- **Peak memory.** :class:`PeakMemory` samples RSS and PSS of the processes
  throughout a run (``/proc/PID/smaps_rollup``), so the figure is the high-water
  mark under load, not one reading afterwards.
- **Load.** Each figure carries the 1-minute load average at its measurement:
  on a shared machine a figure means little without it.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = ["CEILING_SLACK", "MIN_RUNS", "Figure", "PeakMemory", "Report", "children_of",
           "interleaved", "load_average", "median", "now", "percentile"]

#: The fewest runs a configuration gets before its median is reported.
MIN_RUNS = 5
#: A ratio to a physical ceiling above this is a measuring error.
CEILING_SLACK = 1.05
T = TypeVar("T")


def load_average() -> float:
    """The machine's 1-minute load average (0.0 where the OS does not say)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def median(values: Iterable[float]) -> float:
    """The median of ``values`` (NaN when there are none)."""
    found = list(values)
    return statistics.median(found) if found else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0.95 for p95) of ``values``, nearest rank; NaN if empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def interleaved(configurations: dict[str, Callable[[], T]], runs: int = MIN_RUNS, *,
                between: Callable[[], None] | None = None) -> dict[str, list[T]]:
    """Run every configuration ``runs`` times, rotating the order each round.

    Returns each configuration's results in run order. ``between`` (if given)
    is called before every single run, e.g. to let a server settle.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    names = list(configurations)
    results: dict[str, list[T]] = {name: [] for name in names}
    for round_number in range(runs):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            if between is not None:
                between()
            results[name].append(configurations[name]())
    return results


@dataclass
class Figure:
    """One reported figure with its target and verdict.

    ``ok`` is None for a figure printed for information (no target).
    ``error`` marks a measuring error: a figure that cannot be true.
    """

    name: str
    value: float
    unit: str
    target: str
    ok: bool | None
    note: str = ""
    error: str = ""
    load: float = field(default_factory=load_average)

    def line(self) -> str:
        """The printed line: ``name: value unit (target: ...; verdict; note, load)``."""
        if self.error:
            verdict = f"MEASURING ERROR: {self.error}"
        elif self.ok is None:
            verdict = "for information"
        else:
            verdict = "met" if self.ok else "MISSED"
        load = "" if "load" in self.note else f"load {self.load:.1f}"
        extra = "; ".join(part for part in (self.note, load) if part)
        return (f"{self.name}: {_number(self.value)} {self.unit} "
                f"(target: {self.target}; {verdict}; {extra})")


def _number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


class Report:
    """The figures of one benchmark run: printed as they come, judged at the end."""

    def __init__(self, stream: object = None) -> None:
        self.figures: list[Figure] = []
        self._stream = stream

    def _add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        print(figure.line(), file=self._stream or sys.stdout, flush=True)  # type: ignore[arg-type]
        return figure

    def info(self, name: str, value: float, unit: str, note: str = "") -> Figure:
        """A figure with no target (printed for comparison)."""
        return self._add(Figure(name, value, unit, "none", None, note))

    def at_most(self, name: str, value: float, unit: str, limit: float, note: str = "",
                *, limit_text: str = "") -> Figure:
        """A figure that must be <= ``limit`` (latency, memory)."""
        text = f"<= {_number(limit)} {unit}" + (f" ({limit_text})" if limit_text else "")
        ok = not math.isnan(value) and value <= limit
        return self._add(Figure(name, value, unit, text, ok, note))

    def at_least(self, name: str, value: float, unit: str, limit: float, note: str = "",
                 *, limit_text: str = "") -> Figure:
        """A figure that must be >= ``limit`` (throughput, ratios to a ceiling)."""
        text = f">= {_number(limit)} {unit}" + (f" ({limit_text})" if limit_text else "")
        ok = not math.isnan(value) and value >= limit
        return self._add(Figure(name, value, unit, text, ok, note))

    def ratio_to_ceiling(self, name: str, value: float, ceiling: float, minimum: float,
                         note: str = "", *, ceiling_name: str = "the ceiling") -> Figure:
        """``value / ceiling`` in percent, which must be >= ``minimum`` (a fraction).

        Above :data:`CEILING_SLACK` the ratio is a measuring error: nothing beats
        a ceiling that does strictly less work.
        """
        ratio = value / ceiling if ceiling > 0 else math.nan
        text = f">= {minimum * 100:.0f} % of {ceiling_name}"
        figure = Figure(name, ratio * 100, "%", text,
                        not math.isnan(ratio) and ratio >= minimum, note)
        if math.isnan(ratio) or ratio > CEILING_SLACK:
            figure.error = (f"above {CEILING_SLACK * 100:.0f} % of {ceiling_name}, "
                            "which does strictly less work")
        return self._add(figure)

    def failed(self) -> list[Figure]:
        """Figures that missed their target or could not be true."""
        return [f for f in self.figures if f.error or f.ok is False]

    def exit_code(self) -> int:
        """0 when every figure with a target met it; 1 otherwise (with a summary line)."""
        bad = self.failed()
        if bad:
            names = ", ".join(f.name for f in bad)
            print(f"# {len(bad)} of {len(self.figures)} figures missed or were in error: {names}",
                  file=self._stream or sys.stdout, flush=True)  # type: ignore[arg-type]
            return 1
        return 0


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in KiB from /proc/PID/smaps_rollup; (0, 0) once it is gone."""
    rss = pss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


class PeakMemory:
    """Samples the summed RSS and PSS of some processes in a thread, keeping the peaks.

    ``pids`` is a callable so that worker processes started later (nginx's
    workers) are counted too. Use as a context manager around the loaded part
    of a run; ``peak_rss_mb`` and ``peak_pss_mb`` are then the high-water marks.
    """

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.05) -> None:
        self._pids = pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-peak-memory", daemon=True)
        self.peak_rss_mb = 0.0
        self.peak_pss_mb = 0.0
        self.samples = 0

    def sample(self) -> None:
        """Take one sample now (also called by the thread)."""
        rss = pss = 0
        for pid in self._pids():
            one_rss, one_pss = _memory_kb(pid)
            rss += one_rss
            pss += one_pss
        self.peak_rss_mb = max(self.peak_rss_mb, rss / 1024)
        self.peak_pss_mb = max(self.peak_pss_mb, pss / 1024)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def cpu_seconds(*pids: int) -> float:
    """Processor time (user + system, every thread, ended threads included) the processes
    ``pids`` have used so far, together; a process that is gone counts 0. From
    ``/proc/PID/stat``, whose ticks the kernel scales to the scheduler's exact run time."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    """``pid`` and its child processes (e.g. nginx's master and workers; a child the
    portal started from one of its threads: each thread lists its own children)."""
    found = [pid]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(children_of(int(child)))
    return found


def now() -> float:
    """A monotonic clock in seconds (one name for all of bench/)."""
    return time.perf_counter()
