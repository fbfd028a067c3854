"""The agent and its captive gate: a gate that fails to load is tried again, and the access
point waits for it (seen in a loaded virtual machine: ``nft: no answer within 30s`` at boot
left a node without its access point until someone restarted it)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import node.agent
from bench.waiting import wait_for
from node.agent import Agent
from tests.node.test_gate import FakeShell
from tests.node.test_health_collector import fake_sources
from tests.portal.conftest import write_node_toml


class SlowNftAtBoot(FakeShell):
    """The gate's shell whose first ``nft -f`` loads time out, as on a loaded board."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.loads = 0

    def __call__(self, argv: Sequence[str], stdin: str | None) -> tuple[int, str, str]:
        if list(argv) == ["nft", "-f", "-"] and "table inet meshhub" in (stdin or ""):
            self.loads += 1
            if self.loads <= self.failures:
                return 124, "", "nft: no answer within 30s"
        return super().__call__(argv, stdin)


class AccessDaemon:
    """Stands for hostapd under the agent's supervision: records when it was started."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started: float | None = None
        self.stopped = threading.Event()

    def start(self) -> None:
        if self.started is None:
            self.started = time.monotonic()

    def poll(self) -> str:
        return "up" if self.started is not None and not self.stopped.is_set() else "down"

    def stop(self) -> None:
        self.stopped.set()


def gated_agent(tmp_path: Path, shell: FakeShell) -> tuple[Agent, AccessDaemon]:
    cfg = write_node_toml(tmp_path, '[mesh]\naddress = "10.42.0.7"\n[clients]\n'
                          'subnet = "10.64.7.0/24"\n[gate]\nenabled = true\n'
                          f'socket = "{tmp_path / "gate.sock"}"\n')
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(cfg, sources=fake_sources(clock=time.time), interval_seconds=5, port=0,
                  gate_runner=shell)
    hostapd = AccessDaemon("hostapd")
    agent.access = [hostapd]
    agent.supervised = [hostapd]
    return agent, hostapd


def test_a_gate_that_failed_at_boot_is_loaded_later_and_then_the_access_point_opens(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
        ) -> None:
    monkeypatch.setattr(node.agent, "GATE_RETRY_SECONDS", 0.05)
    shell = SlowNftAtBoot(failures=2)
    agent, hostapd = gated_agent(tmp_path, shell)
    with caplog.at_level(logging.WARNING, logger="meshhub.agent"):
        agent.start()
        try:
            # At start the gate failed, so the access point stayed closed...
            assert shell.loads >= 1
            wait_for("the gate loaded at the third try", lambda: agent.gate is not None)
            wait_for("the access point opened", lambda: hostapd.started is not None)
            # ... and opened only once the gate's ruleset was in (never before it).
            assert shell.loads == 3
            assert agent.gate is not None and agent.gate.poll() == "up"
            assert Path(tmp_path / "gate.sock").exists()
        finally:
            agent.stop()
    assert hostapd.stopped.is_set() and agent.gate.poll() == "down"
    messages = [r.getMessage() for r in caplog.records]
    assert sum("gate: not started" in m and "trying again in" in m for m in messages) == 2
    assert any("gate: loaded at try 3; opening the access point" in m for m in messages)
    assert any("hostapd: not started: the gate is not loaded" in m for m in messages)
    assert not [t for t in threading.enumerate() if t.name.startswith("meshhub-")]


def test_a_gate_that_keeps_failing_keeps_the_access_point_closed_and_stops_cleanly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(node.agent, "GATE_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(node.agent, "GATE_RETRY_MAX_SECONDS", 0.1)
    shell = SlowNftAtBoot(failures=10**6)
    agent, hostapd = gated_agent(tmp_path, shell)
    agent.start()
    try:
        wait_for("a few more tries, each backed off", lambda: shell.loads >= 4)
        assert agent.gate is None and hostapd.started is None
    finally:
        agent.stop()
    # Nothing is left to try again: the scheduler's thread is gone with the rest, and a try
    # already under way when stop() came finds the stop and loads nothing.
    assert not [t for t in threading.enumerate() if t.name.startswith("meshhub-")]
    assert agent.gate is None and hostapd.started is None
