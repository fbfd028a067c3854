"""The residents' side as daemons supervised by the agent: dnsmasq, and hostapd on a radio.

With ``clients.dhcp = true`` the agent runs dnsmasq (DHCP and DNS for residents) with
the configuration ``meshhub net plan`` renders (:mod:`node.net.render_dnsmasq`),
written into ``agent.run_dir`` like babeld's, in the foreground (``--keep-in-foreground``,
its log on stderr so the supervisor keeps it, capped, in ``run_dir/dnsmasq.log``).
hostapd runs only when ``wifi.ap_interface`` exists and is a radio (the kernel lists a
``wireless`` or ``phy80211`` entry for it in ``/sys/class/net``): in the mesh lab without
radios the access point is a bridge standing in for the radio, and there is no hostapd
to run; the radio lab (``lab up --radio``) gives it a simulated radio. Its control socket
is in ``run_dir/hostapd/`` (``hostapd_cli -p RUN_DIR/hostapd``).

dnsmasq is started as the agent's user; as root it drops to ``nobody`` by itself
(so the lease file's folder, ``node.data_dir``, must be writable by that user; on a
real node the agent is not root and dnsmasq keeps the agent's user and capabilities).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from node.atomic import atomic_write
from node.config import NodeConfig
from node.mesh.supervisor import SupervisedProcess


def is_radio(interface: str, sys_root: Path = Path("/sys")) -> bool:
    """Whether ``interface`` exists and is a Wi-Fi radio (mac80211 or wireless extensions)."""
    base = sys_root / "class" / "net" / interface
    return (base / "phy80211").exists() or (base / "wireless").exists()


def lease_hook_dir(cfg: NodeConfig, noexec: Callable[[Path], bool] | None = None) -> Path:
    """Where the agent writes dnsmasq's lease hook: its runtime folder, unless that is
    mounted ``noexec`` (Debian's initramfs mounts /run so, and dnsmasq then cannot run
    the hook: the gate never learns a lease and no phone gets through). Then a folder
    under ``update.root``, which only the agent writes (not the data folder, where the
    portal's group could swap the hook for its own program)."""
    run_dir = Path(cfg.agent.run_dir)
    if not (noexec or mounted_noexec)(run_dir):
        return run_dir
    return Path(cfg.update.root) / "run"


def mounted_noexec(folder: Path) -> bool:
    """Whether programs cannot be run from ``folder``'s file system (or its nearest
    existing parent's: the runtime folder may not exist yet)."""
    for candidate in (folder, *folder.parents):
        try:
            return bool(os.statvfs(candidate).f_flag & os.ST_NOEXEC)
        except FileNotFoundError:
            continue
    return False


def dnsmasq_process(cfg: NodeConfig, executable: str = "dnsmasq",
                    name: str = "dnsmasq") -> SupervisedProcess:
    """A :class:`SupervisedProcess` running dnsmasq with this node's rendered configuration
    (``name`` = ``dnsmasq-walled``: the walled resolver of a node that forwards DNS)."""
    from node.net import build_plan

    run_dir = Path(cfg.agent.run_dir)
    plan = build_plan(cfg, net_dir=run_dir, hook_dir=lease_hook_dir(cfg))
    text = plan.file(f"{name}.conf").content
    hook = next((f for f in plan.files if f.path.name == "lease-hook"), None) \
        if name == "dnsmasq" else None
    conf, pid = run_dir / f"{name}.conf", run_dir / f"{name}.pid"

    def prepare() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if hook is not None:  # dnsmasq's dhcp-script: lease events to the gate
            hook.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            atomic_write(hook.path, hook.content, mode=hook.mode)
        atomic_write(conf, text, mode=0o644)
        with contextlib.suppress(FileNotFoundError):
            pid.unlink()  # left by a dnsmasq that was killed

    argv = [executable, "--keep-in-foreground", "--log-facility=-", f"--conf-file={conf}",
            f"--pid-file={pid}"]
    return SupervisedProcess(name, argv, log_path=run_dir / f"{name}.log",
                             prepare=prepare)


def hostapd_process(cfg: NodeConfig, executable: str = "hostapd") -> SupervisedProcess:
    """A :class:`SupervisedProcess` running hostapd (foreground) with the rendered file."""
    from node.net import build_plan
    from node.net.render_hostapd import render_hostapd

    run_dir = Path(cfg.agent.run_dir)
    build_plan(cfg, net_dir=run_dir)  # the same checks as 'meshhub net plan' first
    # Its control socket beside babeld's, in the agent's own runtime folder: the only
    # one it may write on a node (ProtectSystem=strict), one per node in the lab.
    text = render_hostapd(cfg, ctrl_dir=str(run_dir / "hostapd"))
    conf = run_dir / "hostapd.conf"

    def prepare() -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(conf, text, mode=0o644)

    return SupervisedProcess("hostapd", [executable, str(conf)],
                             log_path=run_dir / "hostapd.log", prepare=prepare)


def access_daemons(cfg: NodeConfig, sys_root: Path = Path("/sys")) -> list[SupervisedProcess]:
    """The residents' daemons this node runs, in start order: hostapd (only on a radio),
    then dnsmasq (and, where names are forwarded, the walled resolver); none unless
    ``clients.dhcp``."""
    if not cfg.clients.dhcp:
        return []
    daemons = []
    if is_radio(cfg.wifi.ap_interface, sys_root):
        daemons.append(hostapd_process(cfg))
    daemons.append(dnsmasq_process(cfg))
    from node.net.render_dnsmasq import forwards_dns

    if forwards_dns(cfg):
        daemons.append(dnsmasq_process(cfg, name="dnsmasq-walled"))
    return daemons
