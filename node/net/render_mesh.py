"""The radio link between nodes: an 802.11s mesh point, or IBSS where the driver lacks it.

Rendered as ``iw``/``ip`` commands (and a shell script holding the same commands for
technicians and the boot unit). An open mesh (``mesh.security = "open"``) is joined
with ``iw``, which exists on every image and works with every mac80211 driver
(networkd cannot create mesh interfaces). A secured one (``"sae"``, what
``customise`` writes for a community's nodes) is created here but joined by the
agent's ``wpa_supplicant`` with SAE and the community's mesh key
(:mod:`node.net.mesh_sae`). 802.11s path
selection (HWMP) is switched off (``mesh_fwding=0``): babeld does the routing, on
IP, across radio and wired links alike. With ``mesh.auto_peer = false`` the node opens
no peer link itself (the kernel's ``mesh_auto_open_plinks=0``; with SAE,
wpa_supplicant's ``no_auto_peer``): it answers the nodes that open one, and opens those
added by hand. IBSS uses a fixed BSSID derived from the
mesh ID so that cells never split.
"""

from __future__ import annotations

import hashlib
import shlex

from node.config import NodeConfig
from node.net._header import header
from node.net.addressing import AddressPlan
from node.net.regulatory import frequency_mhz

Command = tuple[str, ...]
#: Beacon interval (TU) of the mesh point: the access point's (hostapd's ``beacon_int``).
#: A radio beaconing for both must use one interval, or the kernel refuses the second
#: (EBUSY, seen with mac80211_hwsim: the mesh's default is 1000).
BEACON_INTERVAL_TU = 100


def mesh_channel(cfg: NodeConfig) -> int:
    """The mesh's channel: ``mesh.channel``, or the access point's when that is 0."""
    return cfg.mesh.channel or cfg.wifi.channel


def ibss_bssid(mesh_id: str) -> str:
    """A locally administered unicast BSSID derived from the mesh ID (same on every node)."""
    digest = bytearray(hashlib.sha256(mesh_id.encode("utf-8")).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in digest)


def mesh_commands(cfg: NodeConfig, addresses: AddressPlan) -> list[Command]:
    """The commands that bring the mesh link and the node's mesh address up, in order."""
    mesh = cfg.mesh
    freq = str(frequency_mhz(mesh_channel(cfg)))
    iftype = "mp" if mesh.mode == "802.11s" else "ibss"
    commands: list[Command] = [
        ("ip", "address", "replace", f"{addresses.mesh_address}/32", "dev", "lo"),
        ("iw", "phy", mesh.phy, "interface", "add", mesh.interface, "type", iftype),
        ("ip", "link", "set", mesh.interface, "up"),
    ]
    if mesh.mode == "802.11s":
        if mesh.security != "sae":  # with SAE, the agent's wpa_supplicant joins (mesh_sae)
            commands.append(("iw", "dev", mesh.interface, "mesh", "join", mesh.mesh_id,
                             "freq", freq, "HT20", "beacon-interval", str(BEACON_INTERVAL_TU),
                             "mesh_fwding=0",
                             *(() if mesh.auto_peer else ("mesh_auto_open_plinks=0",))))
    else:
        commands.append(("iw", "dev", mesh.interface, "ibss", "join", mesh.mesh_id, freq,
                         "HT20", "fixed-freq", ibss_bssid(mesh.mesh_id)))
    commands.extend(("ip", "link", "set", name, "up") for name in mesh.wired_interfaces)
    return commands


def render_mesh_script(cfg: NodeConfig, addresses: AddressPlan) -> str:
    """A POSIX shell script running :func:`mesh_commands` (idempotent: an existing
    interface is left as it is)."""
    mesh = cfg.mesh
    lines = [
        "#!/bin/sh",
        header(cfg, f"The mesh link ({mesh.mode}) and this node's mesh address."),
        "set -eu",
    ]
    for command in mesh_commands(cfg, addresses):
        text = shlex.join(command)
        if command[1] == "phy":
            text = f"[ -e /sys/class/net/{shlex.quote(mesh.interface)} ] || {text}"
        elif command[:2] == ("iw", "dev"):
            text = f"{text} || true  # already joined"
        lines.append(text)
    return "\n".join(lines) + "\n"
