"""The network plan: every file meshhub would write and every command it would run.

:func:`build_plan` is pure: it renders from ``NodeConfig`` and returns a
:class:`NetworkPlan`; ``meshhub net plan`` prints it or writes it to a folder, and
``apply`` (later) writes the same files and runs the same commands.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import field
from pathlib import Path

from node.atomic import atomic_write
from node.config import NodeConfig
from node.frozen import frozen
from node.net.addressing import AddressPlan
from node.net.render_babeld import render_babeld
from node.net.render_dnsmasq import (
    forwards_dns,
    render_dnsmasq,
    render_lease_hook,
    render_walled_dnsmasq,
)
from node.net.render_hostapd import render_hostapd
from node.net.render_mesh import Command, mesh_commands, render_mesh_script
from node.net.render_nftables import render_nftables
from node.net.render_shaping import render_shaping_script, shaping_commands
from node.net.validate import check_network

#: Where a node keeps its rendered network files.
NET_DIR = Path("/etc/meshhub/net")
RUN_DIR = Path("/run/meshhub")
#: The daemons the plan starts (the agent supervises them instead when it runs them).
DAEMONS = ("hostapd", "dnsmasq", "babeld")


@frozen
class PlannedFile:
    """One rendered file: absolute destination, permission bits, text, and why it exists."""

    path: Path
    mode: int
    content: str
    purpose: str

    @property
    def size(self) -> int:
        """Size in bytes of the UTF-8 content."""
        return len(self.content.encode("utf-8"))


@frozen
class NetworkPlan:
    """What the network of this node should be: addresses, files, commands (in order)."""

    addresses: AddressPlan
    files: tuple[PlannedFile, ...]
    commands: tuple[Command, ...] = field(default_factory=tuple)

    def file(self, name: str) -> PlannedFile:
        """The planned file whose name is ``name`` (e.g. ``gate.nft``)."""
        for planned in self.files:
            if planned.path.name == name:
                return planned
        raise KeyError(name)

    def without_daemons(self) -> NetworkPlan:
        """The same plan without starting :data:`DAEMONS`: for a node whose agent runs
        them itself (``mesh.routing``, ``clients.dhcp``), apply sets up the gate and the
        interfaces only."""
        kept = tuple(c for c in self.commands if c[0] not in DAEMONS)
        return dataclasses.replace(self, commands=kept)

    def write_to(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write every file flat into ``directory`` (atomically); return the paths."""
        target = Path(directory)
        return [atomic_write(target / f.path.name, f.content, mode=f.mode) for f in self.files]


def build_plan(cfg: NodeConfig, net_dir: Path = NET_DIR,
               hook_dir: Path | None = None) -> NetworkPlan:
    """Check the network settings and render the whole plan (raises ConfigError first);
    dnsmasq's lease hook goes in ``hook_dir`` (default ``net_dir``), which must allow
    running programs."""
    addresses = check_network(cfg)
    ap = cfg.wifi.ap_interface
    lease_file = str(cfg.data_dir / "dnsmasq.leases")
    # With the gate's control socket, dnsmasq reports every lease to it (node/gate/leases.py).
    hook_path = (hook_dir or net_dir) / "lease-hook"
    hook = [PlannedFile(hook_path, 0o755, render_lease_hook(cfg),
                        "dnsmasq's lease events to the gate")] if cfg.gate.enabled else []
    # Where names are forwarded, devices that have not accepted get one that forwards nothing.
    walled = [PlannedFile(net_dir / "dnsmasq-walled.conf", 0o644,
                          render_walled_dnsmasq(cfg, addresses),
                          "dnsmasq walled resolver (DNS before acceptance, forwards nothing)")
              ] if forwards_dns(cfg) else []
    files = (
        PlannedFile(net_dir / "gate.nft", 0o644, render_nftables(cfg, addresses),
                    "nftables captive gate (nft -f, one transaction)"),
        PlannedFile(net_dir / "mesh-up.sh", 0o755, render_mesh_script(cfg, addresses),
                    f"mesh link ({cfg.mesh.mode}) and mesh address"),
        PlannedFile(net_dir / "babeld.conf", 0o644, render_babeld(cfg, addresses),
                    "babeld routing between nodes"),
        PlannedFile(net_dir / "dnsmasq.conf", 0o644,
                    render_dnsmasq(cfg, addresses, lease_file=lease_file,
                                   lease_hook=str(hook_path) if hook else None),
                    "dnsmasq DHCP/DNS for residents"),
        *hook,
        *walled,
        *([PlannedFile(net_dir / "uplink-shaping.sh", 0o755, render_shaping_script(cfg),
                       "CAKE on the uplink: a fair share for every resident")]
          if shaping_commands(cfg) else []),
        PlannedFile(net_dir / "hostapd.conf", 0o644, render_hostapd(cfg),
                    "hostapd access point for residents"),
    )
    path = {f.path.name: str(f.path) for f in files}
    commands: list[Command] = [
        ("sysctl", "-w", "net.ipv4.ip_forward=1"),
        ("sysctl", "-w", f"net.ipv6.conf.{ap}.disable_ipv6=1"),
        ("sysctl", "-w", f"net.ipv6.conf.{ap}.accept_ra=0"),
        # The gate is closed before the access point opens.
        ("nft", "-f", path["gate.nft"]),
        *mesh_commands(cfg, addresses),
        ("ip", "link", "set", ap, "up"),
        ("ip", "address", "replace", addresses.portal_interface_address, "dev", ap),
        ("hostapd", "-B", "-P", str(RUN_DIR / "hostapd.pid"), path["hostapd.conf"]),
        ("dnsmasq", f"--conf-file={path['dnsmasq.conf']}",
         f"--pid-file={RUN_DIR / 'dnsmasq.pid'}"),
        *([("dnsmasq", f"--conf-file={path['dnsmasq-walled.conf']}",
            f"--pid-file={RUN_DIR / 'dnsmasq-walled.pid'}")] if walled else []),
        ("babeld", "-D", "-I", str(RUN_DIR / "babeld.pid"), "-c", path["babeld.conf"]),
        *([("sh", path["uplink-shaping.sh"])] if "uplink-shaping.sh" in path else []),
    ]
    return NetworkPlan(addresses=addresses, files=files, commands=tuple(commands))
