"""The agent's threads carry their names to the kernel (top -H, ps -L, bench/scale.py)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from bench.scale import thread_names
from node.agent import Agent
from node.config import load_config
from node.thread_names import name_os_threads, os_thread_name
from tests.node.test_agent import config
from tests.node.test_health_collector import fake_sources


def comm(thread: threading.Thread) -> str:
    return Path(f"/proc/self/task/{thread.native_id}/comm").read_text().strip()


def test_names_fit_the_kernels_fifteen_bytes() -> None:
    assert os_thread_name("meshhub-babel-monitor") == "babel-monitor"
    assert os_thread_name("meshhub-sync-files") == "sync-files"
    assert os_thread_name("waitress-3") == "waitress-3"
    assert os_thread_name("Thread-7 (_run_loop)") == "_run_loop"
    assert os_thread_name("a-very-long-thread-name") == "a-very-long-thr"
    assert os_thread_name("meshhub-€€€€€€") == "€€€€€"  # 15 bytes: five whole characters


def test_every_thread_but_the_main_one_gets_its_name() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="meshhub-test-worker")
    worker.start()
    main_name = comm(threading.main_thread())
    try:
        assert name_os_threads() >= 1
        assert comm(worker) == "test-worker"
        assert comm(threading.main_thread()) == main_name  # the process keeps its name
    finally:
        release.set()
        worker.join()


def test_a_started_agents_threads_are_named_for_the_kernel(tmp_path: Path) -> None:
    cfg = load_config(config(tmp_path, 9180))
    agent = Agent(cfg, sources=fake_sources(clock=time.time), interval_seconds=1.0, port=0)
    agent.start()
    try:
        names = {comm(t) for t in threading.enumerate() if t is not threading.main_thread()}
    finally:
        agent.stop()
    assert {"api", "scheduler", "waitress-0"} <= names, names


def test_the_scale_bench_names_threads_as_the_kernel_knows_them() -> None:
    """bench/scale.py's per-thread lines take the kernel's names (py-spy only for a thread
    without one of its own)."""
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="meshhub-bench-named")
    worker.start()
    try:
        name_os_threads()
        names = thread_names(os.getpid())
    finally:
        release.set()
        worker.join()
    assert names[worker.native_id] == "bench-named"
