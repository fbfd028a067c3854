"""The mesh link as a daemon supervised by the agent: wpa_supplicant joining 802.11s with SAE.

With ``mesh.security = "sae"`` (:mod:`node.net.mesh_sae`), ``meshhub net apply``
creates the mesh point but does not join it: the agent runs ``wpa_supplicant`` on it,
which joins the mesh, authenticates every peer link with SAE and the community's mesh
key, and keeps the links' keys. Its configuration holds the key, so it is written
0600 into ``agent.run_dir`` (``wpa_supplicant-mesh.conf``); its control socket is in
``run_dir/wpa_supplicant/`` (``wpa_cli -p RUN_DIR/wpa_supplicant -i mesh0``). It runs
only when the mesh interface exists and is a radio: a lab without radios has veth
cables there.
"""

from __future__ import annotations

import logging
from pathlib import Path

from node.atomic import atomic_write
from node.config import NodeConfig
from node.errors import ConfigError
from node.mesh.access import is_radio
from node.mesh.supervisor import SupervisedProcess

log = logging.getLogger(__name__)


def mesh_supplicant_process(cfg: NodeConfig, key: str,
                            executable: str = "wpa_supplicant") -> SupervisedProcess:
    """A :class:`SupervisedProcess` running wpa_supplicant in mesh mode on the mesh point."""
    from node.net.mesh_sae import render_mesh_supplicant
    from node.net.render_mesh import mesh_channel

    run_dir = Path(cfg.agent.run_dir)
    conf = run_dir / "wpa_supplicant-mesh.conf"
    text = render_mesh_supplicant(cfg, key, str(run_dir / "wpa_supplicant"), mesh_channel(cfg))

    def prepare() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(conf, text, mode=0o600)

    return SupervisedProcess("wpa_supplicant-mesh",
                             [executable, "-D", "nl80211", "-i", cfg.mesh.interface,
                              "-c", str(conf)],
                             log_path=run_dir / "wpa_supplicant-mesh.log", prepare=prepare)


def mesh_link_daemons(cfg: NodeConfig,
                      sys_root: Path = Path("/sys")) -> list[SupervisedProcess]:
    """wpa_supplicant for an SAE mesh on a radio; nothing for an open mesh or cables.

    A missing or bad mesh key is logged as ``mesh link: not started: ...`` (the node
    then serves its own residents but joins no mesh) rather than stopping the agent.
    """
    from node.net.mesh_sae import key_path, load_key, uses_sae

    if not uses_sae(cfg) or not is_radio(cfg.mesh.interface, sys_root):
        return []
    try:
        key = load_key(key_path(cfg))
    except ConfigError as exc:
        log.error("mesh link: not started: %s", "; ".join(exc.problems))
        return []
    return [mesh_supplicant_process(cfg, key)]


__all__ = ["mesh_link_daemons", "mesh_supplicant_process"]
