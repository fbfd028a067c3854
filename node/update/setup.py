"""Building a node's update service from its ``node.toml`` (the agent uses it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.trust.registry import ANCHORS_FILE, AdminSet, load_anchors
from node.update.hooks import (
    HealthProbe,
    command_installer,
    command_restart,
    systemd_self_restart,
)
from node.update.pause import pause_state
from node.update.service import UpdateService, UpdateSettings
from node.update.updater import Updater, pip_installer

if TYPE_CHECKING:
    from node.config import NodeConfig
    from node.identity import Identity

DATABASE = "hub.sqlite3"


def node_anchors(cfg: NodeConfig) -> Callable[[], AdminSet | None]:
    """Reads ``<data_dir>/registry/anchors.json`` at each call (replication may rotate it)."""
    path = cfg.data_dir / "registry" / ANCHORS_FILE

    def anchors() -> AdminSet | None:
        return load_anchors(path) if path.exists() else None

    return anchors


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104 - compared


def open_update_service(cfg: NodeConfig, *, node_key: str, agent_url: Callable[[], str],
                        neighbours: Callable[[], int | None] = lambda: None,
                        own_port: Callable[[], int | None] = lambda: None,
                        identity: Identity | None = None,
                        **overrides: Any) -> UpdateService:
    """The update service for ``cfg`` (``update.*``), its Updater, installer, restart, probe."""
    root = Path(cfg.update.root)
    root.mkdir(parents=True, exist_ok=True)
    portal = f"http://{_local(str(cfg.portal.listen))}:{cfg.portal.port}"

    probe = HealthProbe(root, agent_url, portal, neighbours)
    install_cmd = list(cfg.update.install_command)
    restart_cmd = list(cfg.update.restart_command)
    installer = (command_installer(install_cmd) if install_cmd
                 else pip_installer(running=root / "current"))
    holder: dict[str, UpdateService] = {}
    if restart_cmd:
        restart = command_restart(restart_cmd)
    else:
        def restart() -> None:
            systemd_self_restart(holder["service"].stopping)()

    def sleep(seconds: float) -> None:
        from node.update.updater import UpdateInterrupted

        if holder["service"].stopping.wait(seconds):
            raise UpdateInterrupted("the agent is stopping")

    updater = Updater(root, installer=installer, restart=restart, probe=probe,
                      health_window=float(cfg.update.health_window_seconds),
                      sleep=sleep)
    service = UpdateService(UpdateSettings.from_config(cfg, **overrides), updater,
                            node_key=node_key, anchors=node_anchors(cfg),
                            pause=lambda: pause_state(cfg.data_dir / DATABASE),
                            own_port=own_port, before_install=probe.record_baseline,
                            identity=identity)
    holder["service"] = service
    return service
