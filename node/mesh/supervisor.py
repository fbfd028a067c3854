"""A supervised daemon: started with its rendered configuration, restarted when it dies.

:class:`SupervisedProcess` implements the agent's ``Supervised`` protocol
(:mod:`node.agent`). One thread per daemon runs it in the foreground, copies its
output into its own log file (capped: when the file reaches ``log_max_bytes`` it
becomes ``NAME.log.1`` and a new one starts, so at most twice the cap is ever
used on the SD card), and when the process exits restarts it after an exponential
back-off (1 s, 2 s, 4 s ... up to ``backoff_max``; a run longer than
``stable_seconds`` resets it). :meth:`stop` sends SIGTERM, waits, then SIGKILL.

The daemon gets SIGTERM if the agent itself dies (``PR_SET_PDEATHSIG``), so a
killed agent never leaves an orphan babeld routing for a node that is gone.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("meshhub.supervisor")

#: Defaults, in seconds and bytes.
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 60.0
STABLE_SECONDS = 30.0
LOG_MAX_BYTES = 256 * 1024
STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class CappedLog:
    """An append-only log file that rotates once to ``.1`` when it reaches a size."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        """Append ``data`` (one line or more), rotating first when the cap is reached."""
        with self._lock:
            if self._file.tell() + len(data) > self.max_bytes:
                self._file.close()
                self.path.replace(self.path.with_name(self.path.name + ".1"))
                self._file = self.path.open("ab")
            self._file.write(data[: self.max_bytes])
            self._file.flush()

    def note(self, text: str) -> None:
        """A line of the supervisor's own (start, exit, restart), timestamped."""
        self.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} meshhub: {text}\n".encode())

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            self._file.close()


class SupervisedProcess:
    """Keeps one daemon running in the foreground; see the module docstring."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path,
                 prepare: Callable[[], None] | None = None,
                 log_max_bytes: int = LOG_MAX_BYTES, backoff_initial: float = BACKOFF_INITIAL,
                 backoff_max: float = BACKOFF_MAX, stable_seconds: float = STABLE_SECONDS,
                 stop_timeout: float = STOP_TIMEOUT) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.prepare = prepare
        self.restarts = 0
        self._log_max = log_max_bytes
        self._backoff = (backoff_initial, backoff_max)
        self._stable = stable_seconds
        self._stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._log: CappedLog | None = None

    @property
    def pid(self) -> int | None:
        """The running process's id, or ``None`` between runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the daemon and its watcher thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._log = CappedLog(self.log_path, self._log_max)
            self._thread = threading.Thread(target=self._run, name=f"meshhub-{self.name}")
            self._thread.start()

    def poll(self) -> str:
        """``up`` while the process runs, ``down`` between a crash and its restart."""
        return "up" if self.pid is not None else "down"

    def stop(self) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and the watcher; idempotent."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        self._terminate()
        thread.join(timeout=self._stop_timeout + 5)
        if self._log is not None:
            self._log.note(f"{self.name} stopped")
            self._log.close()

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=self._stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _run(self) -> None:
        assert self._log is not None
        delay = self._backoff[0]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self.prepare is not None:
                    self.prepare()
                proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        preexec_fn=_die_with_parent)
            except (OSError, ValueError) as exc:
                self._log.note(f"cannot start {self.argv[0]}: {exc}")
                log.warning("%s: cannot start %s: %s", self.name, self.argv[0], exc)
            else:
                self._proc = proc
                self._log.note(f"{self.name} started, pid {proc.pid}: {' '.join(self.argv)}")
                assert proc.stdout is not None
                for line in proc.stdout:  # ends when the daemon exits
                    self._log.write(line)
                code = proc.wait()
                proc.stdout.close()
                if self._stop.is_set():
                    break
                if time.monotonic() - started > self._stable:
                    delay = self._backoff[0]
                self._log.note(f"{self.name} exited with status {code}")
                log.warning("%s exited with status %s; restarting in %.0f s (log: %s)",
                            self.name, code, delay, self.log_path)
            if self._stop.wait(delay):
                break
            self.restarts += 1
            delay = min(delay * 2, self._backoff[1])
