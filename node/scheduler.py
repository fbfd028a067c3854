"""One thread for the agent's periodic and file-driven work, asleep while nothing is due.

An idle agent should cost nothing. Instead of a thread per task that wakes on its own
timer (the health sampler, the gate's mode watcher, the check for entries other
processes appended to the store), the agent has one :class:`Scheduler`: a heap of
timers and the inotify descriptors of the folders it watches (:mod:`node.watch`),
waited on with one ``select`` whose timeout is the next timer. Between two health
samples nothing wakes the process; a file written by the portal or an organiser's
switch wakes it at once, not at the next poll.

Tasks run on the scheduler's thread one after another, so each must be short (a
health sample, reading a small file, setting an event); work that may block for long
(a sync pull) belongs to its own thread, which a task merely wakes. A task that raises
is logged once (until it succeeds again) and keeps its schedule.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from pathlib import Path

from node.logs import OnceLogger
from node.watch import OVERFLOW, FolderWatch, open_folder_watch

log = logging.getLogger("meshhub.scheduler")

_Listener = tuple[frozenset[str] | None, str, Callable[[set[str]], None]]
#: How late :meth:`Scheduler.stop` may find the thread, in seconds.
STOP_TIMEOUT_SECONDS = 15.0


class Scheduler:
    """Timers and folder watches served by one thread (``start``/``stop``)."""

    def __init__(self, name: str = "meshhub-scheduler",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._timers: list[tuple[float, int, str]] = []  # (due, sequence, task name)
        self._tasks: dict[str, tuple[float, Callable[[], None]]] = {}
        #: Per folder: its watch, and each listener's names (None: all), name and task.
        self._watches: dict[Path, tuple[FolderWatch, list[_Listener]]] = {}
        self._sequence = itertools.count()
        #: One-shot tasks (:meth:`once`) still to run: each name's latest request.
        self._once: dict[str, int] = {}
        self._lock = threading.Lock()
        #: Opened at the first start or watch (an agent made but never started holds none).
        self._selector: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._problems = OnceLogger(log)
        #: Per task: how many runs and the processor seconds they took (its own profile).
        self.stats: dict[str, list[float]] = {}

    # --- what to run ---------------------------------------------------------------
    def every(self, seconds: float, task: Callable[[], None], name: str, *,
              first: float | None = None) -> None:
        """Run ``task`` every ``seconds`` (first after ``first`` seconds, default
        ``seconds``). A run that ends late is not repeated to catch up: the next is
        ``seconds`` after it (an overloaded or suspended board skips, never bursts)."""
        if seconds <= 0:
            raise ValueError(f"{name}: the interval must be positive, not {seconds}")
        with self._lock:
            self._tasks[name] = (float(seconds), task)
            self.stats.setdefault(name, [0, 0.0])
            due = self._clock() + (seconds if first is None else first)
            heapq.heappush(self._timers, (due, next(self._sequence), name))
        self._wake()

    def once(self, seconds: float, task: Callable[[], None], name: str) -> None:
        """Run ``task`` once, ``seconds`` from now. Asked again before it ran, the run
        moves to ``seconds`` after the new request (one pending run per name): a look
        once a burst of changes has settled, not one per change."""
        with self._lock:
            self._tasks[name] = (0.0, task)
            self.stats.setdefault(name, [0, 0.0])
            sequence = self._once[name] = next(self._sequence)
            heapq.heappush(self._timers, (self._clock() + max(0.0, seconds), sequence, name))
        self._wake()

    def watch(self, folder: Path, task: Callable[[set[str]], None], name: str, *,
              names: set[str] | None = None, poll_seconds: float | None) -> bool:
        """Call ``task(changed names)`` when files in ``folder`` (only ``names``, if
        given) are written, created, moved or removed. Where the folder cannot be watched,
        ``task({"*"})`` runs every ``poll_seconds`` instead (None: not at all, the caller
        polls itself); True if it is watched."""
        folder = Path(folder)
        wanted = frozenset(names) if names is not None else None
        selector = self._open()
        with self._lock:
            entry = self._watches.get(folder)
            if entry is None:
                watch = open_folder_watch(folder)
                if watch is not None:
                    entry = self._watches[folder] = (watch, [])
                    selector.register(watch, selectors.EVENT_READ, folder)
            if entry is not None:
                entry[1].append((wanted, name, task))
                self.stats.setdefault(name, [0, 0.0])
        if entry is None:
            if poll_seconds is not None:
                self.every(poll_seconds, lambda: task({OVERFLOW}), name)
            return False
        self._wake()
        return True

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (idempotent)."""
        if self._thread is None:
            self._open()
            self._thread = threading.Thread(target=self._run, name=self.name)
            self._thread.start()

    def is_alive(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop after the task running now, wait for the thread, close (idempotent)."""
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: still running %.0f s after stop", self.name, timeout)
                return
        with self._lock:
            selector, self._selector = self._selector, None
            for watch, _ in self._watches.values():
                if selector is not None:
                    selector.unregister(watch)
                watch.close()
            self._watches.clear()
            if selector is not None:
                selector.close()
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1

    def _open(self) -> selectors.BaseSelector:
        """The selector and the wake-up pipe, made on first use."""
        with self._lock:
            if self._selector is None:
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_r, False)
                os.set_blocking(self._wake_w, False)
                self._selector = selectors.DefaultSelector()
                self._selector.register(self._wake_r, selectors.EVENT_READ)
            return self._selector

    # --- the loop ------------------------------------------------------------------
    def _wake(self) -> None:
        if self._wake_w < 0:  # not open yet: the loop will see the timers when it starts
            return
        with contextlib.suppress(OSError):  # already woken (pipe full), or closed
            os.write(self._wake_w, b"x")

    def _run(self) -> None:
        selector = self._open()
        while not self._stopping.is_set():
            with self._lock:
                due = self._timers[0][0] if self._timers else None
            timeout = None if due is None else max(0.0, due - self._clock())
            for key, _ in selector.select(timeout):
                if key.data is None:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                else:
                    self._changed(key.data)
            self._run_due()

    def _changed(self, folder: Path) -> None:
        with self._lock:
            watch, listeners = self._watches[folder]
        names = watch.changed()
        if not names:
            return
        for wanted, name, task in list(listeners):
            if wanted is None or OVERFLOW in names or names & wanted:
                self._call(name, functools.partial(task, names))

    def _run_due(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                if not self._timers or self._timers[0][0] > self._clock():
                    return
                due, sequence, name = heapq.heappop(self._timers)
                seconds, task = self._tasks[name]
                one_shot = seconds == 0.0  # (:meth:`every` refuses 0)
                if one_shot and self._once.get(name) != sequence:
                    continue  # moved by a later request, or already run: not this one
                if one_shot:
                    del self._once[name]
            self._call(name, task)
            if one_shot:
                continue
            now = self._clock()
            following = due + seconds if due + seconds > now else now + seconds
            with self._lock:
                heapq.heappush(self._timers, (following, next(self._sequence), name))

    def _call(self, name: str, task: Callable[[], None]) -> None:
        started = time.thread_time()
        try:
            task()
            self._problems.resolved(name)
        except Exception as exc:  # one task's failure must not stop the others
            self._problems.warning(name, "%s failed: %s: %s", name, type(exc).__name__, exc)
        finally:
            entry = self.stats.setdefault(name, [0, 0.0])
            entry[0] += 1
            entry[1] += time.thread_time() - started
