"""The agent's one scheduler thread: timers, folder watches, and no wake-ups while idle."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.atomic import atomic_write
from node.config import NodeConfig
from node.gate.service import GateService
from node.scheduler import Scheduler
from node.watch import open_folder_watch

WAIT = 10.0  # generous: the machine running the tests may be busy


def thread_switches(native_id: int) -> int:
    """Context switches of one thread so far (each wake-up of a sleeping thread is one)."""
    fields = Path(f"/proc/self/task/{native_id}/status").read_text().splitlines()
    return sum(int(line.split()[1]) for line in fields if "ctxt_switches" in line)


def watched_gate_config(tmp_path: Path) -> NodeConfig:
    """A gated node's config whose data folder exists and can be watched (else: skip)."""
    from tests.portal.conftest import write_node_toml

    cfg = write_node_toml(tmp_path, '[mesh]\naddress = "10.42.0.7"\n[clients]\n'
                          f'subnet = "10.64.7.0/24"\n[gate]\nsocket = "{tmp_path / "g.sock"}"\n')
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    if open_folder_watch(cfg.data_dir) is None:
        pytest.skip("no inotify here")
    return cfg


@contextlib.contextmanager
def running_gate(gate_class: type[GateService], cfg: NodeConfig) -> Iterator[GateService]:
    """``gate_class`` over the project's fake shell, started on a scheduler of its own (the
    switch and the store watched, the poll an hour away); both stopped at the end."""
    from tests.node.test_gate import FakeShell

    scheduler = Scheduler(name="test-scheduler")
    scheduler.start()
    gate = gate_class(cfg, runner=FakeShell(), poll_seconds=3600, scheduler=scheduler)
    gate.start()
    try:
        yield gate
    finally:
        gate.stop()
        scheduler.stop()


def test_a_timer_runs_repeatedly_and_a_failing_task_keeps_its_schedule() -> None:
    scheduler = Scheduler(name="test-scheduler")
    runs: list[int] = []
    done = threading.Event()
    failures = threading.Event()

    def task() -> None:
        runs.append(1)
        if len(runs) == 3:
            done.set()

    def broken() -> None:
        failures.set()
        raise RuntimeError("a sensor fell off")

    scheduler.every(0.01, task, "tick")
    scheduler.every(0.01, broken, "broken")
    scheduler.start()
    try:
        assert done.wait(WAIT)
        assert failures.wait(WAIT)
    finally:
        scheduler.stop()
    assert not scheduler.is_alive()
    assert scheduler.stats["tick"][0] >= 3
    assert scheduler.stats["broken"][0] >= 1


def test_a_file_written_in_a_watched_folder_wakes_its_task_at_once(tmp_path: Path) -> None:
    if open_folder_watch(tmp_path) is None:
        pytest.skip("no inotify here")
    scheduler = Scheduler(name="test-scheduler")
    seen: list[set[str]] = []
    told = threading.Event()

    def changed(names: set[str]) -> None:
        seen.append(names)
        told.set()

    # An hour's poll: only the watch can call it within the test's wait.
    assert scheduler.watch(tmp_path, changed, "switch", names={"gate-mode.json"},
                           poll_seconds=3600)
    scheduler.start()
    try:
        (tmp_path / "other.txt").write_text("not watched")
        atomic_write(tmp_path / "gate-mode.json", "{}")  # temp file + rename, as the portal
        assert told.wait(WAIT)
    finally:
        scheduler.stop()
    assert any("gate-mode.json" in names for names in seen)


def test_an_idle_scheduler_does_not_wake(tmp_path: Path) -> None:
    """Nothing due for an hour and nothing written: its thread stays asleep."""
    scheduler = Scheduler(name="test-scheduler")
    ran = threading.Event()
    scheduler.every(3600, ran.set, "hourly", first=0)  # runs once now, then in an hour
    scheduler.watch(tmp_path, lambda _names: None, "folder", poll_seconds=3600)
    scheduler.start()
    try:
        assert ran.wait(WAIT)
        thread = scheduler._thread
        assert thread is not None and thread.native_id is not None
        before = thread_switches(thread.native_id)
        # The observation window (not a wait for an event): it must not wake within it.
        threading.Event().wait(0.5)
        after = thread_switches(thread.native_id)
    finally:
        scheduler.stop()
    assert after - before <= 1, f"the idle scheduler woke {after - before} times in 0.5 s"


def test_stop_closes_its_descriptors(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    scheduler = Scheduler(name="test-scheduler")
    scheduler.watch(tmp_path, lambda _names: None, "folder", poll_seconds=3600)
    scheduler.start()
    scheduler.stop()
    scheduler.stop()  # idempotent
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_gate_applies_the_organisers_switch_when_the_file_is_written(tmp_path: Path
                                                                        ) -> None:
    """In the agent the switch's folder is watched: no poll (an hour here) is needed."""
    from bench.waiting import wait_for
    from node.gate.mode import mode_file, write_switch

    cfg = watched_gate_config(tmp_path)
    with running_gate(GateService, cfg) as gate:
        assert gate.manager.mode == "portal" and gate.poll() == "up"
        write_switch(mode_file(cfg), "open", set_by="ada")
        wait_for("the switch applied", lambda: gate.manager.mode == "open", timeout=WAIT)
    assert gate.poll() == "down"


def test_a_one_shot_runs_once_and_a_later_request_moves_it() -> None:
    scheduler = Scheduler(name="test-scheduler")
    runs: list[float] = []
    ran = threading.Event()
    marker = threading.Event()

    def task() -> None:
        runs.append(time.monotonic())
        ran.set()

    scheduler.start()
    try:
        scheduler.once(0.05, task, "settled")
        scheduler.once(0.01, task, "settled")  # sooner: the first request is dropped
        assert ran.wait(WAIT)
        ran.clear()
        scheduler.once(0.05, task, "settled")
        moved_at = time.monotonic()
        scheduler.once(0.3, task, "settled")  # later: the run moves with it
        assert ran.wait(WAIT)
        # Every request so far was due before this one: once it ran, they have too.
        scheduler.once(0.4, marker.set, "marker")
        assert marker.wait(WAIT)
    finally:
        scheduler.stop()
    assert len(runs) == 2, "each burst of requests runs the task once"
    assert runs[1] - moved_at >= 0.3, "the second burst ran before its last request was due"
    assert scheduler.stats["settled"][0] == 2


def test_the_gate_looks_again_once_the_stores_writes_settle(tmp_path: Path) -> None:
    """A commit is readable only after SQLite's last write to the WAL and its fsync,
    so the look at the first file event can come too soon and no event follows."""
    from node.gate import service

    cfg = watched_gate_config(tmp_path)
    written: list[float] = []
    looks: list[float] = []
    settled = threading.Event()

    class CountingGate(GateService):
        def check_broadcast(self) -> None:
            looks.append(time.monotonic())
            # Nothing else makes it look this late: no poll (an hour), no other write.
            if written and looks[-1] - written[0] >= service.STORE_SETTLE_SECONDS:
                settled.set()

    with running_gate(CountingGate, cfg):
        written.append(time.monotonic())
        (cfg.data_dir / "hub.sqlite3-wal").write_bytes(b"frames of a commit")
        assert settled.wait(WAIT), "no look after the writes settled"
    assert len(looks) >= 3, "at start, at the event, and once settled"


def test_the_gates_own_look_at_the_store_does_not_wake_it_again(tmp_path: Path) -> None:
    """The gate reads the store (a fresh read-only connection) when its files change. SQLite
    opens the WAL read-write for any reader, so that read once counted as a change: the
    gate woke itself for ever and an idle lab agent used 28 % of a core."""
    from node.gate import service
    from node.identity import Identity
    from node.sync.setup import DATABASE
    from tests.node.test_store_support import listing_body, open_store

    cfg = watched_gate_config(tmp_path)
    store = open_store(cfg.data_dir / DATABASE, Identity.generate())  # held open, as the agent's
    committed: list[float] = []
    looks: list[float] = []
    settled = threading.Event()

    class CountingGate(GateService):
        def check_broadcast(self) -> None:
            looks.append(time.monotonic())
            super().check_broadcast()  # the real look: a read-only connection, opened and closed
            if committed and looks[-1] - committed[0] >= service.STORE_SETTLE_SECONDS:
                settled.set()

    try:
        with running_gate(CountingGate, cfg):
            committed.append(time.monotonic())
            store.append("listing.post", listing_body(), actor="ada")
            assert settled.wait(WAIT), "no look after the commit settled"
            seen = len(looks)
            # The observation window (not a wait for an event): no look may follow.
            threading.Event().wait(2 * service.STORE_SETTLE_SECONDS)
            after = len(looks)
    finally:
        store.close()
    assert after == seen, f"the gate looked {after - seen} more times at an unchanged store"


def test_the_gates_looks_at_the_store_do_not_resolve_the_data_folder_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate looks at the store at every commit, twice (at the event and once the
    writes settled): at every post a node passes on. ``cfg.data_dir`` resolves the folder
    (a system call for each part of its path): 2.4 % of a relaying agent's processor time
    in a 5 x 5 grid (docs/scale.md, session 12). It is worked out once."""
    from node.config import NodeConfig
    from node.gate import service
    from node.identity import Identity
    from node.sync.setup import DATABASE
    from tests.node.test_store_support import listing_body, open_store

    cfg = watched_gate_config(tmp_path)
    store = open_store(cfg.data_dir / DATABASE, Identity.generate())
    resolved: list[float] = []
    resolve = vars(NodeConfig)["data_dir"].fget
    assert resolve is not None

    def counted(self: NodeConfig) -> Path:
        resolved.append(time.monotonic())
        return resolve(self)

    monkeypatch.setattr(NodeConfig, "data_dir", property(counted))
    looks: list[float] = []
    settled = threading.Event()

    class CountingGate(GateService):
        def check_broadcast(self) -> None:
            looks.append(time.monotonic())
            super().check_broadcast()
            if len(looks) > 1 and looks[-1] - looks[1] >= service.STORE_SETTLE_SECONDS:
                settled.set()

    try:
        with running_gate(CountingGate, cfg):
            started = len(resolved)
            for title in ("One", "Two"):
                store.append("listing.post", listing_body(title=title), actor="ada")
            assert settled.wait(WAIT), "no look after the commits settled"
            during = len(resolved) - started
    finally:
        store.close()
    assert len(looks) >= 3
    assert during == 0, f"{during} resolutions of the data folder for {len(looks)} looks"
