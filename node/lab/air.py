"""Who hears whom in the lab: an nftables ``netdev`` table per node, at the very first hook.

On simulated radios every radio hears every other (one shared medium, no distance).
The lab shapes the air at each node's mesh interface: frames from the mesh interface
of a node that is not a neighbour in the topology (or whose link was cut) are dropped
on arrival, before babeld or anything else sees them; a degraded link drops a share
of its frames at random (``numgen random``), in both directions. 802.11s peer links
may still form with every radio in range (management frames are below this hook),
but they carry nothing. On veth links (the lab without radios) the same table drops
a share of what arrives on a degraded link's interface.

Rendering is pure (:func:`render_air`); :func:`apply_air` replaces the whole table in
one ``nft -f`` transaction inside the node's namespace.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from node.lab.netns import LabError, run

TABLE = "mhlab"
#: Before everything else on the interface (conntrack, the gate, babeld's socket).
PRIORITY = -500
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _chain_name(device: str) -> str:
    return "in_" + re.sub(r"[^A-Za-z0-9_]", "_", device)


def _check_mac(mac: str) -> str:
    if not _MAC.match(mac):
        raise LabError(f"{mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return mac


def render_air(*, radio_device: str | None = None, blocked: Sequence[str] = (),
               radio_loss: Mapping[str, int] | None = None,
               device_loss: Mapping[str, int] | None = None) -> str:
    """The ``nft -f`` text of one node's air table.

    ``radio_device`` (``mesh0``): drop frames from the MACs in ``blocked``, and from each
    MAC of ``radio_loss`` that share (percent) of its frames. ``device_loss``: for each
    wired (veth) interface, the percentage of arriving frames to drop.
    """
    for percent in [*(radio_loss or {}).values(), *(device_loss or {}).values()]:
        if not 0 <= percent <= 100:
            raise LabError(f"--loss: {percent} is not a percentage (0-100)")
    lines = [f"table netdev {TABLE}", f"delete table netdev {TABLE}", f"table netdev {TABLE} {{"]
    if radio_device:
        macs = sorted(_check_mac(m) for m in blocked)
        lines.append("    set blocked {")
        lines.append("        type ether_addr")
        if macs:
            lines.append(f"        elements = {{ {', '.join(macs)} }}")
        lines.append("    }")
        lines += _chain(radio_device, ["ether saddr @blocked counter drop"] + [
            f"ether saddr {_check_mac(mac)} {_share(percent)}counter drop"
            for mac, percent in sorted((radio_loss or {}).items()) if percent])
    for device, percent in sorted((device_loss or {}).items()):
        if percent:
            lines += _chain(device, [f"{_share(percent)}counter drop"])
    lines.append("}")
    return "\n".join(lines) + "\n"


def _share(percent: int) -> str:
    """The match for ``percent`` of the packets (nothing: all of them)."""
    return "" if percent >= 100 else f"numgen random mod 100 < {percent} "


def _chain(device: str, rules: list[str]) -> list[str]:
    return [f"    chain {_chain_name(device)} {{",
            f'        type filter hook ingress device "{device}" priority {PRIORITY}; '
            "policy accept;",
            *(f"        {rule}" for rule in rules),
            "    }"]


def apply_air(namespace: str, text: str) -> None:
    """Load ``text`` (from :func:`render_air`) inside ``namespace``, replacing the table."""
    run("ip", "netns", "exec", namespace, "nft", "-f", "-", stdin=text)


def netem(namespace: str, device: str, delay_ms: float) -> None:
    """Delay every frame leaving ``device`` by ``delay_ms`` (0 removes the delay)."""
    if delay_ms:
        result = run("ip", "netns", "exec", namespace, "tc", "qdisc", "replace", "dev", device,
                     "root", "netem", "delay", f"{delay_ms:g}ms", check=False)
        if result.returncode != 0:
            raise LabError(f"--delay needs netem (sch_netem) in this kernel: "
                           f"{result.stderr.strip()}; use --loss only, or run the lab in "
                           "the virtual machine (docs/lab.md, \"Radios\")")
    else:
        run("ip", "netns", "exec", namespace, "tc", "qdisc", "del", "dev", device, "root",
            check=False)
