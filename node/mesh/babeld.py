"""babeld as a daemon supervised by the agent.

The configuration is the one ``meshhub net plan`` renders (:mod:`node.net.render_babeld`),
written into ``agent.run_dir`` with the monitoring socket, pid file and state file
beside it, so that several nodes can share one machine (the lab) without meeting.
babeld runs in the foreground (no ``-D``): the supervisor owns the process.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from node.atomic import atomic_write
from node.config import NodeConfig
from node.frozen import frozen
from node.mesh.supervisor import SupervisedProcess
from node.net.addressing import address_plan
from node.net.render_babeld import render_babeld


@frozen
class BabeldFiles:
    """Where one node's babeld keeps its runtime files."""

    run_dir: Path

    @property
    def config(self) -> Path:
        """The rendered ``babeld.conf``."""
        return self.run_dir / "babeld.conf"

    @property
    def socket(self) -> Path:
        """The ``local-path`` monitoring socket (read-only: dump/monitor)."""
        return self.run_dir / "babeld.sock"

    @property
    def pid(self) -> Path:
        """babeld's pid file (``-I``)."""
        return self.run_dir / "babeld.pid"

    @property
    def state(self) -> Path:
        """babeld's sequence-number state across restarts (``-S``)."""
        return self.run_dir / "babeld.state"

    @property
    def log(self) -> Path:
        """babeld's output, capped by the supervisor."""
        return self.run_dir / "babeld.log"


def babeld_files(cfg: NodeConfig) -> BabeldFiles:
    """The runtime file locations for this node (under ``agent.run_dir``)."""
    return BabeldFiles(Path(cfg.agent.run_dir))


def babeld_process(cfg: NodeConfig, executable: str = "babeld") -> SupervisedProcess:
    """A :class:`SupervisedProcess` running babeld with this node's rendered configuration."""
    files = babeld_files(cfg)
    text = render_babeld(cfg, address_plan(cfg), monitor_path=str(files.socket))

    def prepare() -> None:
        files.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(files.config, text, mode=0o644)
        for stale in (files.socket, files.pid):  # left by a babeld that was killed
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

    argv = [executable, "-c", str(files.config), "-I", str(files.pid), "-S", str(files.state)]
    return SupervisedProcess("babeld", argv, log_path=files.log, prepare=prepare)
