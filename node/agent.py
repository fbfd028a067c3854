"""``meshhub agent``: the long-running process on every node.

Today it does two things: it samples the node's health on a timer
(:class:`~node.health.HealthMonitor`) and serves the small HTTP API on
``agent.listen``:``agent.port`` (``/metrics``, ``/api/health``; see
:mod:`node.health.api`) with waitress.  SIGTERM or SIGINT stops it cleanly:
the API closes, the sampler finishes its sample, the history queued in
memory is written to disk.

Later it will also supervise the node's daemons (babeld, dnsmasq, the
portal).  Each will be a :class:`Supervised` added to :attr:`Agent.supervised`:
started after the API, polled by the same loop that samples, stopped in
reverse order before the API closes.  Nothing implements it yet.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from node.config import NodeConfig
from node.health import HealthMonitor, Sources
from node.health.probes import run_command, systemd_service_states
from node.logs import OnceLogger

log = logging.getLogger("meshhub.agent")


class Supervised(Protocol):
    """A daemon the agent will keep running (babeld, dnsmasq, the portal): not yet used."""

    name: str

    def start(self) -> None:
        """Start the daemon (idempotent)."""

    def poll(self) -> str:
        """``up`` or ``down``; called once per health interval, restarts belong here."""
        ...

    def stop(self) -> None:
        """Stop the daemon and wait for it (idempotent)."""


def node_sources(cfg: NodeConfig, root: Path = Path("/")) -> Sources:
    """The real machine's sources for a node: psutil, board facts, systemd units."""
    from node.health.hw import board_sources

    units = tuple(cfg.health.services)
    return Sources(service_states=lambda: systemd_service_states(units, run_command),
                   sys_root=root / "sys", **board_sources(root))


class Agent:
    """The agent's health sampler and HTTP API, startable and stoppable in-process.

    ``port=0`` (in tests) picks a free port; :attr:`port` tells which.
    """

    def __init__(self, cfg: NodeConfig, *, sources: Sources | None = None,
                 interval_seconds: float | None = None, port: int | None = None) -> None:
        self.cfg = cfg
        self.monitor = HealthMonitor.from_config(cfg, sources or node_sources(cfg))
        self.interval_seconds = float(interval_seconds or cfg.health.interval_seconds)
        self._host = cfg.agent.listen
        self._port = cfg.agent.port if port is None else port
        self.supervised: list[Supervised] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._problems = OnceLogger(log)
        self._started = False

    @property
    def port(self) -> int:
        """The TCP port the API listens on (known after :meth:`start`)."""
        return int(self._server.effective_port) if self._server else self._port

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:9180``."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Take the first sample, then start the sampler thread and the API."""
        if self._started:
            return
        from waitress.server import create_server

        from node.health.api import create_app

        self._started = True
        self._sample_once()
        self._server = create_server(create_app(self.monitor), host=self._host, port=self._port,
                                     threads=2, ident="meshhub-agent",
                                     max_request_body_size=1024, channel_timeout=30)
        self._threads = [
            threading.Thread(target=self._sample_loop, name="meshhub-health"),
            threading.Thread(target=self._server.run, name="meshhub-api"),
        ]
        for thread in self._threads:
            thread.start()
        log.info("agent API on %s (/metrics, /api/health)", self.url)

    def stop(self) -> None:
        """Stop the API and the sampler and write the history; safe to call twice."""
        if not self._started or self._stop.is_set():
            return
        self._stop.set()
        server = self._server
        if server is not None:
            def close_all() -> None:  # runs inside waitress's loop thread
                for channel in list(server.active_channels.values()):
                    channel.close()
                server.close()

            server.trigger.pull_trigger(close_all)
        for thread in self._threads:
            thread.join(timeout=10)
        if server is not None:
            server.task_dispatcher.shutdown()
        self.monitor.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` is requested; True if it was."""
        return self._stop.wait(timeout)

    def run(self) -> None:
        """Run until SIGTERM or SIGINT (the ``meshhub agent`` command)."""
        requested = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("agent: %s received, stopping", signal.Signals(signum).name)
            requested.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not requested.wait(1.0):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _sample_once(self) -> None:
        try:
            self.monitor.tick()
            self._problems.resolved("tick")
        except Exception as exc:  # the agent must outlive any one bad sample
            self._problems.warning("tick", "health sample failed: %s: %s",
                                   type(exc).__name__, exc)

    def _sample_loop(self) -> None:
        next_at = time.monotonic() + self.interval_seconds
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            self._sample_once()
            next_at += self.interval_seconds
            if next_at < time.monotonic():  # a suspended or overloaded board: skip, do not burst
                next_at = time.monotonic() + self.interval_seconds

