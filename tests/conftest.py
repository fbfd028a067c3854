"""Fixtures shared by every test: tool requirements and leak checks."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_tool(*names: str) -> None:
    """Skip (on a laptop) or fail (in CI) when a system tool is missing."""
    missing = [n for n in names if shutil.which(n) is None and not Path(n).exists()]
    if missing:
        message = f"needs {', '.join(missing)} (Debian packages: see scripts/system-packages.sh)"
        if IN_CI:
            pytest.fail(f"CI must have it: {message}")
        pytest.skip(message)


def require_root() -> None:
    """Skip (on a laptop) or fail (in CI) when not running as root."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root; this test needs root")
        pytest.skip("needs root (network namespaces or raw sockets)")


def attach_loop_device(backing: Path) -> str:
    """``losetup -f --show backing``: the loop device's path; fails in CI, skips elsewhere."""
    import subprocess

    require_root()
    require_tool("losetup")
    setup = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True,
                           text=True, check=False)
    if setup.returncode != 0:
        message = f"losetup could not attach {backing.name}: {setup.stderr.strip()}"
        if IN_CI:
            pytest.fail(f"CI must have loop devices: {message}")
        pytest.skip(message)
    return setup.stdout.strip()


#: Tests that may skip even under CI=true, each with the reason it cannot run there.
#: Everything else the suite needs is installed by scripts/system-packages.sh.
CI_MAY_SKIP: dict[str, str] = {
    "tests/lab/test_radio_host.py::test_lab_up_radio_on_this_host_says_so_in_one_line":
    "checks the refusal on a kernel without mac80211_hwsim; skips where the radio lab runs",
}


def _skip_is_a_failure_in_ci(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Under CI=true a skip hides a test that did not run: report it as a failure."""
    if not (IN_CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    if any(report.nodeid.startswith(allowed) for allowed in CI_MAY_SKIP):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = (f"skipped under CI=true, where every test must run "
                       f"(tests/conftest.py CI_MAY_SKIP): {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Skips (pytest.skip, skipif, importorskip in a test) fail under CI=true."""
    outcome = yield
    _skip_is_a_failure_in_ci(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """Skipped modules (importorskip or pytest.skip at import) fail under CI=true."""
    outcome = yield
    _skip_is_a_failure_in_ci(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module marked ``scenario`` runs its tests in file order (after pytest-randomly's
    shuffle): they are steps of one story on one shared set-up. Every other test must
    pass in any order."""
    slots: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if item.get_closest_marker("scenario") is not None:
            slots.setdefault(str(item.path), []).append(index)
    for indexes in slots.values():
        ordered = sorted((items[i] for i in indexes), key=lambda item: item.reportinfo()[1] or 0)
        for index, item in zip(indexes, ordered, strict=True):
            items[index] = item


#: Seconds a process or thread that a test has told to stop may still take to end before
#: the leak checks call it leaked. Only a leak waits that long; on a loaded 2-core CI
#: machine an agent that got its SIGTERM (say, from its parent's death) has needed several
#: seconds to finish, which a shorter grace reported as a leak.
ENDING_GRACE_SECONDS = 30.0


#: Processes (pids) and threads a test handed over to a session-scoped fixture, which
#: ends them: e.g. a virtual machine a VM test boots again (tests/vm/conftest.py,
#: ``BootedNode.boot_again``), powered off by its fixture at the end. Not the test's leak.
HANDED_OVER_PIDS: set[int] = set()
HANDED_OVER_THREADS: set[threading.Thread] = set()


@pytest.fixture(autouse=True)
def verify_processes_ended() -> Iterator[None]:
    """Fail a test that leaves a child process of its own running (a daemon, a server)."""
    import psutil

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    leaked = [p for p in me.children(recursive=True)
              if p.pid not in before and p.pid not in HANDED_OVER_PIDS]
    _gone, alive = psutil.wait_procs(leaked, timeout=ENDING_GRACE_SECONDS)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"test leaked processes: {[' '.join(p.cmdline()[:4]) for p in alive]}"


#: Threads that are not a test's to stop: the interpreter's own.
#: Daemon threads count as leaks like any other: one left behind keeps polling, holds
#: files and sockets, and can act on a later test's state.
INTERPRETER_THREADS = ("MainThread",)


@pytest.fixture(autouse=True)
def verify_threads_ended() -> Iterator[None]:
    """Fail a test that leaves a thread of its own running, daemon or not."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()
              and t not in HANDED_OVER_THREADS and not t.name.startswith(INTERPRETER_THREADS)]
    deadline = time.monotonic() + ENDING_GRACE_SECONDS
    for thread in leaked:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"test leaked threads: {leaked}"
